"""Secret hygiene: a gcore of the serving broker holds neither a value nor the
cache keys; no value ever reaches the log."""

import base64
import json
import os
import shutil
import subprocess
import time

import rstest

KEY_BYTES = 32


class CoreDumpTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        if not shutil.which("gdb"):
            self.fail("gdb is required for the core-dump check (scripts/deps.sh installs it)")
        # every value long and random: none can appear by chance
        self.plain = rstest.random_value(32, "plain-")
        self.binary = os.urandom(48)
        self.user = rstest.random_value(24, "field-")
        self.deep = rstest.random_value(24, "pointer-")
        self.other = rstest.random_value(24, "unused-field-")   # in the file, never served alone
        self.doc = json.dumps({"user": self.user, "a": {"b": {"c": self.deep}},
                               "other": self.other, "n": 1}, indent=2)
        self.rot_old = rstest.random_value(32, "rotated-away-")
        self.rot_new = rstest.random_value(32, "rotated-in-")
        self.write_secret("plain", self.plain)
        self.write_secret("binary", self.binary)
        self.write_secret("db.json", self.doc)
        self.write_secret("rot", self.rot_old)
        # a non-secret marker: the secret's name must be in the broker's heap,
        # which proves the dump covers the heap at all
        self.marker = "marker-" + os.urandom(8).hex()
        self.write_config({
            "plain": {"from": "local:plain"},
            "binary": {"from": "local:binary"},
            "app/user": {"from": "local:db.json#user"},
            "app/deep": {"from": "local:db.json#/a/b/c"},
            "whole.json": {"from": "local:db.json"},
            "rot": {"from": "local:rot"},
            self.marker: {"from": "local:plain"},
        }, defaults={"refresh": "1s", "max_stale": "1h"})

    def gdb_dump(self, pid):
        return rstest.gdb_dump(self, pid)

    def test_gcore_holds_no_values_and_no_keys(self):
        if rstest.is_asan_build():
            # Sanitizer builds use plain wiped malloc for secrets (RS_PLAIN_ALLOC:
            # sodium_malloc's guard pages and ASan do not mix), so their keys are
            # in dumpable memory by design; and a gcore of an ASan process writes
            # a multi-terabyte sparse file over minutes (the shadow memory).
            self.skipTest("gcore check runs on the non-sanitizer build only")
        b = self.start_broker(log_level="debug")
        expected = {
            "plain": self.plain.encode(), "binary": self.binary, "app/user": self.user.encode(),
            "app/deep": self.deep.encode(), "whole.json": self.doc.encode(),
            "rot": self.rot_old.encode(),
        }
        for _ in range(3):
            for name, v in expected.items():
                self.assertEqual(rstest.read_all(self.mpath(name)), v)
                fd = os.open(self.mpath(name), os.O_RDONLY)
                try:
                    self.assertEqual(os.pread(fd, 5, 3), v[3:8])
                finally:
                    os.close(fd)
        # a rotated-away value must be gone too
        mark = b.mark()
        self.write_secret("rot", self.rot_new)
        b.wait_log("secret rotated", since=mark, secret="rot")
        self.assertEqual(rstest.read_all(self.mpath("rot")), self.rot_new.encode())
        time.sleep(1.5)          # releases are asynchronous; one more refresh passes
        self.assertTrue(b.running())

        key, hashkey, core, gdb_out = self.gdb_dump(b.pid)
        self.assertTrue(b.running(), "the broker died under gdb\n" + b.describe())
        # still serving after the dump
        self.assertEqual(rstest.read_all(self.mpath("plain")), self.plain.encode())

        self.assertEqual(len(key), KEY_BYTES, gdb_out[-2000:])
        self.assertEqual(len(hashkey), KEY_BYTES, gdb_out[-2000:])
        self.assertNotEqual(key, bytes(KEY_BYTES), "the cache key read as all zeros")
        self.assertNotEqual(hashkey, bytes(KEY_BYTES), "the hash key read as all zeros")
        self.assertNotEqual(key, hashkey)

        values = {"value of %s" % name: v for name, v in expected.items()}
        values["value of rot (new)"] = self.rot_new.encode()
        values["value of unused field of db.json"] = self.other.encode()
        found = rstest.core_findings(self, core, self.marker, values,
                                     {"cache key": key, "hash key": hashkey})
        self.assertEqual(found, [], "found in the gcore of the serving broker")


class LogHygieneTest(rstest.BrokerTestCase):
    """Drive every logged event with values that must never show in the log."""

    def test_no_value_in_any_log_line(self):
        v1 = rstest.random_value(24, "v1-")
        v2 = rstest.random_value(24, "v2-")
        f1 = rstest.random_value(24, "f1-")
        leak = rstest.random_value(24, "invalid-json-")
        binv = os.urandom(40)
        self.write_secret("a", v1)
        self.write_secret("bin", binv)
        self.write_secret("j.json", json.dumps({"k": f1}))
        self.write_secret("gone", v2)
        self.write_config({"a": {"from": "local:a", "mode": "0440", "uid": 1000, "gid": 1000},
                           "bin": {"from": "local:bin"},
                           "j": {"from": "local:j.json#k"},
                           "gone": {"from": "local:gone"},
                           "missing": {"from": "local:missing"}},
                          defaults={"refresh": "1s", "max_stale": "2s"})
        b = self.start_broker(log_level="debug")
        for p in ("a", "bin", "j", "gone"):
            rstest.read_all(self.mpath(p))
        rstest.run_as(1000, 1000, lambda: rstest.read_all(self.mpath("a")))
        rstest.run_as(1001, 1001, lambda: rstest.read_all(self.mpath("a")))
        mark = b.mark()
        self.write_secret("a", rstest.random_value(24, "v1b-"))          # rotation
        os.unlink(os.path.join(self.secrets_dir, "gone"))                 # removal
        self.write_secret("j.json", '{"k": "%s", ' % leak)                # parse error
        b.wait_log("secret rotated", since=mark, secret="a")
        b.wait_log("secret removed", since=mark, secret="gone")
        b.wait_log("secret expired, failing closed", since=mark, secret="j", timeout=15)
        self.assertErrno(5, os.open, self.mpath("j"), os.O_RDONLY)       # EIO
        mark = b.mark()
        self.write_secret("j.json", json.dumps({"k": rstest.random_value(24, "f2-")}))
        b.wait_log("secret recovered", since=mark, secret="j")
        self.assertEqual(b.stop(), 0)
        raw = b.stderr()
        self.assertTrue(raw)
        for v in self.sensitive_values + [binv.hex().encode(), base64.b64encode(binv)]:
            self.assertNotIn(v, raw, "a secret value appears in the log")
        # and every error message is there without the value
        errors = [r.get("error") for r in b.logs() if r.get("error")]
        self.assertTrue(errors, "no error field in any log line")


if __name__ == "__main__":
    rstest.main()
