"""`runsecrets mount` as a host service (issue 13): the service manager's
notifications read from a NOTIFY_SOCKET of our own (every message, in
order), SIGHUP reloads (a config that does not load is logged, changes
nothing, and the old config keeps serving), `runsecrets reload` and the
pid file rules, several brokers side by side."""

import json
import os
import signal
import socket
import subprocess
import time

import rstest

# The hostsvc branch's broker_apply refuses every config that loads (the
# reload branch brings the real one); a valid config must reach it, so a
# reload of one ends either applied or with exactly this error.
RUN_DIR = "/run/runsecrets"


class Notify:
    """A datagram socket standing for systemd's notify socket."""

    def __init__(self, tc, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "rstest-notify-%d-%s" % (os.getpid(), rstest._random.token_hex(4))
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            path = os.path.join(tc.dir, "notify.sock")
            self.sock.bind(path)
            self.env_value = path
        self.messages = []

    def env(self):
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = self.env_value
        return env

    def poll(self, timeout):
        """Receive what arrives within timeout (s); returns the new messages."""
        new = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return new
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return new
            msg = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            self.messages.append(msg)
            new.append(msg)

    def wait_for(self, key, timeout=rstest.LOG_TIMEOUT):
        """Messages up to and including the first one with key."""
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.poll(min(0.2, max(0.01, deadline - time.monotonic()))):
                got.append(m)
                if key in m:
                    return got
        raise AssertionError("no %s within %.1fs; got %r" % (key, timeout, got))

    def close(self):
        self.sock.close()


def read_status(pid_file):
    with open(pid_file + ".reload") as f:
        return json.load(f)


class ServiceTestCase(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.value = rstest.random_value()
        self.write_secret("pw", self.value)
        self.write_config({"pw": {"from": "local:pw"}})
        self.pid_file = os.path.join(self.dir, "run", "rs.pid")

    def reload_cli(self, *args, pid_file=None):
        r = rstest.run_cli("reload", "--pid-file", pid_file or self.pid_file, *args)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def assertReachedApply(self, outcome):
        """A valid config was loaded and applied."""
        self.assertTrue(outcome["ok"], outcome)
        self.assertIsNone(outcome["error"])

    def break_config(self):
        """Line 2 of the main file becomes a syntax error."""
        with open(self.config_path) as f:
            good = f.read()
        with open(self.config_path, "w") as f:
            f.write("{\n  \"mount\" \"x\"\n}\n")
        return good


class NotifyTest(ServiceTestCase):

    def run_sequence(self, abstract):
        n = Notify(self, abstract=abstract)
        self.addCleanup(n.close)
        b = self.start_broker(env=n.env(), args=["--pid-file", self.pid_file])
        got = n.wait_for("READY")
        self.assertEqual(got, [
            {"STATUS": "mounted at %s; waiting for 1 required secret" % self.mnt},
            {"READY": "1", "STATUS": "serving 1 secret at %s" % self.mnt}])
        # A reload: RELOADING=1 with the monotonic time it began, then READY=1.
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        b.send(signal.SIGHUP)
        got = n.wait_for("READY")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.assertEqual(len(got), 2, got)
        self.assertEqual(got[0]["RELOADING"], "1")
        self.assertEqual(got[0]["STATUS"], "reloading the configuration")
        self.assertLessEqual(before, int(got[0]["MONOTONIC_USEC"]))
        self.assertLessEqual(int(got[0]["MONOTONIC_USEC"]), after)
        self.assertEqual(got[1]["READY"], "1")
        outcome = read_status(self.pid_file)
        self.assertReachedApply(outcome)
        self.assertTrue(got[1]["STATUS"].startswith("serving 1 secret at "), got[1])
        # A reload of a broken file: same frame, the error in STATUS.
        self.break_config()
        b.send(signal.SIGHUP)
        got = n.wait_for("READY")
        self.assertEqual([sorted(m) for m in got], [["MONOTONIC_USEC", "RELOADING", "STATUS"],
                                                    ["READY", "STATUS"]])
        self.assertEqual(got[1]["STATUS"], "reload failed, still serving the previous "
                         "configuration: %s:2:13: ':' expected near '\"x\"'" % self.config_path)
        self.assertEqual(self.read("pw"), self.value.encode())
        self.assertEqual(b.stop(), 0, b.describe())
        # Sent before the exit, so already queued when the broker is gone.
        n.sock.setblocking(False)
        self.assertEqual(n.sock.recv(65536), b"STOPPING=1\nSTATUS=stopping on SIGTERM\n")
        n.messages.append({"STOPPING": "1"})
        self.assertEqual(n.poll(0.2), [])
        # Nothing but these, in this order, over the whole run.
        self.assertEqual([sorted(m)[0] for m in n.messages],
                         ["STATUS", "READY", "MONOTONIC_USEC", "READY", "MONOTONIC_USEC",
                          "READY", "STOPPING"])

    def test_every_message_in_order_path_socket(self):
        self.run_sequence(abstract=False)

    def test_every_message_in_order_abstract_socket(self):
        self.run_sequence(abstract=True)

    def test_ready_waits_for_every_required_secret(self):
        other = rstest.random_value()
        self.write_config({"pw": {"from": "local:pw"},
                           "late": {"from": "local:late"},
                           "optional": {"from": "local:optional", "required": False}})
        n = Notify(self)
        self.addCleanup(n.close)
        b = self.start_broker(env=n.env())
        got = n.wait_for("STATUS")
        self.assertEqual(got, [{"STATUS": "mounted at %s; waiting for 2 required secrets"
                                          % self.mnt}])
        # late is missing: no READY=1, whatever time passes (refresh is 1s).
        self.assertEqual(n.poll(2.5), [])
        self.assertNoLog(b, "ready: every required secret is served")
        t0 = time.monotonic()
        self.write_secret("late", other)
        got = n.wait_for("READY", timeout=5)
        self.assertLess(time.monotonic() - t0, 2.5)   # the next refresh, not later
        self.assertEqual(got, [{"READY": "1", "STATUS": "serving 3 secrets at %s" % self.mnt}])
        self.assertEqual(self.read("late"), other.encode())
        self.assertEqual(b.stop(), 0)

    def test_nothing_required_is_ready_at_once(self):
        self.write_config({"gone": {"from": "local:absent", "required": False}})
        n = Notify(self)
        self.addCleanup(n.close)
        self.start_broker(env=n.env())
        got = n.wait_for("READY", timeout=5)
        self.assertEqual(got[-1], {"READY": "1", "STATUS": "serving 1 secret at %s" % self.mnt})

    def test_a_reload_before_ready_sends_no_reloading(self):
        self.write_config({"late": {"from": "local:late"}})
        n = Notify(self)
        self.addCleanup(n.close)
        b = self.start_broker(env=n.env(), args=["--pid-file", self.pid_file])
        n.wait_for("STATUS")
        mark = b.mark()
        b.send(signal.SIGHUP)
        b.wait_log("config reloaded", since=mark)
        # The manager still waits for the start: READY=1 must keep meaning
        # "every required secret is served", and no RELOADING=1 comes first.
        self.assertEqual(n.poll(1.0), [])

    def test_a_bad_notify_socket_is_logged_and_the_broker_serves(self):
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = "vsock:2:1234"
        b = self.start_broker(env=env)
        rec = b.wait_log("cannot notify the service manager")
        self.assertEqual(rec["error"], "NOTIFY_SOCKET: only an absolute path or an abstract "
                         "name (\"@name\") is supported, got an address of 12 bytes starting "
                         "with 'v'")
        self.assertEqual(self.read("pw"), self.value.encode())


class ReloadTest(ServiceTestCase):

    def test_sighup_reloads_and_never_stops(self):
        b = self.start_broker(args=["--pid-file", self.pid_file])
        status = read_status(self.pid_file)
        self.assertEqual(status, {"pid": b.pid, "attempt": 0, "generation": 0, "ok": True,
                                  "error": None, "started_usec": 0, "finished_usec": 0})
        for i in range(1, 4):
            mark = b.mark()
            b.send(signal.SIGHUP)
            rstest.wait_until(lambda: read_status(self.pid_file)["attempt"] >= i, 5,
                              "reload %d's outcome" % i)
            self.assertTrue(b.running(), b.describe())
            self.assertEqual(self.read("pw"), self.value.encode())
            outcome = read_status(self.pid_file)
            self.assertReachedApply(outcome)
            rec = (b.find_logs("config reloaded", since=mark) or
                   b.find_logs("reload failed", since=mark))[0]
            self.assertEqual(rec["attempt"], i)
            self.assertEqual(rec["path"], self.config_path)
        self.assertEqual(b.stop(), 0)

    def test_a_config_that_does_not_load_changes_nothing(self):
        b = self.start_broker(args=["--pid-file", self.pid_file])
        self.break_config()
        mark = b.mark()
        rc, out, err = self.reload_cli()
        expected = "%s:2:13: ':' expected near '\"x\"'" % self.config_path
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err, "runsecrets reload: reload failed, the broker (pid %d) keeps "
                         "serving the previous configuration: %s\n" % (b.pid, expected))
        rec = b.wait_log("reload failed", since=mark)
        self.assertEqual(rec["error"], expected)
        self.assertEqual(rec["level"], "error")
        status = read_status(self.pid_file)
        self.assertEqual((status["ok"], status["error"], status["attempt"], status["generation"]),
                         (False, expected, 1, 0))
        # The old config still serves, refreshes included.
        new = rstest.random_value()
        self.write_secret("pw", new)
        self.wait_value(new, "pw")
        self.assertTrue(b.running())

    def test_a_broken_or_conflicting_fragment_changes_nothing(self):
        confd = os.path.join(self.dir, "conf.d")
        os.mkdir(confd)
        cfg = {"mount": self.mnt, "include": ["conf.d/*.json"],
               "backends": {"local": {"type": "file", "path": self.secrets_dir}},
               "secrets": {"pw": "local:pw"}}
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        b = self.start_broker(args=["--pid-file", self.pid_file])
        frag = os.path.join(confd, "app.json")
        for text, expected in (
                ('{"secrets": {"x": "local:pw",}}', "%s:1:30: string or '}' expected near '}'"
                 % frag),
                ('{"secrets": {"pw": "local:pw"}}', "%s:1:14: secrets.pw: secret 'pw' is "
                 "defined twice: first at %s:1:%d" % (frag, self.config_path,
                                                       json.dumps(cfg).index('"pw"') + 1))):
            with self.subTest(text=text):
                with open(frag, "w") as f:
                    f.write(text)
                rc, _, err = self.reload_cli()
                self.assertEqual(rc, 1)
                self.assertTrue(err.endswith(": " + expected + "\n"), err)
                self.assertEqual(self.read("pw"), self.value.encode())
        os.unlink(frag)
        rc, out, err = self.reload_cli()
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "runsecrets reload: configuration reloaded (pid %d, "
                         "generation 1)\n" % b.pid)

    def test_reload_waits_for_its_own_outcome(self):
        b = self.start_broker(args=["--pid-file", self.pid_file])
        for i in range(1, 6):
            t0 = time.monotonic()
            rc, out, err = self.reload_cli()
            self.assertIn(rc, (0, 1))
            self.assertLess(time.monotonic() - t0, 2.0)
            status = read_status(self.pid_file)
            self.assertEqual(status["attempt"], i)   # one reload per call, its own
            self.assertReachedApply(status)
            self.assertLessEqual(status["started_usec"], status["finished_usec"])
        self.assertTrue(b.running())

    def test_hups_during_a_reload_coalesce(self):
        b = self.start_broker(args=["--pid-file", self.pid_file])
        for _ in range(20):
            os.kill(b.pid, signal.SIGHUP)
        rstest.wait_until(lambda: read_status(self.pid_file)["attempt"] >= 1, 5, "a reload")
        time.sleep(0.5)
        attempts = read_status(self.pid_file)["attempt"]
        self.assertGreaterEqual(attempts, 1)
        self.assertLessEqual(attempts, 20)
        # A last one after the burst is always served by a reload of its own.
        rc, _, _ = self.reload_cli()
        self.assertEqual(read_status(self.pid_file)["attempt"], attempts + 1)
        self.assertTrue(b.running())

    def test_no_wait(self):
        b = self.start_broker(args=["--pid-file", self.pid_file])
        rc, out, err = self.reload_cli("--no-wait")
        self.assertEqual((rc, out, err), (0, "", ""))
        rstest.wait_until(lambda: read_status(self.pid_file)["attempt"] == 1, 5, "the reload")
        self.assertTrue(b.running())

    def test_reload_bad_input(self):
        missing = os.path.join(self.dir, "none.pid")
        self.assertEqual(self.reload_cli(pid_file=missing),
                         (1, "", "runsecrets reload: no pid file at %s: is a broker running "
                          "with this --pid-file?\n" % missing))
        # A pid file nobody holds: a killed broker's.
        b = self.start_broker(args=["--pid-file", self.pid_file])
        pid = b.pid
        b.kill()
        self.assertEqual(self.reload_cli(),
                         (1, "", "runsecrets reload: pid file %s names pid %d, but no broker "
                          "holds it (stale: the broker was killed?)\n" % (self.pid_file, pid)))
        # A pid file some other program holds.
        other = os.path.join(self.dir, "other.pid")
        holder = subprocess.Popen(
            ["python3", "-c", "import fcntl,os,sys,time\n"
             "f=open(sys.argv[1],'w'); f.write('%d\\n' % os.getpid()); f.flush()\n"
             "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)", other],
            stdout=subprocess.PIPE)
        self.addCleanup(lambda: (holder.kill(), holder.wait()))
        self.assertEqual(holder.stdout.readline(), b"held\n")
        self.assertEqual(self.reload_cli(pid_file=other),
                         (1, "", "runsecrets reload: pid file %s names pid %d, which is not a "
                          "runsecrets broker\n" % (other, holder.pid)))
        self.assertIsNone(holder.poll(), "SIGHUP sent to a program that is not a broker")
        for args, msg in (
                (["--timeout", "soon"], "--timeout: expected a duration like 30s or 2m, got "
                                        "'soon'"),
                (["--no-pid-file"], "--no-pid-file is an option of 'mount'"),
                (["--pid-file", ""], "--pid-file: expected a file name, got ''")):
            with self.subTest(args=args):
                r = rstest.run_cli("reload", *args)
                self.assertEqual((r.returncode, r.stderr.decode()),
                                 (2, "runsecrets reload: %s\nTry 'runsecrets reload --help'.\n"
                                  % msg))

    def test_reload_times_out(self):
        b = self.start_broker(args=["--pid-file", self.pid_file])
        os.kill(b.pid, signal.SIGSTOP)   # alive, holding the pid file, answering nothing
        try:
            t0 = time.monotonic()
            rc, out, err = self.reload_cli("--timeout", "500ms")
            took = time.monotonic() - t0
        finally:
            os.kill(b.pid, signal.SIGCONT)
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err, "runsecrets reload: no outcome from the broker (pid %d) within "
                         "500ms (see its log; %s.reload)\n" % (b.pid, self.pid_file))
        self.assertGreaterEqual(took, 0.5)
        self.assertLess(took, 2.0)
        # The pending HUP is served once the broker runs again.
        rstest.wait_until(lambda: read_status(self.pid_file)["attempt"] == 1, 5, "the reload")


