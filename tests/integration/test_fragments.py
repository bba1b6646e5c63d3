"""Config fragments (issue 13): "include" globs relative to the main file,
read in byte order; a fragment holds only backends and secrets; a name
defined in two files is an error naming both places; every error names
the file it is in with its own line and column. Checked through `check`
(every message exact) and through a real mount serving fragment secrets."""

import json
import os

import rstest


class FragmentTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.confd = os.path.join(self.dir, "conf.d")
        os.mkdir(self.confd)
        self.value_a = rstest.random_value()
        self.value_b = rstest.random_value()
        self.write_secret("a", self.value_a)
        self.write_secret("b", self.value_b)

    def main_config(self, include, secrets='"a": "local:a"'):
        """The main file, with the include line on line 3 and the secrets
        on line 5 (messages name those positions)."""
        text = ('{\n'
                '  "mount": "%s",\n'
                '  "include": %s,\n'
                '  "backends": {"local": {"type": "file", "path": "%s"}},\n'
                '  "secrets": {%s}\n'
                '}\n' % (self.mnt, json.dumps(include), self.secrets_dir, secrets))
        return self.write_config_text(text)

    def fragment(self, name, text):
        path = os.path.join(self.confd, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self):
        r = rstest.run_cli("check", "--config", self.config_path)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def assertCheckFails(self, message):
        rc, out, err = self.check()
        self.assertEqual((rc, out, err), (2, "", "runsecrets: %s\n" % message))

    # -- what is read

    def test_fragments_are_read_in_byte_order_and_served(self):
        self.main_config(["conf.d/*.json"])
        # "B" sorts before "a" in bytes, whatever the locale says.
        self.fragment("B-20.json", '{"secrets": {"frag/b": "local:b"}}\n')
        self.fragment("a-10.json", '{"backends": {"more": {"type": "file", "path": "%s"}},\n'
                      ' "secrets": {"frag/a": "more:a"}}\n' % self.secrets_dir)
        self.fragment(".hidden.json", '{"secrets": {"hidden": "local:a"}}\n')
        self.fragment("notes.txt", 'not json at all\n')
        rc, out, err = self.check()
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "config ok: %s (and 2 fragments): 2 backends, 3 secrets, mount %s\n"
                         "no access policy: file modes only\n"
                         % (self.config_path, self.mnt))
        self.start_broker()
        self.assertEqual(self.read("a"), self.value_a.encode())
        self.assertEqual(self.read("frag", "a"), self.value_a.encode())
        self.assertEqual(self.read("frag", "b"), self.value_b.encode())
        self.assertEqual(sorted(os.listdir(self.mnt)), ["a", "frag"])

    def test_a_glob_matching_nothing_or_a_missing_folder_is_fine(self):
        self.main_config(["conf.d/*.json", "absent.d/*.json"])
        rc, out, err = self.check()
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "config ok: %s: 1 backend, 1 secret, mount %s\n"
                         "no access policy: file modes only\n"
                         % (self.config_path, self.mnt))

    def test_relative_to_the_main_file_not_the_working_directory(self):
        self.main_config(["conf.d/*.json"])
        self.fragment("x.json", '{"secrets": {"x": "local:b"}}\n')
        r = subprocess_check_in("/", self.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"(and 1 fragment): 1 backend, 2 secrets", r.stdout)

    def test_a_file_matched_twice_and_the_main_file_are_read_once(self):
        self.main_config(["*.json", "conf.d/*.json", "conf.d/x.json"])
        self.fragment("x.json", '{"secrets": {"x": "local:b"}}\n')
        rc, out, err = self.check()
        self.assertEqual(rc, 0, err)
        self.assertIn("(and 1 fragment): 1 backend, 2 secrets", out)

    def test_absolute_entries(self):
        path = self.fragment("abs.json", '{"secrets": {"abs": "local:b"}}\n')
        self.main_config([path])
        rc, out, err = self.check()
        self.assertEqual(rc, 0, err)
        self.assertIn("2 secrets", out)

    # -- bad input: each message exact

    def test_a_named_file_that_is_missing(self):
        self.main_config(["conf.d/*.json", "extra.json"])
        self.assertCheckFails("%s:3:32: include[1]: %s/extra.json: cannot open: No such file or "
                              "directory" % (self.config_path, self.dir))

    def test_a_name_defined_in_two_files(self):
        self.main_config(["conf.d/*.json"])
        frag = self.fragment("20-c.json", '{\n  "secrets": {\n    "a": "local:b"\n  }\n}\n')
        self.assertCheckFails("%s:3:5: secrets.a: secret 'a' is defined twice: first at %s:5:15"
                              % (frag, self.config_path))

    def test_a_name_defined_in_two_fragments_names_both(self):
        self.main_config(["conf.d/*.json"], secrets="")
        first = self.fragment("10-a.json", '{"secrets": {"dup": "local:a"}}\n')
        second = self.fragment("20-b.json", '{"secrets": {"ok": "local:a", "dup": "local:b"}}\n')
        self.assertCheckFails("%s:1:31: secrets.dup: secret 'dup' is defined twice: first at "
                              "%s:1:14" % (second, first))

    def test_a_backend_defined_in_two_files(self):
        self.main_config(["conf.d/*.json"])
        frag = self.fragment("b.json", '{"backends": {"local": {"type": "file", "path": "/"}}}\n')
        self.assertCheckFails("%s:1:15: backends.local: backend 'local' is defined twice: first "
                              "at %s:4:16" % (frag, self.config_path))

    def test_a_fragment_may_not_set_main_keys(self):
        self.main_config(["conf.d/*.json"])
        for key in ("mount", "defaults", "exec", "include"):
            with self.subTest(key=key):
                frag = self.fragment("x.json", '{"secrets": {}, "%s": {}}\n' % key)
                self.assertCheckFails(
                    '%s:1:17: %s: only the main configuration (%s) may set "%s"; a fragment '
                    'holds "backends" and "secrets"' % (frag, key, self.config_path, key))

    def test_an_unknown_key_in_a_fragment(self):
        self.main_config(["conf.d/*.json"])
        frag = self.fragment("x.json", '{"secrets": {}, "secret": {}}\n')
        self.assertCheckFails("%s:1:17: secret: unknown key (expected one of: backends, secrets)"
                              % frag)

    def test_a_syntax_error_names_the_fragment(self):
        self.main_config(["conf.d/*.json"])
        frag = self.fragment("x.json", '{"secrets": {"c": "local:a",}}\n')
        self.assertCheckFails("%s:1:29: string or '}' expected near '}'" % frag)

    def test_an_empty_fragment(self):
        self.main_config(["conf.d/*.json"])
        frag = self.fragment("x.json", "\n")
        self.assertCheckFails("%s: empty file (expected a JSON object)" % frag)

    def test_a_bad_reference_in_a_fragment_names_the_fragment(self):
        self.main_config(["conf.d/*.json"])
        frag = self.fragment("x.json", '{"secrets": {"c": "nope:a"}}\n')
        self.assertCheckFails("%s:1:19: secrets.c: unknown backend 'nope'" % frag)

    def test_a_file_and_a_directory_in_two_files(self):
        self.main_config(["conf.d/*.json"])
        frag = self.fragment("x.json", '{"secrets": {"a/b": "local:b"}}\n')
        self.assertCheckFails("%s:1:14: secrets.a/b: 'a' is also a secret (defined at %s:5:15), "
                              "so it cannot be a directory" % (frag, self.config_path))

    def test_one_env_claimed_in_two_files(self):
        self.main_config(["conf.d/*.json"],
                         secrets='"a": {"from": "local:a", "env": "A_FILE"}')
        frag = self.fragment("x.json", '{"secrets": {"c": {"from": "local:b", "env": "A_FILE"}}}\n')
        self.assertCheckFails("%s:1:46: secrets.c.env: A_FILE is already the env of secret 'a' "
                              "(defined at %s:5:15): each variable names one file"
                              % (frag, self.config_path))

    def test_include_must_be_an_array_of_names(self):
        for include, msg in (
                ('"conf.d/*.json"', '3:14: include: expected an array of file names or globs '
                                    'such as ["conf.d/*.json"], got a string'),
                ('[""]', '3:15: include[0]: expected a non-empty file name or glob, got an '
                         'empty string'),
                ('["x.json", 3]', '3:25: include[1]: expected a non-empty file name or glob, '
                                  'got an integer')):
            with self.subTest(include=include):
                self.write_config_text(
                    '{\n  "mount": "%s",\n  "include": %s,\n  "secrets": {}\n}\n'
                    % (self.mnt, include))
                if "x.json" in include:
                    with open(os.path.join(self.dir, "x.json"), "w") as f:
                        f.write('{"secrets": {}}')
                self.assertCheckFails("%s:%s" % (self.config_path, msg))

    def test_a_folder_that_cannot_be_read(self):
        self.main_config(["conf.d/*.json"])
        self.fragment("x.json", '{"secrets": {}}\n')
        os.chmod(self.dir, 0o711)
        os.chmod(self.confd, 0o311)   # no read: the glob cannot list it

        def check_as_nobody():
            r = rstest.run_cli("check", "--config", self.config_path)
            return r.returncode, r.stderr.decode()
        os.chmod(self.config_path, 0o644)
        kind, res, _ = rstest.run_as(65534, 65534, check_as_nobody)
        self.assertEqual(kind, "ok")
        self.assertEqual(res, (2, "runsecrets: %s:3:15: include[0]: %s: cannot read the folder: "
                                  "Permission denied\n" % (self.config_path, self.confd)))

    def test_a_directory_or_a_fifo_among_the_matches(self):
        self.main_config(["conf.d/*"])
        os.mkfifo(os.path.join(self.confd, "pipe"))
        self.assertCheckFails("%s:3:15: include[0]: %s/pipe: not a regular file"
                              % (self.config_path, self.confd))


def subprocess_check_in(cwd, config):
    import subprocess
    return subprocess.run([rstest.BINARY, "check", "--config", config], cwd=cwd,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=rstest.CLI_TIMEOUT)


if __name__ == "__main__":
    rstest.main()
