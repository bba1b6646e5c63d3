"""Every change to the mount fails with EROFS (or EACCES), and nothing changes."""

import errno
import os

import rstest

RO = (errno.EROFS, errno.EACCES)


class ReadOnlyTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.value = rstest.random_value()
        self.write_secret("pw", self.value)
        self.write_config({"pw": {"from": "local:pw"},
                           "dir/inner": {"from": "local:pw", "mode": "0444"}})
        self.broker = self.start_broker()
        self.f = self.mpath("pw")
        self.d = self.mpath("dir")

    def tearDown(self):
        try:
            # nothing changed, whatever was tried
            self.assertEqual(rstest.read_all(self.f), self.value.encode())
            self.assertEqual(sorted(os.listdir(self.mnt)), ["dir", "pw"])
            self.assertEqual(os.listdir(self.d), ["inner"])
        finally:
            super().tearDown()

    def test_open_for_writing(self):
        for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND, os.O_RDONLY | os.O_TRUNC,
                      os.O_WRONLY | os.O_TRUNC):
            with self.subTest(flags=oct(flags)):
                self.assertErrno(RO, os.open, self.f, flags)

    def test_create(self):
        self.assertErrno(RO, os.open, self.mpath("new"), os.O_WRONLY | os.O_CREAT, 0o600)
        self.assertErrno(RO, os.open, self.mpath("dir", "new"), os.O_RDWR | os.O_CREAT | os.O_EXCL,
                         0o600)
        self.assertErrno(RO, os.mkfifo, self.mpath("fifo"))
        self.assertErrno(RO, os.mknod, self.mpath("node"), 0o600 | 0o100000)

    def test_mkdir_rmdir(self):
        self.assertErrno(RO, os.mkdir, self.mpath("newdir"))
        self.assertErrno(RO, os.mkdir, self.mpath("dir", "sub"))
        self.assertErrno(RO, os.rmdir, self.d)

    def test_unlink(self):
        self.assertErrno(RO, os.unlink, self.f)
        self.assertErrno(RO, os.unlink, self.mpath("dir", "inner"))

    def test_rename(self):
        self.assertErrno(RO, os.rename, self.f, self.mpath("pw2"))
        self.assertErrno(RO, os.rename, self.f, self.mpath("dir", "pw"))
        self.assertErrno(RO, os.rename, self.d, self.mpath("dir2"))
        # out of the mount: EXDEV is the kernel's answer across filesystems;
        # it must not succeed in any case
        self.assertErrno(RO + (errno.EXDEV,), os.rename, self.f, os.path.join(self.dir, "stolen"))

    def test_chmod_chown(self):
        self.assertErrno(RO, os.chmod, self.f, 0o644)
        self.assertErrno(RO, os.chmod, self.d, 0o777)
        self.assertErrno(RO, os.chown, self.f, 1000, 1000)
        self.assertErrno(RO, os.chown, self.d, 1000, -1)
        self.assertErrno(RO, os.utime, self.f, (0, 0))

    def test_truncate(self):
        self.assertErrno(RO, os.truncate, self.f, 0)
        fd = os.open(self.f, os.O_RDONLY)
        try:
            self.assertErrno(RO + (errno.EINVAL, errno.EBADF), os.ftruncate, fd, 0)
        finally:
            os.close(fd)

    def test_write_on_read_fd(self):
        fd = os.open(self.f, os.O_RDONLY)
        try:
            self.assertErrno((errno.EBADF,), os.write, fd, b"x")
        finally:
            os.close(fd)

    def test_xattr(self):
        self.assertErrno(RO, os.setxattr, self.f, "user.x", b"1")
        self.assertErrno(RO, os.setxattr, self.d, "user.x", b"1")
        self.assertErrno(RO, os.removexattr, self.f, "user.x")

    def test_symlink_and_link(self):
        self.assertErrno(RO, os.symlink, "/etc/passwd", self.mpath("link"))
        self.assertErrno(RO, os.symlink, "pw", self.mpath("dir", "link"))
        self.assertErrno(RO, os.link, self.f, self.mpath("hard"))
        # a hard link from elsewhere into the mount crosses filesystems
        self.assertErrno(RO + (errno.EXDEV,), os.link, self.config_path, self.mpath("cfg"))


if __name__ == "__main__":
    rstest.main()
