"""rstest - the harness of the runsecrets integration tests.

Each test file ends with ``rstest.main()`` and runs as

    python3 tests/integration/test_X.py /path/to/runsecrets [unittest args]

The harness:
- exits 77 (skip) only when /dev/fuse is absent;
- re-executes the whole test process under ``unshare --mount --propagation
  private`` so that no mount made by a test (or left by a crashed broker) is
  ever visible on the host;
- gives every test a private temporary directory (secrets, config, mountpoint,
  logs) and starts brokers with their stderr captured to a file;
- waits for mounts and log lines with bounded timeouts, failing at once when
  the broker exits first (showing its stderr);
- always stops the brokers it started and unmounts whatever is left under the
  test's directory (fusermount3 -uz, then umount -l);
- fails a test whose broker stderr holds a sanitizer report, or any value the
  test registered as secret.

Standard library only (unittest).
"""

import base64
import errno
import json
import mmap
import os
import pickle
import re
import secrets as _random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SKIP_EXIT = 77
ENV_NS = "RSTEST_PRIVATE_MOUNT_NS"
FSTYPE = "fuse.runsecrets"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")

# Set by main(): absolute path of the runsecrets binary under test.
BINARY = None

# Bounded waits (seconds). Refresh intervals in tests are 1s.
MOUNT_TIMEOUT = 15.0
LOG_TIMEOUT = 12.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 30.0
POLL = 0.05
SETTLE = 0.2


# --------------------------------------------------------------------------
# entry point


