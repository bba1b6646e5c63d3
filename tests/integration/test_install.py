"""`meson install` and the systemd units (issue 13): the install holds the
binary, both units (paths filled in) and the docs; `systemd-analyze verify`
accepts the units as installed. Then, without systemd, why the units need
--mount-namespace with ProtectSystem=/ProtectHome=/PrivateTmp=: a broker in a
slave mount namespace (what those keys give a service) mounts, and nobody
outside sees the mount (NamespaceTest, the control); with
--mount-namespace naming the outer namespace, the outer one sees it, reads
through it and loses it at the stop (MountNamespaceTest)."""

import errno
import os
import shutil
import signal
import subprocess
import tempfile
import time

import rstest

REQUIRED_KEYS = [
    "Type=notify", "NotifyAccess=main", "ExecReload=", "PIDFile=", "RuntimeDirectory=runsecrets",
    "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_DAC_READ_SEARCH",
    "NoNewPrivileges=yes", "DevicePolicy=closed", "DeviceAllow=/dev/fuse rw",
    "MemoryDenyWriteExecute=yes", "LimitCORE=0", "LockPersonality=yes",
    # mnt, not yes: setns(CLONE_NEWNS) into the host's namespace.
    "RestrictNamespaces=mnt", "RestrictSUIDSGID=yes",
    "RestrictRealtime=yes", "SystemCallArchitectures=native", "SystemCallFilter=@system-service",
    # The sandbox, made harmless to the mount by --mount-namespace.
    "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
]
# PrivateDevices= would hide /dev/fuse; MountFlags= would not make the mount
# propagate out (what is disconnected is disconnected) and is not needed.
ABSENT_KEYS = ["PrivateDevices=", "MountFlags="]


def build_dir():
    d = os.path.dirname(rstest.BINARY)
    return d if os.path.exists(os.path.join(d, "meson-private")) else None


