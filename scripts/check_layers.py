#!/usr/bin/env python3
"""Fail when a source file includes a header of a layer above its own.

The layers and their ranks are ARCHITECTURE.md's table, parsed from it so
the picture and the check cannot drift apart. A file may include headers of
its own folder or of a folder of strictly lower rank; folders of equal rank
never include each other. Every project include must name its folder from
the repository root ("lib/log.h"); a bare "log.h" is refused too, since it
would hide which layer it comes from. Two files including each other are
refused as well.

Usage: check_layers.py [REPO_ROOT]   (exit 0: ok; 1: violations, listed)
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), '..'))
SOURCES = ('lib', 'backends', 'policy', 'engine', 'fuse', 'broker')
# Not product layers: they may include anything below them.
TOOLS = {'tests': 99, 'bench': 99}
LOCAL_OK = {'rs_config.h'}   # generated into the build root by meson
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def ranks_from_architecture():
    """ARCHITECTURE.md's layer table: | rank | `folder/` | ... |"""
    path = os.path.join(ROOT, 'ARCHITECTURE.md')
    ranks = {}
    with open(path) as f:
        for line in f:
            m = re.match(r'^\|\s*(\d+)\s*\|\s*((?:`[^`]+`[,\s]*)+)\|', line)
            if m:
                for folder in re.findall(r'`([^`]+?)/?`', m.group(2)):
                    ranks[folder.rstrip('/')] = int(m.group(1))
    if not ranks:
        sys.exit(f'check_layers: no layer table found in {path}')
    return ranks


def folder_of(relpath, ranks):
    """The deepest folder of the table that holds relpath."""
    d = os.path.dirname(relpath)
    while d:
        if d in ranks:
            return d
        d = os.path.dirname(d)
    return None


def main():
    ranks = ranks_from_architecture()
    problems = []
    edges = {}
    files = []
    for top in SOURCES + tuple(TOOLS):
        for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
            for n in names:
                if n.endswith(('.c', '.h')):
                    files.append(os.path.relpath(os.path.join(dirpath, n), ROOT))
    for rel in sorted(files):
        top = rel.split(os.sep)[0]
        if top in TOOLS:
            mine, rank = top, TOOLS[top]
        else:
            mine = folder_of(rel, ranks)
            if mine is None:
                problems.append(f'{rel}: its folder is not in ARCHITECTURE.md\'s layer table')
                continue
            rank = ranks[mine]
        with open(os.path.join(ROOT, rel), errors='replace') as f:
            text = f.read()
        for lineno, m in ((text.count('\n', 0, m.start()) + 1, m)
                          for m in INCLUDE.finditer(text)):
            inc = m.group(1)
            if inc in LOCAL_OK:
                continue
            if '/' not in inc:
                if top in TOOLS and os.path.exists(os.path.join(ROOT, os.path.dirname(rel), inc)):
                    continue   # a test's own helper header beside it
                problems.append(f'{rel}:{lineno}: #include "{inc}": name the folder '
                                f'("lib/{inc}")')
                continue
            if not os.path.exists(os.path.join(ROOT, inc)):
                problems.append(f'{rel}:{lineno}: #include "{inc}": no such file')
                continue
            edges.setdefault(rel, set()).add(inc)
            theirs = folder_of(inc, ranks)
            if theirs is None or theirs == mine:
                continue
            if ranks[theirs] > rank:
                problems.append(f'{rel}:{lineno}: {mine}/ (rank {rank}) includes "{inc}" of '
                                f'{theirs}/ (rank {ranks[theirs]}): a layer above its own')
            elif ranks[theirs] == rank and top not in TOOLS:
                problems.append(f'{rel}:{lineno}: {mine}/ includes "{inc}" of {theirs}/: '
                                f'folders of the same rank ({rank}) must not use each other')
    # A .c and its header count as one module: a cycle between modules is
    # a pair of headers (or a header and a source) including each other. A
    # folder's private "_i.h" (libfuse's fuse_i.h) gathers what the folder's
    # files share and is no module of its own.
    def module(p):
        return None if p.endswith('_i.h') else os.path.splitext(p)[0]
    mod_edges = {}
    for a, bs in edges.items():
        for b in bs:
            if module(a) and module(b) and module(a) != module(b):
                mod_edges.setdefault(module(a), set()).add(module(b))
    for a, bs in mod_edges.items():
        for b in bs:
            if a < b and a in mod_edges.get(b, ()):
                problems.append(f'{a} and {b} include each other')
    for p in problems:
        print(p)
    if problems:
        print(f'check_layers: {len(problems)} problem(s); the layers are in ARCHITECTURE.md',
              file=sys.stderr)
        return 1
    print(f'check_layers: ok ({len(files)} files, {len(ranks)} layers)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
