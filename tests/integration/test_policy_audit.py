"""The access policy's audit trail and listings (issue 15): one JSON line per
decision to a file, to syslog (a socket this test serves) or stderr; repeats
folded per (secret, process, decision) and counted on the next line;
denials written at least once a second; the file reopened on SIGUSR1 and
SIGHUP (logrotate); pending counts written at stop; a sink that cannot be
opened refused at start and at reload; readdir listing only what its caller
may open. No value is ever in a line."""

import errno
import json
import os
import signal
import socket
import stat
import threading
import time

import rstest



def slow():
    """Waits stretch under ASan."""
    return 3 if rstest.is_asan_build() else 1


def _open_n(path, n):
    """In one process: open and read path n times; the errno of each."""
    def run():
        out = []
        for _ in range(n):
            try:
                rstest.read_all(path)
                out.append(0)
            except OSError as e:
                out.append(e.errno)
        return out
    return run


class AuditCase(rstest.BrokerTestCase):
    """A mount with secrets "a" (uid 1000 may read), "b" (nobody may),
    "dir/x" and "dir/y" (1000 may read x only) under a policy whose audit
    trail goes where audit_sink() says."""

    repeat_after = "1m"

    def audit_sink(self):
        return "file:" + self.audit_path

    def setUp(self):
        super().setUp()
        self.audit_path = os.path.join(self.dir, "log", "audit.log")
        self.values = {n: rstest.random_value() for n in ("a", "b", "x", "y")}
        for n, v in self.values.items():
            self.write_secret(n, v)
        self.write_config({
            "a": {"from": "local:a"},
            "b": {"from": "local:b"},
            "dir/x": {"from": "local:x"},
            "dir/y": {"from": "local:y"},
        }, defaults={"refresh": "1h", "max_stale": "1h", "mode": "0444", "uid": 0, "gid": 0})
        self.set_policy(self.audit_sink())
        self.broker = self.start_broker()

    def set_policy(self, sink):
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["policy"] = {"default": "deny", "rules": [
            {"secrets": ["a", "dir/x"], "allow": {"uids": [1000]}},   # 0
            {"secrets": ["**"], "allow": {"uids": [0]}},              # 1
            {"secrets": ["b"], "deny": {"uids": [0]}},                # 2
        ], "audit": {"sink": sink, "repeat_after": self.repeat_after}}
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)

    def lines(self, path=None):
        path = path or self.audit_path
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        for v in self.values.values():
            self.assertNotIn(v.encode(), data, "a value in the audit trail")
        return [json.loads(line) for line in data.decode().splitlines()]

    def wait_lines(self, pred, what, path=None, timeout=None):
        found = []
        timeout = timeout or 5 * slow()

        def ok():
            found[:] = [r for r in self.lines(path) if pred(r)]
            return bool(found)
        rstest.wait_until(ok, timeout, what)
        return found


