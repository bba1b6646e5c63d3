"""Plaintext hygiene under load, with timing made irrelevant.

One broker serves secrets from all three backends (the file backend, the
strict Vault fake over TLS with AppRole login and a dynamic lease, and moto
through the recording proxy with container credentials), every one
refreshed every 100 ms, while a value of each backend rotates several times
a second, 16 reader processes read every file in a loop and two busy loops
keep both cores saturated. Meanwhile the test takes RSTEST_DUMPS (default
50) gcores of the broker at random moments and searches each for every
value ever served (raw, hex, base64 at any alignment), every token, secret
id, access key and session token the broker held, and both cache keys.

The goal is 0 findings in all dumps: a finding is a leak, whatever the
timing. A finding is reported with the dump, the mapping (from
/proc/PID/maps at the dump) or the register note it sits in.

RSTEST_DUMPS=N sets the number of dumps (docs/reliability.md records the
long runs); RSTEST_LEAK_HOG=0 turns the CPU hogs off (for comparison only).
"""

import base64
import json
import mmap
import os
import random
import shutil
import struct
import subprocess
import sys
import threading
import time

import awsenv
import rstest
import vaultenv

DUMPS = int(os.environ.get("RSTEST_DUMPS", "50"))
HOG = os.environ.get("RSTEST_LEAK_HOG", "1") != "0"
VERBOSE = os.environ.get("RSTEST_VERBOSE", "0") != "0"
READERS = 16
ROTATE_EVERY = 0.3          # seconds between two rotations of one backend's value
GAP = (0.0, 0.4)            # random pause before each dump, seconds

READER = r"""
import json, os, sys, time
spec = json.load(open(sys.argv[1]))
stop = sys.argv[2]
allowed = {k: set(v.encode() if isinstance(v, str) else bytes.fromhex(v["hex"]) for v in vals)
           for k, vals in spec.items()}
reads = bad = 0
badnames = set()
seen = {k: set() for k in ("f/plain", "v/pw", "a/plain")}
deadline = time.monotonic() + 900
while not os.path.exists(stop) and time.monotonic() < deadline:
    for name, ok in allowed.items():
        try:
            fd = os.open(os.path.join(sys.argv[3], name), os.O_RDONLY)
        except OSError:
            bad += 1; badnames.add(name + ": open"); continue
        try:
            data = b""
            while True:
                b = os.read(fd, 65536)
                if not b:
                    break
                data += b
        except OSError:
            bad += 1; badnames.add(name + ": read"); continue
        finally:
            os.close(fd)
        reads += 1
        if name in seen:
            seen[name].add(data.hex())
        if ok and data not in ok:
            bad += 1; badnames.add(name + ": unexpected value")
        elif not ok and not data:
            bad += 1; badnames.add(name + ": empty")
json.dump({"reads": reads, "bad": bad, "badnames": sorted(badnames),
           "seen": {k: sorted(v) for k, v in seen.items()}}, sys.stdout)
"""


