"""runsecrets exec: the container entrypoint, as PID 1 of its own pid
namespace (`unshare --mount --pid --fork --mount-proc`), with a real FUSE
mount and the file backend. The application is a shell script run as uid
1000 that reports what it saw in files under a results directory; its
environment is read from /proc. Everything lives in the pid and mount
namespaces of one unshare: when PID 1 exits, the kernel ends the rest."""

import json
import os
import pty
import pwd
import re
import signal
import subprocess
import threading
import time

import rstest

APP_UID = 1000
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXIT_TIMEOUT = 15.0

# The application: report, signal "ready", then wait (bounded) for the
# test to create "finish". $1 is the results directory.
APP = r"""#!/bin/sh
R="$1"
echo "$$" >> "$R/starts"
id -u > "$R/uid"
if [ -n "$DB_PASSWORD_FILE" ]; then
    cat "$DB_PASSWORD_FILE" > "$R/value.$(wc -l < "$R/starts")" 2>/dev/null || echo fail > "$R/value_failed"
fi
if cat "$ROOT_FILE" > /dev/null 2>&1; then echo readable > "$R/root_only"; else echo denied > "$R/root_only"; fi
trap 'echo hup >> "$R/hups"' HUP
trap 'echo term >> "$R/terms"; exit 3' TERM
touch "$R/ready"
i=0
while [ ! -e "$R/finish" ] && [ $i -lt 300 ]; do
    sleep 0.05
    i=$((i+1))
done
exit 7
"""


def source_env_names():
    """Every variable name runsecrets reads: getenv("X") / aws_env("X") in the sources."""
    names = set()
    for top in ("lib", "backends", "engine", "fuse", "policy", "broker"):
        for root, _, files in os.walk(os.path.join(REPO, top)):
            for f in files:
                if f.endswith(".c"):
                    with open(os.path.join(root, f), errors="replace") as fh:
                        names.update(re.findall(r'\b(?:getenv|aws_env)\("([A-Za-z0-9_]+)"\)',
                                                fh.read()))
    # Read by `mount` only (the service manager's socket, removed from its environment at start);
    # under `exec` it is the application's to use (podman run --sdnotify=container): docs/service.md.
    names.discard("NOTIFY_SOCKET")
    return names


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


