"""The command line: version, --help, usage errors (exit 2), check,
check --fetch, get."""

import json
import os
import re

import rstest


class CliTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.pw = rstest.random_value()
        self.write_secret("db_password", self.pw)
        self.user = rstest.random_value(12, "user-")
        self.deep = rstest.random_value(12, "deep-")
        self.write_secret("db.json", json.dumps({"user": self.user, "port": 5432,
                                                 "a": {"b": {"c": self.deep}},
                                                 "o": {"k": [1, True]}}, indent=1))
        self.blob = b"\x00\x01binary\x00\xff\xfe" + os.urandom(64) + b"\x00"
        self.write_secret("blob", self.blob)
        self.write_config({
            "db_password": {"from": "local:db_password", "mode": "0440", "uid": 1000,
                            "gid": 1000},
            "app/db_user": {"from": "local:db.json#user"},
            "blob": {"from": "local:blob"},
        })

    def cli(self, *args):
        return rstest.run_cli(*args)

    def assertNoValues(self, r):
        both = r.stdout + r.stderr
        for v in self.sensitive_values:
            self.assertNotIn(v, both, "a secret value was printed")

    # -- version and help

    def test_version(self):
        r = self.cli("version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"runsecrets "), r.stdout)
        self.assertRegex(r.stdout.decode().splitlines()[0], r"^runsecrets \d+\.\d+")

    def test_help(self):
        for args in (["--help"], ["mount", "--help"], ["check", "--help"], ["get", "--help"],
                     ["version", "--help"]):
            with self.subTest(args=args):
                r = self.cli(*args)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(b"usage", r.stdout.lower())
        # each subcommand's help names its options
        self.assertIn(b"--config", self.cli("mount", "--help").stdout)
        self.assertIn(b"--log-format", self.cli("mount", "--help").stdout)
        self.assertIn(b"--log-level", self.cli("mount", "--help").stdout)
        self.assertIn(b"--fetch", self.cli("check", "--help").stdout)

    def test_usage_errors_exit_2(self):
        cfg = self.config_path
        cases = [
            [],
            ["frobnicate"],
            ["check", "--config", cfg, "--bogus"],
            ["check", "--config", cfg, "extra"],
            ["get", "--config", cfg],
            ["get", "--config", cfg, "db_password", "extra"],
            ["mount", "--config", cfg, "--log-format", "xml", self.mnt],
            ["mount", "--config", cfg, "--log-level", "loud", self.mnt],
            ["mount", "--config", cfg, self.mnt, os.path.join(self.dir, "second")],
            ["mount", "--config"],
            ["version", "extra"],
            ["get", "--config", cfg, "--fetch", "db_password"],
        ]
        for args in cases:
            with self.subTest(args=args):
                r = self.cli(*args)
                self.assertEqual(r.returncode, 2, "exit %d; stderr %r" % (r.returncode, r.stderr))
                self.assertTrue(r.stderr.strip(), "no message on stderr")
                self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [])

    # -- check

    def test_check_ok(self):
        r = self.cli("check", "--config", self.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.decode().splitlines()[0].startswith("config ok"), r.stdout)
        self.assertNoValues(r)

    def test_check_mounts_nothing_and_fetches_nothing(self):
        # check without --fetch succeeds even when a file is missing
        os.unlink(os.path.join(self.secrets_dir, "blob"))
        r = self.cli("check", "--config", self.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"config ok"), r.stdout)
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [])

    def _table(self, out):
        lines = [ln for ln in out.decode().splitlines() if ln.strip()]
        hdr = [i for i, ln in enumerate(lines) if re.match(r"^NAME\s+BACKEND\s+STATUS\s*$", ln)]
        self.assertTrue(hdr, "no NAME / BACKEND / STATUS header in:\n%s" % out.decode())
        rows = {}
        for ln in lines[hdr[0] + 1:]:
            m = re.match(r"^(\S+)\s+(\S+)\s+(ok|error: .*)$", ln)
            if m:
                rows[m.group(1)] = (m.group(2), m.group(3))
        return rows

    def test_check_fetch_all_ok(self):
        r = self.cli("check", "--config", self.config_path, "--fetch")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(r.stdout.startswith(b"config ok"), r.stdout)
        rows = self._table(r.stdout)
        self.assertEqual(rows, {"db_password": ("local", "ok"), "app/db_user": ("local", "ok"),
                                "blob": ("local", "ok")})
        self.assertNoValues(r)

    def test_check_fetch_with_failures_exits_1(self):
        os.unlink(os.path.join(self.secrets_dir, "blob"))
        self.write_secret("db.json", '{"nouser": "%s"}' % rstest.random_value())
        r = self.cli("check", "--config", self.config_path, "--fetch")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        rows = self._table(r.stdout)
        self.assertEqual(set(rows), {"db_password", "app/db_user", "blob"}, r.stdout)
        self.assertEqual(rows["db_password"], ("local", "ok"))
        self.assertTrue(rows["blob"][1].startswith("error: "), rows)
        self.assertTrue(rows["app/db_user"][1].startswith("error: "), rows)
        self.assertNoValues(r)

    def test_check_config_error_exits_2(self):
        self.write_config({"x": {"from": "nope:x"}})
        r = self.cli("check", "--config", self.config_path)
        self.assertEqual(r.returncode, 2, r.stderr)
        r = self.cli("check", "--config", self.config_path, "--fetch")
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_missing_config_file_exits_2(self):
        r = self.cli("check", "--config", os.path.join(self.dir, "nope.json"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertTrue(r.stderr.strip())

    # -- get

    def test_get_ref_exact_bytes(self):
        r = self.cli("get", "--config", self.config_path, "local:db_password")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.pw.encode())           # no newline added

    def test_get_binary(self):
        r = self.cli("get", "--config", self.config_path, "local:blob")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.blob)
        r = self.cli("get", "--config", self.config_path, "blob")
        self.assertEqual(r.stdout, self.blob)

    def test_get_name(self):
        r = self.cli("get", "--config", self.config_path, "db_password")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.pw.encode())
        r = self.cli("get", "--config", self.config_path, "app/db_user")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.user.encode())

    def test_get_field_and_pointer(self):
        cases = {
            "local:db.json#user": self.user.encode(),
            "local:db.json#/a/b/c": self.deep.encode(),
            "local:db.json#port": b"5432",
            "local:db.json#o": b'{"k":[1,true]}',
            "local:db.json#/o/k": b"[1,true]",
        }
        for ref, expected in cases.items():
            with self.subTest(ref=ref):
                r = self.cli("get", "--config", self.config_path, ref)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, expected)

    def test_get_failures(self):
        cfg = self.config_path
        # runtime failures: exit 1, nothing on stdout
        for ref in ("local:nosuch", "local:db.json#nosuchfield", "local:db.json#/a/x"):
            with self.subTest(ref=ref):
                r = self.cli("get", "--config", cfg, ref)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertEqual(r.stdout, b"")
                self.assertTrue(r.stderr.strip())
        # refused references: usage/config errors, exit 2
        for ref in ("lcoal:db_password", "local:../secrets/db_password", "local:/etc/hostname"):
            with self.subTest(ref=ref):
                r = self.cli("get", "--config", cfg, ref)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(r.stdout, b"")
        # neither a reference nor a configured name
        r = self.cli("get", "--config", cfg, "no_such_name")
        self.assertIn(r.returncode, (1, 2), r.stderr)
        self.assertEqual(r.stdout, b"")

    def test_debug_logging_never_prints_values(self):
        for fmt in ("json", "text"):
            with self.subTest(fmt=fmt):
                r = self.cli("check", "--config", self.config_path, "--fetch",
                             "--log-level", "debug", "--log-format", fmt)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertNoValues(r)
                r = self.cli("get", "--config", self.config_path, "--log-level", "debug",
                             "--log-format", fmt, "app/db_user")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, self.user.encode())
                self.assertNotIn(self.user.encode(), r.stderr)
                self.assertNotIn(self.pw.encode(), r.stdout + r.stderr)

    def test_get_field_of_invalid_json_does_not_leak(self):
        leak = rstest.random_value(16, "broken-")
        self.sensitive(leak)
        self.write_secret("bad.json", '{"user": "%s", ' % leak)
        r = self.cli("get", "--config", self.config_path, "local:bad.json#user")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertNotIn(leak.encode(), r.stdout + r.stderr)


    def assertOneCleanLine(self, r):
        body = r.stderr.rstrip(b"\n")
        self.assertNotIn(b"\n", body, "more than one line: %r" % r.stderr)
        raw = [b for b in body if b < 0x20 or b == 0x7f]
        self.assertEqual(raw, [], "raw control bytes in %r" % r.stderr)
        return body.decode()

    def test_get_echoes_its_argument_escaped(self):
        cfg = self.config_path
        for arg, shown in (("db\x1b[31mpw", "db\\x1b[31mpw"),
                           ("two\nlines", "two\\nlines"),
                           ("local:x\x1b]0;title\x07", "local:x\\x1b]0;title\\x07"),
                           ("local:db.json#f\x1bx", "local:db.json#f\\x1bx")):
            with self.subTest(arg=arg):
                r = self.cli("get", "--config", cfg, arg)
                self.assertNotEqual(r.returncode, 0)
                line = self.assertOneCleanLine(r)
                self.assertIn(shown, line)

    def test_usage_error_echo_escaped(self):
        r = self.cli("get", "--config", self.config_path, "--bo\x1b[2Jgus")
        self.assertEqual(r.returncode, 2)
        first = r.stderr.splitlines()[0]
        self.assertNotIn(b"\x1b", first)
        self.assertIn(b"--bo\\x1b[2Jgus", first)


if __name__ == "__main__":
    rstest.main()
