"""Azure Key Vault backend, identities and tokens: client_secret (file, re-read at each token request, and
AZURE_CLIENT_SECRET), workload_identity (the federated token file re-read at each token request),
managed_identity (system- and user-assigned), `default` picking each of the three and failing with one line
naming all three; the AZURE_* environment fallbacks; a token replaced before it expires; a 401 answered
with exactly one new token and one retry; a challenge naming a foreign resource refused before any token
is sent to the vault; the token request overlapping the challenge, its token dropped when the challenge
names another scope; ca_file applied to the token endpoint and IMDS. Runs against tests/fakes/azure_fake.py over
TLS."""

import errno
import os
import time

import azureenv
import rstest

TOKEN_MSG = "azure token for "


class AuthBase(azureenv.AzureTestCase):

    def setUp(self):
        super().setUp()
        self.pw = rstest.random_value(16, "pw-")
        self.set_secret("app", self.pw)
        self.secrets = {"pw": "kv:app"}

    def token_logs(self, b, since=0):
        return [r["msg"] for r in b.logs()[since:]
                if isinstance(r.get("msg"), str) and r["msg"].startswith(TOKEN_MSG)]

    def assert_served_by(self, identity, kind):
        """Every Key Vault read was made with a token the fake issued to identity (of kind)."""
        self.assertEqual(self.read("pw"), self.pw.encode())
        gets = self.vault_gets("app")
        self.assertTrue(gets)
        issued = {t["value"]: t for t in self.azure.tokens()}
        for e in gets:
            t = issued.get(e["token"])
            self.assertIsNotNone(t, "a token the fake never issued")
            self.assertEqual((t["identity"], t["kind"], t["audience"]),
                             (identity, kind, azureenv.VAULT_RESOURCE))
            self.assertEqual(e["status"], 200)

    def check_row(self, env=None, name="pw"):
        """`check --fetch` of the current config: (exit code, the row of secret name, all output)."""
        r = self.cli("check", "--config", self.config_path, "--fetch", env=env)
        out, err = r.stdout.decode(), r.stderr.decode()
        rows = [ln for ln in out.splitlines() if ln.startswith(name + " ")]
        self.assertEqual(len(rows), 1, out + err)
        return r.returncode, rows[0], out + err


