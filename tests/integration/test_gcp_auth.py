"""GCP backend, credentials: a service account key (RS256 JWT at token_uri), an authorized_user file (refresh
token grant), an external_account file (STS token exchange, the subject token file re-read at each exchange;
with service-account impersonation), the metadata server (configured metadata_url, GCE_METADATA_HOST; the
Metadata-Flavor header); the Application Default Credentials order (credentials_file, then
GOOGLE_APPLICATION_CREDENTIALS, then CLOUDSDK_CONFIG's or HOME's well-known file, then the metadata server),
each choice logged; a token refreshed ahead of its expiry; a 401 answered by one new token; a bad key or file
refused with an error naming the file. Runs against tests/fakes/gcp_fake.py over TLS."""

import errno
import os
import time

import gcpenv
import rstest
from gcpenv import METADATA_IDENTITY

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ADC = "application_default_credentials.json"


class AuthBase(gcpenv.GcpTestCase):

    def setUp(self):
        super().setUp()
        self.pw = rstest.random_value(16, "pw-")
        self.add_version("app", self.pw)
        self.secrets = {"pw": "gcp:app"}

    def assert_served_by(self, identity, kind):
        """The value is served, and every access was made with a token the fake issued to identity (of kind)."""
        self.assertEqual(self.read("pw"), self.pw.encode())
        gets = self.sm_gets("app")
        self.assertTrue(gets)
        issued = {t["value"]: t for t in self.gcp.tokens()}
        for e in gets:
            t = issued.get(e["token"])
            self.assertIsNotNone(t, "a token the fake never issued")
            self.assertEqual((t["identity"], t["kind"]), (identity, kind))
            self.assertIn(gcpenv.CLOUD_PLATFORM, t["scopes"])
            self.assertEqual(e["status"], 200)

    def adc_dir(self, base, content):
        """base/ADC written (the well-known file); returns its path."""
        os.makedirs(base, mode=0o700, exist_ok=True)
        path = os.path.join(base, ADC)
        with open(path, "w") as f:
            f.write(gcpenv.compact(content))
        os.chmod(path, 0o600)
        return path


