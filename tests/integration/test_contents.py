"""What the mount serves: contents, names as directories, listing, modes and
owners, mount options, mountpoint handling, text logs."""

import json
import os
import stat

import rstest


class ContentsTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.plain = rstest.random_value(32)
        self.write_secret("db_password", self.plain)
        self.binary = bytes(range(256)) * 3 + b"\x00\x00tail\x00" + os.urandom(100)
        self.write_secret("blob.bin", self.binary)
        self.user = rstest.random_value(16, "user-")
        self.deep = rstest.random_value(16, "deep-")
        self.weird = rstest.random_value(16, "weird-")
        self.doc = {
            "user": self.user,
            "port": 5432,
            "flag": True,
            "nothing": None,
            "opts": {"a": 1, "b": [1, 2, "x"], "c": {"d": False}},
            "a": {"b": {"c": self.deep}},
            "we/ird": {"k~ey": self.weird},
        }
        self.doc_bytes = json.dumps(self.doc, indent=2).encode()
        self.write_secret("db.json", self.doc_bytes)
        self.write_config({
            "db_password": {"from": "local:db_password", "mode": "0440", "uid": 1000,
                            "gid": 1000},
            "blob": {"from": "local:blob.bin"},
            "app/db_user": {"from": "local:db.json#user", "mode": "0444"},
            "app/port": {"from": "local:db.json#port"},
            "app/flag": {"from": "local:db.json#flag"},
            "app/nothing": {"from": "local:db.json#nothing"},
            "app/opts": {"from": "local:db.json#opts", "uid": 1001, "gid": 1002, "mode": "0640"},
            "app/deep/c": {"from": "local:db.json#/a/b/c"},
            "app/deep/weird": {"from": "local:db.json#/we~1ird/k~0ey"},
            "app/deep/obj": {"from": "local:db.json#/a/b"},
            "whole.json": {"from": "local:db.json"},
        }, defaults={"refresh": "1s", "max_stale": "1h", "mode": "0400", "uid": 0, "gid": 0})

    def test_plain_file(self):
        self.start_broker()
        self.assertEqual(rstest.read_all(self.mpath("db_password")), self.plain.encode())

    def test_binary_bytes_with_nul(self):
        self.start_broker()
        self.assertEqual(rstest.read_all(self.mpath("blob")), self.binary)
        # partial reads at odd offsets (pread)
        fd = os.open(self.mpath("blob"), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 7, 255), self.binary[255:262])
            self.assertEqual(os.pread(fd, 100, len(self.binary) - 3), self.binary[-3:])
            self.assertEqual(os.pread(fd, 10, len(self.binary) + 10), b"")
        finally:
            os.close(fd)

    def test_field_and_pointer(self):
        self.start_broker()
        self.assertEqual(rstest.read_all(self.mpath("app", "db_user")), self.user.encode())
        self.assertEqual(rstest.read_all(self.mpath("app", "deep", "c")), self.deep.encode())
        self.assertEqual(rstest.read_all(self.mpath("app", "deep", "weird")), self.weird.encode())

    def test_whole_json_file(self):
        self.start_broker()
        self.assertEqual(rstest.read_all(self.mpath("whole.json")), self.doc_bytes)

    def test_non_string_fields_are_compact_json(self):
        self.start_broker()
        cases = {
            ("app", "port"): 5432,
            ("app", "flag"): True,
            ("app", "nothing"): None,
            ("app", "opts"): self.doc["opts"],
            ("app", "deep", "obj"): self.doc["a"]["b"],
        }
        for parts, expected in cases.items():
            with self.subTest(path="/".join(parts)):
                got = rstest.read_all(self.mpath(*parts))
                self.assertEqual(json.loads(got), expected, got)
                self.assertNotIn(b" ", got, "not compact: %r" % got)
                self.assertNotIn(b"\n", got, "not compact: %r" % got)
                self.assertEqual(got, json.dumps(expected, separators=(",", ":")).encode())

    def test_listing(self):
        self.start_broker()
        self.assertEqual(sorted(os.listdir(self.mnt)),
                         ["app", "blob", "db_password", "whole.json"])
        self.assertEqual(sorted(os.listdir(self.mpath("app"))),
                         ["db_user", "deep", "flag", "nothing", "opts", "port"])
        self.assertEqual(sorted(os.listdir(self.mpath("app", "deep"))), ["c", "obj", "weird"])
        # scandir types agree with stat
        for e in os.scandir(self.mpath("app")):
            with self.subTest(entry=e.name):
                self.assertEqual(e.is_dir(follow_symlinks=False), e.name == "deep")
        self.assertErrno(2, os.stat, self.mpath("nope"))            # ENOENT
        self.assertErrno(2, os.stat, self.mpath("app", "nope"))
        self.assertErrno(20, os.listdir, self.mpath("blob"))        # ENOTDIR

    def test_modes_and_owners(self):
        self.start_broker()
        expect = {
            ("db_password",): (0o440, 1000, 1000, len(self.plain)),
            ("blob",): (0o400, 0, 0, len(self.binary)),
            ("app", "db_user"): (0o444, 0, 0, len(self.user)),
            ("app", "opts"): (0o640, 1001, 1002,
                              len(json.dumps(self.doc["opts"], separators=(",", ":")))),
            ("app", "deep", "c"): (0o400, 0, 0, len(self.deep)),
            ("whole.json",): (0o400, 0, 0, len(self.doc_bytes)),
        }
        for parts, (mode, uid, gid, size) in expect.items():
            with self.subTest(path="/".join(parts)):
                st = os.stat(self.mpath(*parts))
                self.assertTrue(stat.S_ISREG(st.st_mode), oct(st.st_mode))
                self.assertEqual(stat.S_IMODE(st.st_mode), mode, oct(st.st_mode))
                self.assertEqual((st.st_uid, st.st_gid), (uid, gid))
                self.assertEqual(st.st_size, size)
        for parts in [(), ("app",), ("app", "deep")]:
            with self.subTest(dir="/".join(parts) or "/"):
                st = os.stat(self.mpath(*parts))
                self.assertTrue(stat.S_ISDIR(st.st_mode), oct(st.st_mode))
                self.assertFalse(st.st_mode & 0o222, "directory is writable: %o" % st.st_mode)

    def test_stat_size_matches_read(self):
        self.start_broker()
        for parts in [("db_password",), ("blob",), ("app", "opts"), ("whole.json",)]:
            with self.subTest(path="/".join(parts)):
                self.assertEqual(os.stat(self.mpath(*parts)).st_size,
                                 len(rstest.read_all(self.mpath(*parts))))

    def test_mount_options(self):
        b = self.start_broker()
        m = b.mount_entry()
        self.assertEqual(m["fstype"], "fuse.runsecrets")
        self.assertEqual(m["source"], "runsecrets")
        for opt in ("ro", "nosuid", "nodev", "noexec"):
            self.assertIn(opt, m["opts"], m)
        for opt in ("default_permissions", "allow_other"):
            self.assertIn(opt, m["superopts"], m)

    def test_mountpoint_argument_overrides_config_and_is_created(self):
        other = os.path.join(self.dir, "not", "yet", "there")
        self.assertFalse(os.path.exists(other))
        b = self.start_broker(mountpoint=other)
        self.assertTrue(os.path.isdir(other))
        self.assertEqual(rstest.read_all(os.path.join(other, "db_password")), self.plain.encode())
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [],
                         "config 'mount' was mounted although MOUNTPOINT was given")
        self.assertEqual(b.stop(), 0)

    def test_mount_from_config(self):
        b = self.start_broker(positional=False)
        self.assertEqual(b.mountpoint, self.mnt)
        self.assertEqual(rstest.read_all(self.mpath("db_password")), self.plain.encode())

    def test_text_log_format(self):
        b = rstest.Broker(self, self.config_path, self.mnt, log_format="text")
        b.wait_mounted()
        rstest.read_all(self.mpath("db_password"))
        self.assertEqual(b.stop(), 0)
        lines = [ln for ln in b.stderr_text().splitlines() if ln.strip()]
        self.assertTrue(lines, "no log lines in text format")
        for ln in lines:
            self.assertFalse(ln.lstrip().startswith("{"), "JSON line in text mode: %s" % ln)
        self.assertTrue(any("mounted" in ln for ln in lines), lines)
        self.assertTrue(any("unmounted" in ln for ln in lines), lines)

    def test_large_value(self):
        # larger than one FUSE read request (128 KiB): several reads per open
        big = os.urandom(300 * 1024 + 17)
        self.write_secret("big", big)
        self.write_config({"big": {"from": "local:big"}})
        self.start_broker()
        self.assertEqual(os.stat(self.mpath("big")).st_size, len(big))
        self.assertEqual(rstest.read_all(self.mpath("big"), chunk=128 * 1024), big)
        with open(self.mpath("big"), "rb") as f:
            self.assertEqual(f.read(), big)

    def test_log_level_filters(self):
        b = rstest.Broker(self, self.config_path, self.mnt, log_level="warn")
        b.wait_mounted()
        rstest.read_all(self.mpath("db_password"))
        self.assertEqual(b.stop(), 0)
        # (whether the audit trail obeys --log-level is not specified)
        levels = {r.get("level") for r in b.logs() if r.get("msg") != "open"}
        self.assertLessEqual(levels, {"warn", "error"},
                             "--log-level warn let through: %r" % (levels,))
        self.assertEqual(b.find_logs("mounted"), [])

    def test_cold_start_fetches_everything_after_mounting(self):
        # Mount first, then fetch every secret in parallel: a file appears as
        # soon as its value is cached, and "cold start done" closes the phase.
        b = self.start_broker()
        recs = b.logs()
        msgs = [r.get("msg") for r in recs]
        mounted = msgs.index("mounted")
        done = msgs.index("cold start done")
        self.assertLess(mounted, done)
        self.assertEqual((recs[done].get("ok"), recs[done].get("failed")), (11, 0), recs[done])
        fetched = {r.get("secret") for r in recs[:done] if r.get("msg") == "secret fetched"}
        self.assertEqual(len(fetched), 11, "secrets fetched before 'cold start done': %r" % fetched)

    def test_json_log_shape(self):
        b = self.start_broker()
        rstest.read_all(self.mpath("db_password"))
        b.wait_log("open", secret="db_password")
        self.assertEqual(b.stop(), 0)
        text = b.stderr_text()
        recs = b.logs()
        nonjson = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("{")]
        self.assertEqual(nonjson, [], "non-JSON lines in the JSON log")
        allowed = {"time", "level", "msg", "secret", "backend", "error", "path", "uid", "gid",
                   "pid", "result", "ok", "failed", "ms", "audit", "decision", "rule", "repeats"}
        for r in recs:
            with self.subTest(line=r):
                for k in ("time", "level", "msg"):
                    self.assertIn(k, r)
                self.assertLessEqual(set(r), allowed)
        fetched = {r.get("secret") for r in recs if r.get("msg") == "secret fetched"}
        self.assertIn("db_password", fetched)
        self.assertIn("app/deep/c", fetched)
        for r in recs:
            if r.get("msg") == "secret fetched":
                self.assertEqual(r.get("backend"), "local", r)
        self.assertTrue([r for r in recs if r.get("msg") == "unmounted"], recs)


if __name__ == "__main__":
    rstest.main()