class ClientSecretTest(AuthBase):

    def test_client_secret_file_wins_and_is_reread(self):
        # configured keys win over the variables
        env = {"AZURE_CLIENT_SECRET": rstest.random_value(16, "env-secret-"),
               "AZURE_CLIENT_ID": azureenv.new_client_id(), "AZURE_TENANT_ID": "contoso.example",
               "AZURE_AUTHORITY_HOST": "https://127.0.0.1:1"}
        self.sensitive(env["AZURE_CLIENT_SECRET"])
        self.write_azure_config(self.secrets)
        b = self.start_broker(env=env)
        self.assertEqual(self.cold_start(b)["failed"], 0)
        [login] = self.token_requests()
        self.assertEqual(login["form"]["client_secret"], self.client_secret)   # the file, trimmed
        self.assertEqual(login["form"]["client_id"], self.client_id)
        self.assertEqual(login["tenant"], self.tenant)
        self.assert_served_by(self.client_id, "client_secret")
        self.assertEqual(self.token_logs(b), ["azure token for client id %s, valid 3599 s" % self.client_id])
        # The secret is rotated: a new one in the file, the old one refused from now on. The next token
        # request (forced by expiring the token) reads the file again.
        new = rstest.random_value(20, "cs2~")
        self.azure.add_client_secret_app(None, self.client_id, new)
        self.azure.remove_client_secret(None, self.client_id, self.client_secret)
        self.replace_file(self.secret_file, new)
        mark = b.mark()
        t0 = time.monotonic()
        self.azure.expire_tokens()
        rstest.wait_until(lambda: [e for e in self.vault_gets("app") if e["mono"] > t0 and e["status"] == 200],
                          5, "a read with a new token")
        after = [e for e in self.token_requests() if e["mono"] > t0]
        self.assertEqual([(e["status"], e["form"]["client_secret"]) for e in after], [(200, new)])
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark)
        self.assertEqual(self.read("pw"), self.pw.encode())

    def test_environment_fallbacks(self):
        # nothing but the method in the configuration: AZURE_TENANT_ID, AZURE_CLIENT_ID,
        # AZURE_CLIENT_SECRET and AZURE_AUTHORITY_HOST give the rest
        self.write_azure_config(self.secrets, auth={"method": "client_secret"})
        env = {"AZURE_TENANT_ID": self.tenant, "AZURE_CLIENT_ID": self.client_id,
               "AZURE_CLIENT_SECRET": self.client_secret, "AZURE_AUTHORITY_HOST": self.azure.authority_host}
        # without them the configuration is refused, naming the variable
        r = self.cli("check", "--config", self.config_path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("AZURE_TENANT_ID", r.stderr.decode() + r.stdout.decode())
        b = self.start_broker(env=env)
        self.assertEqual(self.cold_start(b)["failed"], 0)
        [login] = self.token_requests()
        self.assertEqual((login["tenant"], login["form"]["client_id"], login["form"]["client_secret"]),
                         (self.tenant, self.client_id, self.client_secret))
        self.assert_served_by(self.client_id, "client_secret")


class WorkloadIdentityTest(AuthBase):

    def test_federated_token_file_reread_at_each_token_request(self):
        cid, first, path = self.add_federated()
        self.write_azure_config(self.secrets, auth=self.workload_auth(cid, path))
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        [login] = self.token_requests()
        self.assertEqual(login["form"], {"grant_type": "client_credentials", "client_id": cid,
                                         "scope": azureenv.VAULT_SCOPE,
                                         "client_assertion_type": azureenv.ASSERTION_TYPE,
                                         "client_assertion": first})
        self.assert_served_by(cid, "federated")
        # Kubernetes rotates the projected token: a new one in the file, and Entra takes only that one
        second = self.new_assertion()
        self.azure.add_federated_app(None, cid, second)
        self.azure.remove_federated_assertion(None, cid, first)
        self.replace_file(path, second)
        mark = b.mark()
        t0 = time.monotonic()
        self.azure.expire_tokens()
        rstest.wait_until(lambda: [e for e in self.vault_gets("app") if e["mono"] > t0 and e["status"] == 200],
                          5, "a read with a new token")
        after = [e for e in self.token_requests() if e["mono"] > t0]
        self.assertEqual([(e["status"], e["form"]["client_assertion"]) for e in after], [(200, second)],
                         "the new token was not asked for with the file's new assertion")
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark)
        self.assertEqual(self.read("pw"), self.pw.encode())

    def test_environment_fallbacks(self):
        cid, assertion, path = self.add_federated()
        self.write_azure_config(self.secrets, auth={"method": "workload_identity"})
        b = self.start_broker(env={"AZURE_TENANT_ID": self.tenant, "AZURE_CLIENT_ID": cid,
                                   "AZURE_FEDERATED_TOKEN_FILE": path,
                                   "AZURE_AUTHORITY_HOST": self.azure.authority_host})
        self.assertEqual(self.cold_start(b)["failed"], 0)
        [login] = self.token_requests()
        self.assertEqual((login["tenant"], login["form"]["client_id"], login["form"]["client_assertion"]),
                         (self.tenant, cid, assertion))
        self.assertNotIn("client_secret", login["form"])
        self.assert_served_by(cid, "federated")


