"""Bad configurations through the real binary: exit 2, one line on stderr
`FILE:LINE:COL: key.path: message`, and nothing mounted."""

import os
import re
import subprocess

import rstest

# {SECRETS} is replaced by the test's secrets directory, {MNT} by its mountpoint.
BASE = """{
  "mount": "{MNT}",
  "defaults": {"refresh": "1s", "max_stale": "1h", "mode": "0400", "uid": 0, "gid": 0},
  "backends": {
    "local": {"type": "file", "path": "{SECRETS}"}
  },
  "secrets": {
    "db_password": {"from": "local:db_password", "mode": "0440", "uid": 1000, "gid": 1000},
    "app/db_user": {"from": "local:db.json#user"}
  }
}
"""

# name: (replace this, with that, key path expected in the message or None,
#        anchors: substrings whose position the LINE:COL may point at,
#        words the message must contain)
CASES = {
    "unknown_backend": (
        '"from": "local:db_password"', '"from": "lcoal:db_password"',
        "secrets.db_password.from", ['"lcoal:db_password"', '"from": "lcoal'], ["lcoal"]),
    "ref_with_dotdot": (
        '"from": "local:db_password"', '"from": "local:../outside/pw"',
        "secrets.db_password.from", ['"local:../outside/pw"', '"from": "local:..'], [".."]),
    "absolute_ref": (
        '"from": "local:db.json#user"', '"from": "local:/etc/shadow"',
        "secrets.app/db_user.from", ['"local:/etc/shadow"', '"from": "local:/'], []),
    "bad_duration": (
        '"refresh": "1s"', '"refresh": "5 minutes"',
        "defaults.refresh", ['"5 minutes"', '"refresh": "5'], []),
    "duration_below_1s": (
        '"mode": "0440",', '"refresh": "0s", "mode": "0440",',
        "secrets.db_password.refresh", ['"0s"', '"refresh": "0s"'], []),
    "integer_duration_zero": (
        '"max_stale": "1h"', '"max_stale": 0',
        "defaults.max_stale", ['0, "mode"', '"max_stale": 0'], []),
    "max_stale_below_refresh": (
        '"mode": "0440",', '"refresh": "10m", "max_stale": "5m", "mode": "0440",',
        None, ['"5m"', '"max_stale": "5m"', '"10m"', '"refresh": "10m"',
               '{"from": "local:db_password", "refresh"', '"db_password": {'], ["max_stale"]),
    "bad_name_char": (
        '"app/db_user"', '"app/db user"',
        None, ['"app/db user"'], []),
    "dotdot_name": (
        '"app/db_user"', '"app/../db_user"',
        None, ['"app/../db_user"'], []),
    "empty_segment_name": (
        '"app/db_user"', '"app//db_user"',
        None, ['"app//db_user"'], []),
    "name_is_file_and_dir": (
        '"app/db_user"', '"db_password/user"',
        None, ['"db_password/user"', '"db_password": {'], []),
    "bad_mode": (
        '"mode": "0440"', '"mode": "0999"',
        "secrets.db_password.mode", ['"0999"', '"mode": "0999"'], []),
    "uid_not_a_number": (
        '"uid": 1000', '"uid": "root"',
        "secrets.db_password.uid", ['"root"', '"uid": "root"'], []),
    "unknown_backend_type": (
        '"type": "file"', '"type": "filez"',
        "backends.local.type", ['"filez"', '"type": "filez"'], ["filez"]),
    "missing_from": (
        '{"from": "local:db.json#user"}', '{"mode": "0400"}',
        None, ['"app/db_user": {', '{"mode": "0400"}'], ["from"]),
    # Keys and names are shown escaped: a "\n" in a key must not split the
    # one-line error, an ESC in a name must not reach the terminal.
    "key_with_newline": (
        '"refresh": "1s"', '"re\\nfresh": "1s"',
        'defaults["re\\nfresh"]', ['"re\\nfresh"'], ["unknown key"]),
    "name_with_escape": (
        '"app/db_user"', '"app/db\\u001b[31muser"',
        'secrets["app/db\\x1b[31muser"]', ['"app/db\\u001b[31muser"'], ["0x1b"]),
    "nul_in_string": (
        '"from": "local:db.json#user"', '"from": "local:db.json\\u0000#user"',
        None, ['"local:db.json\\u0000#user"', 'local:db.json\\u0000#user', '#user"}'],
        ["NUL byte"]),
    "json_syntax_error": (
        '"gid": 1000},', '"gid": 1000,},',
        None, ['},\n', '"app/db_user"', ',},'], []),
    # runsecrets exec's keys: validated by check and mount alike.
    "exec_unknown_key": (
        '"defaults": {', '"exec": {"wiat": "10s"},\n  "defaults": {',
        "exec.wiat", ['"wiat"'], ["unknown key", "wait, stop_grace, debounce"]),
    "exec_wait_too_long": (
        '"defaults": {', '"exec": {"wait": "2h"},\n  "defaults": {',
        "exec.wait", ['"2h"'], ["at most 1h"]),
    "env_not_a_name": (
        '"mode": "0440",', '"env": "DB-PASSWORD", "mode": "0440",',
        "secrets.db_password.env", ['"DB-PASSWORD"'], ["DB-PASSWORD", "environment variable"]),
    "env_reserved": (
        '"mode": "0440",', '"env": "RUNSECRETS_CONFIG", "mode": "0440",',
        "secrets.db_password.env", ['"RUNSECRETS_CONFIG"'], ["reserved"]),
    "env_twice": (
        '"gid": 1000},\n    "app/db_user": {"from": "local:db.json#user"}',
        '"gid": 1000, "env": "DB_FILE"},\n    "app/db_user": {"from": "local:db.json#user", '
        '"env": "DB_FILE"}',
        "secrets.app/db_user.env", ['#user", "env": "DB_FILE"'], ["DB_FILE", "db_password"]),
    "env_in_defaults": (
        '"gid": 0}', '"gid": 0, "env": "X"}',
        "defaults.env", ['"env"'], ["each secret"]),
    "required_not_boolean": (
        '"mode": "0440",', '"required": "yes", "mode": "0440",',
        "secrets.db_password.required", ['"yes"'], ["true or false"]),
    "on_change_kill": (
        '"mode": "0440",', '"on_change": "signal:SIGKILL", "mode": "0440",',
        "secrets.db_password.on_change", ['"signal:SIGKILL"'],
        ["SIGKILL", "restart", "USR1"]),
    "on_change_unknown_signal": (
        '"from": "local:db.json#user"', '"from": "local:db.json#user", "on_change": "signal:RELOAD"',
        "secrets.app/db_user.on_change", ['"signal:RELOAD"'], ["unknown signal", "HUP"]),
}

