"""Vault backend, authentication: token file, AppRole (role_id / role_id_file),
Kubernetes, JWT, custom auth mount paths; wrong credentials; re-login after a
revoked or expired token (exactly one login, the failed request retried
once); token renewal at ~2/3 of its TTL; a 403 that survives a re-login."""

import errno
import os
import time

import rstest
import vaultenv


class AuthBase(vaultenv.VaultTestCase):

    def setUp(self):
        super().setUp()
        self.vault.add_kv_mount("secret", version=2)
        self.pw = rstest.random_value(16, "pw-")
        self.put_secret("secret", "app", {"password": self.pw})
        self.secrets = {"pw": "vault:secret/app#password"}

    def secret_id_file(self, sid=None):
        sid = sid or rstest.random_value(16, "sid-")
        self.sensitive(sid)
        return sid, self.write_private("secret_id", sid)

    def jwt(self):
        # a JWT-looking string; the fake compares it byte for byte
        v = "eyJhbGciOiJSUzI1NiJ9." + rstest.random_value(20, "") + ".sig" + rstest.random_value(8, "")
        self.sensitive(v)
        return v

    def issued_tokens(self, login_path):
        """Tokens the fake issued through auth/<mount>/login."""
        return [t for t in self.vault.tokens() if t["path"] == login_path]

    def assert_served_with_login_token(self, login_path):
        toks = self.issued_tokens(login_path)
        self.assertEqual(len(toks), 1, "expected one token from %s, got %d" % (login_path, len(toks)))
        for t in toks:
            self.sensitive(t["id"])
        gets = self.gets("secret/data/app")
        self.assertTrue(gets)
        self.assertEqual({e["token"] for e in gets}, {toks[0]["id"]},
                         "secret read with some other token than the login's")
        self.assertEqual(self.read("pw"), self.pw.encode())


class AuthMethodsTest(AuthBase):

    def test_token_file(self):
        self.write_vault_config(self.secrets, auth=self.token_auth())
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.assertEqual({e["token"] for e in self.gets("secret/")}, {self.token})
        # looked up at first use
        self.assertTrue(self.gets("auth/token/lookup-self"), "no auth/token/lookup-self")
        self.assertEqual([e["rel"] for e in self.vault_requests() if e["rel"].endswith("/login")], [])

    def test_approle_role_id(self):
        sid, sid_file = self.secret_id_file()
        self.vault.add_approle("app", "rid-app", sid)
        self.write_vault_config(self.secrets, auth={"method": "approle", "role_id": "rid-app",
                                                    "secret_id_file": sid_file})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        logins = self.logins("approle")
        self.assertEqual(len(logins), 1)
        self.assertIn(logins[0]["method"], ("PUT", "POST"))
        self.assertEqual(logins[0]["json"], {"role_id": "rid-app", "secret_id": sid})
        self.assertIsNone(logins[0]["token"], "a token sent with the login")
        self.assert_served_with_login_token("auth/approle/login")

    def test_approle_role_id_file(self):
        sid, sid_file = self.secret_id_file()
        self.vault.add_approle("app", "rid-from-file", sid)
        rid_file = self.write_private("role_id", "rid-from-file")
        self.write_vault_config(self.secrets, auth={"method": "approle", "role_id_file": rid_file,
                                                    "secret_id_file": sid_file})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.logins("approle")[0]["json"],
                         {"role_id": "rid-from-file", "secret_id": sid})
        self.assert_served_with_login_token("auth/approle/login")

    def test_kubernetes(self):
        jwt = self.jwt()
        self.vault.add_kubernetes_role("web", [jwt])
        self.write_vault_config(self.secrets, auth={"method": "kubernetes", "role": "web",
                                                    "jwt_file": self.write_private("sa-token", jwt)})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        logins = self.logins("kubernetes")
        self.assertEqual(len(logins), 1)
        self.assertEqual(logins[0]["json"], {"role": "web", "jwt": jwt})
        self.assert_served_with_login_token("auth/kubernetes/login")

    def test_jwt(self):
        jwt = self.jwt()
        self.vault.add_jwt_role("ci", [jwt])
        self.write_vault_config(self.secrets, auth={"method": "jwt", "role": "ci",
                                                    "jwt_file": self.write_private("id-token", jwt)})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        logins = self.logins("jwt")
        self.assertEqual(len(logins), 1)
        self.assertEqual(logins[0]["json"], {"role": "ci", "jwt": jwt})
        self.assert_served_with_login_token("auth/jwt/login")

    def test_custom_auth_mounts(self):
        jwt = self.jwt()
        self.vault.add_kubernetes_role("web", [jwt], mount="k8s/cluster-2")
        sid, sid_file = self.secret_id_file()
        self.vault.add_approle("app", "rid-prod", sid, mount="approle-prod")
        for name, auth, mount in (
                ("k8s", {"method": "kubernetes", "role": "web", "mount": "k8s/cluster-2",
                         "jwt_file": self.write_private("sa-token", jwt)}, "k8s/cluster-2"),
                ("approle", {"method": "approle", "role_id": "rid-prod", "mount": "approle-prod",
                             "secret_id_file": sid_file}, "approle-prod")):
            with self.subTest(method=name):
                cfg = self.write_vault_config(self.secrets, auth=auth,
                                              path=os.path.join(self.dir, name + ".json"))
                r = rstest.run_cli("check", "--config", cfg, "--fetch")
                out = r.stdout.decode() + r.stderr.decode()
                self.assertEqual(r.returncode, 0, out)
                self.assertEqual(len(self.logins(mount)), 1, out)
                for e in self.vault_requests():
                    self.assertNotIn(e["rel"], ("auth/kubernetes/login", "auth/approle/login"),
                                     "logged in at the default mount path")
        for t in self.vault.tokens():
            self.sensitive(t["id"])