class ManagedIdentityTest(AuthBase):

    def test_system_and_user_assigned(self):
        system = self.azure.add_managed_identity()
        uami = azureenv.new_client_id()
        self.azure.add_managed_identity(uami)
        self.azure.deny(system, "only-uami")
        only = rstest.random_value(16, "only-uami-")
        self.set_secret("only-uami", only)
        self.write_azure_config(
            {"sys": "kv:app", "user": "kvu:app", "sys-denied": "kv:only-uami", "user-only": "kvu:only-uami"},
            backend=self.kv_backend(auth=self.managed_auth()),
            extra_backends={"kvu": self.kv_backend(auth=self.managed_auth(uami))})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (3, 1), rec)
        self.assertEqual(self.read("sys"), self.pw.encode())
        self.assertEqual(self.read("user"), self.pw.encode())
        self.assertEqual(self.read("user-only"), only.encode())
        f = b.wait_log("fetch failed", secret="sys-denied")
        self.assertIn("secret 'only-uami': access denied to managed identity with client id %s (HTTP 403 "
                      "Forbidden/ForbiddenByPolicy" % system, f.get("error", ""), f)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("sys-denied"))
        imds = self.imds_requests()
        self.assertEqual(len(imds), 2, [e["query"] for e in imds])
        by_identity = {}
        for e in imds:
            self.assertEqual((e["method"], e["path"], e["status"]), ("GET", azureenv.IMDS_PATH, 200))
            self.assertEqual(e["headers"].get("metadata"), "true")
            self.assertEqual(e["query"]["api-version"], ["2018-02-01"])
            self.assertEqual(e["query"]["resource"], [azureenv.VAULT_RESOURCE])
            by_identity[e["identity"]] = e["query"].get("client_id")
        self.assertEqual(by_identity, {system: None, uami: [uami]})
        self.assertEqual(self.token_requests(), [], "a managed identity asked Entra")
        kinds = {(t["identity"], t["kind"]) for t in self.azure.tokens()}
        self.assertEqual(kinds, {(system, "managed_identity"), (uami, "managed_identity")})
        self.assertEqual(sorted(self.token_logs(b)),
                         sorted(["azure token for managed identity with client id %s, valid 3599 s" % i
                                 for i in (system, uami)]))


class DefaultChainTest(AuthBase):

    def start_default(self, env):
        self.write_azure_config(self.secrets, auth=self.default_auth())
        return self.start_broker(env=env)

    def assert_chose(self, b, text):
        [rec] = self.default_logs(b)
        self.assertEqual(rec["msg"], azureenv.DEFAULT_MSG + text)
        self.assertEqual(rec.get("backend"), azureenv.BACKEND)

    def test_default_picks_environment(self):
        self.azure.add_managed_identity()            # there, but the chain's first step wins
        b = self.start_default({"AZURE_TENANT_ID": self.tenant, "AZURE_CLIENT_ID": self.client_id,
                                "AZURE_CLIENT_SECRET": self.client_secret,
                                "AZURE_AUTHORITY_HOST": self.azure.authority_host})
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assert_chose(b, "environment (client id %s)" % self.client_id)
        self.assertEqual(self.imds_requests(), [])
        self.assert_served_by(self.client_id, "client_secret")

    def test_default_picks_workload_identity(self):
        self.azure.add_managed_identity()
        cid, assertion, path = self.add_federated()
        b = self.start_default({"AZURE_TENANT_ID": self.tenant, "AZURE_CLIENT_ID": cid,
                                "AZURE_FEDERATED_TOKEN_FILE": path,
                                "AZURE_AUTHORITY_HOST": self.azure.authority_host})
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assert_chose(b, "workload identity (client id %s)" % cid)
        self.assertEqual(self.imds_requests(), [])
        [login] = self.token_requests()
        self.assertEqual(login["form"]["client_assertion"], assertion)
        self.assert_served_by(cid, "federated")

    def test_default_picks_managed_identity(self):
        # AZURE_CLIENT_ID alone (no tenant): the first two are not configured, and the managed
        # identity step takes it as a user-assigned identity's client id, as DefaultAzureCredential does
        self.azure.add_managed_identity()
        uami = azureenv.new_client_id()
        self.azure.add_managed_identity(uami)
        b = self.start_default({"AZURE_CLIENT_ID": uami})
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assert_chose(b, "managed identity (managed identity with client id %s)" % uami)
        self.assertEqual(self.token_requests(), [])
        [imds] = self.imds_requests()
        self.assertEqual(imds["query"].get("client_id"), [uami])
        self.assert_served_by(uami, "managed_identity")

    def test_default_none_works_one_line_naming_all_three(self):
        # nothing configured and no managed identity: every step fails
        b = self.start_default({})
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (0, 1), rec)
        err = b.wait_log("fetch failed", secret="pw").get("error", "")
        self.assertNotIn("\n", err)
        self.assertRegex(err, r"default chain: environment: not configured: no tenant_id \(AZURE_TENANT_ID\); "
                              r"workload identity: not configured: no tenant_id \(AZURE_TENANT_ID\); "
                              r"managed identity: managed identity token from https://127\.0\.0\.1:\d+"
                              r"/metadata/identity/oauth2/token: HTTP 400 invalid_request: Identity not found")
        self.assertEqual(self.default_logs(b), [])
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("pw"))
        self.assertEqual(self.vault_gets(), [])
        b.stop()
        # A credential Entra refuses ends the chain (the SDKs' rule): the error says why, and the
        # managed identity, although there, is not tried.
        self.azure.add_managed_identity()
        self.azure.clear_requests()
        wrong = rstest.random_value(16, "wrong-secret-")
        self.sensitive(wrong)
        env = {"AZURE_TENANT_ID": self.tenant, "AZURE_CLIENT_ID": self.client_id,
               "AZURE_CLIENT_SECRET": wrong, "AZURE_AUTHORITY_HOST": self.azure.authority_host}
        code, row, out = self.check_row(env=env)
        self.assertEqual(code, 1, out)
        self.assertRegex(row, r"error: .*default chain: environment: token request to https://127\.0\.0\.1:\d+: "
                              r"HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided\. .*; "
                              r"workload identity: not configured: no federated token file "
                              r"\(AZURE_FEDERATED_TOKEN_FILE\); managed identity: not tried$")
        self.assertEqual(self.imds_requests(), [])


