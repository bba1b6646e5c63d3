"""AWS credential sources, each against moto with authentication on (so the credentials really sign):
environment (static and temporary), web identity (STS AssumeRoleWithWebIdentity, via the proxy),
shared credentials/config files (static keys, explicit profile skipping the environment, AWS_PROFILE,
~/.aws defaults, role_arn + source_profile, web_identity_token_file in a profile, credential_process),
the container endpoint (FULL_URI with a token or a token file) and IMDSv2 (credentials and region);
short-lived credentials are fetched again before they expire; the chain's order."""

import errno
import json
import os
import sys
import time

import awsenv
import rstest

ROLE = awsenv.ROLE_ARN


class CredsBase(awsenv.AwsTestCase):

    def setUp(self):
        super().setUp()
        self.value = rstest.random_value(16, "cv-")
        self.create_secret("app", self.value)
        self.ref = {"app": "aws:" + self.n("app")}

    def assertServed(self, b):
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 0), "%r\n%s" % (rec, b.describe()))
        self.assertEqual(self.read("app"), self.value.encode())

    def sm_akids(self, since=None):
        return [e["akid"] for e in self.sm_requests(since=since)]

    def assertNotServed(self, b):
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (0, 1), "%r\n%s" % (rec, b.describe()))
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("app"))
        self.assertEqual(os.listdir(self.mnt), [])