class WrongCredentialsTest(AuthBase):
    """Wrong credentials: a clear error (Vault's own text), nothing served."""

    def _expect_failure(self, auth, vault_text):
        self.write_vault_config(self.secrets, auth=auth)
        r = rstest.run_cli("check", "--config", self.config_path, "--fetch")
        out, err = r.stdout.decode(), r.stderr.decode()
        self.assertEqual(r.returncode, 1, out + err)
        row = [ln for ln in out.splitlines() if ln.startswith("pw ")]
        self.assertEqual(len(row), 1, out)
        self.assertIn("error: ", row[0])
        self.assertIn(vault_text, row[0], "error does not carry Vault's message")
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (0, 1), rec)
        f = b.wait_log("fetch failed", secret="pw")
        self.assertIn(vault_text, f.get("error", ""), f)
        self.assertEqual(os.listdir(self.mnt), [])
        self.assertErrno(errno.ENOENT, os.open, self.mpath("pw"), os.O_RDONLY)
        # no secret read ever succeeded
        self.assertEqual([e for e in self.gets("secret/data/app") if e["status"] == 200], [])
        return b

    def test_bad_token(self):
        bad = "hvs." + rstest.random_value(12, "")
        self.sensitive(bad)
        self._expect_failure(self.token_auth(self.write_private("bad-token", bad)),
                             "permission denied")

    def test_bad_approle_secret_id(self):
        self.vault.add_approle("app", "rid-app", "the-right-secret-id")
        self.sensitive("the-right-secret-id")
        _, sid_file = self.secret_id_file()
        b = self._expect_failure({"method": "approle", "role_id": "rid-app",
                                  "secret_id_file": sid_file}, "invalid role or secret ID")
        # a rejected login is not hammered: at most one login per attempt (1 s backoff)
        n = len(self.logins("approle"))
        time.sleep(2)
        self.assertLessEqual(len(self.logins("approle")) - n, 4)
        self.assertTrue(b.running())

    def test_bad_kubernetes_jwt(self):
        self.vault.add_kubernetes_role("web", [self.jwt()])
        self._expect_failure({"method": "kubernetes", "role": "web",
                              "jwt_file": self.write_private("sa-token", self.jwt())},
                             "permission denied")

    def test_bad_jwt(self):
        self.vault.add_jwt_role("ci", [self.jwt()])
        self._expect_failure({"method": "jwt", "role": "ci",
                              "jwt_file": self.write_private("id-token", self.jwt())},
                             "error validating token")