def b64_anywhere(v):
    """Substrings that the base64 text of v shows wherever v sits in a longer
    base64-encoded stream (three alignments), standard and URL-safe."""
    out = set()
    for s in range(3):
        enc = base64.b64encode(b"\0" * s + v)
        lo = -(-4 * s // 3)
        hi = (8 * (s + len(v))) // 6
        piece = enc[lo:hi]
        if len(piece) >= 12:
            out.add(piece)
            out.add(piece.replace(b"+", b"-").replace(b"/", b"_"))
    return out


def encodings(v):
    """(encoding name, bytes) forms of v searched for in a dump."""
    forms = [("raw", v), ("hex", v.hex().encode()), ("HEX", v.hex().upper().encode())]
    forms += [("base64", p) for p in sorted(b64_anywhere(v))]
    return forms


class CoreIndex:
    """Where a file offset of an ELF core lies: a PT_LOAD segment (mapped at
    some address, named from /proc/PID/maps) or a PT_NOTE (registers)."""

    def __init__(self, path, maps, threads=None):
        self.segments = []
        self.path = path
        self.threads = threads or {}   # LWP -> name, read at the dump
        with open(path, "rb") as f:
            eh = f.read(64)
            phoff, = struct.unpack_from("<Q", eh, 32)
            phentsize, phnum = struct.unpack_from("<HH", eh, 54)
            f.seek(phoff)
            for _ in range(phnum):
                p_type, _flags, off, vaddr, _pa, filesz = struct.unpack_from(
                    "<IIQQQQ", f.read(phentsize))
                self.segments.append((p_type, off, vaddr, filesz))
        self.maps = maps

    def where(self, off):
        for p_type, s_off, vaddr, size in self.segments:
            if s_off <= off < s_off + size:
                if p_type == 4:
                    return "registers (PT_NOTE) %s" % self.note_of(s_off, size, off)
                addr = vaddr + off - s_off
                for lo, hi, desc in self.maps:
                    if lo <= addr < hi:
                        return "0x%x in %s" % (addr, desc)
                return "0x%x (unnamed)" % addr
        return "offset %d (headers)" % off


NOTE_TYPES = {1: "NT_PRSTATUS", 2: "NT_FPREGSET", 0x202: "NT_X86_XSTATE"}


def _note_of(self, seg_off, seg_size, off):
    """Which thread's note holds off: notes run NT_PRSTATUS (its pr_pid at
    byte 32), then that thread's FP and XSTATE notes."""
    lwp, kind = None, "?"
    with open(self.path, "rb") as f:
        f.seek(seg_off)
        data = f.read(seg_size)
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        desc = pos + 12 + ((namesz + 3) & ~3)
        end = desc + ((descsz + 3) & ~3)
        if ntype == 1 and descsz >= 36:
            lwp, = struct.unpack_from("<i", data, desc + 32)
        if seg_off + pos <= off < seg_off + end:
            kind = NOTE_TYPES.get(ntype, "type 0x%x" % ntype)
            break
        pos = end
    return "of thread %s (%s), %s" % (lwp, self.threads.get(str(lwp), "?"), kind)


CoreIndex.note_of = _note_of


def read_threads(pid):
    """LWP -> thread name (comm), for naming a finding in registers."""
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                out[t] = f.read().strip()
        except OSError:
            pass
    return out


def read_maps(pid):
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, "%s %s" % (parts[1], parts[5] if len(parts) > 5 else "[anon]")))
    return out


