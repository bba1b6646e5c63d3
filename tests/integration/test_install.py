"""`meson install` and the systemd units (issue 13): the install holds the
binary, both units (paths filled in) and the docs; `systemd-analyze verify`
accepts the units as installed; and the reason the units carry no
ProtectSystem=/ProtectHome=/PrivateTmp=, shown without systemd: a broker in
a slave mount namespace (what those keys give a service) mounts, and
nobody outside sees the mount."""

import os
import shutil
import subprocess
import tempfile
import time

import rstest

REQUIRED_KEYS = [
    "Type=notify", "NotifyAccess=main", "ExecReload=", "PIDFile=", "RuntimeDirectory=runsecrets",
    "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_DAC_READ_SEARCH", "NoNewPrivileges=yes",
    "DevicePolicy=closed", "DeviceAllow=/dev/fuse rw", "MemoryDenyWriteExecute=yes",
    "LimitCORE=0", "LockPersonality=yes", "RestrictNamespaces=yes", "RestrictSUIDSGID=yes",
    "RestrictRealtime=yes", "SystemCallArchitectures=native", "SystemCallFilter=@system-service",
]
# Each builds a mount namespace the FUSE mount could not leave.
NAMESPACE_KEYS = ["ProtectSystem=", "ProtectHome=", "PrivateTmp=", "PrivateDevices=",
                  "ProtectKernelTunables=", "ProtectKernelModules=", "ProtectKernelLogs=",
                  "ProtectControlGroups=", "ProtectProc=", "ReadWritePaths=", "MountFlags=",
                  "PrivateMounts=", "TemporaryFileSystem=", "BindPaths="]


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
                for key in NAMESPACE_KEYS:
                    self.assertFalse(any(x.startswith(key) for x in lines), key)
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


class NamespaceTest(rstest.BrokerTestCase):
    """What ProtectSystem=/PrivateTmp= do to a FUSE mount, without systemd."""

    def setUp(self):
        super().setUp()
        self.value = rstest.random_value()
        self.write_secret("pw", self.value)
        self.write_config({"pw": {"from": "local:pw"}})
        # Our namespace is private (rstest); make the test folder a shared
        # mount, as / is on a systemd host.
        subprocess.run(["mount", "--bind", self.dir, self.dir], check=True)
        subprocess.run(["mount", "--make-shared", self.dir], check=True)

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


if __name__ == "__main__":
    rstest.main()