class ReloginTest(AuthBase):
    """403 / expiry => exactly one fresh login, then the request is retried once."""

    def _approle(self, ttl=3600, renewable=True, max_ttl=0):
        sid, sid_file = self.secret_id_file()
        self.vault.add_approle("app", "rid-app", sid, ttl=ttl, max_ttl=max_ttl, renewable=renewable)
        self.write_vault_config(self.secrets, auth={"method": "approle", "role_id": "rid-app",
                                                    "secret_id_file": sid_file})

    def _tokens_sensitive(self):
        for t in self.vault.tokens():
            self.sensitive(t["id"])
        for e in self.vault_requests():
            if e["token"]:
                self.sensitive(e["token"])

    def _check_one_retry(self, t_revoke, old, new, login_rel):
        """After the revocation: one request with the old token fails with 403;
        the broker asks Vault about that token (lookup-self with the old token:
        403, so the token is dead, not merely denied this path); then (for a
        login method) exactly one login; then the same request is retried with
        the new token and succeeds; every later request uses the new token and
        succeeds."""
        after = [e for e in self.vault_requests() if e["mono"] > t_revoke]
        desc = [(e["rel"], e["status"], "old" if e["token"] == old else
                 "new" if e["token"] == new else e["token"] and "other") for e in after]
        self.assertGreaterEqual(len(after), 2, desc)
        self.assertEqual((after[0]["status"], after[0]["token"]), (403, old), desc)
        self.assertEqual((after[1]["rel"], after[1]["status"], after[1]["token"]),
                         ("auth/token/lookup-self", 403, old), desc)
        i = 2
        if login_rel:
            self.assertEqual(after[2]["rel"], login_rel, desc)
            self.assertEqual(after[2]["status"], 200, desc)
            i = 3
        # a lookup of the new token may come first (looked up at first use)
        while i < len(after) - 1 and after[i]["rel"] == "auth/token/lookup-self" \
                and after[i]["token"] == new:
            i += 1
        self.assertEqual(after[i]["rel"], after[0]["rel"], "not a retry of the failed request: %r"
                         % (desc,))
        for e in after[i:]:
            self.assertNotEqual(e["rel"], login_rel, "more than one login: %r" % (desc,))
            self.assertEqual(e["token"], new, desc)
            self.assertIn(e["status"], (200, 204), desc)

    def test_revoked_token_one_relogin_and_retry(self):
        self._approle()
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self._tokens_sensitive()
        [old] = self.issued_tokens("auth/approle/login")
        mark = b.mark()
        t_revoke = time.monotonic()
        self.assertTrue(self.vault.revoke_token(old["id"]))
        rstest.wait_until(lambda: len(self.logins("approle")) >= 2, 6, "a re-login")
        rstest.wait_until(lambda: [e for e in self.gets("secret/data/app")
                                   if e["mono"] > t_revoke and e["status"] == 200], 6,
                          "a successful read after the re-login")
        time.sleep(1.5)                          # more refreshes: no further logins
        self._tokens_sensitive()
        self.assertEqual(len(self.logins("approle")), 2, "not exactly one re-login")
        [new] = self.issued_tokens("auth/approle/login")
        self._check_one_retry(t_revoke, old["id"], new["id"], "auth/approle/login")
        # retried within the same fetch: never reported as a failure
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark)
        self.assertEqual(self.read("pw"), self.pw.encode())

    def test_token_method_rereads_token_file(self):
        self.write_vault_config(self.secrets, auth=self.token_auth())
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        new = self.vault.add_token(ttl=3600, policies=["app"])
        self.sensitive(new)
        mark = b.mark()
        self.write_private("token.new", new)
        os.replace(os.path.join(self.dir, "token.new"), self.token_file)
        t_revoke = time.monotonic()
        self.vault.revoke_token(self.token)
        rstest.wait_until(lambda: [e for e in self.gets("secret/data/app")
                                   if e["mono"] > t_revoke and e["token"] == new
                                   and e["status"] == 200], 6, "a read with the new token")
        self._check_one_retry(t_revoke, self.token, new, None)
        self.assertEqual(self.logins("approle"), [])
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark)
        self.assertEqual(self.read("pw"), self.pw.encode())

    def test_expired_token_one_relogin_per_token(self):
        # TTL 9 s: a re-login at 2/3 (6 s, next at 12 s) and one at expiry
        # (9-10 s, next at 18 s) both give exactly two logins within 11 s
        ttl = 9
        self._approle(ttl=ttl, max_ttl=ttl, renewable=False)
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        t_login = self.logins("approle")[0]["mono"]
        mark = b.mark()
        # past the first token's expiry and one refresh
        rstest.wait_until(lambda: len(self.logins("approle")) >= 2, ttl + 3, "a re-login")
        while time.monotonic() < t_login + ttl + 2.0:
            self.assertEqual(self.read("pw"), self.pw.encode())
            time.sleep(0.2)
        self._tokens_sensitive()
        logins = self.logins("approle")
        self.assertEqual(len(logins), 2, "logins at %s s after the first"
                         % [round(e["mono"] - t_login, 2) for e in logins])
        # the re-login came before expiry or right after it, not storming
        self.assertGreater(logins[1]["mono"] - t_login, ttl * 0.5)
        self.assertLess(logins[1]["mono"] - t_login, ttl + 1.5)
        tok2 = logins[1]["seq"]
        for e in self.gets("secret/data/app"):
            if e["seq"] > tok2:
                self.assertEqual(e["status"], 200, "read failed after the re-login")
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark)
        self.assertNoLog(b, "fetch failed", since=mark)

    def test_renewal_failure_one_relogin(self):
        ttl = 6
        self._approle(ttl=ttl, max_ttl=3600, renewable=True)
        self.vault.force_status("auth/token/renew-self", 500,
                                body={"errors": ["renewal backend unavailable"]})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        mark = b.mark()
        t_login = self.logins("approle")[0]["mono"]
        rstest.wait_until(lambda: len(self.logins("approle")) >= 2, ttl + 2, "a re-login")
        # the renewal was tried (at ~2/3 TTL) and failed before the re-login
        renew = self.vault.requests(prefix="auth/token/renew-self")
        self.assertTrue(renew, "no renewal attempt at auth/token/renew-self; requests: %r"
                        % [e["rel"] for e in self.vault_requests()])
        self.assertEqual(renew[0]["status"], 500)
        login2 = self.logins("approle")[1]
        self.assertLess(renew[0]["seq"], login2["seq"])
        dt = login2["mono"] - t_login
        self.assertGreaterEqual(dt, ttl * 0.55, "re-login %.2fs after the first" % dt)
        self.assertLess(dt, ttl, "re-login %.2fs after the first: after expiry" % dt)
        # exactly one login for that failure
        time.sleep(1.0)
        self.assertEqual(len(self.logins("approle")), 2)
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark)
        self.assertEqual(self.read("pw"), self.pw.encode())

    def test_policy_403_is_an_error_without_relogin(self):
        # A 403 while the token is fine (the policy denies the path) is not a
        # token problem: the broker checks the token with lookup-self (200),
        # does not log in again, and reports Vault's text. (Logging in on
        # every denial would pile up tokens and burn secret-id uses.)
        self._approle()
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        text = "1 error occurred: policy rstest-7731 denies read on secret/data/app"
        mark = b.mark()
        n_logins = len(self.logins("approle"))
        t0 = time.monotonic()
        self.vault.force_status("secret/data/app", 403, body={"errors": [text]})
        rec = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertIn(text, rec.get("error", ""), rec)
        time.sleep(1.5)
        self.vault.clear_force_status()
        self._tokens_sensitive()
        self.assertEqual(len(self.logins("approle")), n_logins, "re-login on a policy denial")
        checks = [e for e in self.vault.requests(prefix="auth/token/lookup-self")
                  if e["mono"] > t0]
        self.assertTrue(checks, "the token was not checked after the 403")
        self.assertTrue(all(e["status"] == 200 for e in checks), checks)
        # still served (stale) meanwhile, and fine again afterwards
        self.assertEqual(self.read("pw"), self.pw.encode())
        b.wait_log("secret recovered", since=mark, secret="pw")

    def test_403_after_relogin_is_an_error(self):
        # The token is revoked and the path denied: 403, the token check says
        # dead, one login, one retry, 403 again: an error with Vault's text,
        # and no second login for that fetch.
        self._approle()
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self._tokens_sensitive()
        [old] = self.issued_tokens("auth/approle/login")
        text = "1 error occurred: policy rstest-7731 denies read on secret/data/app"
        mark = b.mark()
        t0 = time.monotonic()
        self.vault.force_status("secret/data/app", 403, body={"errors": [text]})
        self.assertTrue(self.vault.revoke_token(old["id"]))
        rec = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertIn(text, rec.get("error", ""), rec)
        self.vault.clear_force_status()
        self._tokens_sensitive()
        after = [e for e in self.vault_requests() if e["mono"] > t0]
        rels = [(e["rel"], e["status"]) for e in after]
        i = rels.index(("secret/data/app", 403))
        self.assertEqual(rels[i + 1], ("auth/token/lookup-self", 403), rels)
        self.assertEqual(rels[i + 2], ("auth/approle/login", 200), rels)
        self.assertEqual(rels[i + 3], ("secret/data/app", 403), rels)
        self.assertEqual(len(self.logins("approle")), 2, rels)
        self.assertEqual(self.read("pw"), self.pw.encode())
        b.wait_log("secret recovered", since=mark, secret="pw")