class LeakUnderLoadTest(vaultenv.VaultTestCase, awsenv.AwsTestCase):

    maxDiff = None

    def setUp(self):
        super().setUp()
        if not shutil.which("gdb"):
            self.fail("gdb is required for the core-dump check (scripts/deps.sh installs it)")
        self.children = []
        self.addCleanup(self._stop_children)

    def _stop_children(self):
        self._stop_children_named(self.children)

    def _stop_children_named(self, procs):
        for p in procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    # -- the values

    def series(self, prefix, n):
        return [rstest.random_value(24, prefix) for _ in range(n)]

    def test_no_plaintext_in_dumps_under_load(self):
        if rstest.is_asan_build():
            self.skipTest("gcore check runs on the non-sanitizer build only (see test_hygiene)")
        n_rot = 2000
        # file backend
        f_rot = self.series("file-rotating-", n_rot)
        f_pw = rstest.random_value(24, "file-field-")
        f_unused = rstest.random_value(24, "file-unused-")
        self.write_secret("plain", f_rot[0])
        self.write_secret("doc.json", json.dumps({"pw": f_pw, "unused": f_unused}))
        f_bin = os.urandom(40)
        self.write_secret("bin", f_bin)
        # Vault: AppRole login, KV v2 (a field and the whole object), KV v1, a lease
        role_id = "role-" + os.urandom(12).hex()
        secret_id = self.sensitive("secret-id-" + os.urandom(16).hex()).decode()
        self.vault.add_approle("app", role_id, secret_id, ttl=3600)
        secret_id_file = self.write_private("secret-id", secret_id + "\n")
        self.vault.add_kv_mount("secret", version=2, max_versions=5)
        self.vault.add_kv_mount("legacy", version=1)
        v_rot = self.series("vault-rotating-", n_rot)
        v_user = rstest.random_value(24, "vault-user-")
        v_v1 = rstest.random_value(24, "vault-kv1-")
        self.put_secret("secret", "app", {"password": v_rot[0], "user": v_user})
        self.put_secret("legacy", "old", {"k": v_v1})
        self.vault.add_database_mount()
        self.vault.add_database_role("app", ttl=3600, max_ttl=7200)
        # AWS: container credentials (the fake records every key it hands out)
        a_rot = self.series("aws-rotating-", n_rot)
        a_pw = rstest.random_value(24, "aws-field-")
        a_unused = rstest.random_value(24, "aws-unused-")
        a_bin = os.urandom(33) + b"\x00aws-binary"
        self.create_secret("plain", a_rot[0])
        self.create_secret("doc", json.dumps({"pw": a_pw, "unused": a_unused}))
        self.create_secret("bin", binary=a_bin)
        ecs_token = "ecs-" + os.urandom(16).hex()
        self.sensitive(ecs_token)
        ecs_token_file = self.write_private("ecs-token", ecs_token)
        srv = self.creds_server(ecs_token=ecs_token)

        marker = "marker-" + os.urandom(8).hex()
        secrets = {
            "f/plain": {"from": "local:plain"},
            "f/pw": {"from": "local:doc.json#pw"},
            "f/bin": {"from": "local:bin"},
            "v/pw": {"from": "vault:secret/app#password"},
            "v/whole.json": {"from": "vault:secret/app"},
            "v/old": {"from": "vault:legacy/old#k"},
            "v/db/user": {"from": "vault:database/creds/app#username"},
            "v/db/password": {"from": "vault:database/creds/app#password"},
            "a/plain": {"from": "aws:" + self.n("plain")},
            "a/pw": {"from": "aws:" + self.n("doc") + "#pw"},
            "a/bin": {"from": "aws:" + self.n("bin")},
            marker: {"from": "local:doc.json#unused"},
        }
        backends = {
            "local": {"type": "file", "path": self.secrets_dir},
            "vault": self.vault_backend(auth={"method": "approle", "role_id": role_id,
                                              "secret_id_file": secret_id_file}),
            "aws": self.aws_backend(),
        }
        self.write_config(secrets, backends=backends,
                          defaults={"refresh": "100ms", "max_stale": "1h"})
        # warn: the audit lines of 16 looping readers would be gigabytes (so
        # no "cold start done" to wait for: every file answering is the sign).
        b = self.start_broker(keys=False, log_level="warn", wait=False, env={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url + srv.ecs_path,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": ecs_token_file})
        b.wait_mounted()
        rstest.wait_until(lambda: all(isinstance(self.try_read(*n.split("/")), bytes)
                                      for n in secrets), rstest.LOG_TIMEOUT * 2,
                          "every secret to be served")
        db_user = self.read("v", "db", "user")
        db_pw = self.read("v", "db", "password")
        self.sensitive(db_user)
        self.sensitive(db_pw)

        # What each reader accepts (rotating values: any of the series).
        whole = [json.dumps({"password": v, "user": v_user}, separators=(",", ":"))
                 for v in v_rot]
        spec = {"f/plain": f_rot, "f/pw": [f_pw], "f/bin": [{"hex": f_bin.hex()}],
                "v/pw": v_rot, "v/whole.json": [], "v/old": [v_v1],
                "v/db/user": [db_user.decode()], "v/db/password": [db_pw.decode()],
                "a/plain": a_rot, "a/pw": [a_pw], "a/bin": [{"hex": a_bin.hex()}]}
        spec_path = os.path.join(self.dir, "readers.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        stop_path = os.path.join(self.dir, "stop-readers")
        readers = [subprocess.Popen([sys.executable, "-c", READER, spec_path, stop_path, self.mnt],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for _ in range(READERS)]
        self.children += readers
        hogs = []
        if HOG:
            hogs = [subprocess.Popen([sys.executable, "-c",
                                      "import time\nt = time.monotonic() + 900\n"
                                      "while time.monotonic() < t: pass"])
                    for _ in range(2)]
            self.children += hogs

        rotated = {"f": 0, "v": 0, "a": 0}
        extra = {"file field": f_pw, "file unused": f_unused, "file binary": f_bin,
                 "vault user field": v_user, "vault kv1": v_v1,
                 "vault db user": db_user, "vault db password": db_pw,
                 "aws field": a_pw, "aws unused": a_unused, "aws binary": a_bin,
                 "approle secret id": secret_id, "ecs token": ecs_token,
                 "vault root token": self.vault.root_token}

        def rotate():
            k = ["f", "v", "a"][sum(rotated.values()) % 3]
            i = rotated[k] + 1
            if i >= n_rot:
                return
            if k == "f":
                self.write_secret("plain", f_rot[i])
            elif k == "v":
                self.put_secret("secret", "app", {"password": v_rot[i], "user": v_user})
            else:
                self.put_value("plain", a_rot[i])
            rotated[k] = i

        stop_rot = threading.Event()

        def rotator():
            while not stop_rot.wait(ROTATE_EVERY / 3):
                rotate()
        rot_thread = threading.Thread(target=rotator, daemon=True)
        rot_thread.start()
        dumps = []
        t0 = time.monotonic()
        keys = None
        for d in range(DUMPS):
            time.sleep(random.uniform(*GAP))
            self.assertTrue(b.running(), b.describe())
            maps = read_maps(b.pid)
            threads = read_threads(b.pid)
            t_dump = time.monotonic()
            if keys is None:
                key, hashkey, core, _ = rstest.gdb_dump(self, b.pid)
                keys = {"cache key": key, "hash key": hashkey}
            else:
                core = os.path.join(self.dir, "core.%d" % d)
                r = subprocess.run(["gdb", "-p", str(b.pid), "-batch", "-nx",
                                    "-ex", "set auto-solib-add off",
                                    "-ex", "gcore %s" % core],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=120)
                self.assertTrue(os.path.exists(core), "gcore wrote no core:\n%s"
                                % r.stdout.decode("utf-8", "replace")[-3000:])
            final = os.path.join(self.dir, "dump-%02d.core" % d)
            os.rename(core, final)
            dumps.append((d, final, (maps, threads)))
            if VERBOSE:
                sys.stderr.write("dump %d: %d MiB in %.1f s, %.0f s since the first\n"
                                 % (d, os.path.getsize(final) >> 20, time.monotonic() - t_dump,
                                    time.monotonic() - t0))
        elapsed = time.monotonic() - t0
        stop_rot.set()
        rot_thread.join(timeout=30)
        with open(stop_path, "w"):
            pass
        self._stop_children_named(hogs)
        results = []
        for r in readers:
            out, err = r.communicate(timeout=60)
            self.assertEqual(r.returncode, 0, err.decode("utf-8", "replace")[-2000:])
            results.append(json.loads(out))
        reads = sum(r["reads"] for r in results)
        bad = sum(r["bad"] for r in results)
        badnames = sorted({n for r in results for n in r["badnames"]})
        self.assertTrue(b.running(), b.describe())
        served = {k: len(set().union(*(r["seen"].get(k, []) for r in results)))
                  for k in ("f/plain", "v/pw", "a/plain")}
        # Searched once the load is off: dumps were taken under it.
        findings = []
        t1 = time.monotonic()
        for d, core, (maps, threads) in dumps:
            findings += self.search(d, core, maps, threads, marker, keys, srv, f_rot, v_rot, a_rot,
                                    rotated, extra)
        sys.stderr.write("\nleak test: %d dumps in %.0f s (searched in %.0f s), %d reads by %d "
                         "readers, rotations written %s, distinct values served %s, CPU hogs %s\n"
                         % (DUMPS, elapsed, time.monotonic() - t1, reads, READERS, rotated,
                            served, "on" if HOG else "off"))
        self.assertEqual(findings, [], "plaintext found in dumps of the serving broker")
        self.assertEqual(bad, 0, "readers saw errors or torn values: %s" % badnames)
        # The run was not idle: values crossed the broker the whole time.
        self.assertGreater(reads, DUMPS * READERS, "the readers barely read")
        for k in rotated:
            self.assertGreaterEqual(rotated[k], DUMPS // 10, "too few rotations of %s" % k)
        for k, n in served.items():
            self.assertGreaterEqual(n, DUMPS // 20 + 1, "the readers saw few values of %s" % k)

    def search(self, d, core, maps, threads, marker, keys, srv, f_rot, v_rot, a_rot, rotated, extra):
        """Search one dump (then delete it); returns finding strings."""
        needles = {}
        for i in range(rotated["f"] + 1):
            needles["file rotating value %d" % i] = f_rot[i]
        for i in range(rotated["v"] + 1):
            needles["vault rotating value %d" % i] = v_rot[i]
        for i in range(rotated["a"] + 1):
            needles["aws rotating value %d" % i] = a_rot[i]
        needles.update(extra)
        for t in self.vault.tokens():
            needles["vault token %s..." % t["id"][:6]] = t["id"]
        for i, c in enumerate(srv.issued()):
            needles["aws secret access key %d" % i] = c["SecretAccessKey"]
            needles["aws session token %d" % i] = c["SessionToken"]
        forms = {}
        for label, v in needles.items():
            if isinstance(v, str):
                v = v.encode()
            for enc, form in encodings(v):
                forms.setdefault(form, "%s (%s)" % (label, enc))
        for label, k in keys.items():
            for enc, form in encodings(k):
                forms.setdefault(form, "%s (%s)" % (label, enc))
        # In a child process: the fakes serving the broker are threads of
        # this one, and a search holding our GIL would starve them.
        spec_path = os.path.join(self.dir, "search-%d.json" % d)
        with open(spec_path, "w") as f:
            json.dump({"core": core, "marker": marker, "maps": maps, "threads": threads,
                       "forms": {form.hex(): label for form, label in forms.items()}}, f)
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--search", spec_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        os.unlink(spec_path)
        self.assertEqual(r.returncode, 0, r.stderr.decode("utf-8", "replace")[-3000:])
        res = json.loads(r.stdout)
        self.assertGreater(res["size"], 1 << 20, "core suspiciously small")
        self.assertTrue(res["marker"], "the core does not even hold the secret names: not a real dump")
        found = ["dump %d: %s" % (d, f) for f in res["found"]]
        os.unlink(core)
        return found


def search_core(spec_path):
    """The child side of search(): prints {"size", "marker", "found"}."""
    with open(spec_path) as f:
        spec = json.load(f)
    core = spec["core"]
    forms = {bytes.fromhex(h): label for h, label in spec["forms"].items()}
    idx = CoreIndex(core, [tuple(m) for m in spec["maps"]], spec.get("threads"))
    hits = set()
    printable = [f for f in forms if all(32 < c < 127 for c in f)]
    with open(core, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        size = len(m)
        marker = m.find(spec["marker"].encode()) != -1
        for form in forms:
            if form not in printable:
                off = m.find(form)
                if off != -1:
                    hits.add((form, off))
    if printable:
        pat = core + ".patterns"
        with open(pat, "wb") as pf:
            pf.write(b"\n".join(printable) + b"\n")
        r = subprocess.run(["grep", "-aboF", "-f", pat, core], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        os.unlink(pat)
        if r.returncode not in (0, 1):
            sys.exit("grep failed: %s" % r.stderr.decode()[-500:])
        for line in r.stdout.splitlines():
            off, _, s = line.partition(b":")
            hits.add((s, int(off)))
    found = []
    for form, off in sorted(hits, key=lambda h: h[1]):
        # grep -o prints the leftmost-longest match: map it back.
        label = forms.get(form) or next((l for f2, l in forms.items() if f2 in form), "?")
        found.append("%s at %s" % (label, idx.where(off)))
    json.dump({"size": size, "marker": marker, "found": found}, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--search":
        search_core(sys.argv[2])
    else:
        rstest.main()
