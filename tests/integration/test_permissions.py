"""Kernel-enforced modes and owners (default_permissions, allow_other), and the
audit line the broker writes for every open it sees."""

import errno
import os
import shutil
import subprocess
import time

import rstest


def _read(path):
    return lambda: rstest.read_all(path)


class PermissionsTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.v440 = rstest.random_value()
        self.v400 = rstest.random_value()
        self.v044 = rstest.random_value()
        self.write_secret("shared", self.v440)
        self.write_secret("owner_only", self.v400)
        self.write_secret("group_only", self.v044)
        self.write_config({
            "db_password": {"from": "local:shared", "mode": "0440", "uid": 1000, "gid": 1000},
            "svc/owner_only": {"from": "local:owner_only", "mode": "0400", "uid": 1000,
                               "gid": 1000},
            "svc/group_only": {"from": "local:group_only", "mode": "0044", "uid": 1000,
                               "gid": 1000},
            "root_only": {"from": "local:owner_only"},
        })
        self.broker = self.start_broker()

    def assertReads(self, uid, gid, parts, expected, groups=()):
        status, res, pid = rstest.run_as(uid, gid, _read(self.mpath(*parts)), groups)
        self.assertEqual(status, "ok", "uid %d gid %d groups %r could not read %s: %s"
                         % (uid, gid, groups, "/".join(parts),
                            errno.errorcode.get(res, res) if status == "err" else res))
        self.assertEqual(res, expected.encode())
        return pid

    def assertDenied(self, uid, gid, parts, groups=()):
        status, res, pid = rstest.run_as(uid, gid, _read(self.mpath(*parts)), groups)
        self.assertEqual((status, res), ("err", errno.EACCES),
                         "uid %d gid %d groups %r reading %s: expected EACCES, got %r"
                         % (uid, gid, groups, "/".join(parts), (status, res)))
        return pid

    def test_owner_reads_0440(self):
        self.assertReads(1000, 1000, ["db_password"], self.v440)

    def test_other_user_denied_0440(self):
        self.assertDenied(1001, 1001, ["db_password"])

    def test_group_member_reads_0440(self):
        self.assertReads(1002, 1000, ["db_password"], self.v440)
        # through a supplementary group only
        self.assertReads(1002, 1002, ["db_password"], self.v440, groups=[1000])

    def test_owner_only_0400(self):
        self.assertReads(1000, 1000, ["svc", "owner_only"], self.v400)
        self.assertDenied(1002, 1000, ["svc", "owner_only"])
        self.assertDenied(1001, 1001, ["svc", "owner_only"])

    def test_owner_class_wins_0044(self):
        self.assertDenied(1000, 1000, ["svc", "group_only"])
        self.assertReads(1002, 1000, ["svc", "group_only"], self.v044)
        self.assertReads(1003, 1003, ["svc", "group_only"], self.v044)

    def test_root_only_default(self):
        self.assertEqual(rstest.read_all(self.mpath("root_only")), self.v400.encode())
        self.assertDenied(1000, 1000, ["root_only"])

    def test_others_can_list_and_stat(self):
        status, names, _ = rstest.run_as(1001, 1001, lambda: sorted(os.listdir(self.mnt)))
        self.assertEqual(status, "ok", names)
        self.assertEqual(names, ["db_password", "root_only", "svc"])
        status, st, _ = rstest.run_as(1001, 1001,
                                      lambda: tuple(os.stat(self.mpath("db_password")))[:7])
        self.assertEqual(status, "ok", st)

    # -- audit

    def test_audit_allow_root(self):
        mark = self.broker.mark()
        rstest.read_all(self.mpath("db_password"))
        rec = self.broker.wait_log("open", since=mark, secret="db_password")
        self.assertEqual((rec.get("decision"), rec.get("rule"), rec.get("audit")), ("allow", "file modes", True), rec)
        self.assertEqual(rec.get("uid"), 0, rec)
        self.assertEqual(rec.get("pid"), os.getpid(), rec)
        self.assertEqual(rec.get("backend"), "local", rec)

    def test_audit_allow_other_uid(self):
        mark = self.broker.mark()
        pid = self.assertReads(1000, 1000, ["db_password"], self.v440)
        rec = self.broker.wait_log("open", since=mark, secret="db_password", uid=1000)
        self.assertEqual((rec.get("decision"), rec.get("rule"), rec.get("audit")), ("allow", "file modes", True), rec)
        self.assertEqual(rec.get("pid"), pid, rec)
        self.assertEqual(rec.get("gid"), 1000, rec)

    def test_audit_repeats_folded(self):
        """Without a policy too, repeated opens of one secret by one caller
        are one line and a count (policy.audit's default: 1m), written on a
        line of its own at the latest when the broker stops."""
        mark = self.broker.mark()
        for _ in range(3):
            rstest.read_all(self.mpath("svc", "owner_only"))
        self.broker.wait_log("open", since=mark, secret="svc/owner_only")
        time.sleep(0.3)
        self.assertEqual(len(self.broker.find_logs("open", mark, secret="svc/owner_only")), 1)
        self.assertEqual(self.broker.stop(), 0)
        rep = self.broker.find_logs("open repeats", mark, secret="svc/owner_only")
        self.assertEqual([(r.get("repeats"), r.get("pid"), r.get("decision")) for r in rep],
                         [(2, os.getpid(), "allow")], rep)

    def test_audit_deny(self):
        """A uid-1001 caller that the kernel lets through (it holds
        CAP_DAC_READ_SEARCH) is still refused by the broker's own policy
        (mode 0440, owner 1000:1000), which audits decision "deny" with its uid.
        Callers the kernel refuses never reach the broker."""
        setpriv = shutil.which("setpriv")
        if not setpriv:
            self.skipTest("setpriv not installed")
        mark = self.broker.mark()
        p = subprocess.Popen([setpriv, "--reuid=1001", "--regid=1001", "--clear-groups",
                              "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
                              "--", "cat", self.mpath("db_password")],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=20)
        self.assertNotIn(self.v440.encode(), out,
                         "broker served a 0440 1000:1000 file to uid 1001")
        self.assertNotEqual(p.returncode, 0, err)
        self.assertIn(b"Permission denied", err)
        rec = self.broker.wait_log("open", since=mark, secret="db_password", uid=1001)
        self.assertEqual((rec.get("decision"), rec.get("rule")), ("deny", "file modes"), rec)
        self.assertEqual(rec.get("pid"), p.pid, rec)  # setpriv execs cat: same pid

if __name__ == "__main__":
    rstest.main()