class RenewalTest(AuthBase):

    def _renewals(self, accessor):
        return [ev for ev in self.vault.token_events()
                if ev["accessor"] == accessor and ev["event"] == "renewed"]

    def _check_renewal(self, accessor, t_issue, ttl, slack=0.0, second=True):
        """First renewal at ~2/3 of ttl after t_issue (slack: extra seconds
        allowed late, e.g. when the TTL was learnt by a later lookup)."""
        try:
            evs = rstest.wait_until(lambda: self._renewals(accessor), ttl + 2, "a token renewal")
        except AssertionError as e:
            self.fail("%s; requests (s after issue, path, status): %r; token events: %r"
                      % (e, [(round(r["mono"] - t_issue, 2), r["rel"], r["status"])
                             for r in self.vault_requests()],
                         [(round(ev["mono"] - t_issue, 2), ev["event"], ev["via"])
                          for ev in self.vault.token_events()]))
        dt = evs[0]["mono"] - t_issue
        self.assertGreaterEqual(dt, ttl * 0.55, "renewed %.2fs after issue, TTL %ds" % (dt, ttl))
        self.assertLessEqual(dt, ttl * 0.8 + slack, "renewed %.2fs after issue, TTL %ds"
                             % (dt, ttl))
        self.assertEqual(evs[0]["via"], "auth/token/renew-self")
        # the second one: ~2/3 of the renewed TTL after the first
        granted = evs[0]["ttl"]
        if not second or granted > 20:   # a long increment: the next one is not soon
            return
        evs = rstest.wait_until(lambda: self._renewals(accessor)[1:], granted + 2,
                                "a second token renewal")
        dt2 = evs[0]["mono"] - self._renewals(accessor)[0]["mono"]
        self.assertGreaterEqual(dt2, granted * 0.55, "second renewal %.2fs after the first" % dt2)
        self.assertLessEqual(dt2, granted * 0.8, "second renewal %.2fs after the first" % dt2)

    def test_token_file_token_renewed_at_two_thirds(self):
        ttl = 6
        tok = self.vault.add_token(ttl=ttl, max_ttl=3600, renewable=True, policies=["app"])
        self.sensitive(tok)
        t_issue = time.monotonic()
        self.write_vault_config(self.secrets, auth=self.token_auth(self.write_private("t6", tok)))
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        acc = self.vault.token_info(tok)["accessor"]
        # The token upkeep looks the token up on its own thread, not on the
        # cold start's path: on a loaded machine it may come just after.
        lookups = rstest.wait_until(lambda: self.gets("auth/token/lookup-self"), rstest.LOG_TIMEOUT,
                                    "the token's first lookup")
        self._check_renewal(acc, t_issue, ttl, slack=lookups[0]["mono"] - t_issue, second=False)
        self.assertIsNotNone(self.vault.token_info(tok), "token expired although renewed")
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.assertNoLog(b, "refresh failed, serving stale value")

    def test_approle_token_renewed_at_two_thirds(self):
        ttl = 6
        sid, sid_file = self.secret_id_file()
        self.vault.add_approle("app", "rid-app", sid, ttl=ttl, max_ttl=3600)
        self.write_vault_config(self.secrets, auth={"method": "approle", "role_id": "rid-app",
                                                    "secret_id_file": sid_file})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        [tok] = [t for t in self.vault.tokens() if t["path"] == "auth/approle/login"]
        self.sensitive(tok["id"])
        t_issue = self.logins("approle")[0]["mono"]
        self._check_renewal(tok["accessor"], t_issue, ttl)
        self.assertEqual(len(self.logins("approle")), 1, "logged in again although renewed")
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.assertNoLog(b, "refresh failed, serving stale value")


if __name__ == "__main__":
    rstest.main()