LINE_RE = re.compile(r"config\.json:(\d+):(\d+): (.*)$")


def line_col(text, idx):
    line = text.count("\n", 0, idx) + 1
    col = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return line, col


class ConfigErrorTest(rstest.BrokerTestCase):

    def make(self, name):
        old, new, keypath, anchors, words = CASES[name]
        base = BASE.replace("{SECRETS}", self.secrets_dir).replace("{MNT}", self.mnt)
        self.assertIn(old, base)
        text = base.replace(old, new, 1)
        path = self.write_config_text(text)
        candidates = set()
        for a in anchors:
            idx = text.find(a)
            self.assertGreaterEqual(idx, 0, "bad anchor %r" % a)
            for off in range(len(a) + 1):
                candidates.add(line_col(text, idx + off))
        return path, text, keypath, candidates, words

    def check_message(self, name, stderr, path, text, keypath, candidates, words):
        body = stderr.rstrip(b"\n")
        raw = [b for b in body if b < 0x20 or b == 0x7f]
        self.assertEqual(raw, [], "%s: raw control bytes in %r" % (name, stderr))
        lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        human = [ln for ln in lines if not ln.lstrip().startswith("{")]
        self.assertEqual(len(lines), 1, "%s: expected one line on stderr, got:\n%s"
                         % (name, "\n".join(lines)))
        self.assertEqual(len(human), 1)
        m = LINE_RE.search(human[0])
        self.assertIsNotNone(m, "%s: no FILE:LINE:COL: in %r" % (name, human[0]))
        self.assertIn(path, human[0], "the message should name the file")
        pos = (int(m.group(1)), int(m.group(2)))
        text_lines = text.splitlines()
        shown = text_lines[pos[0] - 1] if 0 < pos[0] <= len(text_lines) else "(no such line)"
        self.assertIn(pos, candidates, "%s: %r points at line %d col %d: %r"
                      % (name, human[0], pos[0], pos[1], shown))
        if keypath:
            self.assertTrue(m.group(3).startswith(keypath + ":"),
                            "%s: key path %r expected in %r" % (name, keypath, human[0]))
        for w in words:
            self.assertIn(w, m.group(3))

    def run_case(self, name):
        path, text, keypath, cands, words = self.make(name)
        # check
        r = rstest.run_cli("check", "--config", path)
        self.assertEqual(r.returncode, 2, "%s: check exit %d, stderr %r"
                         % (name, r.returncode, r.stderr))
        self.assertEqual(r.stdout, b"", "check printed on stdout for a bad config")
        self.check_message(name, r.stderr, path, text, keypath, cands, words)
        check_line = r.stderr.strip()
        # mount: same message, exit 2, nothing mounted
        b = self.start_broker(config=path, wait=False)
        try:
            rc = b.proc.wait(timeout=rstest.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("%s: mount kept running with a bad config\n%s" % (name, b.describe()))
        self.assertEqual(rc, 2, "%s: mount exit %d\n%s" % (name, rc, b.describe()))
        self.check_message(name, b.stderr(), path, text, keypath, cands, words)
        self.assertEqual(b.stderr().strip(), check_line)
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [], "mounted anyway")
        self.assertEqual([m for m in rstest.mountinfo() if m["fstype"] == rstest.FSTYPE
                          and m["mountpoint"].startswith(self.dir)], [])

    def _one_line_exit_2(self, path):
        r = rstest.run_cli("check", "--config", path)
        self.assertEqual(r.returncode, 2, r.stderr)
        lines = r.stderr.decode().splitlines()
        self.assertEqual(len(lines), 1, lines)
        return lines[0]

    def test_empty_file(self):
        for text in ("", " \n\t\n"):
            with self.subTest(text=text):
                path = self.write_config_text(text)
                self.assertEqual(self._one_line_exit_2(path),
                                 "runsecrets: %s: empty file (expected a JSON object)" % path)

    def test_nul_messages_do_not_name_jansson_flags(self):
        for text, where in (('{"mount": "/a\\u0000b"}', "string"),
                            ('{"mo\\u0000unt": "/a"}', "key")):
            with self.subTest(text=text):
                line = self._one_line_exit_2(self.write_config_text(text))
                self.assertIn("NUL byte (\\u0000) in a %s" % where, line)
                self.assertNotIn("JSON_ALLOW_NUL", line)
                self.assertNotIn("not supported", line)

    def test_file_name_with_control_bytes(self):
        path = self.write_config_text("{", name="con\x1bfig\n.json")
        line = self._one_line_exit_2(path)
        self.assertIn("con\\x1bfig\\n.json:", line)

    def test_base_config_is_valid(self):
        path = self.write_config_text(BASE.replace("{SECRETS}", self.secrets_dir)
                                      .replace("{MNT}", self.mnt))
        r = rstest.run_cli("check", "--config", path)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_exec_keys_are_valid_and_mount_ignores_them(self):
        """exec's keys pass check (whose line is what it always was), and mount
        serves such a config as it would without them."""
        text = (BASE.replace("{SECRETS}", self.secrets_dir).replace("{MNT}", self.mnt)
                .replace('"defaults": {"refresh": "1s", "max_stale": "1h", "mode": "0400", "uid": 0, "gid": 0},',
                         '"defaults": {"refresh": "1s", "max_stale": "1h", "mode": "0400", "uid": 0, '
                         '"gid": 0, "required": false, "on_change": "signal:hup"},\n'
                         '  "exec": {"wait": "1m", "stop_grace": 0, "debounce": "250ms"},')
                .replace('"gid": 1000}', '"gid": 1000, "env": "DB_PASSWORD_FILE", "required": true, '
                         '"on_change": "restart"}'))
        self.assertIn('"exec"', text)
        self.assertIn("DB_PASSWORD_FILE", text)
        path = self.write_config_text(text)
        r = rstest.run_cli("check", "--config", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode(), "config ok: %s: 1 backend, 2 secrets, mount %s\n"
                         "no access policy: file modes only\n"
                         % (path, self.mnt))
        value = rstest.random_value()
        self.write_secret("db_password", value)
        self.write_secret("db.json", '{"user": "app"}')
        self.start_broker(config=path)
        self.assertEqual(self.read("db_password"), value.encode())
        self.assertEqual(os.stat(self.mpath("db_password")).st_mode & 0o7777, 0o440)
        self.assertEqual(self.read("app", "db_user"), b"app")


def _make_test(name):
    def t(self):
        self.run_case(name)
    t.__name__ = "test_" + name
    t.__doc__ = "bad config: %s" % name
    return t


for _name in CASES:
    setattr(ConfigErrorTest, "test_" + _name, _make_test(_name))


if __name__ == "__main__":
    rstest.main()