class Exec:
    """One `unshare ... runsecrets exec ...`; stderr captured to a file."""

    def __init__(self, tc, args, cmd, env=None, inner=None, tty=None):
        """inner: a command that runs runsecrets, inside the namespaces (as PID 1).
        tty: a pseudo-terminal's slave fd for stdin and stdout (stderr, the
        logs, still goes to the file)."""
        self.tc = tc
        n = len(tc.execs)
        self.stderr_path = os.path.join(tc.dir, "exec%d.stderr" % n)
        self.cmd = (["unshare", "--mount", "--pid", "--fork", "--mount-proc"] + (inner or [])
                    + [rstest.BINARY, "exec", "--config", tc.config_path]
                    + list(args) + ["--"] + list(cmd))
        io = subprocess.DEVNULL if tty is None else tty
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdin=io, stdout=io, stderr=err, env=env,
                                         start_new_session=True)
        tc.execs.append(self)

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def describe(self):
        return "%s\nexit %r; stderr:\n%s" % (" ".join(self.cmd), self.proc.poll(),
                                             self.stderr()[-4000:])

    def pid1(self):
        """Host pid of runsecrets (PID 1 of the namespace)."""
        pids = []
        rstest.wait_until(lambda: pids.extend(children(self.proc.pid)) or pids, 10,
                          "runsecrets to start under unshare")
        return pids[0]

    def app_pid(self):
        pid1 = self.pid1()
        pids = []
        rstest.wait_until(lambda: pids.extend(children(pid1)) or pids, 10,
                          "the application to start")
        return pids[0]

    def wait(self, timeout=EXIT_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.cleanup()
            self.tc.fail("exec did not exit within %.0fs\n%s" % (timeout, self.describe()))
        return None

    def cleanup(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass


class ExecTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.execs = []
        self.results = os.path.join(self.dir, "results")
        os.mkdir(self.results)
        os.chmod(self.results, 0o777)
        self.app = os.path.join(self.dir, "app.sh")
        with open(self.app, "w") as f:
            f.write(APP)
        os.chmod(self.app, 0o755)
        self.value = rstest.random_value()
        self.write_secret("pw", self.value)
        self.write_secret("root", rstest.random_value())

    def tearDown(self):
        for e in self.execs:
            e.cleanup()
            text = e.stderr()
            for marker in rstest.SANITIZER_MARKERS:
                self.assertNotIn(marker, text, "sanitizer report:\n%s" % text[-6000:])
            for v in self.sensitive_values:
                self.assertNotIn(v.decode(), text, "a secret value is in exec's stderr")
        super().tearDown()

    def config(self, pw=None, extra=None, exec_=None, refresh="1s"):
        secrets = {
            "pw": dict({"from": "local:pw", "env": "DB_PASSWORD_FILE", "mode": "0400",
                        "uid": APP_UID, "gid": APP_UID}, **(pw or {})),
            "root_only": {"from": "local:root", "mode": "0400", "uid": 0, "gid": 0,
                          "env": "ROOT_FILE"},
        }
        secrets.update(extra or {})
        self.write_config(secrets, defaults={"refresh": refresh, "max_stale": "1h",
                                             "mode": "0400", "uid": 0, "gid": 0})
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["exec"] = dict({"wait": "5s", "stop_grace": "2s", "debounce": "1s"},
                           **(exec_ or {}))
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)

    def result(self, name):
        try:
            with open(os.path.join(self.results, name)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def lines(self, name):
        r = self.result(name)
        return r.splitlines() if r else []

    def wait_result(self, name, timeout=10):
        rstest.wait_until(lambda: self.result(name) is not None, timeout,
                          "the application to write %s" % name)
        return self.result(name)

    def start(self, args=(), env=None, inner=None, tty=None):
        return Exec(self, ["--user", "%d:%d" % (APP_UID, APP_UID), "--mount", self.mnt]
                    + list(args), ["/bin/sh", self.app, self.results], env=env, inner=inner,
                    tty=tty)

    def finish(self, e, expect=7):
        open(os.path.join(self.results, "finish"), "w").close()
        rc = e.wait()
        self.assertEqual(rc, expect, e.describe())
        return rc

    # -- the tests

    def test_app_reads_secrets_as_user_without_values_in_environ(self):
        self.config()
        names = source_env_names()
        self.assertIn("VAULT_TOKEN", names)        # the scan itself works
        env = dict(os.environ)
        for n in names:
            env[n] = "x-" + n.lower()
        env["RUNSECRETS_TEST_VARIABLE"] = "1"
        env["KEEP_ME"] = "kept"
        e = self.start(env=env)
        self.wait_result("ready")
        with open("/proc/%d/environ" % e.app_pid(), "rb") as f:
            environ = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        self.assertEqual(self.result("uid").strip(), str(APP_UID))
        self.assertEqual(self.result("value.1"), self.value, e.describe())
        self.assertEqual(self.result("root_only").strip(), "denied")
        self.assertEqual(environ.get(b"DB_PASSWORD_FILE"), os.path.join(self.mnt, "pw").encode())
        self.assertEqual(environ.get(b"KEEP_ME"), b"kept")
        # HOME (read for ~/.aws) is the application's too: with --user it is
        # that user's home when /etc/passwd has one, never the container's.
        try:
            home = pwd.getpwuid(APP_UID).pw_dir.encode()
        except KeyError:
            home = None
        self.assertEqual(environ.get(b"HOME"), home)
        for k, v in environ.items():
            self.assertFalse(k.startswith(b"RUNSECRETS_"), k)
            if k != b"HOME":
                self.assertNotIn(k.decode(), names, "a variable runsecrets reads reached the app")
            self.assertNotIn(self.value.encode(), v)
        self.finish(e, 7)
        self.assertIn('"application exited (status 7)"', e.stderr())

    def test_app_gets_the_containers_core_limit(self):
        # runsecrets sets its own soft core limit to 0; the app must get the
        # one the container gave, not ours.
        self.config()
        # ASan lowers the soft core limit at start-up (disable_coredump=1 on
        # 64-bit), before runsecrets can read the container's: turn that off.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":disable_coredump=0").lstrip(":")
        e = self.start(env=env, inner=["prlimit", "--core=1048576:2097152", "--"])
        self.wait_result("ready")
        with open("/proc/%d/limits" % e.app_pid()) as f:
            core = [l.split()[4:6] for l in f if l.startswith("Max core file size")]
        with open("/proc/%d/limits" % e.pid1()) as f:
            ours = [l.split()[4:6] for l in f if l.startswith("Max core file size")]
        self.assertEqual(core, [["1048576", "2097152"]], e.describe())
        self.assertEqual(ours, [["0", "2097152"]])
        self.finish(e, 7)

    def test_term_to_pid1_reaches_the_app(self):
        self.config()
        e = self.start()
        self.wait_result("ready")
        os.kill(e.pid1(), signal.SIGTERM)
        rc = e.wait()
        self.assertEqual(rc, 3, e.describe())       # the app's trap: exit 3
        self.assertEqual(self.lines("terms"), ["term"])

    def start_on_tty(self, args=()):
        """exec as `docker run -it` starts it: PID 1 leads its session and the
        terminal is its controlling one (setsid -c does in the namespace what
        runc does). Returns (exec, master fd, tty_nr of the terminal); the
        master is drained by a thread and closed at cleanup."""
        master, slave = pty.openpty()
        rdev = os.fstat(slave).st_rdev
        try:
            e = self.start(args, inner=["setsid", "-c"], tty=slave)
        finally:
            os.close(slave)

        def drain():
            while True:
                try:
                    if not os.read(master, 4096):
                        return
                except OSError:          # EIO: no slave left open
                    return
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()

        def close():
            e.cleanup()
            reader.join(timeout=EXIT_TIMEOUT)
            os.close(master)
        self.addCleanup(close)
        nr = (os.minor(rdev) & 0xff) | (os.major(rdev) << 8) | ((os.minor(rdev) & ~0xff) << 12)
        return e, master, nr

    def assertOwnsTty(self, e, nr):
        """The app leads a session whose controlling terminal is nr, in the
        terminal's foreground group."""
        pid = e.app_pid()
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        pgrp, sid, tty_nr, tpgid = (int(x) for x in fields[2:6])
        self.assertEqual(sid, pid)
        self.assertEqual(tty_nr, nr, e.describe())
        self.assertEqual(tpgid, pgrp)

    def test_tty_is_the_apps_and_ctrl_c_reaches_it_once(self):
        self.config()
        e, master, nr = self.start_on_tty()
        self.wait_result("ready")
        self.assertOwnsTty(e, nr)
        time.sleep(0.3)
        self.assertEqual(self.lines("hups"), [], "the terminal hand-off's HUP was forwarded")
        os.write(master, b"\x03")                 # ^C: the app has no INT trap
        self.assertEqual(e.wait(), 128 + signal.SIGINT, e.describe())
        self.assertEqual(self.lines("hups"), [])
        self.assertEqual(self.lines("terms"), [], "the app was stopped, not interrupted")
        self.assertIn('"application exited (status 130)"', e.stderr())
        self.assertNotIn("stopping the application", e.stderr())

    def test_tty_passes_to_the_restarted_app(self):
        # The first app's session held the terminal; when its leader exits
        # the kernel frees it, and the next app takes it.
        self.config(pw={"on_change": "restart"}, refresh="100ms", exec_={"debounce": "300ms"})
        e, master, nr = self.start_on_tty()
        self.wait_result("ready")
        self.assertOwnsTty(e, nr)
        self.write_secret("pw", rstest.random_value())
        rstest.wait_until(lambda: len(self.lines("starts")) >= 2, 8,
                          "the application to be restarted")
        rstest.wait_until(lambda: self.result("value.2") is not None, 5,
                          "the restarted application to start")
        self.assertOwnsTty(e, nr)
        self.assertEqual(self.lines("terms"), ["term"])
        self.assertEqual(self.lines("hups"), [])
        os.write(master, b"\x03")
        self.assertEqual(e.wait(), 128 + signal.SIGINT, e.describe())

    def test_mount_taken_away_stops_the_app(self):
        self.config()
        e = self.start()
        self.wait_result("ready")
        # --pid too: umount reads /proc/self/mountinfo, and that /proc is the namespace's
        r = subprocess.run(["nsenter", "--mount", "--pid", "--target", str(e.pid1()),
                            "umount", "-l", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(e.wait(), 1, e.describe())
        self.assertEqual(self.lines("terms"), ["term"])
        self.assertIn("the filesystem loop ended; stopping the application", e.stderr())

    def test_required_secret_never_arrives(self):
        self.config(extra={"never": {"from": "local:does-not-exist"},
                           "optional": {"from": "local:nor-this", "required": False}})
        t0 = time.monotonic()
        e = self.start(["--wait", "1s"])
        rc = e.wait()
        self.assertEqual(rc, 1, e.describe())
        self.assertLess(time.monotonic() - t0, 8)
        err = e.stderr()
        line = [l for l in err.splitlines() if l.startswith("runsecrets exec: required")]
        self.assertEqual(len(line), 1, err)
        self.assertIn(" never (", line[0])
        self.assertNotIn("optional", line[0])
        self.assertIsNone(self.result("starts"), "the application ran")
        self.assertIn('"unmounted"', err)

    def test_term_while_waiting_for_secrets(self):
        self.config(extra={"never": {"from": "local:does-not-exist"}})
        e = self.start(["--wait", "20s"])
        pid1 = e.pid1()
        # A namespace's init ignores signals it has no handler for and has not blocked: TERM must
        # come after runsecrets took them (CI at load 15 needed more than the 0.5 s once slept
        # here). "mounted" is logged after.
        rstest.wait_until(lambda: '"mounted"' in e.stderr(), 10, "the mount")
        t0 = time.monotonic()
        os.kill(pid1, signal.SIGTERM)
        self.assertEqual(e.wait(), 128 + signal.SIGTERM, e.describe())
        self.assertLess(time.monotonic() - t0, 3)
        self.assertIn("stopped by SIGTERM before the application started", e.stderr())
        self.assertIsNone(self.result("starts"), "the application ran")

    def test_on_change_signal(self):
        self.config(pw={"on_change": "signal:SIGHUP"}, refresh="200ms")
        e = self.start()
        self.wait_result("ready")
        time.sleep(0.5)                              # a few unchanged refreshes: no HUP
        self.assertEqual(self.lines("hups"), [])
        self.write_secret("pw", rstest.random_value())
        rstest.wait_until(lambda: self.lines("hups"), 5, "the application to get SIGHUP")
        time.sleep(1.0)                              # refreshes of the same value: no more
        self.assertEqual(self.lines("hups"), ["hup"])
        self.finish(e, 7)
        self.assertEqual(len(self.lines("starts")), 1)

    def test_on_change_restart_debounced(self):
        self.config(pw={"on_change": "restart"}, refresh="100ms", exec_={"debounce": "1500ms"})
        e = self.start()
        self.wait_result("ready")
        values = [rstest.random_value() for _ in range(3)]
        for v in values:
            self.write_secret("pw", v)
            time.sleep(0.3)
        rstest.wait_until(lambda: len(self.lines("starts")) >= 2, 8,
                          "the application to be restarted")
        time.sleep(2.0)                              # one debounce window more: no second restart
        self.assertEqual(len(self.lines("starts")), 2, e.stderr())
        self.assertEqual(self.lines("terms"), ["term"])
        self.assertEqual(self.wait_result("value.2"), values[-1])
        self.finish(e, 7)

    def test_mount_from_a_directory_of_files(self):
        self.config()
        # The host's config as it is: its file backend's folder is the
        # host's, absent here; --mount-from builds no backend, so it is
        # not checked (mount would refuse this config).
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["backends"]["local"]["path"] = "/nonexistent/host-only"
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        src = os.path.join(self.dir, "from")
        os.mkdir(src, 0o755)
        with open(os.path.join(src, "pw"), "w") as f:
            f.write(self.value)
        os.chmod(os.path.join(src, "pw"), 0o400)
        os.chown(os.path.join(src, "pw"), APP_UID, APP_UID)
        e = Exec(self, ["--user", "%d:%d" % (APP_UID, APP_UID), "--mount-from", src,
                        "--wait", "5s"], ["/bin/sh", self.app, self.results])
        time.sleep(0.5)                              # root_only is required: exec waits
        self.assertIsNone(self.result("starts"))
        with open(os.path.join(src, "root_only"), "w") as f:
            f.write("r")
        os.chmod(os.path.join(src, "root_only"), 0o444)
        self.wait_result("ready")
        self.assertEqual(self.result("value.1"), self.value)
        with open("/proc/%d/environ" % e.app_pid(), "rb") as f:
            self.assertIn(b"DB_PASSWORD_FILE=" + os.path.join(src, "pw").encode() + b"\0",
                          f.read())
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [])
        self.finish(e, 7)

    def test_mount_from_on_change_signal(self):
        self.config(pw={"on_change": "signal:SIGHUP"})
        src = os.path.join(self.dir, "from")
        os.mkdir(src, 0o755)
        for name in ("pw", "root_only"):
            with open(os.path.join(src, name), "w") as f:
                f.write(rstest.random_value())
            os.chmod(os.path.join(src, name), 0o444)
        e = Exec(self, ["--user", "%d:%d" % (APP_UID, APP_UID), "--mount-from", src],
                 ["/bin/sh", self.app, self.results])
        self.wait_result("ready")
        time.sleep(1.2)                              # a poll of the same files: no HUP
        self.assertEqual(self.lines("hups"), [])
        tmp = os.path.join(src, ".new")
        with open(tmp, "w") as f:
            f.write(rstest.random_value())
        os.chmod(tmp, 0o444)
        os.replace(tmp, os.path.join(src, "pw"))     # as a host broker's rotation looks
        rstest.wait_until(lambda: self.lines("hups"), 5, "the application to get SIGHUP")
        time.sleep(1.2)
        self.assertEqual(self.lines("hups"), ["hup"])
        self.finish(e, 7)

    def test_without_cap_sys_admin_or_device(self):
        self.config()
        e = self.start(inner=["setpriv", "--inh-caps", "-sys_admin", "--bounding-set",
                              "-sys_admin"])
        self.assertEqual(e.wait(), 1, e.describe())
        err = e.stderr()
        self.assertIn("the CAP_SYS_ADMIN capability is missing", err)
        for s in ("--device /dev/fuse --cap-add SYS_ADMIN --security-opt apparmor=unconfined",
                  "cap_add: [SYS_ADMIN]", "capabilities.add: [SYS_ADMIN]", "--mount-from"):
            self.assertIn(s, err)
        self.assertIsNone(self.result("starts"))
        # /dev/fuse replaced by an ordinary file in a mount namespace of its own
        fake = os.path.join(self.dir, "not-fuse")
        open(fake, "w").close()
        e = self.start(inner=["sh", "-c", 'mount --bind "$0" /dev/fuse && exec "$@"', fake])
        self.assertEqual(e.wait(), 1, e.describe())
        self.assertIn("/dev/fuse is missing", e.stderr())
        self.assertIsNone(self.result("starts"))

    def test_config_errors_as_mount(self):
        bad = self.write_config_text('{"secrets": {"x": {"from": 3}}}\n', "bad.json")
        r_mount = rstest.run_cli("mount", "--config", bad, self.mnt)
        r_exec = rstest.run_cli("exec", "--config", bad, "--", "/bin/true")
        self.assertEqual(r_exec.returncode, 2)
        self.assertEqual(r_exec.stderr, r_mount.stderr)
        r = rstest.run_cli("exec", "--config", self.write_config({}))
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"missing the command", r.stderr)


if __name__ == "__main__":
    rstest.main()
