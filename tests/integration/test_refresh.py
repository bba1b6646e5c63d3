"""Background refresh: rotation with open fds, removal and return, fail-closed
after max_stale and recovery, symlinks leading out of the file backend."""

import errno
import json
import os
import threading
import time

import rstest


class RotationTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.old = rstest.random_value(10000)          # 20 KiB: many reads
        self.new = rstest.random_value(7000)
        self.write_secret("rot", self.old)
        self.user_old = rstest.random_value(12, "user-old-")
        self.user_new = rstest.random_value(12, "user-new-")
        self.write_secret("db.json", json.dumps({"user": self.user_old, "port": 1}))
        self.write_config({"rot": {"from": "local:rot"},
                           "app/user": {"from": "local:db.json#user"}},
                          defaults={"refresh": "1s", "max_stale": "1h"})
        self.broker = self.start_broker()

    def test_open_fd_keeps_old_value_new_open_sees_new(self):
        path = self.mpath("rot")
        st0 = os.stat(path)
        self.assertEqual(st0.st_size, len(self.old))
        fd = os.open(path, os.O_RDONLY)
        try:
            head = os.read(fd, 100)
            self.assertEqual(head, self.old.encode()[:100])
            mark = self.broker.mark()
            self.write_secret("rot", self.new)
            self.broker.wait_log("secret rotated", since=mark, secret="rot")
            # a new open sees the new value at once
            self.assertEqual(rstest.read_all(path), self.new.encode())
            # the old fd reads the rest of the old value, consistently, to EOF
            rest = rstest.read_fd(fd, 1000)
            self.assertEqual(len(head + rest), len(self.old),
                             "old fd read %d bytes, old value has %d, new %d"
                             % (len(head + rest), len(self.old), len(self.new)))
            self.assertEqual(head + rest, self.old.encode())
            # and reading it again from the start still gives the old value
            self.assertEqual(os.pread(fd, len(self.old) + 10, 0), self.old.encode())
        finally:
            os.close(fd)
        st1 = os.stat(path)
        self.assertEqual(st1.st_ino, st0.st_ino, "inode changed across a rotation")
        self.assertEqual(st1.st_size, len(self.new), "stat size not updated after rotation")

    def test_field_rotation(self):
        path = self.mpath("app", "user")
        ino = os.stat(path).st_ino
        self.assertEqual(rstest.read_all(path), self.user_old.encode())
        mark = self.broker.mark()
        self.write_secret("db.json", json.dumps({"user": self.user_new, "port": 2}))
        self.broker.wait_log("secret rotated", since=mark, secret="app/user")
        self.assertEqual(rstest.read_all(path), self.user_new.encode())
        st = os.stat(path)
        self.assertEqual(st.st_ino, ino)
        self.assertEqual(st.st_size, len(self.user_new))

    def test_unchanged_value_is_not_rotated(self):
        mark = self.broker.mark()
        time.sleep(2.5)                      # two or three refreshes
        self.assertEqual(self.broker.find_logs("secret rotated", mark), [],
                         "rotation logged although no value changed")
        self.assertEqual(rstest.read_all(self.mpath("rot")), self.old.encode())

    def test_concurrent_readers_never_see_a_torn_value(self):
        path = self.mpath("rot")
        values = [self.old.encode()]
        bad = []
        reads = [0]
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                try:
                    got = rstest.read_all(path, chunk=3000)   # several reads per open
                except OSError as e:
                    bad.append("read failed: %s" % e)
                    return
                reads[0] += 1
                if got not in values:
                    bad.append("torn or unknown value: %d bytes, starts %r"
                               % (len(got), got[:24]))
                    return

        threads = [threading.Thread(target=reader, daemon=True) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(4):
                v = rstest.random_value(3000 + 500 * i)
                values.append(v.encode())   # before the write: readers may see it at once
                mark = self.broker.mark()
                self.write_secret("rot", v)
                self.broker.wait_log("secret rotated", since=mark, secret="rot")
                if bad:
                    break
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=10)
        self.assertFalse(any(t.is_alive() for t in threads), "a reader hung")
        self.assertEqual(bad, [])
        self.assertGreater(reads[0], 20)

    def test_many_rotations_inode_stable(self):
        path = self.mpath("rot")
        ino = os.stat(path).st_ino
        for i in range(3):
            v = rstest.random_value(50 + i)
            mark = self.broker.mark()
            self.write_secret("rot", v)
            self.broker.wait_log("secret rotated", since=mark, secret="rot")
            self.assertEqual(rstest.read_all(path), v.encode())
            self.assertEqual(os.stat(path).st_ino, ino)


class RemovalTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.v1 = rstest.random_value()
        self.v2 = rstest.random_value()
        self.keep = rstest.random_value()
        self.write_secret("gone", self.v1)
        self.write_secret("keep", self.keep)
        self.write_config({"sub/gone": {"from": "local:gone"}, "keep": {"from": "local:keep"},
                           "later": {"from": "local:later"}},
                          defaults={"refresh": "1s", "max_stale": "1h"})

    def test_removed_file_disappears_and_returns(self):
        b = self.start_broker()
        path = self.mpath("sub", "gone")
        ino = os.stat(path).st_ino
        keep_ino = os.stat(self.mpath("keep")).st_ino
        fd = os.open(path, os.O_RDONLY)
        try:
            mark = b.mark()
            os.unlink(os.path.join(self.secrets_dir, "gone"))
            b.wait_log("secret removed", since=mark, secret="sub/gone")
            self.assertErrno(errno.ENOENT, os.stat, path)
            self.assertErrno(errno.ENOENT, os.open, path, os.O_RDONLY)
            self.assertNotIn("gone", os.listdir(self.mpath("sub")))
            # an fd opened before the removal still reads its snapshot
            self.assertEqual(os.pread(fd, 4096, 0), self.v1.encode())
        finally:
            os.close(fd)
        self.assertEqual(os.stat(self.mpath("keep")).st_ino, keep_ino)
        self.assertEqual(rstest.read_all(self.mpath("keep")), self.keep.encode())
        # it comes back with the new value after the file is re-created
        self.write_secret("gone", self.v2)
        got = rstest.wait_until(lambda: rstest.errno_of(os.stat, path) is None and
                                rstest.read_all(path), rstest.LOG_TIMEOUT,
                                "re-created secret to reappear")
        self.assertEqual(got, self.v2.encode())
        self.assertIn("gone", os.listdir(self.mpath("sub")))
        self.assertEqual(os.stat(path).st_ino, ino, "inode changed after re-creation")

    def test_missing_at_start_appears_later(self):
        b = self.start_broker()
        rec = b.wait_log("fetch failed", secret="later")
        self.assertEqual(rec.get("backend"), "local", rec)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("later"))
        self.assertNotIn("later", os.listdir(self.mnt))
        v = rstest.random_value()
        self.write_secret("later", v)
        got = rstest.wait_until(lambda: rstest.errno_of(os.stat, self.mpath("later")) is None
                                and rstest.read_all(self.mpath("later")),
                                rstest.LOG_TIMEOUT, "secret to appear")
        self.assertEqual(got, v.encode())