class FileSinkTest(AuditCase):

    def test_lines_fields_and_mode(self):
        status, res, pid = rstest.run_as(1000, 1000, _open_n(self.mpath("a"), 1))
        self.assertEqual((status, res), ("ok", [0]))
        status, res, pid2 = rstest.run_as(1000, 1000, _open_n(self.mpath("b"), 1))
        self.assertEqual((status, res), ("ok", [errno.EACCES]))
        allow = self.wait_lines(lambda r: r.get("pid") == pid, "the allow line")
        deny = self.wait_lines(lambda r: r.get("pid") == pid2, "the deny line")
        self.assertEqual(len(allow), 1, allow)
        a = allow[0]
        self.assertEqual((a["msg"], a["audit"], a["secret"], a["decision"], a["rule"], a["uid"],
                          a["gid"], a["level"]),
                         ("open", True, "a", "allow", 0, 1000, 1000, "info"), a)
        self.assertEqual(a["exe"], os.readlink("/proc/self/exe"), a)
        st = os.stat("/proc/self/exe")
        self.assertEqual(a["exe_id"], "%d:%d" % (st.st_dev, st.st_ino), a)
        with open("/proc/self/cgroup") as f:
            v2 = [ln[3:].strip() for ln in f if ln.startswith("0::")]
        if v2:
            self.assertEqual(a["cgroup"], v2[0], a)
        self.assertRegex(a["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertNotIn("repeats", a)
        d = deny[0]
        self.assertEqual((d["secret"], d["decision"], d["rule"], d["level"]),
                         ("b", "deny", "default", "warn"), d)
        # The file is the broker's alone, in a folder it made.
        self.assertEqual(stat.S_IMODE(os.stat(self.audit_path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(self.audit_path)).st_mode), 0o700)
        # Nothing of it in the broker's own log.
        self.assertEqual(self.broker.find_logs("open", secret="a"), [])

    def test_repeats_folded_per_process(self):
        status, res, pid = rstest.run_as(1000, 1000, _open_n(self.mpath("a"), 25))
        self.assertEqual((status, res), ("ok", [0] * 25))
        status, res, pid2 = rstest.run_as(1000, 1000, _open_n(self.mpath("a"), 3))
        self.assertEqual((status, res), ("ok", [0] * 3))
        # One line per process: another process is another caller.
        self.wait_lines(lambda r: r.get("pid") == pid2, "the second process's line")
        mine = [r for r in self.lines() if r.get("pid") == pid]
        self.assertEqual(len(mine), 1, mine)
        self.assertNotIn("repeats", mine[0])
        # The folded count comes out at stop, on a line of its own.
        self.broker.stop()
        rep = [r for r in self.lines() if r.get("msg") == "open repeats"]
        by_pid = {r["pid"]: r for r in rep}
        self.assertEqual((by_pid[pid]["repeats"], by_pid[pid]["secret"], by_pid[pid]["decision"]),
                         (24, "a", "allow"), rep)
        self.assertEqual(by_pid[pid2]["repeats"], 2, rep)

    def test_denials_at_least_once_a_second(self):
        # repeat_after is 1m, but a denial's count is written within about a
        # second: on the next denial's line, or on a line of its own when no
        # denial comes. Every denial is a line or counted on one.
        def run():
            out = []
            for _ in range(10):
                out.append(rstest.errno_of(rstest.read_all, self.mpath("b")))
            time.sleep(1.2)
            out.append(rstest.errno_of(rstest.read_all, self.mpath("b")))
            for _ in range(4):
                out.append(rstest.errno_of(rstest.read_all, self.mpath("a")))
            return out
        status, res, pid = rstest.run_as(1000, 1000, run)
        self.assertEqual((status, res), ("ok", [errno.EACCES] * 11 + [None] * 4))

        def denials():
            mine = [r for r in self.lines() if r.get("pid") == pid and r["decision"] == "deny"]
            return sum((1 if r["msg"] == "open" else 0) + r.get("repeats", 0) for r in mine)
        # All 11 accounted for within ~2 s of the last, with the broker still running.
        rstest.wait_until(lambda: denials() == 11, 5 * slow(), "11 denials in the trail")
        time.sleep(1.5)
        self.assertEqual(denials(), 11)
        # Allowed opens of the same process are their own key, folded for 1m.
        allow = [r for r in self.lines() if r.get("pid") == pid and r["decision"] == "allow"]
        self.assertEqual([(r["msg"], r.get("repeats")) for r in allow], [("open", None)], allow)

    def test_reopen_on_usr1_and_hup(self):
        status, _, pid = rstest.run_as(1000, 1000, _open_n(self.mpath("a"), 1))
        self.wait_lines(lambda r: r.get("pid") == pid, "the first line")
        rotated = self.audit_path + ".1"
        for sig in (signal.SIGUSR1, signal.SIGHUP):
            os.rename(self.audit_path, rotated)
            mark = self.broker.mark()
            self.broker.send(sig)
            if sig == signal.SIGHUP:
                self.broker.wait_log("config reloaded", since=mark)
            # Reopened: the file is there again before any open.
            rstest.wait_until(lambda: os.path.exists(self.audit_path), 5 * slow(),
                              "the audit file reopened after %s" % sig.name)
            status, _, pid = rstest.run_as(1000, 1000, _open_n(self.mpath("a"), 1))
            self.wait_lines(lambda r: r.get("pid") == pid, "a line in the new file")
            self.assertEqual([r for r in self.lines(rotated) if r.get("pid") == pid], [])
            os.unlink(rotated)
        self.assertTrue(self.broker.running())

    def test_check_names_the_trail(self):
        r = rstest.run_cli("check", "-c", self.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("access policy: 3 rules, default deny\n"
                      "audit trail: file:%s, repeats folded for 60s\n" % self.audit_path,
                      r.stdout.decode())

    def test_reload_with_a_bad_sink_keeps_the_old(self):
        self.set_policy("file:/proc/no/such/audit.log")
        mark = self.broker.mark()
        self.broker.send(signal.SIGHUP)
        rec = self.broker.wait_log("reload failed", since=mark)
        self.assertIn("policy.audit.sink: file:/proc/no/such/audit.log", rec.get("error", ""), rec)
        status, _, pid = rstest.run_as(1000, 1000, _open_n(self.mpath("a"), 1))
        self.wait_lines(lambda r: r.get("pid") == pid, "a line in the old sink")


class ListingTest(AuditCase):

    def test_readdir_lists_what_the_caller_may_open(self):
        ls = lambda *p: (lambda: sorted(os.listdir(self.mpath(*p))))  # noqa: E731
        self.assertEqual(rstest.run_as(1000, 1000, ls())[:2], ("ok", ["a", "dir"]))
        self.assertEqual(rstest.run_as(1000, 1000, ls("dir"))[:2], ("ok", ["x"]))
        # Nothing for 1001: not even the folder.
        self.assertEqual(rstest.run_as(1001, 1001, ls())[:2], ("ok", []))
        self.assertEqual(rstest.run_as(1001, 1001, ls("dir"))[:2], ("ok", []))
        # root: everything but b (rule 2 denies it).
        self.assertEqual(sorted(os.listdir(self.mpath())), ["a", "dir"])
        self.assertEqual(sorted(os.listdir(self.mpath("dir"))), ["x", "y"])
        # A listing is not an open: nothing audited for it.
        time.sleep(0.2)
        self.assertEqual(self.lines(), [])


class SyslogSinkTest(AuditCase):

    def audit_sink(self):
        self.sock_path = os.path.join(self.dir, "log.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.settimeout(5 * slow())
        self.addCleanup(self.sock.close)
        return "syslog:" + self.sock_path

    def test_datagrams_to_authpriv(self):
        status, res, pid = rstest.run_as(1000, 1000, _open_n(self.mpath("a"), 1))
        self.assertEqual(res, [0])
        status, res, pid2 = rstest.run_as(1000, 1000, _open_n(self.mpath("b"), 1))
        self.assertEqual(res, [errno.EACCES])
        got = {}
        while len(got) < 2:
            msg = self.sock.recv(65536).decode()
            # <PRI>Mmm dd hh:mm:ss runsecrets[PID]: {json}
            pri = int(msg[1:msg.index(">")])
            head, _, body = msg.partition("]: ")
            self.assertIn("runsecrets[%d" % self.broker.pid, head)
            rec = json.loads(body)
            for v in self.values.values():
                self.assertNotIn(v, msg)
            got[rec["pid"]] = (pri, rec)
        # authpriv (10): info for an allow, warning for a denial.
        self.assertEqual((got[pid][0], got[pid][1]["decision"]), (10 * 8 + 6, "allow"))
        self.assertEqual((got[pid2][0], got[pid2][1]["decision"]), (10 * 8 + 4, "deny"))

    def test_syslog_restart_reconnects(self):
        status, res, pid = rstest.run_as(1000, 1000, _open_n(self.mpath("a"), 1))
        self.sock.recv(65536)
        # The daemon goes away and comes back at the same path.
        self.sock.close()
        os.unlink(self.sock_path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.sock.settimeout(5 * slow())
        self.addCleanup(self.sock.close)
        status, res, pid = rstest.run_as(1000, 1000, _open_n(self.mpath("a"), 1))
        rec = json.loads(self.sock.recv(65536).decode().partition("]: ")[2])
        self.assertEqual(rec["pid"], pid)


class StderrSinkTest(AuditCase):

    repeat_after = "0s"

    def audit_sink(self):
        return "stderr"

    def test_every_decision_with_repeat_after_zero(self):
        r = rstest.run_cli("check", "-c", self.config_path)
        self.assertIn("audit trail: stderr, every decision written\n", r.stdout.decode())
        status, res, pid = rstest.run_as(1000, 1000, _open_n(self.mpath("a"), 5))
        self.assertEqual(res, [0] * 5)
        rstest.wait_until(lambda: len(self.broker.find_logs("open", pid=pid)) == 5, 5 * slow(),
                          "five lines on stderr")
        for r in self.broker.find_logs("open", pid=pid):
            self.assertEqual((r["audit"], r["decision"], r["rule"]), (True, "allow", 0), r)
            self.assertNotIn("repeats", r)


class BadSinkTest(rstest.BrokerTestCase):

    def test_sink_that_cannot_be_opened(self):
        self.write_secret("a", rstest.random_value())
        self.write_config({"a": {"from": "local:a"}})
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["policy"] = {"rules": [], "audit": {"sink": "file:/proc/no/such/audit.log"}}
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        b = self.start_broker(wait=False)
        rc = b.proc.wait(timeout=10 * slow())
        self.assertNotEqual(rc, 0)
        rec = b.wait_log("cannot open the audit trail")
        self.assertIn("policy.audit.sink: file:/proc/no/such/audit.log", rec.get("error", ""))
        self.assertEqual(rstest.runsecrets_mounts_at(self.mpath()), [])


if __name__ == "__main__":
    rstest.main()