def unit_lines(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


class InstallTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.build = build_dir()
        if not self.build:
            self.skipTest("the binary is not in a meson build folder: nothing to install")
        self.dest = os.path.join(self.dir, "dest")
        r = subprocess.run(["meson", "install", "-C", self.build, "--no-rebuild", "--quiet",
                            "--destdir", self.dest], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout.decode()[-3000:])
        intro = subprocess.run(["meson", "introspect", "--buildoptions", self.build],
                               stdout=subprocess.PIPE, check=True, timeout=60).stdout.decode()
        import json
        opts = {o["name"]: o["value"] for o in json.loads(intro)}
        self.prefix = opts["prefix"]
        self.bindir = os.path.join(self.prefix, opts["bindir"])
        self.units = [os.path.join(dp, f) for dp, _, fs in os.walk(self.dest) for f in fs
                      if f.startswith("runsecrets") and f.endswith(".service")]

    def test_install_layout(self):
        binary = self.dest + os.path.join(self.bindir, "runsecrets")
        self.assertTrue(os.access(binary, os.X_OK), binary)
        self.assertEqual(sorted(os.path.basename(u) for u in self.units),
                         ["runsecrets.service", "runsecrets@.service"])
        docdir = self.dest + os.path.join(self.prefix, "share", "doc", "runsecrets")
        for doc in ("service.md", "config.md", "internals/service.md", "ARCHITECTURE.md"):
            self.assertTrue(os.path.isfile(os.path.join(docdir, doc)), doc)
        for unit in self.units:
            with self.subTest(unit=os.path.basename(unit)):
                lines = unit_lines(unit)
                text = "\n".join(lines)
                self.assertNotIn("@bindir@", text)
                start = [x for x in lines if x.startswith("ExecStart=")]
                self.assertEqual(len(start), 1)
                self.assertTrue(start[0].startswith("ExecStart=%s/runsecrets mount "
                                                    % self.bindir), start)
                for key in REQUIRED_KEYS:
                    self.assertTrue(any(x.startswith(key) for x in lines), key)
                for key in ABSENT_KEYS:
                    self.assertFalse(any(x.startswith(key) for x in lines), key)
                self.assertTrue(start[0].endswith(" --mount-namespace /proc/1/ns/mnt"), start)
        inst = [u for u in self.units if u.endswith("@.service")][0]
        self.assertIn("--mount /run/runsecrets/%i --pid-file /run/runsecrets/%i.pid",
                      "\n".join(unit_lines(inst)))

    def verify(self, root, unit):
        return subprocess.run(["systemd-analyze", "verify", "--man=no", "--root", root, unit],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)

    def test_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed (Debian's systemd package)")
        unitdir = os.path.dirname(self.units[0])
        # verify --root resolves dependencies (sysinit.target...) in the root:
        # give it the host's units beside ours.
        for f in os.listdir("/lib/systemd/system"):
            src = os.path.join("/lib/systemd/system", f)
            dst = os.path.join(unitdir, f)
            if not os.path.lexists(dst):
                if os.path.islink(src):
                    os.symlink(os.readlink(src), dst)
                elif os.path.isfile(src):
                    shutil.copy(src, dst)
        for unit in ("runsecrets.service", "runsecrets@billing.service"):
            with self.subTest(unit=unit):
                r = self.verify(self.dest, unit)
                self.assertEqual((r.returncode, r.stdout.decode()), (0, ""))
        # The check reads our file: a misspelt key and a missing binary are caught.
        bad = os.path.join(unitdir, "runsecrets.service")
        with open(bad) as f:
            text = f.read()
        with open(bad, "w") as f:
            f.write(text.replace("LockPersonality=yes", "LockPersonality=yes\nProtectSystm=strict")
                    .replace("ExecStart=%s" % self.bindir, "ExecStart=/nonexistent"))
        r = self.verify(self.dest, "runsecrets.service")
        out = r.stdout.decode()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Unknown key 'ProtectSystm' in section [Service]", out)
        self.assertIn("Command /nonexistent/runsecrets is not executable", out)


class SharedDirTestCase(rstest.BrokerTestCase):
    """A secret, and the test folder a shared mount, as / is on a systemd host."""

    def setUp(self):
        super().setUp()
        self.value = rstest.random_value()
        self.write_secret("pw", self.value)
        self.write_config({"pw": {"from": "local:pw"}})
        # Our namespace is private (rstest); make the test folder a shared
        # mount, as / is on a systemd host.
        subprocess.run(["mount", "--bind", self.dir, self.dir], check=True)
        subprocess.run(["mount", "--make-shared", self.dir], check=True)


class NamespaceTest(SharedDirTestCase):
    """What ProtectSystem=/PrivateTmp= do to a FUSE mount, without systemd."""

    def run_in(self, propagation):
        mnt = os.path.join(self.dir, "mnt-" + propagation)
        os.mkdir(mnt)
        log = open(os.path.join(self.dir, propagation + ".log"), "wb")
        self.addCleanup(log.close)
        # The broker writes its mountinfo view to a file before serving.
        script = ("%s mount --config %s %s & pid=$!; "
                  "for i in $(seq 100); do grep -q ' %s ' /proc/self/mountinfo && break; "
                  "sleep 0.05; done; cat /proc/self/mountinfo > %s/%s.inside; "
                  "sleep 1; kill -TERM $pid; wait $pid"
                  % (rstest.BINARY, self.config_path, mnt, mnt, self.dir, propagation))
        p = subprocess.Popen(["unshare", "--mount", "--propagation", propagation,
                              "sh", "-c", script], stdout=log, stderr=log)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait()))
        deadline = time.monotonic() + rstest.MOUNT_TIMEOUT
        inside = os.path.join(self.dir, propagation + ".inside")
        while not os.path.exists(inside) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        seen_outside = bool(rstest.runsecrets_mounts_at(mnt))
        with open(inside) as f:
            mounted_inside = (" %s " % mnt) in f.read()
        self.assertEqual(p.wait(timeout=rstest.STOP_TIMEOUT), 0)
        return mounted_inside, seen_outside

    def test_a_slave_namespace_hides_the_mount(self):
        # systemd's ProtectSystem= & co: MS_SLAVE|MS_REC, then the service runs.
        self.assertEqual(self.run_in("slave"), (True, False))

    def test_a_shared_namespace_shows_it(self):
        # The control: the same broker, propagation shared: the host sees it.
        self.assertEqual(self.run_in("shared"), (True, True))


CAP_SYS_PTRACE = 19


