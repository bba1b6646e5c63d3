"""Start and stop: clean unmount on SIGTERM/SIGINT, recovery from a stale mount
left by a SIGKILLed broker, mountpoint creation."""

import errno
import os
import signal
import time

import rstest


class LifecycleTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.value = rstest.random_value()
        self.write_secret("pw", self.value)
        self.write_config({"pw": {"from": "local:pw"}, "a/b": {"from": "local:pw"}})

    def _clean_stop(self, sig):
        b = self.start_broker()
        self.assertEqual(rstest.read_all(self.mpath("pw")), self.value.encode())
        rc = b.stop(sig)
        self.assertEqual(rc, 0, "exit code %r after signal %d\n%s" % (rc, sig, b.describe()))
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [], "still mounted after exit")
        b.wait_log("unmounted")
        # the mountpoint is an ordinary empty directory again
        self.assertEqual(os.listdir(self.mnt), [])

    def test_sigterm_unmounts_and_exits_0(self):
        self._clean_stop(signal.SIGTERM)

    def test_sigint_unmounts_and_exits_0(self):
        self._clean_stop(signal.SIGINT)

    def test_sigterm_with_open_fd(self):
        b = self.start_broker()
        fd = os.open(self.mpath("pw"), os.O_RDONLY)
        try:
            rc = b.stop(signal.SIGTERM)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass                 # FLUSH on a gone connection: ENOTCONN
        self.assertEqual(rc, 0, b.describe())
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [])

    def _stale_restart(self, delay):
        b1 = self.start_broker()
        self.assertEqual(rstest.read_all(self.mpath("pw")), self.value.encode())
        os.stat(self.mnt)                               # the kernel caches the root's attributes
        b1.kill()                                       # SIGKILL: no unmount
        self.assertEqual(b1.proc.returncode, -signal.SIGKILL)
        self.assertTrue(rstest.runsecrets_mounts_at(self.mnt), "no stale mount left to test")
        self.assertErrno(errno.ENOTCONN, os.listdir, self.mnt)
        self.assertErrno(errno.ENOTCONN, rstest.read_all, self.mpath("pw"))
        if delay:
            time.sleep(delay)
        new_value = rstest.random_value()
        self.write_secret("pw", new_value)
        b2 = self.start_broker()
        rec = b2.wait_log("stale mount detached")
        self.assertEqual(rec.get("path"), self.mnt, rec)
        self.assertEqual(rstest.read_all(self.mpath("pw")), new_value.encode())
        self.assertEqual(rstest.read_all(self.mpath("a", "b")), new_value.encode())
        self.assertEqual(len(rstest.runsecrets_mounts_at(self.mnt)), 1,
                         "stale mount still stacked under the new one: %r"
                         % rstest.runsecrets_mounts_at(self.mnt))
        self.assertEqual(b2.stop(), 0, b2.describe())
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [])
        self.assertEqual(os.listdir(self.mnt), [])

    def test_stale_mount_is_detached_at_start(self):
        # after the kernel's cached attributes of the dead mount expired (1s)
        self._stale_restart(delay=1.5)

    def test_stale_mount_immediate_restart(self):
        # a supervisor restarting the broker at once (Restart=always,
        # RestartSec=0; a container restart policy): the dead mount's root
        # attributes may still be cached by the kernel, so stat() on it
        # succeeds although every request fails with ENOTCONN
        self._stale_restart(delay=0)

    def test_second_broker_on_live_mount_refuses(self):
        b1 = self.start_broker()
        b2 = self.start_broker(wait=False)
        try:
            rc = b2.proc.wait(timeout=rstest.STOP_TIMEOUT)
        except Exception:  # noqa: BLE001
            rc = None
        self.assertIsNotNone(rc, "a second broker kept running on a live mountpoint")
        self.assertNotEqual(rc, 0)
        self.assertTrue(b1.running())
        self.assertEqual(rstest.read_all(self.mpath("pw")), self.value.encode())
        self.assertEqual(len(rstest.runsecrets_mounts_at(self.mnt)), 1)

    def _refused(self, mountpoint):
        """Run a second `mount` on mountpoint; it must refuse at once. Returns
        (exit code, stderr lines)."""
        import subprocess
        p = subprocess.Popen([rstest.BINARY, "mount", "--config", self.config_path, mountpoint],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=rstest.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.fail("a second broker kept running on %r" % mountpoint)
        return p.returncode, err.decode("utf-8", "replace").splitlines()

    def test_second_broker_refused_however_spelt(self):
        # The check used to compare strings with mountinfo: each of these
        # stacked a second FUSE mount on the live one.
        b1 = self.start_broker()
        link = os.path.join(self.dir, "link-to-mnt")
        os.symlink(self.mnt, link)
        parent, base = os.path.split(self.mnt)
        spellings = [self.mnt + "/", link, link + "/", os.path.join(parent, ".", base),
                     "/" + self.mnt, self.mnt.replace("/", "//"),
                     os.path.join(parent, "..", os.path.basename(parent), base)]
        for mp in spellings:
            with self.subTest(mountpoint=mp):
                rc, lines = self._refused(mp)
                self.assertNotEqual(rc, 0, lines)
                self.assertEqual(len(lines), 1, "not one line: %r" % lines)
                self.assertIn("already serving", lines[0])
                self.assertTrue(b1.running(), b1.describe())
                self.assertEqual(rstest.read_all(self.mpath("pw")), self.value.encode())
                self.assertEqual(len(rstest.runsecrets_mounts_at(self.mnt)), 1,
                                 rstest.runsecrets_mounts_at(self.mnt))
        ours = [m for m in rstest.mountinfo() if m["fstype"] == rstest.FSTYPE]
        self.assertEqual(len(ours), 1, ours)

    def test_mount_on_a_symlink_uses_the_resolved_path(self):
        link = os.path.join(self.dir, "link-to-mnt")
        os.symlink(self.mnt, link)
        b = self.start_broker(mountpoint=link, wait=False)
        b.mountpoint = self.mnt            # where mountinfo must show it
        b.wait_mounted()
        rec = b.wait_log("mounted")
        self.assertEqual(rec.get("path"), self.mnt, rec)
        self.assertEqual(rstest.read_all(os.path.join(link, "pw")), self.value.encode())
        self.assertEqual(b.stop(), 0, b.describe())
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [])

    def test_mountpoint_not_a_directory_is_a_config_error(self):
        f = os.path.join(self.dir, "plainfile")
        with open(f, "w") as fh:
            fh.write("x")
        for mp in (f, os.path.join(f, "sub")):
            with self.subTest(mountpoint=mp):
                r = rstest.run_cli("mount", "--config", self.config_path, mp)
                lines = r.stderr.decode().splitlines()
                self.assertEqual(r.returncode, 2, lines)
                self.assertEqual(len(lines), 1, lines)
                self.assertIn("not a directory", lines[0])
                self.assertIn(f, lines[0])

    def test_mountpoint_created(self):
        mp = os.path.join(self.dir, "run", "secrets")
        b = self.start_broker(mountpoint=mp)
        self.assertTrue(os.path.isdir(mp))
        self.assertEqual(rstest.read_all(os.path.join(mp, "pw")), self.value.encode())
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    rstest.main()