class ServiceAccountTest(AuthBase):

    def test_jwt_bearer_login_and_one_token(self):
        self.write_gcp_config(self.secrets)
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        [login] = self.token_requests()
        self.assertEqual((login["status"], login["grant_type"], login["identity"]),
                         (200, JWT_BEARER, self.email))
        self.assertEqual(login["headers"]["content-type"], "application/x-www-form-urlencoded")
        self.assertEqual(sorted(login["form"]), ["assertion", "grant_type"])
        self.assert_served_by(self.email, "service_account")
        self.assertEqual(len(self.token_logs(b)), 1)
        self.assertIn(self.email, self.token_logs(b)[0]["msg"])

    def test_refresh_ahead_of_expiry(self):
        # tokens of 4 s: the backend renews at half-life, before any request meets an expired token
        self.gcp.set_token_ttl(4)
        self.write_gcp_config(self.secrets, defaults={"refresh": "300ms", "max_stale": "1h"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        rstest.wait_until(lambda: len([e for e in self.token_requests() if e["status"] == 200]) >= 3, 9,
                          "two renewals of a 4 s token")
        tokens = self.gcp.tokens()
        self.assertGreaterEqual(len(tokens), 3)
        # renewed ahead: each token asked for before the previous one ran out (fake clock = real clock here)
        for prev, nxt in zip(tokens, tokens[1:]):
            self.assertLess(nxt["issued"], prev["expiry"], "a token was renewed only after it expired")
        self.assertEqual(self.gcp.count("secretmanager", status=401), 0, self.describe_requests())
        self.assertNoLog(b, "refresh failed, serving stale value")
        self.assertEqual(self.read("pw"), self.pw.encode())

    def test_401_one_new_token_and_one_retry(self):
        self.write_gcp_config(self.secrets, defaults={"refresh": "500ms", "max_stale": "1h"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        mark = b.mark()
        t0 = time.monotonic()
        self.assertEqual(self.gcp.expire_tokens(), 1)
        rstest.wait_until(lambda: [e for e in self.sm_gets("app") if e["mono"] > t0 and e["status"] == 200],
                          5, "a read with a new token")
        after = [e for e in self.gcp.requests() if e["mono"] > t0]
        seq = [(e["endpoint"], e["status"]) for e in after][:3]
        self.assertEqual(seq, [("secretmanager", 401), ("token", 200), ("secretmanager", 200)],
                         self.describe_requests(t0))
        self.assertEqual(after[0]["error"], "UNAUTHENTICATED")
        self.assertNotEqual(after[0]["token"], after[2]["token"])
        self.assertEqual(len([e for e in self.token_requests() if e["mono"] > t0]), 1)
        self.assertNoLog(b, "refresh failed, serving stale value", since=mark)
        # a token refused again right after a new one: the answer stands, no loop of logins
        self.gcp.fault_status("secretmanager", 401, count=2)
        t1 = time.monotonic()
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertIn("HTTP 401", f.get("error", ""), f)
        logins = [e for e in self.token_requests() if e["mono"] > t1]
        self.assertLessEqual(len(logins), 1, self.describe_requests(t1))
        b.wait_log("secret recovered", since=mark, secret="pw", timeout=5)
        self.assertEqual(self.read("pw"), self.pw.encode())

    def test_unparsable_key_refused_naming_the_file(self):
        # a PEM armour around no key: a configuration error, at `check` and at start (exit 2), naming the
        # file and the member, never the content; nothing is sent anywhere
        bad = dict(self.sa, private_key="-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
        path = self.write_cred("bad-key.json", bad)
        self.write_gcp_config(self.secrets, credentials_file=path)
        r = self.cli("check", "--config", self.config_path)
        out = r.stdout.decode() + r.stderr.decode()
        self.assertEqual(r.returncode, 2, "check accepts a private_key that does not parse:\n" + out)
        self.assertIn("%s: private_key" % path, out)
        self.assertNotIn("bm90IGEga2V5", out)
        b = self.start_broker(wait=False)
        self.assertEqual(b.proc.wait(timeout=rstest.STOP_TIMEOUT), 2, b.describe())
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [], "mounted anyway")
        self.assertIn("%s: private_key" % path, b.stderr().decode())
        self.assertNotIn(b"bm90IGEga2V5", b.stderr())
        self.assertEqual(self.gcp.requests(), [], "a request with a key that does not parse")

    def test_bad_credential_files_refused_naming_the_file(self):
        # not JSON, no type, an unknown type: each named with the file
        for name, text, needle in (("notjson.json", "{not json", "not JSON"),
                                   ("notype.json", '{"client_email": "x@y"}', "type"),
                                   ("other.json", '{"type": "impersonated_service_account"}',
                                    "impersonated_service_account")):
            p = self.write_private(name, text)
            self.write_gcp_config(self.secrets, credentials_file=p)
            r = self.cli("check", "--config", self.config_path)
            out = r.stdout.decode() + r.stderr.decode()
            self.assertNotEqual(r.returncode, 0, out)
            self.assertIn(p, out)
            self.assertIn(needle, out)
        # a real key Google does not know (deleted): the token endpoint's refusal, the file named
        other = self.gcp.add_service_account_key(self.email)
        self.gcp.remove_service_account_key(self.email, other["private_key_id"])
        path = self.write_cred("deleted-key.json", other)
        self.write_gcp_config(self.secrets, credentials_file=path)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (0, 1), rec)
        f = b.wait_log("fetch failed", secret="pw")
        self.assertIn("invalid_grant", f.get("error", ""), f)
        self.assertIn("Invalid JWT Signature.", f.get("error", ""), f)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("pw"))
        self.assertEqual(self.sm_gets(), [])


class OtherCredentialTest(AuthBase):

    def test_authorized_user_refresh_token(self):
        au = self.gcp.add_authorized_user(account="dev@example.com")
        path = self.write_cred("user.json", au)
        self.write_gcp_config(self.secrets, credentials_file=path)
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        [login] = self.token_requests()
        self.assertEqual((login["status"], login["grant_type"]), (200, "refresh_token"))
        self.assertEqual((login["form"]["client_id"], login["form"]["client_secret"],
                          login["form"]["refresh_token"]),
                         (au["client_id"], au["client_secret"], au["refresh_token"]))
        self.assert_served_by("dev@example.com", "authorized_user")
        self.assertIn("authorized user", self.wait_cred_log(b, path)["msg"])
        # revoked: the next login fails with Google's words, the value stays until max_stale
        self.gcp.revoke_refresh_token(au["refresh_token"])
        mark = b.mark()
        self.gcp.expire_tokens()
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertIn("invalid_grant", f.get("error", ""), f)
        self.assertEqual(self.read("pw"), self.pw.encode())

    def test_external_account_subject_token_reread_and_impersonation(self):
        content, path, subject, token_path = self.external_account()
        imp_email = "deployer@%s.iam.gserviceaccount.com" % gcpenv.PROJECT_ID
        imp, imp_path, imp_subject, _ = self.external_account(name="external-imp.json", impersonate=imp_email,
                                                              token_name="subject-token-imp")
        cfg = dict(self.secrets, imp="gimp:app")
        self.write_gcp_config(cfg, credentials_file=path,
                              extra_backends={"gimp": self.gcp_backend(credentials_file=imp_path)})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("imp"), self.pw.encode())
        sts = self.token_requests("sts")
        self.assertEqual(len(sts), 2, self.describe_requests())
        by_subject = {e["form"]["subject_token"]: e for e in sts}
        self.assertEqual(set(by_subject), {subject, imp_subject})
        for e in sts:
            self.assertEqual(e["status"], 200)
            self.assertEqual(e["form"]["grant_type"], TOKEN_EXCHANGE)
            self.assertEqual(e["form"]["requested_token_type"], ACCESS_TOKEN_TYPE)
            self.assertEqual(e["form"]["subject_token_type"], content["subject_token_type"])
            self.assertIn(gcpenv.CLOUD_PLATFORM, e["form"]["scope"])
        self.assertEqual(by_subject[subject]["form"]["audience"], content["audience"])
        self.assertEqual(by_subject[imp_subject]["form"]["audience"], imp["audience"])
        [iam] = self.token_requests("iam")
        self.assertEqual((iam["status"], iam["identity"]), (200, imp_email))
        self.assertEqual(iam["token"], by_subject[imp_subject]["issued_token"])   # Bearer = the STS token
        issued = {t["value"]: t for t in self.gcp.tokens()}
        kinds = sorted((issued[e["token"]]["kind"], issued[e["token"]]["identity"]) for e in self.sm_gets())
        self.assertEqual({k for k, _ in kinds}, {"sts", "impersonated"})
        self.assertIn(("impersonated", imp_email), kinds)
        self.assertIn(imp_email, self.wait_cred_log(b, imp_path)["msg"])
        # the subject token is rotated (as Kubernetes swaps a projected token): read again at the next exchange
        new = "eyJhbGciOiJSUzI1NiJ9." + rstest.random_value(24, "") + "." + rstest.random_value(32, "")
        self.sensitive(new)
        self.gcp.add_external_account(new, credential_file=token_path)
        self.replace_file(token_path, new)
        t0 = time.monotonic()
        self.gcp.expire_tokens()
        rstest.wait_until(lambda: [e for e in self.token_requests("sts")
                                   if e["mono"] > t0 and e["form"]["subject_token"] == new
                                   and e["status"] == 200], 5, "an exchange of the new subject token")
        self.assertFalse([e for e in self.token_requests("sts")
                          if e["mono"] > t0 and e["form"]["subject_token"] == subject])
        self.wait_value(self.pw, "pw")

    def test_metadata_server_configured_https(self):
        sa_email = "vm@%s.iam.gserviceaccount.com" % gcpenv.PROJECT_ID
        self.gcp.enable_metadata(sa_email)
        self.write_gcp_config(self.secrets, credentials_file=None)
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        md = self.token_requests("metadata")
        self.assertTrue(md)
        for e in md:
            self.assertEqual((e["method"], e["status"]), ("GET", 200))
            self.assertEqual(e["headers"].get("metadata-flavor"), "Google")
            self.assertTrue(e["path"].startswith("/computeMetadata/v1/instance/service-accounts/default/token"),
                            e["path"])
        self.assert_served_by(sa_email, "metadata")
        line = self.wait_cred_log(b, "metadata server")["msg"]
        self.assertIn(self.gcp.metadata_url, line)
        self.assertIn(METADATA_IDENTITY, self.token_logs(b)[0]["msg"])


class AdcOrderTest(AuthBase):

    def setUp(self):
        super().setUp()
        self.au = self.gcp.add_authorized_user(account="adc-user@example.com")
        self.sdk = os.path.join(self.dir, "gcloud-sdk")
        self.gcp.enable_metadata("vm@%s.iam.gserviceaccount.com" % gcpenv.PROJECT_ID)

    def source_of(self, env, expect_from, identity, kind):
        """A broker with this env and no credentials_file: the log names expect_from, the fake saw identity."""
        self.write_gcp_config(self.secrets, credentials_file=None)
        b = self.start_broker(env=env)
        self.assertEqual(self.cold_start(b)["failed"], 0)
        line = self.wait_cred_log(b, expect_from)["msg"]
        self.assert_served_by(identity, kind)
        b.stop()
        return line

    def test_adc_order(self):
        home_file = self.adc_dir(os.path.join(self.home, ".config", "gcloud"), self.au)
        sdk_sa = self.gcp.add_service_account("sdk@%s.iam.gserviceaccount.com" % gcpenv.PROJECT_ID)
        sdk_file = self.adc_dir(self.sdk, sdk_sa)
        # 1. credentials_file wins over everything
        self.write_gcp_config(self.secrets)
        b = self.start_broker(env={"GOOGLE_APPLICATION_CREDENTIALS": sdk_file, "CLOUDSDK_CONFIG": self.sdk})
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertIn("from credentials_file", self.wait_cred_log(b, self.email)["msg"])
        self.assert_served_by(self.email, "service_account")
        b.stop()
        self.gcp.clear_requests()
        # 2. then GOOGLE_APPLICATION_CREDENTIALS
        line = self.source_of({"GOOGLE_APPLICATION_CREDENTIALS": self.sa_file, "CLOUDSDK_CONFIG": self.sdk},
                              "GOOGLE_APPLICATION_CREDENTIALS", self.email, "service_account")
        self.assertIn(self.sa_file, line)
        self.gcp.clear_requests()
        # 3. then $CLOUDSDK_CONFIG/application_default_credentials.json
        line = self.source_of({"CLOUDSDK_CONFIG": self.sdk}, "CLOUDSDK_CONFIG", sdk_sa["client_email"],
                              "service_account")
        self.assertIn(sdk_file, line)
        self.gcp.clear_requests()
        # 4. then ~/.config/gcloud/application_default_credentials.json
        line = self.source_of({}, "(HOME)", "adc-user@example.com", "authorized_user")
        self.assertIn(home_file, line)
        self.gcp.clear_requests()
        # 5. nothing: the metadata server
        os.unlink(home_file)
        self.source_of({}, "metadata server", "vm@%s.iam.gserviceaccount.com" % gcpenv.PROJECT_ID, "metadata")

    def test_gac_unreadable_is_an_error_not_a_fallback(self):
        self.write_gcp_config(self.secrets, credentials_file=None)
        missing = os.path.join(self.dir, "nope.json")
        r = self.cli("check", "--config", self.config_path, env={"GOOGLE_APPLICATION_CREDENTIALS": missing})
        out = r.stdout.decode() + r.stderr.decode()
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn("GOOGLE_APPLICATION_CREDENTIALS", out)
        self.assertIn(missing, out)

    def test_gce_metadata_host(self):
        # GCE_METADATA_HOST is a host:port reached over plain http (as google-auth does): a second listener,
        # plain http, whose tokens the TLS fake accepts (one token store for both)
        meta = gcpenv.FakeGCP(tls=False, project_id=gcpenv.PROJECT_ID, project_number=gcpenv.PROJECT_NUMBER)
        meta._tokens = self.gcp._tokens
        meta.start()
        self.addCleanup(meta.stop)
        meta.enable_metadata("gce@%s.iam.gserviceaccount.com" % gcpenv.PROJECT_ID)
        self.write_gcp_config(self.secrets, credentials_file=None, metadata_url=None)
        b = self.start_broker(env={"GCE_METADATA_HOST": "127.0.0.1:%d" % meta.port})
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertIn("http://127.0.0.1:%d" % meta.port, self.wait_cred_log(b, "metadata server")["msg"])
        md = meta.requests("metadata")
        self.assertTrue(md and all(e["headers"].get("metadata-flavor") == "Google" for e in md))
        self.assertEqual(self.token_requests("metadata"), [])
        self.assert_served_by("gce@%s.iam.gserviceaccount.com" % gcpenv.PROJECT_ID, "metadata")
        for v in meta.sensitive_values():
            self.sensitive(v)


if __name__ == "__main__":
    rstest.main()