class MountNamespaceTest(SharedDirTestCase):
    """`mount --mount-namespace PATH`: the broker runs in a slave namespace
    (what ProtectSystem= & co give it, as above) and mounts in ours, named by
    /proc/<our pid>/ns/mnt as the units name the host's by /proc/1/ns/mnt.
    NamespaceTest.test_a_slave_namespace_hides_the_mount is the control: the
    same broker without the option serves nobody outside."""

    def outer_ns(self):
        return "/proc/%d/ns/mnt" % os.getpid()

    def start_inside(self, propagation="slave", ns=None, extra_wrap=(), wait=True):
        mnt = os.path.join(self.dir, "mnt-ns-" + propagation)
        try:
            os.mkdir(mnt)
        except FileExistsError:
            pass
        wrap = list(extra_wrap) + ["unshare", "--mount", "--propagation", propagation, "--"]
        b = rstest.Broker(self, self.config_path, mnt, wrap=wrap,
                          args=["--mount-namespace", ns or self.outer_ns()])
        if wait:
            b.wait_mounted()
            b.wait_log("mounted")
        return b

    def inner_sees(self, b):
        with open("/proc/%d/mountinfo" % b.pid) as f:
            return any(line.split()[4] == b.mountpoint and " - fuse.runsecrets " in line
                       for line in f)

    def check_serves_and_stops(self, propagation):
        b = self.start_inside(propagation)
        # The broker really is elsewhere: another mount namespace than ours.
        self.assertNotEqual(os.readlink("/proc/%d/ns/mnt" % b.pid), os.readlink(self.outer_ns()))
        self.assertEqual(rstest.read_all(os.path.join(b.mountpoint, "pw")), self.value.encode())
        entry = rstest.runsecrets_mounts_at(b.mountpoint)
        self.assertEqual(len(entry), 1, entry)
        inner = self.inner_sees(b)
        self.assertEqual(b.stop(), 0, b.describe())
        self.assertEqual(rstest.runsecrets_mounts_at(b.mountpoint), [])
        b.wait_log("unmounted")
        self.assertEqual(b.find_logs("cannot unmount"), [])
        return entry[0], inner

    def test_mounts_in_the_namespace_given_and_unmounts_there(self):
        entry, inner = self.check_serves_and_stops("slave")
        # A slave receives our mounts: the broker's namespace has the copy.
        self.assertTrue(inner)
        # The same mount as one made in place (libfuse's options).
        self.assertEqual((entry["fstype"], entry["source"]), ("fuse.runsecrets", "runsecrets"))
        for o in ("ro", "nosuid", "nodev", "noexec"):
            self.assertIn(o, entry["opts"])
        self.assertEqual(sorted(entry["superopts"]),
                         sorted(["ro", "user_id=0", "group_id=0", "default_permissions",
                                 "allow_other"]))
        plain = self.start_broker(mountpoint=os.path.join(self.dir, "plain"))

        def options(e):
            return sorted(o for o in e["opts"] if o != "relatime"), sorted(e["superopts"])
        self.assertEqual(options(entry), options(plain.mount_entry()))

    def test_the_broker_need_not_see_its_mount(self):
        # A private namespace gets nothing of ours: the broker serves a mount
        # it cannot see, through its /dev/fuse descriptor alone.
        _, inner = self.check_serves_and_stops("private")
        self.assertFalse(inner)

    def test_a_busy_mount_is_detached_at_the_stop(self):
        b = self.start_inside()
        fd = os.open(os.path.join(b.mountpoint, "pw"), os.O_RDONLY)
        self.addCleanup(rstest.errno_of, os.close, fd)   # ENOTCONN: its server is gone
        self.assertEqual(b.stop(settle=0), 0, b.describe())
        self.assertEqual(rstest.runsecrets_mounts_at(b.mountpoint), [])
        b.wait_log("busy: detached (readers still holding files see them end)")
        # What the holder sees: its file ends with the broker.
        self.assertEqual(rstest.errno_of(os.read, fd, 10), errno.ENOTCONN)

    def test_a_stale_mount_in_the_namespace_is_detached_at_start(self):
        b = self.start_inside()
        b.kill()   # SIGKILL: no unmount; our namespace keeps a dead mount
        self.assertEqual(rstest.errno_of(os.stat, os.path.join(b.mountpoint, "pw")),
                         errno.ENOTCONN)
        b2 = self.start_inside()
        b2.wait_log("stale mount detached")
        self.assertEqual(rstest.read_all(os.path.join(b2.mountpoint, "pw")), self.value.encode())
        self.assertEqual(len(rstest.runsecrets_mounts_at(b2.mountpoint)), 1)
        self.assertEqual(b2.stop(), 0)
        self.assertEqual(rstest.runsecrets_mounts_at(b2.mountpoint), [])

    def test_a_second_broker_sees_the_first_in_that_namespace(self):
        # The live-broker check reads the mount table of the namespace given:
        # from its own, a private one, it would see nothing and stack a mount.
        b = self.start_inside("private")
        b2 = self.start_inside("private", wait=False)
        self.assertEqual(b2.proc.wait(timeout=rstest.STOP_TIMEOUT), 1, b2.describe())
        self.assertIn("another runsecrets is already serving this mountpoint", b2.stderr_text())
        self.assertEqual(len(rstest.runsecrets_mounts_at(b.mountpoint)), 1)
        self.assertEqual(b.stop(), 0)

    def test_a_crash_detaches_the_mount_in_that_namespace(self):
        b = self.start_inside()
        b.send(signal.SIGSEGV)
        self.assertEqual(b.proc.wait(timeout=rstest.STOP_TIMEOUT), -signal.SIGSEGV)
        self.assertEqual(rstest.runsecrets_mounts_at(b.mountpoint), [])

    def caps(self, pid):
        with open("/proc/%d/status" % pid) as f:
            fields = dict(line.split(":\t", 1) for line in f if ":\t" in line)
        return {k: int(fields[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")}

    def test_the_units_capabilities_are_enough_and_each_is_needed(self):
        # The unit's CapabilityBoundingSet=, as setpriv gives it.
        unit = ["sys_admin", "sys_chroot", "sys_ptrace", "dac_read_search"]
        b = self.start_inside(extra_wrap=["setpriv", "--bounding-set",
                                          ",".join(["-all"] + ["+" + c for c in unit]), "--"])
        self.assertEqual(rstest.read_all(os.path.join(b.mountpoint, "pw")), self.value.encode())
        # CAP_SYS_PTRACE opened the namespace file and was dropped at once.
        caps = self.caps(b.pid)
        self.assertTrue(caps["CapBnd"] & (1 << CAP_SYS_PTRACE))
        self.assertEqual(caps["CapEff"] & (1 << CAP_SYS_PTRACE), 0)
        self.assertEqual(caps["CapPrm"] & (1 << CAP_SYS_PTRACE), 0)
        self.assertEqual(b.stop(), 0, b.describe())
        self.assertEqual(rstest.runsecrets_mounts_at(b.mountpoint), [])
        why = {
            # setns(2) into a mount namespace wants CAP_SYS_CHROOT too.
            "sys_chroot": "cannot enter the mount namespace %s: Operation not permitted "
                          "(setns needs CAP_SYS_ADMIN and CAP_SYS_CHROOT, and "
                          "RestrictNamespaces= must allow mnt)" % self.outer_ns(),
            # Our capabilities are not all of the test's (PID 1's, under systemd).
            "sys_ptrace": "--mount-namespace %s: Permission denied (another process's "
                          "namespace needs CAP_SYS_PTRACE)" % self.outer_ns(),
        }
        for cap, message in why.items():
            with self.subTest(without=cap):
                keep = ",".join(["-all"] + ["+" + c for c in unit if c != cap])
                b = self.start_inside(extra_wrap=["setpriv", "--bounding-set", keep, "--"],
                                      wait=False)
                self.assertEqual(b.proc.wait(timeout=rstest.STOP_TIMEOUT), 1, b.describe())
                self.assertIn(message, b.stderr_text())
                self.assertEqual(rstest.runsecrets_mounts_at(b.mountpoint), [])

    def test_a_bad_path_is_one_line_and_exit_2(self):
        net = "/proc/%d/ns/net" % os.getpid()
        cases = [
            ("/nonexistent/ns/mnt", "No such file or directory"),
            (self.config_path, "not a namespace file (give a mount namespace, e.g. /proc/1/ns/mnt)"),
            (net, "a network namespace, not a mount namespace"),
        ]
        for path, why in cases:
            with self.subTest(path=path):
                b = self.start_inside(ns=path, wait=False)
                self.assertEqual(b.proc.wait(timeout=rstest.STOP_TIMEOUT), 2, b.describe())
                lines = b.stderr_text().splitlines()
                self.assertEqual(lines, ["runsecrets mount: --mount-namespace %s: %s"
                                         % (path, why)])
                self.assertEqual(rstest.runsecrets_mounts_at(b.mountpoint), [])
        r = rstest.run_cli("mount", "--config", self.config_path, "--mount-namespace", "proc/1/ns/mnt",
                           os.path.join(self.dir, "m"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("--mount-namespace: expected an absolute path", r.stderr.decode())


if __name__ == "__main__":
    rstest.main()
