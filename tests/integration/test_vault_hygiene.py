"""Secret hygiene with Vault: after logging in, fetching KV and dynamic
secrets over TLS, serving and rotating them, a gcore of the broker holds no
value, no token, no AppRole secret id and no key. Everything that came over
the wire passed through libcurl's, OpenSSL's and jansson's heaps, which must
all have been wiped."""

import json
import os
import shutil
import time

import rstest
import vaultenv


class VaultCoreDumpTest(vaultenv.VaultTestCase):

    def setUp(self):
        super().setUp()
        if not shutil.which("gdb"):
            self.fail("gdb is required for the core-dump check (scripts/deps.sh installs it)")
        self.role_id = "role-" + os.urandom(12).hex()
        self.secret_id = self.sensitive("secret-id-" + os.urandom(16).hex()).decode()
        self.vault.add_approle("app", self.role_id, self.secret_id, ttl=3600)
        self.secret_id_file = self.write_private("secret-id", self.secret_id + "\n")
        self.vault.add_kv_mount("secret", version=2)
        self.vault.add_kv_mount("legacy", version=1)
        self.pw = rstest.random_value(32, "kv2-password-")
        self.user = rstest.random_value(24, "kv2-user-")
        self.unused = rstest.random_value(24, "kv2-unused-")
        self.v1 = rstest.random_value(32, "kv1-value-")
        self.rot_old = rstest.random_value(32, "rotated-away-")
        self.rot_new = rstest.random_value(32, "rotated-in-")
        self.put_secret("secret", "app", {"password": self.pw, "user": self.user,
                                          "unused": self.unused})
        self.put_secret("legacy", "old", {"k": self.v1})
        self.put_secret("secret", "rot", {"v": self.rot_old})
        self.sensitive(self.rot_new)
        self.vault.add_database_mount()
        self.vault.add_database_role("app", ttl=3600, max_ttl=7200)
        self.marker = "marker-" + os.urandom(8).hex()
        self.write_vault_config({
            "pw": "vault:secret/app#password",
            "whole.json": "vault:secret/app",
            "old": "vault:legacy/old#k",
            "rot": "vault:secret/rot#v",
            "db/user": "vault:database/creds/app#username",
            "db/password": "vault:database/creds/app#password",
            self.marker: "vault:secret/app#user",
        }, defaults={"refresh": "1s", "max_stale": "1h"},
            auth={"method": "approle", "role_id": self.role_id,
                  "secret_id_file": self.secret_id_file})

    def test_gcore_holds_no_value_token_or_key(self):
        if rstest.is_asan_build():
            self.skipTest("gcore check runs on the non-sanitizer build only (see test_hygiene)")
        b = self.start_broker(log_level="debug")
        db_user = self.read("db", "user")
        db_pw = self.read("db", "password")
        self.sensitive(db_user)
        self.sensitive(db_pw)
        expected = {"pw": self.pw.encode(), "old": self.v1.encode(), "rot": self.rot_old.encode(),
                    "db/user": db_user, "db/password": db_pw}
        whole = self.read("whole.json")
        self.assertEqual(json.loads(whole), {"password": self.pw, "user": self.user,
                                             "unused": self.unused})
        for _ in range(3):
            for name, v in expected.items():
                self.assertEqual(self.read(*name.split("/")), v)
        mark = b.mark()
        self.vault.put_kv("secret", "rot", {"v": self.rot_new})
        b.wait_log("secret rotated", since=mark, secret="rot")
        self.assertEqual(self.read("rot"), self.rot_new.encode())
        time.sleep(1.5)          # one more refresh over the kept-alive connections
        self.assertTrue(b.running())

        tokens = [t["id"] for t in self.vault.tokens()]
        logins = self.logins("approle")
        self.assertGreaterEqual(len(logins), 1, "the broker never logged in")
        self.assertTrue(tokens)

        key, hashkey, core = rstest.dump_serving(self, b, "pw", self.pw.encode())

        values = dict(expected)
        values["whole.json"] = whole
        values["rot (new)"] = self.rot_new.encode()
        values["unused field"] = self.unused.encode()
        values["user field"] = self.user.encode()
        values["approle secret id"] = self.secret_id.encode()
        values["root token"] = self.vault.root_token.encode()
        for i, t in enumerate(tokens):
            values["vault token %d" % i] = t.encode()
        found = rstest.core_findings(self, core, self.marker, values,
                                     {"cache key": key, "hash key": hashkey})
        self.assertEqual(found, [], "found in the gcore of the serving broker")


if __name__ == "__main__":
    rstest.main()