class FailClosedTest(rstest.BrokerTestCase):
    MAX_STALE = 3.0

    def setUp(self):
        super().setUp()
        self.good = rstest.random_value()
        self.good2 = rstest.random_value()
        self.fixed = rstest.random_value()
        self.field = rstest.random_value(12, "field-")
        self.write_secret("flaky", self.good)
        self.write_secret("doc.json", json.dumps({"pass": self.field}))
        self.write_config({"flaky": {"from": "local:flaky"},
                           "jf": {"from": "local:doc.json#pass"},
                           "steady": {"from": "local:doc.json#pass"}},
                          defaults={"refresh": "1s", "max_stale": "3s"})
        self.broker = self.start_broker()

    def _fail_closed_cycle(self, name, break_it, fix_it, old, new):
        b = self.broker
        path = self.mpath(name)
        ino = os.stat(path).st_ino
        mark = b.mark()
        t_break = time.monotonic()
        break_it()
        rec = b.wait_log("refresh failed, serving stale value", since=mark, secret=name)
        self.assertTrue(rec.get("error"), "no error field: %r" % rec)
        # the last good value is served until max_stale after the last
        # success, then opens fail with EIO: poll opens to see when
        first_eio = None
        deadline = t_break + self.MAX_STALE + rstest.LOG_TIMEOUT
        while time.monotonic() < deadline:
            try:
                got = rstest.read_all(path)
            except OSError as e:
                self.assertEqual(e.errno, errno.EIO, "open failed with %s, not EIO"
                                 % errno.errorcode.get(e.errno))
                first_eio = time.monotonic() - t_break
                break
            self.assertEqual(got, old.encode(), "served something other than the last good value")
            time.sleep(0.1)
        self.assertIsNotNone(first_eio, "never failed closed")
        # the last success was at most one refresh (1s + jitter) before the break
        self.assertGreaterEqual(first_eio, self.MAX_STALE - 1.3,
                                "EIO %.1fs after the break; max_stale is %.0fs"
                                % (first_eio, self.MAX_STALE))
        self.assertLessEqual(first_eio, self.MAX_STALE + 0.5,
                             "still served %.1fs after the break; max_stale is %.0fs"
                             % (first_eio, self.MAX_STALE))
        b.wait_log("secret expired, failing closed", since=mark, secret=name,
                   timeout=rstest.LOG_TIMEOUT)
        amark = b.mark()
        self.assertErrno(errno.EIO, os.open, path, os.O_RDONLY)
        rec = b.wait_log("open", since=amark, secret=name)
        # Refused past max_stale: an allowed open that failed, always its own line.
        self.assertEqual((rec.get("decision"), rec.get("error")), ("allow", "Input/output error"),
                         rec)
        self.assertEqual(rec.get("uid"), 0, rec)
        # still EIO on the next refreshes, never the old value
        time.sleep(1.2)
        self.assertErrno(errno.EIO, os.open, path, os.O_RDONLY)
        # recovery
        mark = b.mark()
        fix_it()
        b.wait_log("secret recovered", since=mark, secret=name)
        self.assertEqual(rstest.read_all(path), new.encode())
        self.assertEqual(os.stat(path).st_ino, ino)

    def test_unreadable_file_then_eio_then_recovery(self):
        f = os.path.join(self.secrets_dir, "flaky")

        def break_it():
            os.unlink(f)
            os.mkdir(f)              # replaced by a directory: unreadable, not gone

        def fix_it():
            os.rmdir(f)
            self.write_secret("flaky", self.fixed)

        self._fail_closed_cycle("flaky", break_it, fix_it, self.good, self.fixed)
        # the others were never affected
        self.assertEqual(rstest.read_all(self.mpath("steady")), self.field.encode())

    def test_field_on_invalid_json_then_eio_then_recovery(self):
        # invalid JSON whose text is itself secret: it must not reach the log
        leak = rstest.random_value(16, "broken-")
        self.sensitive(leak)
        new_field = rstest.random_value(12, "field2-")

        def break_it():
            self.write_secret("doc.json", '{"pass": "%s", "x": ' % leak)

        def fix_it():
            self.write_secret("doc.json", json.dumps({"pass": new_field}))

        self._fail_closed_cycle("jf", break_it, fix_it, self.field, new_field)

    def test_missing_field_is_an_error(self):
        mark = self.broker.mark()
        self.write_secret("doc.json", json.dumps({"other": "x" * 20}))
        rec = self.broker.wait_log("refresh failed, serving stale value", since=mark,
                                   secret="jf")
        self.assertTrue(rec.get("error"), rec)
        self.assertEqual(rstest.read_all(self.mpath("jf")), self.field.encode())