def main():
    """Skip without FUSE, enter a private mount namespace, run unittest."""
    if not os.path.exists("/dev/fuse"):
        print("SKIP: /dev/fuse is absent", file=sys.stderr)
        sys.exit(SKIP_EXIT)
    args = sys.argv[1:]
    binary = os.environ.get("RUNSECRETS")
    if args and not args[0].startswith("-"):
        binary = args.pop(0)
    if not binary:
        print("usage: %s /path/to/runsecrets [unittest options]" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        print("not an executable: %s" % binary, file=sys.stderr)
        sys.exit(2)
    if os.environ.get(ENV_NS) != "1":
        env = dict(os.environ)
        env[ENV_NS] = "1"
        script = os.path.abspath(sys.argv[0])
        cmd = ["unshare", "--mount", "--propagation", "private",
               sys.executable, script, binary] + args
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execvpe("unshare", cmd, env)
        except OSError as e:
            print("cannot re-exec under unshare: %s" % e, file=sys.stderr)
            sys.exit(1)
    global BINARY
    BINARY = binary
    unittest.main(argv=[sys.argv[0]] + args, verbosity=2)


# --------------------------------------------------------------------------
# small helpers


def random_value(nbytes=24, prefix="rs-secret-"):
    """A long random printable value that cannot appear anywhere by chance."""
    return prefix + _random.token_hex(nbytes)


def read_all(path, chunk=4096):
    """Read a whole file with plain os.open/os.read (no Python buffering)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_fd(fd, chunk)
    finally:
        os.close(fd)


def read_fd(fd, chunk=4096):
    out = []
    while True:
        b = os.read(fd, chunk)
        if not b:
            break
        out.append(b)
    return b"".join(out)


def errno_of(fn, *args, **kw):
    """Run fn; return the errno it failed with, or None on success."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return None


def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mountinfo():
    """Entries of /proc/self/mountinfo as dicts."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            out.append({
                "id": int(parts[0]),
                "mountpoint": _unescape_mountinfo(parts[4]),
                "opts": parts[5].split(","),
                "fstype": parts[sep + 1],
                "source": _unescape_mountinfo(parts[sep + 2]),
                "superopts": parts[sep + 3].split(",") if len(parts) > sep + 3 else [],
            })
    return out


def mounts_at(path):
    path = os.path.abspath(path)
    return [m for m in mountinfo() if m["mountpoint"] == path]


def runsecrets_mounts_at(path):
    return [m for m in mounts_at(path) if m["fstype"] == FSTYPE]


def unmount(path):
    """Unmount path lazily: fusermount3 -uz, falling back to umount -l."""
    for cmd in (["fusermount3", "-uz", path], ["umount", "-l", path]):
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return True
    return False


def wait_until(pred, timeout, what, interval=POLL):
    """Poll pred() until true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def run_as(uid, gid, func, groups=()):
    """Fork; in the child drop to uid/gid/groups and run func().

    Returns ("ok", result, pid) or ("err", errno, pid). func must return
    something picklable."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            try:
                os.setgroups(list(groups))
                os.setgid(gid)
                os.setuid(uid)
                res = ("ok", func())
            except OSError as e:
                res = ("err", e.errno)
            except BaseException as e:  # noqa: BLE001 - report anything
                res = ("exc", repr(e))
            os.write(w, pickle.dumps(res))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    res = pickle.loads(data) if data else ("exc", "child died")
    if res[0] == "exc":
        raise AssertionError("child as uid %d failed: %s" % (uid, res[1]))
    return res[0], res[1], pid


def run_cli(*args, timeout=CLI_TIMEOUT, env=None):
    """Run the binary with args; returns CompletedProcess (bytes)."""
    return subprocess.run([BINARY] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          env=env)


def is_asan_build(path=None):
    """True when the binary is built with AddressSanitizer (RS_PLAIN_ALLOC)."""
    with open(path or BINARY, "rb") as f:
        return b"__asan_init" in f.read()


# --------------------------------------------------------------------------
# the broker under test


class Broker:
    """One `runsecrets mount` process, stderr captured to a file."""

    def __init__(self, tc, config, mountpoint, args=(), positional=True, log_format=None,
                 log_level=None, env=None, default_pid_file=False, wrap=()):
        self.tc = tc
        self.mountpoint = os.path.abspath(mountpoint)
        n = len(tc.brokers)
        self.stderr_path = os.path.join(tc.dir, "broker%d.stderr" % n)
        self.stdout_path = os.path.join(tc.dir, "broker%d.stdout" % n)
        cmd = [BINARY, "mount", "--config", config]
        if log_format:
            cmd += ["--log-format", log_format]
        if log_level:
            cmd += ["--log-level", log_level]
        cmd += list(args)
        # The default pid file (/run/runsecrets/runsecrets.pid as root with the config's mountpoint)
        # is the host's, outside the test's mount namespace: a test that wants one names it, or asks
        # for the default (default_pid_file, after a private /run/runsecrets of its own).
        if (not positional and not default_pid_file
                and not any(a in ("--pid-file", "--no-pid-file") for a in args)):
            cmd.append("--no-pid-file")
        if positional:
            cmd.append(self.mountpoint)
        # wrap: a command that execs the broker (unshare, setpriv), so pid stays the broker's.
        cmd = list(wrap) + cmd
        self.cmd = cmd
        self.mounts_before = {m["id"] for m in mounts_at(self.mountpoint)}
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=env)
        self.pid = self.proc.pid
        tc.brokers.append(self)

    # -- output

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read()

    def stderr_text(self):
        return self.stderr().decode("utf-8", "replace")

    def logs(self):
        """Parsed JSON log lines (non-JSON lines are skipped)."""
        out = []
        for line in self.stderr_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def mark(self):
        """A position in the log: wait_log(since=mark) sees only later lines."""
        return len(self.logs())

    def find_logs(self, msg, since=0, **fields):
        return [r for r in self.logs()[since:]
                if r.get("msg") == msg and all(r.get(k) == v for k, v in fields.items())]

    def describe(self, tail=40):
        lines = self.stderr_text().splitlines()
        rc = self.proc.poll()
        return ("broker %s (pid %d, %s); last stderr lines:\n  %s"
                % (" ".join(self.cmd), self.pid,
                   "running" if rc is None else "exit code %d" % rc,
                   "\n  ".join(lines[-tail:]) or "(empty)"))

    def wait_log(self, msg, since=0, timeout=LOG_TIMEOUT, **fields):
        """Wait for a JSON log line with msg and the given field values."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find_logs(msg, since, **fields)
            if found:
                return found[0]
            if self.proc.poll() is not None:
                found = self.find_logs(msg, since, **fields)
                if found:
                    return found[0]
                self.tc.fail("broker exited before logging %r %r\n%s" % (msg, fields,
                                                                          self.describe()))
            if time.monotonic() >= deadline:
                self.tc.fail("no log line %r %r within %.1fs\n%s" % (msg, fields, timeout,
                                                                     self.describe()))
            time.sleep(POLL)

    # -- lifecycle

    def running(self):
        return self.proc.poll() is None

    def mount_entry(self):
        """Our mount's mountinfo entry, or None. The kernel recycles mount
        ids, so when a (stale) mount was there before we started, an entry
        with an old id counts only once the mount answers requests."""
        found = runsecrets_mounts_at(self.mountpoint)
        for m in found:
            if m["id"] not in self.mounts_before:
                return m
        if found and self.mounts_before:
            try:
                os.listdir(self.mountpoint)
            except OSError:
                return None
            return found[-1]
        return None

    def wait_mounted(self, timeout=MOUNT_TIMEOUT):
        """Wait for a new fuse.runsecrets mount at the mountpoint."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.mount_entry()
            if m:
                return m
            if self.proc.poll() is not None:
                self.tc.fail("broker exited before mounting %s\n%s" % (self.mountpoint,
                                                                      self.describe()))
            if time.monotonic() >= deadline:
                self.tc.fail("%s not mounted within %.1fs\n%s" % (self.mountpoint, timeout,
                                                                 self.describe()))
            time.sleep(POLL)

    def send(self, sig):
        if self.running():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT, settle=SETTLE):
        """Send sig and wait; SIGKILL (and fail) if it does not exit in time.

        settle: the kernel sends RELEASE for a closed file asynchronously;
        let it arrive first so a stop right after a read is deterministic
        (test_lifecycle stops with a file really open on purpose)."""
        if not self.running():
            return self.proc.returncode
        if settle:
            time.sleep(settle)
        os.kill(self.pid, sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
            self.tc.fail("broker did not exit within %.1fs of signal %d\n%s"
                         % (timeout, sig, self.describe()))
        return None

    def kill(self):
        if self.running():
            self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT)

    def cleanup(self):
        """Stop by any means (tearDown). Never raises."""
        if self.proc.poll() is None:
            try:
                time.sleep(SETTLE)
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass


KEY_BYTES = 32


def gdb_dump(tc, pid):
    """Read both cache keys from the live broker (main's `broker`), then
    gcore it. Returns (key, hashkey, core path, gdb output)."""
    key_path = os.path.join(tc.dir, "key.bin")
    hashkey_path = os.path.join(tc.dir, "hashkey.bin")
    core_prefix = os.path.join(tc.dir, "core")
    cmd = ["gdb", "-p", str(pid), "-batch", "-nx",
           "-ex", "set pagination off",
           "-ex", "set confirm off",
           "-ex", "thread 1",
           "-ex", "frame function main",
           "-ex", "p/x *broker.cache->key@%d" % KEY_BYTES,
           "-ex", "dump binary memory %s broker.cache->key broker.cache->key+%d"
                  % (key_path, KEY_BYTES),
           "-ex", "dump binary memory %s broker.cache->hashkey broker.cache->hashkey+%d"
                  % (hashkey_path, KEY_BYTES),
           "-ex", "gcore %s" % core_prefix]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    for p in (key_path, hashkey_path):
        tc.assertTrue(os.path.exists(p), "gdb could not read the keys:\n%s" % out[-4000:])
    with open(key_path, "rb") as f:
        key = f.read()
    with open(hashkey_path, "rb") as f:
        hashkey = f.read()
    core = core_prefix if os.path.exists(core_prefix) else "%s.%d" % (core_prefix, pid)
    tc.assertTrue(os.path.exists(core), "gcore wrote no core:\n%s" % out[-4000:])
    return key, hashkey, core, out



def dump_serving(tc, broker, name, value):
    """gcore of a broker that must survive it and keep serving: the dump (as gdb_dump), after checking
    that the broker still runs, still reads `value` (bytes) at `name`, and that gdb read a cache key
    (not all zeros). Returns (key, hashkey, core)."""
    key, hashkey, core, gdb_out = gdb_dump(tc, broker.pid)
    tc.assertTrue(broker.running(), "the broker died under gdb\n" + broker.describe())
    tc.assertEqual(tc.read(name), value)   # still serving
    tc.assertNotEqual(key, bytes(KEY_BYTES), gdb_out[-2000:])
    return key, hashkey, core

def core_findings(tc, core, marker, needles, keys):
    """Search a core dump (then delete it) for each bytes value of needles
    ({label: bytes}) and each key of keys ({label: bytes}) raw, in hex and in
    base64. Checks the dump is real: over 1 MiB and holding marker (a
    secret's name, which is in the heap by design). Returns the labels
    found."""
    found = []
    with open(core, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        tc.assertGreater(len(m), 1 << 20, "core suspiciously small")
        tc.assertNotEqual(m.find(marker.encode()), -1,
                          "the core does not even hold the secret names: not a real dump")
        found = [label for label, v in needles.items() if m.find(v) != -1]
        for kname, k in keys.items():
            for enc_name, enc in (("raw", k), ("hex", k.hex().encode()),
                                  ("base64", base64.b64encode(k))):
                if m.find(enc) != -1:
                    found.append("%s (%s)" % (kname, enc_name))
    os.unlink(core)
    return found


# --------------------------------------------------------------------------
# the test case base


class BrokerTestCase(unittest.TestCase):
    """Temp dir layout: DIR/secrets (the file backend), DIR/mnt, DIR/config.json."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rstest-", dir="/tmp")
        os.chmod(self.dir, 0o755)        # other uids must reach the mountpoint
        self.secrets_dir = os.path.join(self.dir, "secrets")
        os.mkdir(self.secrets_dir, 0o700)
        self.mnt = os.path.join(self.dir, "mnt")
        os.mkdir(self.mnt, 0o755)
        self.config_path = os.path.join(self.dir, "config.json")
        self.brokers = []
        self.sensitive_values = []       # must never show in any broker stderr

    def tearDown(self):
        problems = []
        for b in self.brokers:
            b.cleanup()
        # Unmount whatever is left under our directory, deepest first,
        # several times for stacked mounts; bounded.
        for _ in range(5):
            left = sorted({m["mountpoint"] for m in mountinfo()
                           if m["mountpoint"] == self.dir
                           or m["mountpoint"].startswith(self.dir + "/")},
                          key=len, reverse=True)
            if not left:
                break
            for mp in left:
                unmount(mp)
        for b in self.brokers:
            try:
                text = b.stderr_text()
            except OSError:
                continue
            for marker in SANITIZER_MARKERS:
                if marker in text:
                    problems.append("sanitizer report (%r) in broker stderr:\n%s"
                                    % (marker, text[-6000:]))
                    break
            raw = b.stderr()
            for v in self.sensitive_values:
                if v in raw:
                    problems.append("a secret value (%r...) appears in the broker's stderr"
                                    % v[:12])
        shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            self.fail("\n".join(problems))

    # -- secrets and configuration

    def sensitive(self, value):
        """Register a value that must never appear in any broker log."""
        if isinstance(value, str):
            value = value.encode()
        if len(value) >= 12:
            self.sensitive_values.append(value)
        return value

    def write_secret(self, relpath, data, sensitive=True, mode=0o600):
        """Atomically (rename) write a file of the file backend."""
        if isinstance(data, str):
            data = data.encode()
        path = os.path.join(self.secrets_dir, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), ".tmp-%s" % _random.token_hex(6))
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        if sensitive:
            self.sensitive(data)
        return path

    def write_private(self, name, content, mode=0o600):
        """A file under the test directory (token, JWT, credentials), mode 0600."""
        path = os.path.join(self.dir, name)
        if isinstance(content, str):
            content = content.encode()
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, mode)
        return path

    def write_config(self, secrets, defaults=None, backends=None, mount=None, path=None):
        cfg = {"mount": mount or self.mnt}
        cfg["defaults"] = defaults if defaults is not None else {
            "refresh": "1s", "max_stale": "1h", "mode": "0400", "uid": 0, "gid": 0}
        cfg["backends"] = backends if backends is not None else {
            "local": {"type": "file", "path": self.secrets_dir}}
        cfg["secrets"] = secrets
        path = path or self.config_path
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        return path

    def write_config_text(self, text, name="config.json"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- brokers

    def start_broker(self, config=None, mountpoint=None, wait=True, **kw):
        b = Broker(self, config or self.config_path, mountpoint or self.mnt, **kw)
        if wait:
            b.wait_mounted()
            b.wait_log("mounted")
            b.wait_log("cold start done")   # every secret's first fetch has finished
        return b

    def mpath(self, *parts):
        return os.path.join(self.mnt, *parts)

    # -- the mount and the log, for tests of network backends

    def cold_start(self, broker, timeout=LOG_TIMEOUT):
        """The "cold start done" record; checks its ok/failed fields are integers."""
        rec = broker.wait_log("cold start done", timeout=timeout)
        for k in ("ok", "failed"):
            self.assertIsInstance(rec.get(k), int, "cold start done without integer %r: %r"
                                  % (k, rec))
        return rec

    def read(self, *parts):
        return read_all(self.mpath(*parts))

    def try_read(self, *parts):
        """The file's bytes, or the errno its open/read failed with (an int)."""
        try:
            return read_all(self.mpath(*parts))
        except OSError as e:
            return e.errno

    def wait_value(self, expected, *parts, timeout=LOG_TIMEOUT, what=None):
        """Poll until the file reads exactly `expected` (str or bytes); returns elapsed s."""
        if isinstance(expected, str):
            expected = expected.encode()
        t0 = time.monotonic()
        last = [None]

        def ok():
            last[0] = self.try_read(*parts)
            return last[0] == expected
        try:
            wait_until(ok, timeout, what or "%s to read the expected value" % "/".join(parts))
        except AssertionError as e:
            got = last[0]
            desc = ("errno %d" % got) if isinstance(got, int) else ("%d bytes" % len(got))
            raise AssertionError("%s (last read: %s)" % (e, desc)) from None
        return time.monotonic() - t0

    def wait_gone(self, *parts, timeout=LOG_TIMEOUT):
        wait_until(lambda: not os.path.exists(self.mpath(*parts)), timeout,
                   "%s to disappear" % "/".join(parts))

    def assertFailsClosed(self, name, expected, since, max_stale):
        """From `since` (monotonic) the file keeps reading `expected` (the last
        good value) until max_stale, then fails with EIO. The security bound is
        on the reads themselves: no read that *starts* later than max_stale +
        1 s may return the value (a late start under load is no excuse to
        serve; the second of slack is for `since`, the fake's answer, which a
        loaded broker stores later). The first EIO comes within
        [max_stale - 1.3 s, max_stale + 2 s]
        (liveness; a loaded machine delays when the reader looks, not what it
        gets). Returns when EIO was seen."""
        first_eio = None
        deadline = since + max_stale + LOG_TIMEOUT
        while time.monotonic() < deadline:
            started = time.monotonic() - since
            got = self.try_read(name)
            if got == errno.EIO:
                first_eio = started
                break
            self.assertEqual(got, expected, "served something else than the last value")
            self.assertLessEqual(started, max_stale + 1.0,
                                 "the value was served to a read started %.2f s after it was fetched "
                                 "(max_stale %s s)" % (started, max_stale))
            time.sleep(0.1)
        self.assertIsNotNone(first_eio, "never failed closed")
        self.assertGreaterEqual(first_eio, max_stale - 1.3)
        self.assertLessEqual(first_eio, max_stale + 2.0)
        return first_eio

    def assertNoLog(self, broker, msg, since=0, **fields):
        found = broker.find_logs(msg, since, **fields)
        self.assertEqual(found, [], "unexpected %r log lines: %r" % (msg, found[:3]))

    # -- assertions

    def assertErrno(self, expected, fn, *args, **kw):
        """fn(*args) must fail with one of the expected errnos."""
        if isinstance(expected, int):
            expected = (expected,)
        got = errno_of(fn, *args, **kw)
        names = "/".join(errno.errorcode[e] for e in expected)
        self.assertIsNotNone(got, "%s%r succeeded; expected %s" % (fn.__name__, args, names))
        self.assertIn(got, expected, "%s%r failed with %s; expected %s"
                      % (fn.__name__, args, errno.errorcode.get(got, got), names))
