"""Azure Key Vault backend, serving: values byte for byte, #field and #/pointer on JSON values, modes;
rotation (a new version is served at the next refresh; the same version is not taken again); ?version=
pinning; a disabled secret (stale until max_stale, then EIO; one clear error line naming the secret and
the identity); deletion; expired (attributes.exp) and not-yet-valid (attributes.nbf) versions never served;
a cold start of many secrets in parallel with one challenge and one token. Runs against
tests/fakes/azure_fake.py over TLS."""

import errno
import json
import os
import time

import azureenv
import rstest
from azureenv import compact


class ServeTest(azureenv.AzureTestCase):

    def test_values_fields_modes_and_requests(self):
        plain = rstest.random_value(16, "db-pw-")
        user, pw = rstest.random_value(8, "user-"), rstest.random_value(16, "pw-")
        doc = {"user": user, "password": pw, "port": 5432, "opts": {"tls": True, "hosts": ["h-a", "h-b"]}}
        pem = "-----BEGIN KEY-----\n%s\n-----END KEY-----\n" % rstest.random_value(24, "")
        uni = "p\u00e4ssw\u00f6rd-\u2603-" + rstest.random_value(8, "")
        v_plain = self.set_secret("db-password", plain)
        self.set_secret("app-config", compact(doc), content_type="application/json", tags={"env": "test"})
        self.set_secret("tls-key", pem)
        self.set_secret("Uni-Code", uni)
        self.write_azure_config({
            "db/password": "kv:db-password",
            "app/user": {"from": "kv:app-config#user", "mode": "0440"},
            "app/password": "kv:app-config#password",
            "app/port": "kv:app-config#port",
            "app/host1": "kv:app-config#/opts/hosts/1",
            "app/opts": "kv:app-config#opts",
            "app/all": "kv:app-config",
            "tls.key": "kv:tls-key",
            "uni": "kv:uni-code",                 # Key Vault's names are case-blind
            "pinned": "kv:db-password?version=" + v_plain.upper(),
        })
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (10, 0), rec)
        self.assertEqual(self.read("db", "password"), plain.encode())
        self.assertEqual(self.read("app", "user"), user.encode())
        self.assertEqual(self.read("app", "password"), pw.encode())
        self.assertEqual(self.read("app", "port"), b"5432")
        self.assertEqual(self.read("app", "host1"), b"h-b")
        self.assertEqual(json.loads(self.read("app", "opts")), doc["opts"])
        self.assertEqual(self.read("app", "all"), compact(doc).encode())   # the value as stored
        self.assertEqual(self.read("tls.key"), pem.encode())                # trailing newline kept
        self.assertEqual(self.read("uni"), uni.encode("utf-8"))
        self.assertEqual(self.read("pinned"), plain.encode())
        self.assertEqual(os.stat(self.mpath("app", "user")).st_mode & 0o777, 0o440)
        self.assertEqual(os.stat(self.mpath("db", "password")).st_mode & 0o777, 0o400)
        self.assertEqual(os.stat(self.mpath("tls.key")).st_size, len(pem))
        self.assertEqual(sorted(os.listdir(self.mpath("app"))),
                         ["all", "host1", "opts", "password", "port", "user"])

        # One unauthenticated request (the challenge), one token, then Get Secret with it.
        [ch] = self.challenges()
        self.assertEqual((ch["status"], ch["error"]), (401, "Unauthorized"))
        [login] = self.token_requests()
        self.assertEqual(login["status"], 200)
        self.assertEqual(login["path"], "/%s/oauth2/v2.0/token" % self.tenant)
        self.assertEqual(login["headers"]["content-type"], "application/x-www-form-urlencoded")
        self.assertEqual(login["form"], {"grant_type": "client_credentials", "client_id": self.client_id,
                                         "scope": azureenv.VAULT_SCOPE, "client_secret": self.client_secret})
        [tok] = self.azure.tokens()
        self.assertEqual((tok["identity"], tok["audience"]), (self.client_id, azureenv.VAULT_RESOURCE))
        gets = self.vault_gets()
        self.assertGreaterEqual(len(gets), 5)
        paths = set()
        for e in gets:
            self.assertEqual((e["method"], e["status"], e["token"]), ("GET", 200, tok["value"]))
            self.assertEqual(e["query"], {"api-version": ["7.4"]})
            self.assertEqual(e["identity"], self.client_id)
            paths.add(e["path"])
        self.assertEqual(paths, {"/secrets/db-password", "/secrets/app-config", "/secrets/tls-key",
                                 "/secrets/uni-code", "/secrets/db-password/" + v_plain.upper()})
        # the whole exchange and the values stay out of the log (tearDown checks every value and token)
        self.assertNotIn(b"Bearer", b.stderr())

    def test_rotation_and_unchanged_version(self):
        v1 = rstest.random_value(16, "rot1-")
        self.set_secret("rot", v1)
        self.write_azure_config({"rot": "kv:rot", "other": "kv:rot"})
        b = self.start_broker(log_level="debug")
        self.assertEqual(self.cold_start(b)["failed"], 0)
        path = self.mpath("rot")
        ino, mtime = os.stat(path).st_ino, os.stat(path).st_mtime_ns
        # the refreshes read the same version: unchanged
        rstest.wait_until(lambda: len(b.find_logs("secret unchanged", secret="rot")) >= 2, 5,
                          "two unchanged refreshes")
        # The same version id with other bytes (Key Vault never does this): the backend trusts the id,
        # the new bytes are never taken, let alone sealed and served.
        tampered = rstest.random_value(16, "tampered-")
        self.sensitive(tampered)
        self.azure.tamper_value("rot", tampered)
        mark = b.mark()
        n = len(self.vault_gets("rot"))
        rstest.wait_until(lambda: len(self.vault_gets("rot")) >= n + 3, 6, "three more refreshes")
        self.assertTrue(all(e["status"] == 200 for e in self.vault_gets("rot")))
        rstest.wait_until(lambda: len(b.find_logs("secret unchanged", since=mark, secret="rot")) >= 2, 3,
                          "unchanged refreshes after the tampering")
        self.assertEqual(self.read("rot"), v1.encode())
        self.assertEqual(os.stat(path).st_mtime_ns, mtime)
        self.assertNoLog(b, "secret rotated", since=mark)
        # a new version is served at the next refresh
        for i in range(2):
            new = rstest.random_value(16, "rot%d-" % (i + 2))
            mark = b.mark()
            t0 = time.monotonic()
            vid = self.set_secret("rot", new)
            b.wait_log("secret rotated", since=mark, secret="rot", timeout=5)
            self.assertLess(time.monotonic() - t0, 3.5, "rotation took more than ~3 refreshes")
            self.assertEqual(self.read("rot"), new.encode())
            self.wait_value(new, "other", timeout=3)
            self.assertEqual(os.stat(path).st_ino, ino)
            self.assertEqual(os.stat(path).st_size, len(new))
            self.assertIn(vid, [e["version"] for e in self.vault_gets("rot")])
        rstest.wait_until(lambda: b.find_logs("secret unchanged", since=mark, secret="rot"), 4,
                          "unchanged again after the rotation")
        self.assertNoLog(b, "refresh failed, serving stale value")

    def test_version_pin(self):
        a, bv, c = (rstest.random_value(16, p) for p in ("pin-a-", "pin-b-", "pin-c-"))
        v1 = self.set_secret("pin", a)
        self.set_secret("pin", bv)
        missing = "0123456789abcdef" * 2
        self.write_azure_config({"pinned": "kv:pin?version=" + v1, "latest": "kv:pin",
                                 "nosuch": "kv:pin?version=" + missing})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (2, 1), rec)
        self.assertEqual(self.read("pinned"), a.encode())
        self.assertEqual(self.read("latest"), bv.encode())
        f = b.wait_log("fetch failed", secret="nosuch")
        self.assertIn("not found (HTTP 404 SecretNotFound)", f.get("error", ""), f)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("nosuch"))
        pinned = [e for e in self.vault_gets("pin") if e["path"] == "/secrets/pin/" + v1]
        self.assertTrue(pinned, "no GET of the pinned version")
        self.assertTrue(all(e["version"] == v1 for e in pinned))
        # a rotation moves "latest" only
        mark = b.mark()
        v3 = self.set_secret("pin", c)
        b.wait_log("secret rotated", since=mark, secret="latest")
        self.assertEqual(self.read("latest"), c.encode())
        n = len([e for e in self.vault_gets("pin") if e["path"] == "/secrets/pin/" + v1])
        rstest.wait_until(lambda: len([e for e in self.vault_gets("pin")
                                       if e["path"] == "/secrets/pin/" + v1]) >= n + 2, 5,
                          "two refreshes of the pinned version after the rotation")
        self.assertEqual(self.read("pinned"), a.encode())
        self.assertNoLog(b, "secret rotated", since=mark, secret="pinned")
        self.assertNotIn(v3, {e["version"] for e in self.vault_gets("pin")
                              if e["path"] == "/secrets/pin/" + v1})

    def test_deletion_removes_and_return_restores(self):
        gone, stay = rstest.random_value(16, "gone-"), rstest.random_value(16, "stay-")
        self.set_secret("gone", gone)
        self.set_secret("stay", stay)
        self.write_azure_config({"gone": "kv:gone", "gone-field": "kv:gone", "stay": "kv:stay"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        mark = b.mark()
        t0 = time.monotonic()
        self.assertTrue(self.azure.delete_secret("gone"))
        b.wait_log("secret removed", since=mark, secret="gone")
        b.wait_log("secret removed", since=mark, secret="gone-field")
        self.assertLess(time.monotonic() - t0, 3.5)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("gone"))
        self.assertErrno(errno.ENOENT, os.open, self.mpath("gone"), os.O_RDONLY)
        self.assertEqual(sorted(os.listdir(self.mnt)), ["stay"])
        self.assertEqual(self.read("stay"), stay.encode())
        nf = [e for e in self.vault_gets("gone") if e["mono"] > t0]
        self.assertTrue(nf and all((e["status"], e["error"]) == (404, "SecretNotFound") for e in nf), nf)
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark, secret="gone")
        back = rstest.random_value(16, "back-")
        self.set_secret("gone", back)
        self.wait_value(back, "gone")
        self.assertEqual(sorted(os.listdir(self.mnt)), ["gone", "gone-field", "stay"])


