"""`runsecrets compose`, driven exactly as Docker Compose drives a provider
service (composeenv.py: metadata first, `--project-name=P up --k=v SERVICE`,
stdout read as JSON lines to EOF, the first error kills the provider).

- metadata: the document's shape; run-dir listed for up, down and stop (or
  Compose would not pass it to down);
- up: JSON lines only; a daemon broker at <run-dir>/<project> in its own
  session, holding none of the provider's pipes (stdout reaches EOF while it
  runs; its stderr is the log file); setenv NAME_FILE=<mount>/<name> for
  each secret with an "env" and no other; the files serve the right bytes;
  no value in the provider's stdout/stderr or the broker's log; rawsetenv
  with raw-env=true;
- up twice: the same broker, the same variables; two at once: one broker;
- down: the broker gone, nothing mounted, the state gone; down again and down
  of a project never up: a clear info line, exit 0;
- stop keeps the log; up after stop starts again;
- a broker killed -9, then up: the stale mount is detached and a new broker
  serves; down after a kill -9 cleans the stale mount too;
- bad input: project names with '/', '..', upper case, empty; unknown
  option; missing service: each an exact error line, exit 2, nothing made;
  a broken config: its file:line:col message, exit 2; another config for a
  running project: refused, the running broker untouched; a required secret
  that never comes: an error within the wait, no broker, no mount left.
"""

import errno
import json
import os
import signal
import threading
import time
import unittest

import composeenv
import rstest

PROJECT = "proj"
SERVICE = "secrets"


