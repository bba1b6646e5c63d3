"""runsecrets check --explain: the access decision for a hypothetical caller
(--uid, --gid, --groups, --exe, --cgroup) or a live process (--pid), the
rules that made it, and the exit code scripts rely on (0 allowed, 1 denied,
2 usage). No mount: check only loads the configuration."""

import json
import os
import shutil
import subprocess

import rstest

CID = "0123456789abcdef" * 4      # a 64-hex container id


class ExplainTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.write_secret("v", rstest.random_value())
        # An executable of our own, a byte-identical copy and a hard link,
        # all on one file system.
        self.app = os.path.join(self.dir, "app")
        shutil.copy2(shutil.which("true"), self.app)
        self.copy = os.path.join(self.dir, "app-copy")
        shutil.copy2(self.app, self.copy)
        self.link = os.path.join(self.dir, "app-link")
        os.link(self.app, self.link)
        self.sleep = os.path.realpath(shutil.which("sleep"))

    def config(self, rules=None, default=None, policy=True):
        cfg = {
            "mount": self.mnt,
            "defaults": {"mode": "0440", "uid": 0, "gid": 1000},
            "backends": {"local": {"type": "file", "path": self.secrets_dir}},
            "secrets": {"db/password": {"from": "local:v"},
                        "admin/root": {"from": "local:v"},
                        "api_key": {"from": "local:v"}},
        }
        if policy:
            cfg["policy"] = {"rules": rules or []}
            if default:
                cfg["policy"]["default"] = default
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        return self.config_path

    def explain(self, secret, *args):
        r = rstest.run_cli("check", "-c", self.config_path, "--explain", secret, *args)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def assertExplains(self, want_rc, secret, args, *lines):
        rc, out, err = self.explain(secret, *args)
        self.assertEqual(rc, want_rc, "exit %d, stdout:\n%s\nstderr:\n%s" % (rc, out, err))
        for line in lines:
            self.assertIn(line, out)
        return out

    def assertUsage(self, secret, args, what):
        rc, out, err = self.explain(secret, *args)
        self.assertEqual(rc, 2, "exit %d, stdout:\n%s\nstderr:\n%s" % (rc, out, err))
        self.assertEqual(out, "")
        self.assertIn(what, err)
        self.assertEqual(len(err.strip().splitlines()[0].split("\n")), 1)

    def test_allowed_by_rule(self):
        self.config([
            {"secrets": ["admin/**"], "allow": {"uids": [0]}},
            {"secrets": ["db/*", "api_key"], "allow": {"uids": [1000]}},
        ])
        self.assertExplains(0, "db/password", ["--uid", "1000", "--gid", "1000"],
                            "caller: hypothetical",
                            '\nrule 1 (allow, secrets "db/*", "api_key"): uids yes -> applies\n',
                            "1 rule not naming 'db/password' is not shown",
                            "\ndecision: allow (rule 1)\n")

    def test_deny_over_allow(self):
        self.config([
            {"secrets": ["**"], "allow": {"uids": [1000]}},
            {"secrets": ["db/*"], "deny": {"gids": [2000]}},
        ])
        self.assertExplains(1, "db/password", ["--uid", "1000", "--gid", "2000"],
                            "rule 0 (allow, secrets \"**\"): uids yes -> applies",
                            "rule 1 (deny, secrets \"db/*\"): gids yes -> applies",
                            "decision: deny (rule 1: a deny rule wins over any allow)")
        # The same rules for another secret: the deny does not name it.
        self.assertExplains(0, "api_key", ["--uid", "1000", "--gid", "2000"],
                            "decision: allow (rule 0)")
        # A supplementary group is enough for the deny.
        self.assertExplains(1, "db/password", ["--uid", "1000", "--gid", "1000",
                                               "--groups", "27,2000"],
                            "groups: 27", "gids yes -> applies", "decision: deny (rule 1")

    def test_default(self):
        self.config([{"secrets": ["db/*"], "allow": {"uids": [1000]}}])
        self.assertExplains(1, "db/password", ["--uid", "1001", "--gid", "1001"],
                            "uids no -> does not apply",
                            "decision: deny (default: no rule applies)")
        self.assertExplains(1, "api_key", ["--uid", "1000", "--gid", "1000"],
                            "decision: deny (default: no rule applies)")
        self.config([{"secrets": ["db/*"], "deny": {"uids": [1000]}}], default="allow")
        self.assertExplains(0, "db/password", ["--uid", "1001", "--gid", "1001"],
                            "access policy: 1 rule, default allow",
                            "decision: allow (default: no rule applies)")

    def test_exe_by_inode(self):
        self.config([{"secrets": ["db/*"], "allow": {"uids": [1000], "exe": [self.app]}}])
        st = os.stat(self.app)
        dev = "%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev))
        self.assertExplains(0, "db/password", ["--uid", "1000", "--gid", "1000",
                                               "--exe", self.app],
                            "exe: %s (dev %s, ino %d)" % (self.app, dev, st.st_ino),
                            "uids yes, exe yes -> applies", "decision: allow (rule 0)")
        # A hard link is the same file.
        self.assertExplains(0, "db/password", ["--uid", "1000", "--gid", "1000",
                                               "--exe", self.link],
                            "ino %d)" % st.st_ino, "decision: allow (rule 0)")
        # A byte-identical copy is not.
        self.assertExplains(1, "db/password", ["--uid", "1000", "--gid", "1000",
                                               "--exe", self.copy],
                            "ino %d)" % os.stat(self.copy).st_ino, "uids yes, exe no",
                            "decision: deny (default")
        # Not given: unknown, and an allow needs it known.
        self.assertExplains(1, "db/password", ["--uid", "1000", "--gid", "1000"],
                            "exe: unknown (not given)", "exe unknown -> does not apply",
                            "note: unknown facts fail closed")

    def test_unknown_fact_makes_a_deny_apply(self):
        self.config([{"secrets": ["**"], "deny": {"uids": [1000], "exe": [self.app]}}],
                    default="allow")
        self.assertExplains(1, "api_key", ["--uid", "1000", "--gid", "1000"],
                            "uids yes, exe unknown -> applies (a deny applies when a fact it "
                            "needs is unknown)", "decision: deny (rule 0")
        # A known fact still rules it out.
        self.assertExplains(0, "api_key", ["--uid", "1000", "--gid", "1000", "--exe", self.copy],
                            "exe no -> does not apply", "decision: allow (default")
        self.assertExplains(0, "api_key", ["--uid", "2000", "--gid", "2000"],
                            "uids no, exe unknown -> does not apply")

    def test_cgroup_and_container(self):
        self.config([
            {"secrets": ["admin/**"], "allow": {"cgroups": ["/system.slice/docker-*.scope"]}},
            {"secrets": ["db/*"], "allow": {"containers": ["docker:" + CID[:12]]}},
            {"secrets": ["db/*"], "deny": {"containers": ["libpod:*"]}},
        ])
        docker = "/system.slice/docker-%s.scope" % CID
        self.assertExplains(0, "admin/root", ["--uid", "0", "--cgroup", docker],
                            "cgroup: " + docker, "container: docker:" + CID,
                            "cgroups yes -> applies", "decision: allow (rule 0)")
        self.assertExplains(0, "db/password", ["--uid", "0", "--cgroup", "/docker/" + CID],
                            "container: docker:" + CID, "containers yes -> applies",
                            "rule 2 (deny, secrets \"db/*\"): containers no -> does not apply",
                            "decision: allow (rule 1)")
        podman = "/machine.slice/libpod-%s.scope" % CID
        self.assertExplains(1, "db/password", ["--uid", "0", "--cgroup", podman],
                            "container: libpod:" + CID, "decision: deny (rule 2")
        self.assertExplains(1, "admin/root", ["--uid", "0", "--cgroup", "/user.slice"],
                            "container: none", "cgroups no", "decision: deny (default")

    def test_live_pid(self):
        self.config([{"secrets": ["db/*"], "allow": {"uids": [1000], "exe": [self.sleep],
                                                     "pids_ns": "same"}}])
        child = subprocess.Popen([self.sleep, "30"], user=1000, group=1000,
                                 extra_groups=[2000])
        try:
            st = os.stat(self.sleep)
            out = self.assertExplains(0, "db/password", ["--pid", str(child.pid)],
                                      "caller: pid %d\n" % child.pid, "  uid: 1000",
                                      "  gid: 1000", "  groups: 2000",
                                      "exe: %s (dev %d:%d, ino %d)"
                                      % (self.sleep, os.major(st.st_dev), os.minor(st.st_dev),
                                         st.st_ino),
                                      "pid namespace: the broker's",
                                      "uids yes, exe yes, pids_ns yes -> applies",
                                      "decision: allow (rule 0)")
            self.assertIn("  cgroup: /", out)
            # --pid excludes the hypothetical caller's options.
            self.assertUsage("db/password", ["--pid", str(child.pid), "--uid", "0"],
                             "--pid: excludes")
        finally:
            child.kill()
            child.wait()
        self.assertUsage("db/password", ["--pid", str(child.pid)], "no such process")

    def test_unknown_secret(self):
        self.config([])
        self.assertUsage("nope", ["--uid", "0"], "--explain: no secret named 'nope' in ")
        self.assertUsage("db", ["--uid", "0"], "no secret named 'db'")   # a name, not a glob

    def test_bad_options(self):
        self.config([{"secrets": ["**"], "allow": {"uids": [0]}}])
        for args, what in ((["--uid", "12abc"], "--uid: no such user, got '12abc'"),
                           (["--uid", "-1"], "--uid: no such user"),
                           (["--uid", "4294967295"], "--uid: no such user"),
                           (["--uid", ""], "--uid: expected a user id or name"),
                           (["--uid", "0", "--gid", "nosuchgroup-x"], "--gid: no such group"),
                           (["--uid", "0", "--groups", "1,,2"], "--groups: expected groups"),
                           (["--uid", "0", "--exe", os.path.join(self.dir, "missing")],
                            "--exe: No such file or directory"),
                           (["--uid", "0", "--cgroup", "system.slice"],
                            "--cgroup: expected an absolute cgroup path"),
                           (["--uid", "4242"], "--gid: needed: uid 4242 has no passwd entry"),
                           (["--pid", "abc"], "--pid: expected a process id"),
                           (["--pid", "0"], "--pid: expected a process id"),
                           ([], "--explain: needs --uid")):
            with self.subTest(args=args):
                self.assertUsage("db/password", args, what)
        # Outside --explain, and with --fetch.
        r = rstest.run_cli("check", "-c", self.config_path, "--uid", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"go with --explain SECRET", r.stderr)
        r = rstest.run_cli("check", "-c", self.config_path, "--fetch", "--explain", "api_key",
                           "--uid", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--explain and --fetch exclude each other", r.stderr)
        r = rstest.run_cli("get", "-c", self.config_path, "--uid", "0", "api_key")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"--uid is an option of 'check'", r.stderr)

    def test_names(self):
        self.config([{"secrets": ["**"], "allow": {"uids": ["root"], "gids": ["root"]}}])
        self.assertExplains(0, "api_key", ["--uid", "root"], "uid: 0 (root)", "gid: 0 (root)",
                            "uids yes, gids yes -> applies")

    def test_no_policy(self):
        self.config(policy=False)
        self.assertExplains(0, "db/password", ["--uid", "1000", "--gid", "1000"],
                            "no access policy: file modes decide",
                            "decision: allow (mode 0440, owner 0, group 1000; supplementary "
                            "groups not known: none counted)")
        self.assertExplains(1, "db/password", ["--uid", "1001", "--gid", "1001"],
                            "decision: deny (mode 0440, owner 0, group 1000")
        self.assertExplains(0, "db/password", ["--uid", "1001", "--gid", "1001",
                                               "--groups", "1000"],
                            "decision: allow (mode 0440, owner 0, group 1000)")
        self.assertExplains(0, "db/password", ["--uid", "0"], "decision: allow")


if __name__ == "__main__":
    rstest.main()
