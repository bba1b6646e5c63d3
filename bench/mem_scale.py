#!/usr/bin/env python3
"""mem_scale.py - the daemon's memory with many secrets (issue 16).

Makes N files of SIZE random bytes, a config with one file backend and N
secrets, mounts them, waits until all N are listed, reads every one, then
samples /proc/PID/status (VmRSS, VmLck, Threads), smaps_rollup and the
mappings of /proc/PID/smaps grouped by kind (heap, thread stacks, sodium
guarded blocks, secheap slabs, libraries), and stops the daemon with SIGTERM.

Needs root and /dev/fuse; re-runs itself in a private mount namespace, so
the mount never outlives it. Standard library only.

  sudo bench/mem_scale.py [-n 10000] [-s 40] [--readers 8] [--admin] [--build build]
                          [--smaps] [--each KB] [--json]

--hold keeps the daemon for gdb, --wrap runs it under e.g. heaptrack.
"""

import argparse
import concurrent.futures
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "bench"))
import benchlib  # noqa: E402


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmLck", "VmHWM", "RssAnon", "RssFile", "Threads", "VmSize"):
                out[k] = v.strip()
    return out


def smaps_rollup(pid):
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                out[parts[0][:-1]] = int(parts[1])
    return out


def smaps(pid):
    """Every mapping: (start, end, perms, name, {field: kB}, VmFlags)."""
    maps, cur = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                parts = line.split(None, 5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur = {"lo": lo, "hi": hi, "perms": parts[1],
                       "name": parts[5].strip() if len(parts) > 5 else "", "f": {}, "flags": ""}
                maps.append(cur)
            elif first == "VmFlags:":
                cur["flags"] = line.split(":", 1)[1].strip()
            else:
                k, _, v = line.partition(":")
                v = v.split()
                if v and v[0].isdigit():
                    cur["f"][k] = int(v[0])
    return maps


def classify(maps, stacks):
    """Group mappings by kind. A thread stack is the mapping holding a
    thread's saved stack pointer (from /proc/PID/task/*/stat); the guard
    page below it is ---p. sodium_malloc blocks are small rw mappings with
    `lo` and `dd` flags between two ---p guard pages."""
    groups = {}

    def add(kind, m):
        g = groups.setdefault(kind, {"maps": 0, "size": 0, "rss": 0, "lck": 0})
        g["maps"] += 1
        g["size"] += m["f"].get("Size", 0)
        g["rss"] += m["f"].get("Rss", 0)
        g["lck"] += m["f"].get("Locked", 0)

    for m in maps:
        name, flags = m["name"], m["flags"].split()
        if name == "[heap]":
            kind = "heap (brk)"
        elif name == "[stack]":
            kind = "main stack"
        elif name.startswith("/") or name.startswith("["):
            kind = "files and vdso" if not name.startswith("/") or m["f"].get("Anonymous", 0) == 0 \
                else "library data (anon)"
        elif m["perms"].startswith("---"):
            kind = "guard pages (---p)"
        elif any(m["lo"] <= sp < m["hi"] for sp in stacks):
            kind = "thread stacks"
        elif "lo" in flags and "dd" in flags and m["f"].get("Size", 0) <= 64:
            kind = "sodium_malloc blocks (small, lo+dd)"
        elif "dd" in flags and "lo" in flags:
            kind = "locked dontdump (secheap slabs, sodium)"
        elif "dd" in flags:
            kind = "dontdump, not locked (hidden thread stacks)"
        else:
            kind = "anon (malloc arenas, other)"
        add(kind, m)
    return groups


def thread_info(pid):
    names, sps = {}, []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                n = f.read().strip()
            names[n] = names.get(n, 0) + 1
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            sps.append(int(fields[26]))   # kstkesp (field 29); 0 unless ptrace-able
        except (OSError, ValueError, IndexError):
            pass
    return names, sps


def daemon_pid(proc, wrapped):
    """The daemon's pid: proc's own, or under --wrap the descendant named runsecrets."""
    if not wrapped:
        return proc.pid
    todo = [proc.pid]
    while todo:
        parent = todo.pop()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            comm = st[st.index("(") + 1:st.rindex(")")]
            if int(st[st.rindex(")") + 2:].split()[1]) == parent:
                if comm == "runsecrets":
                    return int(d)
                todo.append(int(d))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10000, help="secrets (default 10000)")
    ap.add_argument("-s", "--size", type=int, default=40, help="bytes per secret (default 40)")
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    ap.add_argument("--smaps", action="store_true", help="print the mappings by kind")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ap.add_argument("--each", type=int, metavar="KB", default=0,
                    help="also list each anonymous mapping with at least KB kB resident")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (daemon log)")
    ap.add_argument("--wrap", default="", help="words run in front of the daemon (e.g. heaptrack -o F)")
    ap.add_argument("--admin", action="store_true",
                    help="with the admin endpoint (a unix socket in the temp dir); default: --admin none")
    ap.add_argument("--readers", type=int, default=1,
                    help="threads reading the secrets at once (default 1)")
    ap.add_argument("--hold", type=float, default=0,
                    help="seconds to keep the daemon running after sampling (to attach gdb)")
    ap.add_argument("--log-level", default="info",
                    help="the daemon's --log-level (default info, its own default: a line per secret fetched)")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("mem_scale.py: needs root (FUSE mount in a private mount namespace)")
    if not os.environ.get("RS_BENCH_UNSHARED"):
        os.environ["RS_BENCH_UNSHARED"] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private",
                              sys.executable, os.path.abspath(__file__)] + sys.argv[1:])

    daemon = os.path.join(os.path.abspath(args.build), "runsecrets")
    tmp = tempfile.mkdtemp(prefix="rs-mem-")
    src, mnt = os.path.join(tmp, "src"), os.path.join(tmp, "mnt")
    os.mkdir(src, 0o700)
    os.mkdir(mnt, 0o700)
    names = ["s%06d" % i for i in range(args.n)]
    total = 0
    for n in names:
        with open(os.path.join(src, n), "wb") as f:
            f.write(secrets.token_bytes(args.size))
        os.chmod(os.path.join(src, n), 0o600)
        total += args.size
    cfg = {"mount": mnt,
           "defaults": {"refresh": "5m", "max_stale": "1h", "mode": "0400", "uid": 0, "gid": 0},
           "backends": {"local": {"type": "file", "path": src}},
           "secrets": {n: {"from": "local:" + n} for n in names}}
    cpath = os.path.join(tmp, "config.json")
    with open(cpath, "w") as f:
        json.dump(cfg, f)
    os.chmod(cpath, 0o600)

    log = open(os.path.join(tmp, "runsecrets.log"), "w")
    t0 = time.monotonic()
    proc = subprocess.Popen(args.wrap.split() + [daemon, "mount", "--config", cpath, "--no-pid-file", "--admin",
                             "unix:" + os.path.join(tmp, "admin.sock") if args.admin else "none",
                             "--log-level", args.log_level, mnt],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    res = {"n": args.n, "size": args.size, "plaintext_bytes": total}
    try:
        listed = 0
        while time.monotonic() - t0 < args.timeout:
            if proc.poll() is not None:
                sys.exit("mem_scale.py: the daemon exited (%d); log in %s" % (proc.returncode, tmp))
            try:
                listed = len(os.listdir(mnt)) if benchlib.is_mounted(mnt) else 0
            except OSError:
                listed = 0
            if listed >= args.n:
                break
            time.sleep(0.05)
        res["listed_s"] = round(time.monotonic() - t0, 3)
        pid = daemon_pid(proc, bool(args.wrap))
        if listed < args.n:
            sys.exit("mem_scale.py: only %d of %d listed after %.0f s" % (listed, args.n, args.timeout))
        res["after_list"] = status(pid)
        def read_one(n):
            with open(os.path.join(mnt, n), "rb") as f:
                return len(f.read()) == args.size
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.readers) as ex:
            bad = [n for n, ok in zip(names, ex.map(read_one, names)) if not ok]
        if bad:
            sys.exit("mem_scale.py: %s: short read" % bad[0])
        time.sleep(0.5)
        res["after_read"] = status(pid)
        res["rollup_kB"] = smaps_rollup(pid)
        tnames, sps = thread_info(pid)
        res["threads"] = tnames
        maps = smaps(pid)
        groups = classify(maps, sps)
        res["mappings"] = groups
        files = {}
        for m in maps:
            if m["name"].startswith("/"):
                files[m["name"]] = files.get(m["name"], 0) + m["f"].get("Rss", 0)
        res["files_kB"] = files
        if args.each:
            for m in maps:
                if not m["name"].startswith("/") and m["f"].get("Rss", 0) >= args.each:
                    print("%x-%x %s %-8s size %7d rss %7d lck %7d  %s" % (
                        m["lo"], m["hi"], m["perms"], m["name"][:8], m["f"].get("Size", 0),
                        m["f"].get("Rss", 0), m["f"].get("Locked", 0), m["flags"]))
        if args.hold:
            print("holding pid %d for %.0f s" % (pid, args.hold), flush=True)
            time.sleep(args.hold)
    finally:
        if args.wrap:
            p = daemon_pid(proc, True)
            if p:
                os.kill(p, signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    info = benchlib.machine_info(args.build)
    res["machine"] = info
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()
    else:
        print("# mem_scale.py: %s, %s CPUs %s, kernel %s, commit %s" % (
            info["date"], info["nproc"], info["model"], info["kernel"], info["commit"]))
        print("secrets %d x %d B (%.1f MiB plaintext), %d reader(s); listed after %.2f s" % (
            args.n, args.size, total / 1048576, args.readers, res["listed_s"]))
        for when in ("after_list", "after_read"):
            s = res[when]
            print("%-10s VmRSS %s  VmLck %s  RssAnon %s  Threads %s" % (
                when, s.get("VmRSS"), s.get("VmLck"), s.get("RssAnon"), s.get("Threads")))
        print("threads:", ", ".join("%s %d" % kv for kv in sorted(tnames.items())))
        if args.smaps:
            print("%-44s %6s %10s %10s %10s" % ("mappings by kind", "count", "size kB", "rss kB", "lck kB"))
            for k, g in sorted(groups.items(), key=lambda kv: -kv[1]["rss"]):
                print("%-44s %6d %10d %10d %10d" % (k, g["maps"], g["size"], g["rss"], g["lck"]))
    if args.each:
        for k, v in sorted(files.items(), key=lambda kv: -kv[1])[:12]:
            print("%7d kB  %s" % (v, k))
    if args.keep:
        print("kept", tmp)
    else:
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