class PidFileTest(ServiceTestCase):

    def test_written_held_and_removed(self):
        b = self.start_broker(args=["--pid-file", self.pid_file])
        with open(self.pid_file) as f:
            self.assertEqual(f.read(), "%d\n" % b.pid)
        self.assertEqual(os.stat(self.pid_file).st_mode & 0o777, 0o644)
        # A second broker for the same pid file stops before mounting.
        other = os.path.join(self.dir, "mnt2")
        r = rstest.run_cli("mount", "--config", self.config_path, "--pid-file", self.pid_file,
                           other)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode().splitlines()[-1],
                         "runsecrets mount: pid file %s is held by a running broker (pid %d): "
                         "one pid file per broker (--pid-file)" % (self.pid_file, b.pid))
        self.assertEqual(rstest.runsecrets_mounts_at(other), [])
        with open(self.pid_file) as f:
            self.assertEqual(f.read(), "%d\n" % b.pid)   # untouched
        self.assertEqual(self.read("pw"), self.value.encode())
        self.assertEqual(b.stop(), 0)
        self.assertFalse(os.path.exists(self.pid_file))
        self.assertFalse(os.path.exists(self.pid_file + ".reload"))

    def test_a_stale_one_is_taken_over(self):
        b = self.start_broker(args=["--pid-file", self.pid_file])
        dead = b.pid
        b.kill()   # SIGKILL: the pid file and the mount stay behind
        self.assertTrue(os.path.exists(self.pid_file))
        b2 = self.start_broker(args=["--pid-file", self.pid_file])
        rec = b2.wait_log("took over a stale pid file (pid %d had it, no broker holds it)" % dead)
        self.assertEqual(rec["level"], "warn")
        with open(self.pid_file) as f:
            self.assertEqual(f.read(), "%d\n" % b2.pid)
        self.assertEqual(read_status(self.pid_file)["pid"], b2.pid)
        self.assertEqual(self.read("pw"), self.value.encode())
        rc, _, _ = self.reload_cli()
        self.assertEqual(read_status(self.pid_file)["attempt"], 1)

    def test_refused_pid_files(self):
        target = os.path.join(self.dir, "victim")
        with open(target, "w") as f:
            f.write("keep me\n")
        link = os.path.join(self.dir, "link.pid")
        os.symlink(target, link)
        folder = os.path.join(self.dir, "adir")
        os.mkdir(folder)
        for path, msg in (
                (link, "pid file %s: cannot open: it is a symbolic link" % link),
                (folder, "pid file %s: cannot open: Is a directory" % folder),
                (os.path.join(self.dir, "no", "such", "x.pid"),
                 "pid file: cannot create the folder %s/no/such: No such file or directory"
                 % self.dir)):
            with self.subTest(path=path):
                r = rstest.run_cli("mount", "--config", self.config_path, "--pid-file", path,
                                   self.mnt)
                self.assertEqual(r.returncode, 1)
                self.assertEqual(r.stderr.decode().splitlines()[-1], "runsecrets mount: " + msg)
                self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [])
        with open(target) as f:
            self.assertEqual(f.read(), "keep me\n")
        r = rstest.run_cli("mount", "--config", self.config_path, "--pid-file", "x",
                           "--no-pid-file", self.mnt)
        self.assertEqual((r.returncode, r.stderr.decode().splitlines()[0]),
                         (2, "runsecrets mount: --pid-file and --no-pid-file exclude each other"))
        r = rstest.run_cli("mount", "--config", self.config_path, "--mount", self.mnt, self.mnt)
        self.assertEqual((r.returncode, r.stderr.decode().splitlines()[0]),
                         (2, "runsecrets mount: MOUNTPOINT and --mount exclude each other"))

    def private_run_dir(self):
        """A tmpfs at /run/runsecrets in this test's own mount namespace
        (rstest re-executed us under unshare): the host's is never touched."""
        os.makedirs(RUN_DIR, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "rstest-run",
                        RUN_DIR], check=True)
        self.addCleanup(lambda: subprocess.run(["umount", "-l", RUN_DIR]))

    def test_the_default_pid_file(self):
        self.private_run_dir()
        default = os.path.join(RUN_DIR, "runsecrets.pid")
        # Root with the configuration's mountpoint: the host's main broker.
        b = self.start_broker(positional=False, default_pid_file=True)
        with open(default) as f:
            self.assertEqual(f.read(), "%d\n" % b.pid)
        # The same rule gives it the default admin socket (docs/config.md, admin).
        self.assertEqual(b.wait_log("admin endpoint listening")["address"],
                         "unix:" + os.path.join(RUN_DIR, "admin.sock"))
        r = rstest.run_cli("reload")
        self.assertIn(r.returncode, (0, 1))
        self.assertEqual(read_status(default)["attempt"], 1)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(os.listdir(RUN_DIR), [])
        # A mountpoint of its own (a project's broker): no default pid file.
        b = self.start_broker(args=["--mount", self.mnt], positional=False, default_pid_file=True)
        self.assertEqual(os.listdir(RUN_DIR), [])
        self.assertEqual(b.stop(), 0)
        b = self.start_broker(positional=False, args=["--no-pid-file"])
        self.assertEqual(os.listdir(RUN_DIR), ["admin.sock"])   # no pid file; the endpoint
        self.assertEqual(b.stop(), 0)
        self.assertEqual(os.listdir(RUN_DIR), [])