class TokenLifecycleTest(AuthBase):

    def test_token_replaced_before_it_expires(self):
        ttl = 6
        self.azure.token_ttl = ttl
        self.write_azure_config(self.secrets, defaults={"refresh": "500ms", "max_stale": "1h"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        t_first = self.token_requests()[0]["time"]
        # read all along, past the first token's end
        while time.time() < t_first + ttl + 2.5:
            self.assertEqual(self.read("pw"), self.pw.encode())
            time.sleep(0.1)
        logins = self.token_requests()
        toks = self.azure.tokens()
        self.assertGreaterEqual(len(logins), 2, self.describe_requests())
        self.assertTrue(all(e["status"] == 200 for e in logins))
        # each new token came before the one before it ended: at about half its life (3 s)
        for i in range(1, len(toks)):
            dt = logins[i]["time"] - logins[i - 1]["time"]
            self.assertGreaterEqual(dt, ttl / 2 - 0.6, "replaced %.2f s after the last one" % dt)
            self.assertLess(logins[i]["time"], toks[i - 1]["expiry"] - 1,
                            "token %d replaced only %.2f s before it ended"
                            % (i - 1, toks[i - 1]["expiry"] - logins[i]["time"]))
        self.assertLessEqual(len(logins), 4, "more tokens than a half-life schedule asks")
        # no read ever met an expired token, nor needed a retry
        self.assertEqual([e["status"] for e in self.vault_gets() if e["status"] != 200], [])
        self.assertNoLog(b, "refresh failed, serving stale value")
        self.assertEqual([r for r in b.logs() if "refused" in str(r.get("msg"))], [])

    def test_401_one_new_token_and_one_retry(self):
        for n in ("app2", "app3"):
            self.set_secret(n, rstest.random_value(16, n + "-"))
        self.write_azure_config({"pw": "kv:app", "p2": "kv:app2", "p3": "kv:app3"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        [old] = self.azure.tokens()
        mark = b.mark()
        t0 = time.monotonic()
        self.assertEqual(self.azure.expire_tokens(), 1)
        rstest.wait_until(lambda: len([e for e in self.vault_gets() if e["mono"] > t0 and e["status"] == 200])
                          >= 3, 5, "reads with a new token")
        time.sleep(1.5)                    # more refreshes: no further token request
        logins = self.token_requests()
        self.assertEqual([e["status"] for e in logins], [200, 200], "not exactly one new token")
        new = logins[1]["issued_token"]
        self.assertEqual([t["value"] for t in self.azure.tokens()], [old["value"], new])
        gets = self.vault_gets()
        desc = [(e["secret"], e["status"], e["error"], "old" if e["token"] == old["value"] else "new")
                for e in gets]
        # Before the expiry every read was a 200 with the old token; since, the old token was refused
        # (401 with the challenge) and the new one accepted.
        refused = [e for e in gets if e["status"] != 200]
        self.assertTrue(refused, desc)
        self.assertTrue(all((e["status"], e["error"], e["token"]) == (401, "Unauthorized", old["value"])
                            for e in refused), desc)
        self.assertTrue(all(e["status"] == 200 for e in gets if e["token"] == new), desc)
        first = refused[0]
        self.assertGreater(logins[1]["seq"], first["seq"], "a new token before any refusal")
        # the refused read was retried at once with the new token, in the same fetch
        retry = [e for e in gets if e["secret"] == first["secret"] and e["seq"] > first["seq"]][0]
        self.assertEqual((retry["token"], retry["status"]), (new, 200), desc)
        self.assertGreater(retry["seq"], logins[1]["seq"])
        self.assertLess(retry["mono"] - first["mono"], 0.8, desc)
        b.wait_log("azure token refused by Key Vault (HTTP 401), getting a new one", since=mark)
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark)
        self.assertEqual(self.read("pw"), self.pw.encode())


class ChallengeTest(AuthBase):

    def assert_no_token_for(self, host):
        for e in self.token_requests():
            self.assertNotIn(host, e["form"].get("scope", ""))
        for e in self.imds_requests():
            self.assertNotIn(host, str(e["query"]))
        for t in self.azure.tokens():
            self.assertNotIn(host, t["audience"])

    def guessed_requests_only(self):
        """Every token request was the one guess the broker makes beside its first challenge: for the
        configured challenge_resource's scope, never for what a foreign challenge named."""
        reqs = self.token_requests()
        self.assertLessEqual(len(reqs), 1, "more than the one guessed token request")
        for e in reqs:
            self.assertEqual(e["form"].get("scope"), azureenv.VAULT_RESOURCE + "/.default", e["form"])
        return reqs

    def test_foreign_challenge_at_start_no_token_sent(self):
        self.azure.fault_challenge_foreign(resource="https://evil.example", count=None)
        self.write_azure_config(self.secrets)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (0, 1), rec)
        err = b.wait_log("fetch failed", secret="pw").get("error", "")
        self.assertIn("Key Vault's challenge names resource 'evil.example', which is neither 127.0.0.1 nor a "
                      "parent domain of it: no token sent", err)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("pw"))
        time.sleep(1.2)                   # a retry or two: still no token sent, no new guess
        self.assertTrue(len(self.challenges()) >= 2, self.describe_requests())
        self.guessed_requests_only()
        self.assertEqual(self.vault_gets(), [], "a token was sent to the vault")
        b.stop()
        # a challenge naming the vault's resource but another scope is as foreign
        self.azure.clear_faults()
        self.azure.clear_requests()
        self.azure.fault_challenge_foreign(resource=azureenv.VAULT_RESOURCE,
                                           scope="https://evil.example/.default", count=None)
        code, row, out = self.check_row()
        self.assertEqual(code, 1, out)
        self.assertIn("challenge names resource 'evil.example'", row)
        self.guessed_requests_only()
        self.assertEqual(self.vault_gets(), [], "a token was sent to the vault")
        for t in self.azure.tokens():
            self.assertNotIn("evil.example", t["audience"])

    def test_token_request_overlaps_the_challenge(self):
        # Key Vault answers after 0.6 s: the token request must arrive while the challenge is held there,
        # not after its 401 (the cold start's saved round trip), and the challenge must still be first.
        self.azure.fault_delay("vault", 0.6, count=1)
        self.write_azure_config(self.secrets)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 0), rec)
        self.assertEqual(self.read("pw"), self.pw.encode())
        ch, tok = self.challenges(), self.token_requests()
        self.assertEqual((len(ch), len(tok)), (1, 1), self.describe_requests())
        self.assertLess(tok[0]["mono"] - ch[0]["mono"], 0.4,
                        "the token request waited for the challenge: " + "; ".join(self.describe_requests()))
        self.assertEqual(tok[0]["form"].get("scope"), azureenv.VAULT_RESOURCE + "/.default")
        gets = self.vault_gets()
        self.assertEqual([e["status"] for e in gets], [200])
        self.assertGreater(gets[0]["mono"], ch[0]["mono"] + 0.6 - 0.05, "a token went out before the 401")

    def test_wrong_guess_dropped_never_sent(self):
        # The challenge names an allowed resource but another scope than the guess: the guessed token is
        # dropped unused and one is asked for the challenge's scope.
        other = azureenv.VAULT_RESOURCE + "/other/.default"
        self.azure.fault_challenge_foreign(resource=azureenv.VAULT_RESOURCE, scope=other, count=1)
        self.write_azure_config(self.secrets)
        b = self.start_broker()
        self.cold_start(b)
        dropped = b.wait_log("azure token for the guessed scope dropped")
        self.assertIn("names scope %s, not the guessed %s/.default" % (other, azureenv.VAULT_RESOURCE),
                      dropped.get("error", ""))
        scopes = [e["form"].get("scope") for e in self.token_requests()]
        self.assertEqual(scopes[:2], [azureenv.VAULT_RESOURCE + "/.default", other], self.describe_requests())
        guessed = [t["value"] for t in self.azure.tokens()][:1]
        for e in self.azure.requests("vault"):
            self.assertNotIn(e["token"], guessed, "the guessed token was sent to the vault")

    def test_foreign_challenge_later_refused_stale_served(self):
        self.write_azure_config(self.secrets)
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        mark = b.mark()
        t0 = time.monotonic()
        self.azure.fault_challenge_foreign(resource="https://evil.example", count=None)
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertIn("HTTP 401: Key Vault's challenge names resource 'evil.example'", f.get("error", ""), f)
        self.assertEqual(self.read("pw"), self.pw.encode())
        time.sleep(1.2)
        self.assertEqual(len(self.token_requests()), 1, "a new token was asked for after a foreign challenge")
        self.assertEqual(len(self.azure.tokens()), 1)
        refused = [e for e in self.vault_gets() if e["mono"] > t0]
        self.assertTrue(refused)
        self.assertTrue(all(e["status"] == 401 and e["fault"] == "challenge" for e in refused))
        self.assert_no_token_for("evil.example")
        self.azure.clear_faults()
        b.wait_log("secret recovered", since=mark, secret="pw")
        self.assertEqual(len(self.token_requests()), 1)