class InPlaceRewriteTest(rstest.BrokerTestCase):
    """A file rewritten in place (truncate, then write; not an atomic
    rename) reads empty in between: one refresh that sees it empty must not
    serve it empty; a file that stays empty is served empty after the
    next read confirms it."""

    def setUp(self):
        super().setUp()
        self.old = rstest.random_value()
        self.path = self.write_secret("pw", self.old)
        self.write_config({"pw": {"from": "local:pw"}},
                          defaults={"refresh": "1s", "max_stale": "1h"})
        self.broker = self.start_broker()

    def truncate_in_place(self):
        with open(self.path, "r+b") as f:
            f.truncate(0)

    def test_truncated_then_rewritten_is_never_served_empty(self):
        b = self.broker
        mark = b.mark()
        self.truncate_in_place()
        # read all along while a refresh sees the file empty
        # (up to 2.5 refresh intervals: enough for the old code to serve it)
        seen = []
        held = []
        deadline = time.monotonic() + 2.5
        while not held and time.monotonic() < deadline:
            seen.append(self.try_read("pw"))
            time.sleep(0.02)
            held = b.find_logs("empty value held back until the next read confirms it",
                               since=mark, secret="pw")
        seen.append(self.try_read("pw"))
        # (assertTrue, not assertNotIn: a failure must not print the values)
        self.assertTrue(b"" not in seen, "served the truncated (empty) file")
        self.assertTrue(held, "no refresh saw the empty file\n%s" % b.describe())
        deadline += rstest.LOG_TIMEOUT
        new = rstest.random_value()
        self.sensitive(new)
        with open(self.path, "r+b") as f:      # the writer finishes, in place
            f.write(new.encode())
        while self.try_read("pw") != new.encode():
            self.assertLess(time.monotonic(), deadline, b.describe())
            seen.append(self.try_read("pw"))
            time.sleep(0.02)
        self.assertTrue(b"" not in seen, "served the half-rewritten (empty) file")
        self.assertTrue(set(seen) <= {self.old.encode(), new.encode()},
                        "served something else than the old or the new value")

    def test_file_that_stays_empty_is_served_empty(self):
        b = self.broker
        mark = b.mark()
        self.truncate_in_place()
        b.wait_log("empty value held back until the next read confirms it", since=mark,
                   secret="pw")
        self.assertEqual(self.read("pw"), self.old.encode())   # held back: the old value
        self.wait_value(b"", "pw", timeout=5)                  # the next read confirms it
        b.wait_log("secret rotated", since=mark, secret="pw")
        self.assertEqual(len(b.find_logs("empty value held back until the next read confirms "
                                         "it", since=mark)), 1)


class SymlinkTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.outside_dir = os.path.join(self.dir, "outside")
        os.mkdir(self.outside_dir)
        self.outside = rstest.random_value(20, "outside-")
        self.sensitive(self.outside)
        with open(os.path.join(self.outside_dir, "secret"), "w") as f:
            f.write(self.outside)
        os.symlink("../outside/secret", os.path.join(self.secrets_dir, "rel_escape"))
        os.symlink(os.path.join(self.outside_dir, "secret"),
                   os.path.join(self.secrets_dir, "abs_escape"))
        os.symlink("../outside", os.path.join(self.secrets_dir, "dir_escape"))
        self.ok = rstest.random_value()
        self.write_secret("ok", self.ok)
        self.write_secret("later_link", self.ok)
        self.write_config({"rel": {"from": "local:rel_escape"},
                           "abs": {"from": "local:abs_escape"},
                           "dir": {"from": "local:dir_escape/secret"},
                           "ok": {"from": "local:ok"},
                           "later": {"from": "local:later_link"}},
                          defaults={"refresh": "1s", "max_stale": "1h"})

    def test_symlinks_out_of_the_directory_are_refused(self):
        b = self.start_broker()
        for name in ("rel", "abs", "dir"):
            with self.subTest(secret=name):
                b.wait_log("fetch failed", secret=name)
                self.assertErrno(errno.ENOENT, os.stat, self.mpath(name))
                self.assertErrno(errno.ENOENT, os.open, self.mpath(name), os.O_RDONLY)
        self.assertEqual(sorted(os.listdir(self.mnt)), ["later", "ok"])
        self.assertEqual(rstest.read_all(self.mpath("ok")), self.ok.encode())

    def test_file_replaced_by_escaping_symlink(self):
        b = self.start_broker()
        path = self.mpath("later")
        self.assertEqual(rstest.read_all(path), self.ok.encode())
        mark = b.mark()
        link = os.path.join(self.secrets_dir, "later_link")
        tmp = link + ".new"
        os.symlink("../outside/secret", tmp)
        os.replace(tmp, link)
        b.wait_log("refresh failed, serving stale value", since=mark, secret="later")
        time.sleep(1.2)
        self.assertEqual(rstest.read_all(path), self.ok.encode(),
                         "served something other than the last good value")

    def test_check_fetch_reports_them(self):
        r = rstest.run_cli("check", "--config", self.config_path, "--fetch")
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 1, out + r.stderr.decode())
        rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
        for name in ("rel", "abs", "dir"):
            self.assertIn(name, rows, out)
            self.assertIn("error", rows[name])
        self.assertNotIn(self.outside, out + r.stderr.decode())

    def test_get_refuses_them(self):
        r = rstest.run_cli("get", "--config", self.config_path, "local:rel_escape")
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn(self.outside.encode(), r.stdout + r.stderr)
        r = rstest.run_cli("get", "--config", self.config_path, "abs")
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn(self.outside.encode(), r.stdout + r.stderr)


if __name__ == "__main__":
    rstest.main()