class AttributesTest(azureenv.AzureTestCase):
    MAX_STALE = 4

    def test_disabled_secret_stale_then_eio_then_enabled(self):
        v = rstest.random_value(16, "dis-")
        self.set_secret("dis", v)
        self.set_secret("dis-start", rstest.random_value(16, "dis-start-"))
        self.azure.disable_secret("dis-start")
        self.write_azure_config({"dis": "kv:dis", "dis-start": "kv:dis-start"},
                                defaults={"refresh": "1s", "max_stale": "%ds" % self.MAX_STALE})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 1), rec)
        # disabled from the start: never served
        f = b.wait_log("fetch failed", secret="dis-start")
        self.assertIn("secret 'dis-start' is disabled (HTTP 403 Forbidden/SecretDisabled), asked as "
                      "client id %s" % self.client_id, f.get("error", ""), f)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("dis-start"))
        # disabled while served: stale until max_stale after the last good read, then EIO
        mark = b.mark()
        self.azure.disable_secret("dis")
        t_disable = time.monotonic()
        last_ok = max(e["mono"] for e in self.vault_gets("dis") if e["status"] == 200)
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="dis")
        err = f.get("error", "")
        self.assertIn("secret 'dis' is disabled (HTTP 403 Forbidden/SecretDisabled), asked as client id %s"
                      % self.client_id, err, f)
        self.assertNotIn("\n", err)
        self.assertEqual(f.get("backend"), azureenv.BACKEND)
        self.assertFailsClosed("dis", v.encode(), last_ok, self.MAX_STALE)
        b.wait_log("secret expired, failing closed", since=mark, secret="dis")
        self.assertEqual(self.try_read("dis"), errno.EIO)
        refused = [e for e in self.vault_gets("dis") if e["mono"] > t_disable]
        self.assertTrue(refused)
        self.assertTrue(all((e["status"], e["error"]) == (403, "SecretDisabled") for e in refused))
        # one token for all of it: a 403 is not a token problem
        self.assertEqual(len(self.token_requests()), 1)
        # enabled again: served again
        self.azure.enable_secret("dis")
        b.wait_log("secret recovered", since=mark, secret="dis", timeout=5)
        self.assertEqual(self.read("dis"), v.encode())
        self.assertNoLog(b, "secret removed")

    def test_expired_and_not_yet_valid_never_served(self):
        now = int(time.time())
        old = rstest.random_value(16, "old-")
        self.set_secret("expired", old, exp=now - 60)
        later = rstest.random_value(16, "later-")
        nbf_later = now + 5                # after the cold start, even on a loaded machine
        self.set_secret("later", later, nbf=nbf_later)
        r1 = rstest.random_value(16, "re1-")
        self.set_secret("rot-exp", r1, exp=now + 3600)
        n1 = rstest.random_value(16, "rn1-")
        self.set_secret("rot-nbf", n1)
        self.write_azure_config({"expired": "kv:expired", "later": "kv:later",
                                 "rot-exp": "kv:rot-exp", "rot-nbf": "kv:rot-nbf"})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (2, 2), rec)
        f = b.wait_log("fetch failed", secret="expired")
        self.assertIn("secret 'expired' expired at ", f.get("error", ""), f)
        f = b.wait_log("fetch failed", secret="later")
        self.assertIn("secret 'later' is not valid before ", f.get("error", ""), f)
        self.assertEqual(sorted(os.listdir(self.mnt)), ["rot-exp", "rot-nbf"])
        # new versions: one already expired, one valid only in 3 s
        mark = b.mark()
        self.set_secret("rot-exp", rstest.random_value(16, "re2-"), exp=int(time.time()) - 1)
        nbf2 = int(time.time()) + 3
        n2 = rstest.random_value(16, "rn2-")
        self.set_secret("rot-nbf", n2, nbf=nbf2)
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="rot-exp")
        self.assertIn("expired at", f.get("error", ""), f)
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="rot-nbf")
        self.assertIn("is not valid before", f.get("error", ""), f)
        # poll every file until both nbf have passed (and a refresh after): no version is served early
        seen = {}
        deadline = max(nbf_later, nbf2) + 3.5
        while time.time() < deadline:
            for name in ("expired", "later", "rot-exp", "rot-nbf"):
                got = self.try_read(name)
                # when the read had returned: a version returned before its nbf was served early
                # (a time taken before the four reads is late for the last ones under load)
                seen.setdefault(name, []).append((time.time(), got))
            if seen["later"][-1][1] == later.encode() and seen["rot-nbf"][-1][1] == n2.encode():
                break
            time.sleep(0.1)
        self.assertTrue(all(g == errno.ENOENT for _, g in seen["expired"]), "an expired secret was served")
        self.assertTrue(all(g == r1.encode() for _, g in seen["rot-exp"]),
                        "the expired version replaced the served one")
        for name, before, after, nbf in (("later", errno.ENOENT, later.encode(), nbf_later),
                                         ("rot-nbf", n1.encode(), n2.encode(), nbf2)):
            got = [g for _, g in seen[name]]
            self.assertEqual(got[-1], after, "%s: the version never came once valid" % name)
            for t, g in seen[name]:
                self.assertIn(g, (before, after), name)
                if g == after:
                    self.assertGreaterEqual(t, nbf, "%s served %.2f s before its nbf" % (name, nbf - t))
        self.assertNoLog(b, "secret removed")


class ParallelTest(azureenv.AzureTestCase):

    def test_cold_start_of_many_secrets_in_parallel_one_token(self):
        self.assertParallelColdStart(
            add=self.set_secret,
            delay=lambda s: self.azure.fault_delay("vault", s) if s else self.azure.clear_faults(),
            write_config=self.write_azure_config, ref=lambda name: "kv:" + name, gets=self.vault_gets)
        self.assertEqual(len(self.challenges()), 1, "one challenge request for the whole cold start")
        self.assertEqual(len(self.token_requests()), 1, "one token request for the whole cold start")


if __name__ == "__main__":
    rstest.main()