class CaFileTest(AuthBase):
    """ca_file is used for every request of the backend: the token endpoint and IMDS too. Here Entra and
    IMDS are a second fake with a PKI of its own; the vault's CA alone does not verify it."""

    def test_ca_file_applies_to_token_endpoint_and_imds(self):
        other, other_pki = self.second_fake()
        other.add_client_secret_app(None, self.client_id, self.client_secret)
        system = other.add_managed_identity()
        cases = {
            "client_secret": (self.client_secret_auth(authority_host=other.authority_host),
                              "token request to %s: " % other.authority_host, "token"),
            "managed_identity": (self.managed_auth(imds_endpoint=other.imds_endpoint),
                                 "managed identity token from %s: " % other.imds_endpoint, "imds"),
        }
        pems = []
        for p in (self.pki["ca.pem"], other_pki["ca.pem"]):
            with open(p) as f:
                pems.append(f.read())
        bundle = self.write_private("bundle.pem", "".join(pems))
        for method, (auth, prefix, endpoint) in cases.items():
            with self.subTest(method=method):
                other.clear_requests()
                self.azure.clear_requests()
                # the vault's CA only: the TLS handshake with the token service fails, clearly
                self.write_azure_config(self.secrets, auth=auth)
                code, row, out = self.check_row()
                self.assertEqual(code, 1, out)
                self.assertIn(prefix, row)
                tail = row.split(prefix, 1)[1].lower()
                self.assertTrue("certificate" in tail or "ssl" in tail, row)
                self.assertEqual(other.requests(), [], "a request crossed a failed handshake")
                self.assertEqual(self.vault_gets(), [])
                # both CAs: the token service is reached and answers; its token is no good at this
                # vault (another fake), which says so: a token, refused, one more, refused again
                self.write_azure_config(self.secrets, auth=auth, ca_file=bundle)
                code, row, out = self.check_row()
                self.assertEqual(code, 1, out)
                self.assertEqual([e["status"] for e in other.requests(endpoint)], [200, 200], out)
                self.assertIn("access denied to", row)
                self.assertIn("(HTTP 401 Unauthorized: AKV10046: ", row)


if __name__ == "__main__":
    rstest.main()
