"""The access policy at open (issue 15): real processes of other uids, other
executables and another cgroup read through a mount whose configuration has
a "policy"; the audit line's policy fields and the deny counter; callers the
broker sees as pid 0 (PidZeroTest: the broker in a pid namespace of its own).
Containers: test_containers.py; pid reuse: test_policy_race.py."""

import errno
import json
import os
import re
import shutil
import signal
import subprocess

import adminenv
import rstest

CAT = os.path.realpath(shutil.which("cat") or "/bin/cat")
CG2 = "/sys/fs/cgroup/unified" if os.path.ismount("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"


def _read(path):
    return lambda: rstest.read_all(path)


def _cgroup_v2(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].rstrip("\n")
    return None


class PolicyTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.values = {n: rstest.random_value() for n in ("a", "x", "both", "cg")}
        for n, v in self.values.items():
            self.write_secret(n, v)
        self.cg_name = "rs-policy-%d" % os.getpid()
        self.write_config({
            "a": {"from": "local:a"},
            "exe/x": {"from": "local:x"},
            "both": {"from": "local:both"},
            "cg/x": {"from": "local:cg"},
        }, defaults={"refresh": "1h", "max_stale": "1h", "mode": "0444", "uid": 0, "gid": 0})
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["policy"] = {"default": "deny", "rules": [
            {"secrets": ["a"], "allow": {"uids": [1000]}},                        # 0
            {"secrets": ["exe/*"], "allow": {"exe": [CAT]}},                      # 1
            {"secrets": ["both"], "allow": {"uids": [0, 1000]}},                  # 2
            {"secrets": ["both"], "deny": {"uids": [1000]}},                      # 3
            {"secrets": ["cg/*"], "allow": {"cgroups": ["/rs-policy-*"]}},        # 4
        ]}
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        self.admin = "unix:" + os.path.join(self.dir, "admin.sock")
        self.broker = self.start_broker(args=["--admin", self.admin])

    def assertReads(self, uid, parts, name):
        status, res, pid = rstest.run_as(uid, uid, _read(self.mpath(*parts)))
        self.assertEqual((status, res), ("ok", self.values[name].encode()),
                         "uid %d reading %s" % (uid, "/".join(parts)))
        return pid

    def assertDenied(self, uid, parts):
        status, res, pid = rstest.run_as(uid, uid, _read(self.mpath(*parts)))
        self.assertEqual((status, res), ("err", errno.EACCES),
                         "uid %d reading %s: expected EACCES" % (uid, "/".join(parts)))
        return pid

    def cat(self, binary, *parts):
        return subprocess.run([binary, self.mpath(*parts)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)

    def test_uid_allow_and_default_deny_audited(self):
        mark = self.broker.mark()
        pid = self.assertReads(1000, ["a"], "a")
        rec = self.broker.wait_log("open", since=mark, secret="a", uid=1000)
        self.assertEqual((rec.get("decision"), rec.get("rule"), rec.get("pid"), rec.get("audit")),
                         ("allow", 0, pid, True), rec)
        pid = self.assertDenied(1001, ["a"])
        rec = self.broker.wait_log("open", since=mark, secret="a", uid=1001)
        self.assertEqual((rec.get("decision"), rec.get("rule"), rec.get("pid")),
                         ("deny", "default", pid), rec)
        # The forked reader runs this interpreter, in this cgroup.
        st = os.stat("/proc/self/exe")
        self.assertEqual(rec.get("exe_id"), "%d:%d" % (st.st_dev, st.st_ino), rec)
        self.assertEqual(rec.get("exe"), os.readlink("/proc/self/exe"), rec)
        self.assertEqual(rec.get("cgroup"), _cgroup_v2(os.getpid()), rec)
        self.assertNotIn("container", rec)
        # root is no exception to a policy.
        self.assertEqual(self.try_read("a"), errno.EACCES)
        # ... and both denials are counted.
        status, _, body = adminenv.request(self.admin, "/metrics")
        self.assertEqual(status, 200)
        m = re.search(r'^runsecrets_reads_total\{secret="a",result="deny"\} (\d+)',
                      body.decode(), re.M)
        self.assertIsNotNone(m, body.decode()[:2000])
        self.assertEqual(int(m.group(1)), 2)

    def test_exe_by_inode(self):
        orig = self.cat(CAT, "exe", "x")
        self.assertEqual((orig.returncode, orig.stdout), (0, self.values["x"].encode()),
                         orig.stderr)
        copy = os.path.join(self.dir, "cat-copy")
        shutil.copy2(CAT, copy)
        r = self.cat(copy, "exe", "x")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"Permission denied", r.stderr)
        self.assertNotIn(self.values["x"].encode(), r.stdout)
        # A hard link is the same file (same inode): allowed.
        # (The test directory is on the binary's file system here; where it
        # is not, the link cannot be made and that part is skipped.)
        link = os.path.join(self.dir, "cat-link")
        try:
            os.link(CAT, link)
        except OSError as e:
            self.skipTest("cannot hard-link %s into %s: %s" % (CAT, self.dir, e))
        r = self.cat(link, "exe", "x")
        self.assertEqual((r.returncode, r.stdout), (0, self.values["x"].encode()), r.stderr)

    def test_deny_over_allow(self):
        self.assertEqual(self.read("both"), self.values["both"].encode())
        mark = self.broker.mark()
        self.assertDenied(1000, ["both"])
        rec = self.broker.wait_log("open", since=mark, secret="both", uid=1000)
        self.assertEqual((rec.get("decision"), rec.get("rule")), ("deny", 3), rec)

    def test_reload_applies_to_next_open(self):
        self.assertDenied(1001, ["a"])
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["policy"]["rules"][0]["allow"]["uids"] = [1000, 1001]
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        mark = self.broker.mark()
        os.kill(self.broker.pid, signal.SIGHUP)
        self.broker.wait_log("config reloaded", since=mark)
        self.assertReads(1001, ["a"], "a")

    def test_cgroup(self):
        self.assertEqual(self.try_read("cg", "x"), errno.EACCES)
        cg = os.path.join(CG2, self.cg_name)
        try:
            os.mkdir(cg)
        except OSError as e:
            self.skipTest("cannot create a cgroup v2 folder under %s: %s" % (CG2, e))

        def in_cgroup_read():
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            return rstest.read_all(self.mpath("cg", "x"))
        try:
            status, res, pid = rstest.run_as(0, 0, in_cgroup_read)
            self.assertEqual((status, res), ("ok", self.values["cg"].encode()))
            rec = self.broker.wait_log("open", secret="cg/x", pid=pid)
            self.assertEqual((rec.get("decision"), rec.get("rule")), ("allow", 4), rec)
            self.assertTrue(rec.get("cgroup", "").endswith("/" + self.cg_name), rec)
        finally:
            os.rmdir(cg)



def _children(pid):
    """The pids of pid's children (its main thread's, which is all unshare has)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class PidZeroTest(rstest.BrokerTestCase):
    """The broker in a pid namespace of its own (unshare --pid --fork; the
    mount namespace is the test's, so the mount is ours to read): FUSE
    gives the daemon pid 0 for every caller of the host's pid namespace,
    which the broker cannot see. Rules that need no pid (uids) still
    decide; an allow that needs one (exe, cgroups) does not apply; a deny
    that needs one applies to the uids it names (fail closed)."""

    PY = os.path.realpath("/proc/self/exe")

    def setUp(self):
        super().setUp()
        self.values = {n: rstest.random_value() for n in ("u", "e", "c", "d")}
        for n, v in self.values.items():
            self.write_secret(n, v)
        self.write_config({n: {"from": "local:" + n} for n in self.values},
                          defaults={"refresh": "1h", "max_stale": "1h", "mode": "0444",
                                    "uid": 0, "gid": 0})
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["policy"] = {"default": "deny", "rules": [
            {"secrets": ["u"], "allow": {"uids": [1000]}},
            # Both would allow the readers below, which run this interpreter
            # in this cgroup, if the broker could see them (the control).
            {"secrets": ["e"], "allow": {"exe": [self.PY]}},
            {"secrets": ["c"], "allow": {"cgroups": ["/**"]}},
            {"secrets": ["d"], "allow": {"uids": [1000, 1001]}},
            {"secrets": ["d"], "deny": {"uids": [1000], "exe": [self.PY]}},
        ]}
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)

    def start_in_pid_ns(self):
        """The broker as pid 1 of a new pid namespace; b.pid is then the
        broker's own pid (as this namespace sees it), so stop() signals it
        and not unshare, which passes no signal on. --kill-child: should
        unshare be killed (cleanup), the broker gets a TERM."""
        b = self.start_broker(wait=False,
                              wrap=["unshare", "--pid", "--fork", "--kill-child=SIGTERM", "--"])
        kids = rstest.wait_until(lambda: _children(b.pid), rstest.MOUNT_TIMEOUT,
                                 "unshare's child (the broker)")
        b.pid = kids[0]
        b.wait_mounted()
        b.wait_log("mounted")
        b.wait_log("cold start done")
        # The broker really is in another pid namespace than ours.
        self.assertNotEqual(os.stat("/proc/%d/ns/pid" % b.pid).st_ino,
                            os.stat("/proc/self/ns/pid").st_ino)
        return b

    def explain_live(self, secret, pid):
        r = rstest.run_cli("check", "-c", self.config_path, "--explain", secret, "--pid", pid)
        return r.returncode, r.stdout.decode()

    def reads(self, uid, name):
        return rstest.run_as(uid, uid, _read(self.mpath(name)))

    def test_pid_zero_caller(self):
        # Control, without a mount: for a live process of ours, the exe and
        # cgroups rules apply (so below, only the missing pid denies).
        for name in ("e", "c"):
            rc, out = self.explain_live(name, os.getpid())
            self.assertEqual(rc, 0, out)
            self.assertIn("decision: allow", out)
        rc, out = self.explain_live("d", os.getpid())
        self.assertIn("exe yes", out)   # the deny's exe is ours (its uids are not)

        b = self.start_in_pid_ns()
        mark = b.mark()
        status, res, pid = self.reads(1000, "u")
        self.assertEqual((status, res), ("ok", self.values["u"].encode()))
        # The setup's point: FUSE gave the broker pid 0 for this caller. Only
        # the open line's pid is looked at (its other fields are not this
        # test's); without such a line, the denials below still need pid 0.
        opens = [r for r in b.logs()[mark:] if r.get("msg") == "open" and "pid" in r]
        if opens:
            self.assertEqual({r["pid"] for r in opens}, {0}, opens)
        self.assertNotEqual(pid, 0)
        # uid 1000 reads u only because of its uid rule: 1001 is denied.
        self.assertEqual(self.reads(1001, "u")[:2], ("err", errno.EACCES))

        # Allow rules needing a pid do not apply: default deny, for root too.
        for name in ("e", "c"):
            self.assertEqual(self.try_read(name), errno.EACCES, name)
            self.assertEqual(self.reads(1000, name)[:2], ("err", errno.EACCES), name)

        # A deny rule needing a pid applies to the uid it names (fail
        # closed) and not to another uid.
        self.assertEqual(self.reads(1000, "d")[:2], ("err", errno.EACCES))
        self.assertEqual(self.reads(1001, "d")[:2], ("ok", self.values["d"].encode()))
        self.assertEqual(b.stop(), 0, b.describe())


if __name__ == "__main__":
    rstest.main()
