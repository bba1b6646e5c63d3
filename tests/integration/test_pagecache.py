"""No plaintext page stays in the page cache once the file that brought it in
is closed (issue 8).

Files are opened with direct_io, so read/pread/readv come straight to the
daemon. But sendfile, splice, copy_file_range, readahead(2), fadvise
WILLNEED and MAP_PRIVATE mappings go through the page cache whatever the
open flags say. Each test opens a probe descriptor first (the kernel drops
the inode's cache at every open, so the probe must come before), does one
such operation through another descriptor, closes it (and unmaps), then asks
cachestat(2) on the probe how many pages of the file are cached: the daemon
must have dropped them when the kernel's RELEASE (asynchronous) arrived. A
shared mapping must be refused.

Skips (exit 77) only when the kernel has no cachestat (ENOSYS).
"""

import ctypes
import errno
import mmap
import os
import sys
import threading
import time

import rstest

SYS_CACHESTAT = 451          # the same number on every architecture
RELEASE_WAIT = 2.0           # seconds for the asynchronous RELEASE and our invalidation
PAGE = mmap.PAGESIZE

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.readahead.restype = ctypes.c_ssize_t
_libc.readahead.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_size_t]


class _CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Cachestat(ctypes.Structure):
    _fields_ = [("nr_cache", ctypes.c_uint64), ("nr_dirty", ctypes.c_uint64),
                ("nr_writeback", ctypes.c_uint64), ("nr_evicted", ctypes.c_uint64),
                ("nr_recently_evicted", ctypes.c_uint64)]


def cached_pages(fd):
    """Pages of fd's file in the page cache (the whole file: len 0)."""
    rng = _CachestatRange(0, 0)
    cs = _Cachestat()
    if _libc.syscall(SYS_CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(cs), 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "cachestat: %s" % os.strerror(e))
    return cs.nr_cache


def have_cachestat():
    fd = os.open(__file__, os.O_RDONLY)
    try:
        cached_pages(fd)
    except OSError as e:
        if e.errno == errno.ENOSYS:
            return False
        raise
    finally:
        os.close(fd)
    return True


class PageCacheTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        # Three pages and a bit: every page of the file must go, not the first.
        self.value = rstest.random_value(3 * PAGE // 2 + 100).encode()
        self.size = len(self.value)
        self.other = rstest.random_value(PAGE).encode()
        self.write_secret("pw", self.value)
        self.write_secret("other", self.other)
        self.write_config({"pw": {"from": "local:pw"}, "other": {"from": "local:other"}})
        self.broker = self.start_broker()
        self.path = self.mpath("pw")
        self.assertEqual(os.stat(self.path).st_size, self.size)
        self.probe = os.open(self.path, os.O_RDONLY)
        self.assertEqual(cached_pages(self.probe), 0, "pages cached right after an open")

    def tearDown(self):
        os.close(self.probe)
        super().tearDown()

    def assertNothingCached(self, what):
        """Within RELEASE_WAIT, no page of the file is cached any more."""
        deadline = time.monotonic() + RELEASE_WAIT
        n = cached_pages(self.probe)
        while n != 0 and time.monotonic() < deadline:
            time.sleep(rstest.POLL)
            n = cached_pages(self.probe)
        self.assertEqual(n, 0, "%s: %d page(s) of the secret still in the page cache %.1f s "
                         "after the file was closed" % (what, n, RELEASE_WAIT))

    def opened(self):
        return os.open(self.path, os.O_RDONLY)

    def pipe(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        return r, w

    def drain(self, r, n):
        out = b""
        while len(out) < n:
            b = os.read(r, n - len(out))
            if not b:
                break
            out += b
        return out

    # -- direct_io paths: the control group

    def test_read(self):
        fd = self.opened()
        try:
            self.assertEqual(rstest.read_fd(fd), self.value)
        finally:
            os.close(fd)
        self.assertNothingCached("read")

    def test_pread(self):
        fd = self.opened()
        try:
            self.assertEqual(os.pread(fd, self.size, 0), self.value)
            self.assertEqual(os.pread(fd, 100, PAGE + 7), self.value[PAGE + 7:PAGE + 107])
        finally:
            os.close(fd)
        self.assertNothingCached("pread")

    def test_readv(self):
        fd = self.opened()
        bufs = [bytearray(PAGE), bytearray(PAGE), bytearray(self.size)]
        try:
            n = os.readv(fd, bufs)
        finally:
            os.close(fd)
        self.assertEqual(bytes(b"".join(bufs))[:n], self.value[:n])
        self.assertNothingCached("readv")

    # -- paths through the page cache: invalidated at release

    def test_sendfile_to_devnull(self):
        fd = self.opened()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            done = 0
            while done < self.size:
                n = os.sendfile(null, fd, done, self.size - done)
                self.assertGreater(n, 0)
                done += n
        finally:
            os.close(null)
            os.close(fd)
        self.assertNothingCached("sendfile to /dev/null")

    def test_sendfile_to_pipe(self):
        r, w = self.pipe()
        fd = self.opened()
        try:
            got = b""
            while len(got) < self.size:
                n = os.sendfile(w, fd, None, self.size - len(got))
                self.assertGreater(n, 0)
                got += self.drain(r, n)
        finally:
            os.close(fd)
        self.assertEqual(got, self.value)
        self.assertNothingCached("sendfile to a pipe")

    def test_splice_to_pipe(self):
        r, w = self.pipe()
        fd = self.opened()
        try:
            got = b""
            while len(got) < self.size:
                n = os.splice(fd, w, self.size - len(got))
                self.assertGreater(n, 0)
                got += self.drain(r, n)
        finally:
            os.close(fd)
        self.assertEqual(got, self.value)
        self.assertNothingCached("splice")

    def test_splice_pipe_drained_after_close(self):
        """The pipe still holds references to the pages when the file is
        released: they must leave the page cache all the same (the pipe keeps
        its own copy of what it was given, as it must)."""
        r, w = self.pipe()
        fd = self.opened()
        try:
            n = os.splice(fd, w, self.size)
            self.assertGreater(n, 0)
        finally:
            os.close(fd)
        self.assertNothingCached("splice, pipe not drained")
        self.assertEqual(self.drain(r, n), self.value[:n])

    def test_copy_file_range(self):
        """Across filesystems the kernel refuses (EXDEV) or copies through
        splice; either way nothing may stay cached."""
        fd = self.opened()
        out = os.open(os.path.join(self.dir, "copy"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            try:
                n = os.copy_file_range(fd, out, self.size)
            except OSError as e:
                self.assertIn(e.errno, (errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL))
                n = None
        finally:
            os.close(out)
            os.close(fd)
        if n is not None:
            with open(os.path.join(self.dir, "copy"), "rb") as f:
                self.assertEqual(f.read(), self.value[:n])
        self.assertNothingCached("copy_file_range")

    def test_readahead(self):
        fd = self.opened()
        try:
            if _libc.readahead(fd, 0, self.size) != 0:
                e = ctypes.get_errno()
                self.fail("readahead: %s" % os.strerror(e))
        finally:
            os.close(fd)
        self.assertNothingCached("readahead(2)")

    def test_fadvise_willneed(self):
        fd = self.opened()
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)
        self.assertNothingCached("posix_fadvise(WILLNEED)")

    # -- mappings

    def test_map_private_touched(self):
        fd = self.opened()
        m = mmap.mmap(fd, self.size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        try:
            self.assertEqual(m[:], self.value)
            # Proves the probe sees this file's cache: a private mapping reads
            # through it while mapped.
            self.assertGreaterEqual(cached_pages(self.probe), 1,
                                    "cachestat on the probe sees no page under a live mapping")
        finally:
            m.close()
            os.close(fd)
        self.assertNothingCached("MAP_PRIVATE, touched, unmapped")

    def test_map_private_outlives_its_descriptor(self):
        """A mapping holds the file: RELEASE (and so the invalidation) comes
        at munmap, not at close."""
        fd = self.opened()
        m = mmap.mmap(fd, self.size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        os.close(fd)
        try:
            self.assertEqual(m[:PAGE], self.value[:PAGE])
        finally:
            m.close()
        self.assertNothingCached("MAP_PRIVATE, descriptor closed before munmap")

    def test_madvise_willneed(self):
        fd = self.opened()
        m = mmap.mmap(fd, self.size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        try:
            m.madvise(mmap.MADV_WILLNEED)
        finally:
            m.close()
            os.close(fd)
        self.assertNothingCached("madvise(WILLNEED) on a private mapping")

    def test_concurrent_releases(self):
        """Many fills released at once on two files: the workers that find
        another one notifying queue their inode, and it is dropped all the
        same."""
        other_probe = os.open(self.mpath("other"), os.O_RDONLY)
        self.addCleanup(os.close, other_probe)
        errors = []

        def reader(name, value):
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                try:
                    for _ in range(25):
                        fd = os.open(self.mpath(name), os.O_RDONLY)
                        try:
                            m = mmap.mmap(fd, len(value), flags=mmap.MAP_PRIVATE,
                                          prot=mmap.PROT_READ)
                            ok = m[:] == value
                            m.close()
                            os.sendfile(null, fd, 0, len(value))
                        finally:
                            os.close(fd)
                        if not ok:
                            errors.append("%s: mapping read something else" % name)
                finally:
                    os.close(null)
            except OSError as e:
                errors.append("%s: %s" % (name, e))

        threads = [threading.Thread(target=reader, args=(n, v))
                   for n, v in (("pw", self.value), ("other", self.other)) * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertNothingCached("8 threads, mmap and sendfile on pw")
        deadline = time.monotonic() + RELEASE_WAIT
        while cached_pages(other_probe) and time.monotonic() < deadline:
            time.sleep(rstest.POLL)
        self.assertEqual(cached_pages(other_probe), 0, "pages of the other secret still cached")

    def test_map_shared_refused(self):
        fd = self.opened()
        try:
            with self.assertRaises(OSError) as cm:
                mmap.mmap(fd, self.size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
            self.assertEqual(cm.exception.errno, errno.ENODEV)
        finally:
            os.close(fd)
        self.assertNothingCached("MAP_SHARED attempt")


if __name__ == "__main__":
    if not have_cachestat():
        print("SKIP: this kernel has no cachestat(2)", file=sys.stderr)
        sys.exit(rstest.SKIP_EXIT)
    rstest.main()