class ComposeCase(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.run_dir = os.path.join(self.dir, "run")
        self.projects = set()
        self.value = rstest.random_value()
        self.api = rstest.random_value()
        self.user = "app-user"
        self.write_secret("db_password", self.value)
        self.write_secret("api_key", self.api)
        self.write_secret("db.json", json.dumps({"user": self.user}), sensitive=False)
        self.write_config({
            "db_password": {"from": "local:db_password", "env": "DB_PASSWORD_FILE"},
            "api_key": {"from": "local:api_key", "env": "API_KEY_FILE", "mode": "0444"},
            "db/user": {"from": "local:db.json#user"},
        })
        self.meta = composeenv.metadata(rstest.BINARY)

    def tearDown(self):
        try:
            for p in self.projects:
                res = self.call("down", project=p)
                if not res.ok():
                    composeenv.kill_project(self.run_dir, p)
        finally:
            super().tearDown()

    def call(self, command, project=PROJECT, service=SERVICE, timeout=60, kill_on_error=True,
             **options):
        opts = {"run-dir": self.run_dir}
        if command == "up":
            opts["config"] = self.config_path
        opts.update({k.replace("_", "-"): v for k, v in options.items()})
        self.projects.add(project)
        res = composeenv.provider(rstest.BINARY, command, project, service, opts,
                                  timeout=timeout, meta=self.meta,
                                  kill_on_error=kill_on_error)
        self.assertIsNone(res.protocol_error, res.describe())
        for marker in rstest.SANITIZER_MARKERS:
            self.assertNotIn(marker, res.stderr, res.describe())
        for v in (self.value, self.api):
            self.assertNotIn(v, "\n".join(res.lines) + res.stderr, "a value on the provider's "
                             "output")
        return res

    def mount(self, project=PROJECT):
        return os.path.join(self.run_dir, project)

    def logfile(self, project=PROJECT):
        return os.path.join(self.run_dir, ".compose", project + ".log")

    def up_ok(self, **kw):
        res = self.call("up", **kw)
        self.assertTrue(res.ok(), res.describe())
        return res

    def assertServing(self, project=PROJECT):
        m = self.mount(project)
        self.assertTrue(rstest.runsecrets_mounts_at(m), "no runsecrets mount at %s" % m)
        self.assertEqual(rstest.read_all(os.path.join(m, "db_password")), self.value.encode())
        self.assertEqual(rstest.read_all(os.path.join(m, "db", "user")), self.user.encode())

    def assertNothingLeft(self, project=PROJECT, log_kept=False):
        m = self.mount(project)
        self.assertEqual(rstest.mounts_at(m), [], "a mount is left at %s" % m)
        self.assertFalse(os.path.exists(os.path.join(self.run_dir, ".compose",
                                                     project + ".json")), "state left")
        self.assertEqual(os.path.exists(self.logfile(project)), log_kept)

    def broker_pid(self, project=PROJECT):
        return composeenv.state_pid(self.run_dir, project)

    def assertLogClean(self, project=PROJECT):
        with open(self.logfile(project), "rb") as f:
            log = f.read()
        for v in (self.value, self.api):
            self.assertNotIn(v.encode(), log, "a value in the broker's log")
        for marker in rstest.SANITIZER_MARKERS:
            self.assertNotIn(marker.encode(), log)

    # ---- the cases

    def test_metadata(self):
        meta = self.meta
        self.assertIsInstance(meta.get("description"), str)
        for cmd in ("up", "down", "stop"):
            params = meta[cmd]["parameters"]
            for p in params:
                self.assertEqual(set(p) - {"default"}, {"name", "description", "required",
                                                        "type"}, p)
                self.assertFalse(p["required"])
                self.assertIn(p["type"], ("string", "boolean"))
            self.assertIn("run-dir", [p["name"] for p in params], cmd)
        self.assertEqual([p["name"] for p in meta["up"]["parameters"]],
                         ["config", "run-dir", "wait", "raw-env"])
        r = rstest.run_cli("compose", "metadata", "extra")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(json.loads(r.stdout), {"type": "error",
                                                "message": "metadata takes no argument"})

    def test_up_serves_and_announces_paths(self):
        res = self.up_ok()
        m = self.mount()
        # Exactly the secrets with an env key, as paths under the mount.
        self.assertEqual(res.of("setenv"), ["DB_PASSWORD_FILE=%s/db_password" % m,
                                            "API_KEY_FILE=%s/api_key" % m])
        self.assertEqual(res.env_for("secrets"),
                         {"SECRETS_DB_PASSWORD_FILE": m + "/db_password",
                          "SECRETS_API_KEY_FILE": m + "/api_key"})
        self.assertEqual(res.of("error"), [])
        infos = res.of("info")
        self.assertTrue(infos[-1].startswith("serving 3 secrets at %s (broker pid " % m), infos)
        # The broker's sd_notify STATUS lines are the progress shown.
        self.assertIn("mounted at %s; waiting for 3 required secrets" % m, infos)
        self.assertServing()
        pid = self.broker_pid()
        # Its own pid file, for `runsecrets reload --pid-file`.
        with open(os.path.join(self.run_dir, ".compose", "proj.pid")) as f:
            self.assertEqual(int(f.read()), pid)
        # A daemon: its own session, not the provider's child any more, and
        # none of the provider's pipes (EOF came while it runs).
        self.assertTrue(composeenv.pid_alive(pid))
        self.assertEqual(os.getsid(pid), pid)
        self.assertLess(res.eof_s, 30)
        self.assertEqual(os.readlink("/proc/%d/fd/1" % pid), self.logfile())
        self.assertEqual(os.readlink("/proc/%d/fd/2" % pid), self.logfile())
        self.assertEqual(os.readlink("/proc/%d/fd/0" % pid), "/dev/null")
        with open("/proc/%d/environ" % pid, "rb") as f:
            environ = f.read()
        self.assertNotIn(self.value.encode(), environ)
        self.assertEqual(os.stat(self.logfile()).st_mode & 0o777, 0o600)
        self.assertLogClean()

    def test_raw_env(self):
        res = self.up_ok(raw_env="true")
        m = self.mount()
        self.assertEqual(res.of("setenv"), [])
        self.assertEqual(res.env_for("secrets"), {"DB_PASSWORD_FILE": m + "/db_password",
                                                  "API_KEY_FILE": m + "/api_key"})

    def test_up_twice_same_broker(self):
        first = self.up_ok()
        pid = self.broker_pid()
        again = self.up_ok()
        self.assertEqual(self.broker_pid(), pid)
        self.assertEqual(again.of("setenv"), first.of("setenv"))
        self.assertEqual(again.of("info"), ["the broker is already running (pid %d), mount %s"
                                            % (pid, self.mount())])
        self.assertServing()

    def test_concurrent_ups_one_broker(self):
        results = [None, None]

        def up(i):
            results[i] = composeenv.provider(
                rstest.BINARY, "up", PROJECT, SERVICE,
                {"run-dir": self.run_dir, "config": self.config_path}, meta=self.meta)
        self.projects.add(PROJECT)
        threads = [threading.Thread(target=up, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        for r in results:
            self.assertTrue(r.ok(), r.describe())
        self.assertEqual(sorted(len(r.of("setenv")) for r in results), [2, 2])
        reused = [r for r in results if r.of("info")[0].startswith("the broker is already")]
        self.assertEqual(len(reused), 1, [r.of("info") for r in results])
        self.assertEqual(len(rstest.runsecrets_mounts_at(self.mount())), 1)
        self.assertServing()

    def test_down_stops_and_unmounts(self):
        self.up_ok()
        pid = self.broker_pid()
        res = self.call("down")
        self.assertTrue(res.ok(), res.describe())
        self.assertEqual(res.of("info"), ["stopping the broker (pid %d)" % pid,
                                          "broker stopped, %s unmounted" % self.mount()])
        self.assertFalse(composeenv.pid_alive(pid))
        self.assertNothingLeft()
        self.assertFalse(os.path.exists(self.mount()))
        res = self.call("down")
        self.assertTrue(res.ok(), res.describe())
        self.assertEqual(res.of("info"), ["no broker running for project 'proj'"])

    def test_down_never_up(self):
        res = self.call("down", project="other")
        self.assertTrue(res.ok(), res.describe())
        self.assertEqual(res.of("info"), ["no broker for project 'other' (nothing in %s)"
                                          % self.run_dir])
        self.assertFalse(os.path.exists(self.run_dir))

    def test_stop_keeps_log_then_up(self):
        self.up_ok()
        pid = self.broker_pid()
        res = self.call("stop")
        self.assertFalse(res.skipped)
        self.assertTrue(res.ok(), res.describe())
        self.assertFalse(composeenv.pid_alive(pid))
        self.assertNothingLeft(log_kept=True)
        self.up_ok()
        self.assertNotEqual(self.broker_pid(), pid)
        self.assertServing()

    def test_kill9_then_up_recovers(self):
        self.up_ok()
        pid = self.broker_pid()
        os.kill(pid, signal.SIGKILL)
        rstest.wait_until(lambda: not composeenv.pid_alive(pid), 10, "the broker's death")
        # The stale mount: the kernel says ENOTCONN or, while it aborts the
        # connection, ECONNABORTED.
        self.assertIn(rstest.errno_of(os.stat, os.path.join(self.mount(), "db_password")),
                      (errno.ENOTCONN, errno.ECONNABORTED))
        res = self.up_ok()
        self.assertEqual(res.of("info")[:2], [
            "the previous broker (pid %d) is gone" % pid,
            "detached the stale mount of a killed broker at %s" % self.mount()])
        self.assertEqual(len(rstest.mounts_at(self.mount())), 1)
        self.assertServing()
        # And down after another kill -9 leaves nothing either.
        pid = self.broker_pid()
        os.kill(pid, signal.SIGKILL)
        rstest.wait_until(lambda: not composeenv.pid_alive(pid), 10, "the broker's death")
        res = self.call("down")
        self.assertTrue(res.ok(), res.describe())
        self.assertEqual(res.of("info"), [
            "the broker of project 'proj' (pid %d) had already exited" % pid,
            "detached the stale mount of a killed broker at %s" % self.mount()])
        self.assertNothingLeft()

    def test_bad_input(self):
        cases = [
            ("a/b", "project name 'a/b': '/' is not allowed: the name is one directory under "
                    "the run directory"),
            ("..", "project name '..': '..' is not allowed: the name is one directory under "
                   "the run directory"),
            ("a..b", "project name 'a..b': '..' is not allowed: the name is one directory "
                     "under the run directory"),
            ("MyProj", "project name 'MyProj': Compose project names are lowercase letters, "
                       "digits, '-' and '_', starting with a letter or a digit"),
            ("-x", "project name '-x': Compose project names are lowercase letters, digits, "
                   "'-' and '_', starting with a letter or a digit"),
            ("", "the project name is empty"),
            ("x" * 64, "project name '%s': longer than 63 characters" % ("x" * 64)),
        ]
        for name, msg in cases:
            for cmd in ("up", "down"):
                res = self.call(cmd, project=name, kill_on_error=False)
                self.assertEqual(res.rc, 2, res.describe())
                self.assertEqual(res.messages, [{"type": "error", "message": msg}])
        self.projects.clear()
        # Compose would not pass an option metadata does not list: direct.
        r = rstest.run_cli("compose", "--project-name=proj", "up", "--bogus=1", "svc")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(json.loads(r.stdout)["message"],
                         "unknown option '--bogus=1' (runsecrets compose --help)")
        r = rstest.run_cli("compose", "--project-name=proj", "up")
        self.assertEqual(json.loads(r.stdout)["message"], "up: missing the service name")
        r = rstest.run_cli("compose", "up", "svc")
        self.assertEqual(json.loads(r.stdout)["message"], "up: missing --project-name")
        r = rstest.run_cli("compose", "--project-name=proj", "restart", "svc")
        self.assertEqual(json.loads(r.stdout)["message"],
                         "unknown command 'restart': expected up, down, stop or metadata")
        r = rstest.run_cli("compose", "--project-name=proj", "up", "--wait=soon", "svc")
        self.assertEqual(json.loads(r.stdout)["message"],
                         "--wait: expected a duration like 30s or 2m, got 'soon'")
        r = rstest.run_cli("compose", "--project-name=proj", "up", "--run-dir=rel", "svc")
        self.assertEqual(json.loads(r.stdout)["message"],
                         "--run-dir must be an absolute path, got 'rel'")
        self.assertFalse(os.path.exists(self.run_dir), "bad input made the run directory")
        # An option metadata does not list is not passed (Compose's filter).
        res = self.call("up", bogus="1")
        self.assertNotIn("--bogus=1", res.argv)
        self.assertTrue(res.ok(), res.describe())

    def test_broken_config(self):
        self.write_config_text('{"secrets": {"x": {"from": "local:x"}},\n  "bogus": 1}\n')
        res = self.call("up", kill_on_error=False)
        self.assertEqual(res.rc, 2, res.describe())
        self.assertEqual(len(res.messages), 1)
        self.assertRegex(res.of("error")[0], r"^%s:\d+:\d+: " % self.config_path)
        self.assertFalse(os.path.exists(self.mount()))

    def test_other_config_refused(self):
        self.up_ok()
        pid = self.broker_pid()
        with open(self.config_path) as f:
            other = self.write_config_text(f.read(), name="other.json")
        res = self.call("up", config=other, kill_on_error=False)
        self.assertEqual(res.rc, 1, res.describe())
        self.assertEqual(res.of("error"), [
            "project 'proj' already has a broker (pid %d) for service 'secrets' with config %s; "
            "run 'docker compose down' first, or keep one runsecrets service per project"
            % (pid, os.path.realpath(self.config_path))])
        self.assertEqual(self.broker_pid(), pid)
        self.assertServing()

    def test_required_secret_never_comes(self):
        self.write_config({"db_password": {"from": "local:db_password"},
                           "missing": {"from": "local:nope", "env": "MISSING_FILE"}})
        t0 = time.monotonic()
        res = self.call("up", wait="2s", kill_on_error=False)
        took = time.monotonic() - t0
        self.assertEqual(res.rc, 1, res.describe())
        self.assertEqual(len(res.of("error")), 1)
        self.assertEqual(res.messages[-1]["type"], "error")
        self.assertEqual(res.of("setenv"), [])
        err = res.of("error")[0]
        self.assertTrue(err.startswith("the broker was not ready within 2s ("), err)
        self.assertIn("stopped it; log: %s" % self.logfile(), err)
        self.assertIn("; last problem: ", err)
        self.assertIn("(secret missing)", err)
        self.assertLess(took, 2 + 20)
        self.assertNothingLeft(log_kept=True)


if __name__ == "__main__":
    rstest.main()