class SeveralBrokersTest(ServiceTestCase):

    def test_side_by_side(self):
        """One broker per project, each with its mountpoint and pid file,
        as `runsecrets compose` starts them."""
        brokers = {}
        values = {}
        for proj in ("alpha", "beta", "gamma"):
            values[proj] = rstest.random_value()
            self.write_secret("%s-pw" % proj, values[proj])
            cfg = self.write_config({"pw": {"from": "local:%s-pw" % proj}},
                                    path=os.path.join(self.dir, "%s.json" % proj))
            mnt = os.path.join(self.dir, "run", proj)
            pid = os.path.join(self.dir, "run", "%s.pid" % proj)
            brokers[proj] = (self.start_broker(config=cfg, mountpoint=mnt,
                                               args=["--mount", mnt, "--pid-file", pid],
                                               positional=False), mnt, pid)
        for proj, (b, mnt, pid) in brokers.items():
            self.assertEqual(rstest.read_all(os.path.join(mnt, "pw")), values[proj].encode())
            with open(pid) as f:
                self.assertEqual(f.read(), "%d\n" % b.pid)
        # A reload goes to the broker of that pid file only.
        rc, _, _ = self.reload_cli(pid_file=brokers["beta"][2])
        self.assertEqual([read_status(p)["attempt"] for _, _, p in brokers.values()], [0, 1, 0])
        # Stopping one leaves the others serving.
        b, mnt, pid = brokers["alpha"]
        self.assertEqual(b.stop(), 0)
        self.assertFalse(os.path.exists(pid))
        self.assertEqual(rstest.runsecrets_mounts_at(mnt), [])
        for proj in ("beta", "gamma"):
            b, mnt, pid = brokers[proj]
            self.assertTrue(b.running())
            self.assertEqual(rstest.read_all(os.path.join(mnt, "pw")), values[proj].encode())
        # Two brokers cannot share a mountpoint even with pid files of their own.
        r = rstest.run_cli("mount", "--config", self.config_path, "--mount", brokers["beta"][1],
                           "--pid-file", os.path.join(self.dir, "run", "delta.pid"))
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "run", "delta.pid")))


if __name__ == "__main__":
    rstest.main()