class EnvTest(CredsBase):

    def test_env_temporary_credentials(self):
        tc = self.moto.assume_role(session_name="rs-env")
        self.sensitive(tc["SecretAccessKey"])
        self.sensitive(tc["SessionToken"])
        self.write_aws_config(self.ref)
        b = self.start_broker(keys=False, env=self.key_env(tc))
        self.assertServed(b)
        self.wait_cred_log(b, "environment")
        reqs = self.sm_requests()
        self.assertEqual({e["akid"] for e in reqs}, {tc["AccessKeyId"]})
        self.assertEqual({e["security_token"] for e in reqs}, {tc["SessionToken"]})
        for e in reqs:
            self.assertIn("x-amz-security-token", e["signed_headers"], e["signed_headers"])

    def test_env_wins_over_later_sources(self):
        srv = self.creds_server(ecs_token="tok-%s" % rstest.random_value(4, ""))
        self.write_aws_config(self.ref)
        b = self.start_broker(env={"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url + srv.ecs_path,
                                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": srv.ecs_token})
        self.assertServed(b)
        self.wait_cred_log(b, "environment")
        self.assertEqual(srv.requests(), [])
        self.assertEqual({e["akid"] for e in self.sm_requests()}, {self.keys["AccessKeyId"]})

    def test_region_from_environment(self):
        v = rstest.random_value(16, "w2-")
        self.create_secret("west", v, region="us-west-2")
        self.write_aws_config({"west": "aws:" + self.n("west")}, region=None)
        b = self.start_broker(env={"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-north-1"})
        rec = self.cold_start(b)
        self.assertEqual(rec["failed"], 0, b.describe())
        self.assertEqual(self.read("west"), v.encode())
        self.assertEqual({e["region"] for e in self.sm_requests()}, {"us-west-2"})


class WebIdentityTest(CredsBase):

    def setUp(self):
        super().setUp()
        self.jwt = "eyJhbGciOiJSUzI1NiJ9.%s.%s" % (rstest.random_value(20, ""),
                                                   rstest.random_value(20, ""))
        self.sensitive(self.jwt)
        self.jwt_file = self.write_private("jwt", self.jwt)
        self.proxy.set_web_identity(self.jwt, ROLE)

    def _check_sts(self, session_name=None):
        sts = self.sts_requests("AssumeRoleWithWebIdentity")
        self.assertGreaterEqual(len(sts), 1)
        e = sts[0]
        self.assertEqual(e["status"], 200, e)
        self.assertEqual(e["method"], "POST")
        self.assertFalse(e["signed"], "AssumeRoleWithWebIdentity must be sent unsigned")
        self.assertEqual(e["form"].get("WebIdentityToken"), self.jwt)
        self.assertEqual(e["form"].get("RoleArn"), ROLE)
        self.assertEqual(e["form"].get("Version"), "2011-06-15")
        if session_name:
            self.assertEqual(e["form"].get("RoleSessionName"), session_name)
        else:
            self.assertTrue(e["form"].get("RoleSessionName"))
        reqs = self.sm_requests()
        self.assertEqual({r["akid"] for r in reqs}, {e["issued_akid"]})
        self.assertTrue(all(r["security_token"] for r in reqs))

    def test_web_identity_from_environment(self):
        self.write_aws_config(self.ref)
        b = self.start_broker(keys=False, env={"AWS_WEB_IDENTITY_TOKEN_FILE": self.jwt_file,
                                               "AWS_ROLE_ARN": ROLE,
                                               "AWS_ROLE_SESSION_NAME": "rs-session-1"})
        self.assertServed(b)
        self.wait_cred_log(b, "web identity")
        self._check_sts("rs-session-1")

    def test_web_identity_in_profile(self):
        cfg = self.write_private("aws-config", "[profile wi]\nweb_identity_token_file = %s\n"
                                 "role_arn = %s\nrole_session_name = rs-prof-wi\n"
                                 % (self.jwt_file, ROLE))
        self.write_aws_config(self.ref, profile="wi")
        b = self.start_broker(keys=False, env={"AWS_CONFIG_FILE": cfg,
                                               "AWS_SHARED_CREDENTIALS_FILE": os.path.join(
                                                   self.dir, "absent")})
        self.assertServed(b)
        self.wait_cred_log(b, "profile wi")
        self._check_sts("rs-prof-wi")

    def test_wrong_token_is_refused(self):
        self.proxy.set_web_identity("eyJ.other.token", ROLE)
        self.write_aws_config(self.ref)
        b = self.start_broker(keys=False, env={"AWS_WEB_IDENTITY_TOKEN_FILE": self.jwt_file,
                                               "AWS_ROLE_ARN": ROLE})
        self.assertNotServed(b)
        f = b.wait_log("fetch failed", secret="app")
        self.assertIn("InvalidIdentityToken", f.get("error", ""), f)
        self.assertEqual(self.sm_requests(), [], "a Secrets Manager call without credentials")


class SharedFilesTest(CredsBase):

    def creds_file(self, sections, name="aws-credentials"):
        text = ""
        for sec, kv in sections.items():
            text += "[%s]\n" % sec + "".join("%s = %s\n" % (k, v) for k, v in kv.items()) + "\n"
        return self.write_private(name, text)

    def keys_section(self, keys=None):
        keys = keys or self.keys
        return {"aws_access_key_id": keys["AccessKeyId"],
                "aws_secret_access_key": keys["SecretAccessKey"]}

    def test_explicit_profile_skips_environment(self):
        wrong = {"AccessKeyId": "AKIAWRONGWRONGWRONG0", "SecretAccessKey": "wrong" * 8}
        cf = self.creds_file({"default": self.keys_section(wrong), "prod": self.keys_section()})
        self.write_aws_config(self.ref, profile="prod")
        b = self.start_broker(keys=False, env=dict(self.key_env(wrong),
                                                   AWS_SHARED_CREDENTIALS_FILE=cf,
                                                   AWS_CONFIG_FILE=os.path.join(self.dir, "none")))
        self.assertServed(b)
        self.wait_cred_log(b, "profile prod")
        self.assertEqual(set(self.sm_akids()), {self.keys["AccessKeyId"]})

    def test_aws_profile_env_and_config_region(self):
        v = rstest.random_value(16, "eu-")
        self.create_secret("eu", v, region="eu-central-1")
        cf = self.creds_file({"default": self.keys_section(
            {"AccessKeyId": "AKIAWRONGWRONGWRONG0", "SecretAccessKey": "x" * 40}),
            "team": self.keys_section()})
        cfg = self.write_private("aws-config", "[profile team]\nregion = eu-central-1\n")
        self.write_aws_config({"eu": "aws:" + self.n("eu")}, region=None)
        b = self.start_broker(keys=False, env={"AWS_SHARED_CREDENTIALS_FILE": cf,
                                               "AWS_CONFIG_FILE": cfg, "AWS_PROFILE": "team"})
        rec = self.cold_start(b)
        self.assertEqual(rec["failed"], 0, b.describe())
        self.assertEqual(self.read("eu"), v.encode())
        self.wait_cred_log(b, "profile team")
        self.assertEqual({e["region"] for e in self.sm_requests()}, {"eu-central-1"})

    def test_default_files_in_home(self):
        os.mkdir(os.path.join(self.home, ".aws"))
        with open(os.path.join(self.home, ".aws", "credentials"), "w") as f:
            f.write("[default]\naws_access_key_id=%s\naws_secret_access_key=%s\n"
                    % (self.keys["AccessKeyId"], self.keys["SecretAccessKey"]))
        self.write_aws_config(self.ref)
        b = self.start_broker(keys=False)
        self.assertServed(b)
        self.wait_cred_log(b, "profile default")

    def test_role_arn_with_source_profile(self):
        cf = self.creds_file({"base": self.keys_section()})
        cfg = self.write_private("aws-config", "[profile app]\nrole_arn = %s\nsource_profile = base\n"
                                 "role_session_name = rs-assumed\n" % ROLE)
        self.write_aws_config(self.ref, profile="app")
        b = self.start_broker(keys=False, env={"AWS_SHARED_CREDENTIALS_FILE": cf,
                                               "AWS_CONFIG_FILE": cfg})
        self.assertServed(b)
        self.wait_cred_log(b, "profile app")
        [ar] = self.sts_requests("AssumeRole")
        self.assertEqual(ar["status"], 200, ar.get("response"))
        self.assertTrue(ar["signed"])
        self.assertEqual(ar["akid"], self.keys["AccessKeyId"])
        self.assertEqual((ar["region"], ar["service"]), ("us-east-1", "sts"))
        self.assertEqual(ar["form"].get("RoleArn"), ROLE)
        self.assertEqual(ar["form"].get("RoleSessionName"), "rs-assumed")
        akids = set(self.sm_akids())
        self.assertEqual(len(akids), 1)
        self.assertNotIn(self.keys["AccessKeyId"], akids, "signed with the source profile's keys")
        self.assertTrue(all(e["security_token"] for e in self.sm_requests()))

    def test_missing_profile_is_a_clear_error(self):
        cf = self.creds_file({"default": self.keys_section()})
        self.write_aws_config(self.ref, profile="nosuch")
        b = self.start_broker(keys=True, env={"AWS_SHARED_CREDENTIALS_FILE": cf,
                                              "AWS_CONFIG_FILE": os.path.join(self.dir, "none")})
        self.assertNotServed(b)
        f = b.wait_log("fetch failed", secret="app")
        self.assertIn("nosuch", f.get("error", ""), f)
        self.assertEqual(self.sm_requests(), [])


PROCESS_SCRIPT = r'''
import json, os, sys, time
pool, counter, life = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(pool) as f:
    sets = json.load(f)
n = 0
if os.path.exists(counter):
    with open(counter) as f:
        n = len(f.read().split())
with open(counter, "a") as f:
    f.write("%.3f\n" % time.time())
c = sets[min(n, len(sets) - 1)]
out = {"Version": 1, "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
       "SessionToken": c["SessionToken"]}
if life > 0:
    out["Expiration"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + life))
print(json.dumps(out))
'''


class CredentialProcessTest(CredsBase):

    def _process(self, life, nsets=4):
        sets = [self.moto.assume_role(session_name="rs-proc%d" % i) for i in range(nsets)]
        for c in sets:
            self.sensitive(c["SecretAccessKey"])
            self.sensitive(c["SessionToken"])
        pool = self.write_private("pool.json", json.dumps(sets))
        script = self.write_private("proc.py", PROCESS_SCRIPT, mode=0o700)
        self.counter = os.path.join(self.dir, "proc-calls")
        cmd = "%s %s %s %s %d" % (sys.executable, script, pool, self.counter, life)
        cfg = self.write_private("aws-config", "[profile proc]\ncredential_process = %s\n" % cmd)
        return sets, cfg

    def calls(self):
        if not os.path.exists(self.counter):
            return []
        with open(self.counter) as f:
            return [float(x) for x in f.read().split()]

    def test_credential_process_and_refresh_before_expiry(self):
        life = 10
        sets, cfg = self._process(life)
        self.write_aws_config(self.ref, profile="proc")
        b = self.start_broker(keys=False, env={"AWS_CONFIG_FILE": cfg,
                                               "AWS_SHARED_CREDENTIALS_FILE": os.path.join(
                                                   self.dir, "none")})
        self.assertServed(b)
        self.wait_cred_log(b, "profile proc")
        self.assertEqual(len(self.calls()), 1)
        self.assertEqual(set(self.sm_akids()), {sets[0]["AccessKeyId"]})
        # reads keep working while the credentials are renewed ahead of their expiry
        t_first = self.calls()[0]
        deadline = time.monotonic() + life + 4
        while time.monotonic() < deadline and len(self.calls()) < 2:
            self.assertEqual(self.read("app"), self.value.encode())
            time.sleep(0.2)
        calls = self.calls()
        self.assertGreaterEqual(len(calls), 2, "credential_process not run again before the "
                                "credentials expired\n%s" % b.describe())
        self.assertLess(calls[1] - t_first, life - 0.5,
                        "renewed %.1fs after a %ds lifetime" % (calls[1] - t_first, life))
        self.assertGreater(calls[1] - t_first, 2.0, "renewed far too early")
        self.wait_cred_log(b, "profile proc", count=2)
        # later requests are signed with the new keys and still accepted by moto
        t_new = time.monotonic()
        rstest.wait_until(lambda: sets[1]["AccessKeyId"] in self.sm_akids(since=t_new), 6,
                          "a request signed with the renewed credentials")
        self.assertEqual({e["status"] for e in self.sm_requests(since=t_new)}, {200})
        self.assertEqual(self.read("app"), self.value.encode())
        self.assertLessEqual(len(self.calls()), 3, "credential_process hammered: %d runs"
                             % len(self.calls()))
        self.assertNoLog(b, "refresh failed, serving stale value")

    def test_failing_process_is_an_error(self):
        cfg = self.write_private("aws-config", "[profile proc]\ncredential_process = "
                                 "/bin/sh -c 'echo nope >&2; exit 3'\n")
        self.write_aws_config(self.ref, profile="proc")
        b = self.start_broker(keys=False, env={"AWS_CONFIG_FILE": cfg})
        self.assertNotServed(b)
        self.assertEqual(self.sm_requests(), [])


class ContainerTest(CredsBase):

    def test_full_uri_with_token(self):
        tok = "Basic %s" % rstest.random_value(12, "")
        srv = self.creds_server(ecs_token=tok)
        self.sensitive(tok)
        self.write_aws_config(self.ref)
        b = self.start_broker(keys=False, env={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url + srv.ecs_path,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": tok})
        self.assertServed(b)
        self.wait_cred_log(b, "container")
        ecs = srv.requests("ecs")
        self.assertGreaterEqual(len(ecs), 1)
        self.assertEqual((ecs[0]["method"], ecs[0]["status"], ecs[0]["authorization"]),
                         ("GET", 200, tok))
        self.assertEqual(set(self.sm_akids()), {ecs[0]["issued_akid"]})

    def test_full_uri_with_token_file(self):
        tok = rstest.random_value(16, "ecs-")
        srv = self.creds_server(ecs_token=tok)
        self.sensitive(tok)
        tf = self.write_private("ecs-token", tok)
        self.write_aws_config(self.ref)
        b = self.start_broker(keys=False, env={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url + srv.ecs_path,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tf,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "the-file-wins"})
        self.assertServed(b)
        self.wait_cred_log(b, "container")
        ecs = srv.requests("ecs")
        self.assertEqual(ecs[0]["authorization"], tok)
        self.assertEqual(set(self.sm_akids()), {ecs[0]["issued_akid"]})

    def test_expired_token_answer_refetches_credentials(self):
        # AWS says the session token expired before its announced Expiration (revoked session):
        # the broker drops its credentials, fetches new ones and repeats the call
        srv = self.creds_server(ecs_token="t0k")
        self.write_aws_config(self.ref)
        b = self.start_broker(keys=False, env={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url + srv.ecs_path,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "t0k"})
        self.assertServed(b)
        self.assertEqual(len(srv.issued()), 1)
        mark = b.mark()
        t0 = time.monotonic()
        self.proxy.fail_next(1, 400, "ExpiredTokenException",
                             "The security token included in the request is expired")
        rstest.wait_until(lambda: len(srv.issued()) >= 2, 6, "new container credentials")
        new = srv.issued()[1]["AccessKeyId"]
        rstest.wait_until(lambda: any(e["akid"] == new and e["status"] == 200
                                      for e in self.sm_requests(since=t0)), 6,
                          "a request with the new credentials")
        self.wait_cred_log(b, "container", since=mark)
        self.assertEqual(self.read("app"), self.value.encode())
        self.assertNoLog(b, "secret removed", since=mark)

    def test_wrong_token(self):
        srv = self.creds_server(ecs_token="right-token")
        self.write_aws_config(self.ref)
        b = self.start_broker(keys=False, env={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url + srv.ecs_path,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong-token"})
        self.assertNotServed(b)
        self.assertEqual([e["status"] for e in srv.requests("ecs")][:1], [401])
        self.assertEqual(self.sm_requests(), [])


class ImdsTest(awsenv.AwsTestCase):

    def test_imdsv2_credentials_and_region(self):
        # the region comes from instance metadata: the secret exists only in eu-west-1
        v = rstest.random_value(16, "imds-")
        self.create_secret("app", v, region="eu-west-1")
        srv = self.creds_server(region="eu-west-1")
        self.write_aws_config({"app": "aws:" + self.n("app")}, region=None)
        b = self.start_broker(keys=False, env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": srv.url,
                                               "AWS_EC2_METADATA_DISABLED": None})
        rec = self.cold_start(b)
        self.assertEqual(rec["failed"], 0, b.describe())
        self.assertEqual(self.read("app"), v.encode())
        self.wait_cred_log(b, "instance metadata")
        log = srv.requests()
        self.assertEqual(log[0]["kind"], "imds-token", [(e["method"], e["path"]) for e in log])
        self.assertEqual(log[0]["method"], "PUT")
        self.assertEqual([e for e in log if e["status"] != 200], [],
                         "IMDS requests refused: %r" % [(e["path"], e["status"]) for e in log])
        kinds = {e["kind"] for e in log}
        self.assertTrue({"imds-role", "imds-creds"} <= kinds, kinds)
        self.assertTrue(kinds & {"imds-region", "imds-document"}, kinds)
        issued = {e["issued_akid"] for e in log if e.get("issued_akid")}
        reqs = self.sm_requests()
        self.assertTrue(reqs)
        self.assertTrue({e["akid"] for e in reqs} <= issued)
        self.assertEqual({e["region"] for e in reqs}, {"eu-west-1"})

    def test_imds_credentials_renewed_before_expiry(self):
        life = 10
        v = rstest.random_value(16, "imds-")
        self.create_secret("app", v)
        srv = self.creds_server(expiration_s=life)
        self.write_aws_config({"app": "aws:" + self.n("app")})
        b = self.start_broker(keys=False, env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": srv.url,
                                               "AWS_EC2_METADATA_DISABLED": None})
        self.assertEqual(self.cold_start(b)["failed"], 0, b.describe())
        self.wait_cred_log(b, "instance metadata")
        first = srv.issued()[0]
        deadline = time.monotonic() + life + 4
        while time.monotonic() < deadline and len(srv.issued()) < 2:
            self.assertEqual(self.read("app"), v.encode())
            time.sleep(0.2)
        issued = srv.issued()
        self.assertGreaterEqual(len(issued), 2, "no new credentials before expiry\n%s" % b.describe())
        gap = issued[1]["wall"] - first["wall"]
        self.assertLess(gap, life - 0.5, "renewed %.1fs into a %ds lifetime" % (gap, life))
        self.assertGreater(gap, 2.0, "renewed far too early (%.1fs)" % gap)
        self.wait_cred_log(b, "instance metadata", count=2)
        t_new = time.monotonic()
        rstest.wait_until(lambda: issued[1]["AccessKeyId"] in
                          [e["akid"] for e in self.sm_requests(since=t_new)], 6,
                          "a request signed with the renewed credentials")
        self.assertEqual(self.read("app"), v.encode())
        self.assertEqual([e for e in srv.requests() if e["status"] != 200], [])
        self.assertLessEqual(len(srv.issued()), 3, "IMDS hammered")

    def test_imds_disabled_means_no_credentials(self):
        srv = self.creds_server()
        self.create_secret("app", rstest.random_value(16, "x-"))
        self.write_aws_config({"app": "aws:" + self.n("app")})
        b = self.start_broker(keys=False, env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": srv.url})
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (0, 1), rec)
        f = b.wait_log("fetch failed", secret="app")
        self.assertIn("credentials", f.get("error", ""), f)
        self.assertEqual(srv.requests(), [])
        self.assertEqual(self.sm_requests(), [])


if __name__ == "__main__":
    rstest.main()
