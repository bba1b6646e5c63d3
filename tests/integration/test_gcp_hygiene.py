"""Secret hygiene with GCP Secret Manager: after three backends (a service account key, an authorized_user
file, an external_account file with impersonation) got tokens, fetched plain, binary and JSON values over TLS,
served them, rotated them and got new tokens after Secret Manager refused the old ones, a gcore of the broker
holds no value, no private key (its PEM body lines, its DER in PKCS#8 and PKCS#1, its private exponent and
primes in both byte orders), no JWT assertion, no access token, no refresh token, no client secret, no subject
token and no cache key; the broker's environment and command line hold none of them either, and its log none
(rstest's tearDown checks every one the fake knows)."""

import os
import shutil
import time

import gcpenv
import rstest


def key_needles(pem):
    """Every form of an RSA private key a process could keep: {label: bytes}."""
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    nums = key.private_numbers()
    size = (key.key_size + 7) // 8
    out = {}
    for i, line in enumerate(pem.strip().splitlines()[1:-1]):
        out["PEM body line %d" % i] = line.encode()
    out["DER PKCS#8"] = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
    out["DER PKCS#1"] = key.private_bytes(serialization.Encoding.DER,
                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption())
    for name, n, width in (("d", nums.d, size), ("p", nums.p, size // 2), ("q", nums.q, size // 2)):
        out["private %s big-endian" % name] = n.to_bytes(width, "big")
        out["private %s little-endian" % name] = n.to_bytes(width, "little")
    return out


class GcpCoreDumpTest(gcpenv.GcpTestCase):

    def test_gcore_holds_no_value_key_assertion_or_token(self):
        if not shutil.which("gdb"):
            self.fail("gdb is required for the core-dump check (scripts/deps.sh installs it)")
        if rstest.is_asan_build():
            self.skipTest("gcore check runs on the non-sanitizer build only (see test_hygiene)")
        au = self.gcp.add_authorized_user(account="hyg-user@example.com")
        au_file = self.write_cred("user.json", au)
        imp_email = "hyg-imp@%s.iam.gserviceaccount.com" % gcpenv.PROJECT_ID
        ext, ext_file, subject, _ = self.external_account(impersonate=imp_email)
        plain = rstest.random_value(32, "gcp-plain-")
        field = rstest.random_value(24, "gcp-field-")
        unused = rstest.random_value(24, "gcp-unused-")
        doc = '{"pw": "%s", "unused": "%s"}' % (field, unused)
        binary = os.urandom(24) + b"gcp-binary-" + os.urandom(8)
        rot_old = rstest.random_value(32, "gcp-rotated-away-")
        rot_new = rstest.random_value(32, "gcp-rotated-in-")
        self.add_version("plain", plain)
        self.add_version("doc", doc)
        self.add_version("bin", binary)
        self.add_version("rot", rot_old)
        for v in (field, unused, rot_new):
            self.sensitive(v)
        marker = "marker-" + os.urandom(8).hex()
        self.write_gcp_config(
            {"plain": "gcp:plain", "pw": "gcp:doc#pw", "bin": "gcp:bin", "rot": "gcp:rot",
             "u-plain": "guser:plain", "x-rot": "gext:rot", marker: "gcp:plain"},
            defaults={"refresh": "1s", "max_stale": "1h"},
            extra_backends={"guser": self.gcp_backend(credentials_file=au_file),
                            "gext": self.gcp_backend(credentials_file=ext_file)})
        b = self.start_broker(log_level="debug")
        self.assertEqual(self.cold_start(b)["failed"], 0)
        expected = {"plain": plain.encode(), "pw": field.encode(), "bin": binary, "rot": rot_old.encode(),
                    "u-plain": plain.encode(), "x-rot": rot_old.encode()}
        for _ in range(3):
            for name, v in expected.items():
                self.assertEqual(self.read(name), v)
        mark = b.mark()
        self.add_version("rot", rot_new)
        b.wait_log("secret rotated", since=mark, secret="rot")
        b.wait_log("secret rotated", since=mark, secret="x-rot")
        expected["rot"] = expected["x-rot"] = rot_new.encode()
        # Secret Manager refuses every token: every backend logs in again (a new JWT signed with the key)
        t0 = time.monotonic()
        self.gcp.expire_tokens()
        rstest.wait_until(lambda: len({e["endpoint"] + str(e["grant_type"]) for e in self.gcp.requests()
                                       if e["mono"] > t0 and e["status"] == 200
                                       and e["endpoint"] in ("token", "sts", "iam")}) >= 4, 6,
                          "new tokens for all three backends")
        time.sleep(1.5)          # one more refresh over the kept-alive connections
        self.assertTrue(b.running())
        assertions = [e["form"]["assertion"] for e in self.token_requests() if e["form"]
                      and e["form"].get("assertion")]
        self.assertGreaterEqual(len(assertions), 2)
        tokens = sorted({t["value"] for t in self.gcp.tokens()} |
                        {e["token"] for e in self.gcp.requests() if e["token"]})
        self.assertGreaterEqual(len(tokens), 6)

        # nothing in the environment or on the command line
        with open("/proc/%d/environ" % b.pid, "rb") as f:
            environ = f.read()
        with open("/proc/%d/cmdline" % b.pid, "rb") as f:
            cmdline = f.read()
        for v in [plain, field, rot_new, au["refresh_token"], au["client_secret"], subject] + tokens:
            self.assertNotIn(v.encode(), environ)
            self.assertNotIn(v.encode(), cmdline)

        key, hashkey, core = rstest.dump_serving(self, b, "plain", plain.encode())
        needles = dict(expected)
        needles["whole json value"] = doc.encode()
        needles["unused field"] = unused.encode()
        needles["rot (old)"] = rot_old.encode()
        needles["private key PEM"] = self.sa["private_key"].encode()
        needles.update(key_needles(self.sa["private_key"]))
        needles["refresh token"] = au["refresh_token"].encode()
        needles["client secret"] = au["client_secret"].encode()
        needles["subject token"] = subject.encode()
        for i, a in enumerate(assertions):
            needles["JWT assertion %d" % i] = a.encode()
            needles["JWT assertion %d signature" % i] = a.rsplit(".", 1)[-1].encode()
        for i, t in enumerate(tokens):
            needles["access token %d" % i] = t.encode()
        found = rstest.core_findings(self, core, marker, needles, {"cache key": key, "hash key": hashkey})
        self.assertEqual(found, [], "found in the gcore of the serving broker")


if __name__ == "__main__":
    rstest.main()
