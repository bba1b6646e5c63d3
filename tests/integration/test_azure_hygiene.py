"""Secret hygiene with Azure Key Vault: after two backends (a client secret from a file, and workload
identity with a federated token file) got tokens, fetched plain and JSON values over TLS, served them,
rotated them and got new tokens after Key Vault refused the old ones, a gcore of the broker holds no value,
no client secret, no federated token, no access token and no cache key. Everything that came over the wire
passed through libcurl's, OpenSSL's and jansson's heaps, and the credentials through files and form
bodies: all of them must have been wiped."""

import os
import shutil
import time

import azureenv
import rstest


class AzureCoreDumpTest(azureenv.AzureTestCase):

    def test_gcore_holds_no_value_credential_token_or_key(self):
        if not shutil.which("gdb"):
            self.fail("gdb is required for the core-dump check (scripts/deps.sh installs it)")
        if rstest.is_asan_build():
            self.skipTest("gcore check runs on the non-sanitizer build only (see test_hygiene)")
        fed_id, assertion, fed_file = self.add_federated()
        plain = rstest.random_value(32, "az-plain-")
        field = rstest.random_value(24, "az-field-")
        unused = rstest.random_value(24, "az-unused-")
        doc = '{"pw": "%s", "unused": "%s"}' % (field, unused)
        rot_old = rstest.random_value(32, "az-rotated-away-")
        rot_new = rstest.random_value(32, "az-rotated-in-")
        wl_old = rstest.random_value(32, "az-wl-rotated-away-")
        wl_new = rstest.random_value(32, "az-wl-rotated-in-")
        self.set_secret("plain", plain)
        self.set_secret("doc", doc, content_type="application/json")
        self.set_secret("rot", rot_old)
        self.set_secret("wl", wl_old)
        for v in (field, unused, rot_new, wl_new):
            self.sensitive(v)
        marker = "marker-" + os.urandom(8).hex()
        self.write_azure_config(
            {"plain": "kv:plain", "pw": "kv:doc#pw", "rot": "kv:rot", "wl": "kvw:wl",
             "wl-plain": "kvw:plain", marker: "kv:plain"},
            defaults={"refresh": "1s", "max_stale": "1h"},
            extra_backends={"kvw": self.kv_backend(auth=self.workload_auth(fed_id, fed_file))})
        b = self.start_broker(log_level="debug")
        self.assertEqual(self.cold_start(b)["failed"], 0)
        expected = {"plain": plain.encode(), "pw": field.encode(), "rot": rot_old.encode(),
                    "wl": wl_old.encode(), "wl-plain": plain.encode()}
        for _ in range(3):
            for name, v in expected.items():
                self.assertEqual(self.read(name), v)
        # rotations on both backends
        mark = b.mark()
        self.set_secret("rot", rot_new)
        self.set_secret("wl", wl_new)
        b.wait_log("secret rotated", since=mark, secret="rot")
        b.wait_log("secret rotated", since=mark, secret="wl")
        self.assertEqual(self.read("rot"), rot_new.encode())
        self.assertEqual(self.read("wl"), wl_new.encode())
        # Key Vault refuses every token: both backends read their credential files again for new ones
        t0 = time.monotonic()
        self.azure.expire_tokens()
        rstest.wait_until(lambda: {e["identity"] for e in self.token_requests() if e["mono"] > t0
                                   and e["status"] == 200} == {self.client_id, fed_id}, 6,
                          "new tokens for both identities")
        time.sleep(1.5)          # one more refresh over the kept-alive connections
        self.assertTrue(b.running())
        forms = [e["form"] for e in self.token_requests()]
        self.assertIn(self.client_secret, [f.get("client_secret") for f in forms])
        self.assertIn(assertion, [f.get("client_assertion") for f in forms])
        tokens = sorted({t["value"] for t in self.azure.tokens()} |
                        {e["token"] for e in self.azure.requests() if e["token"]})
        self.assertGreaterEqual(len(tokens), 4)

        key, hashkey, core = rstest.dump_serving(self, b, "plain", plain.encode())
        needles = dict(expected)
        needles["whole json value"] = doc.encode()
        needles["unused field"] = unused.encode()
        needles["rot (new)"] = rot_new.encode()
        needles["wl (new)"] = wl_new.encode()
        needles["client secret"] = self.client_secret.encode()
        needles["federated token"] = assertion.encode()
        for i, t in enumerate(tokens):
            needles["access token %d" % i] = t.encode()
            # a JWT's signature part alone, in case the token was cut up
            needles["access token %d signature" % i] = t.rsplit(".", 1)[-1].encode()
        found = rstest.core_findings(self, core, marker, needles, {"cache key": key, "hash key": hashkey})
        self.assertEqual(found, [], "found in the gcore of the serving broker")


if __name__ == "__main__":
    rstest.main()
