#!/usr/bin/env python3
"""Self-test of tests/fakes/aws_proxy.py (moto with authentication on behind the fault-injecting proxy)
and tests/fakes/aws_creds_server.py (strict IMDSv2 + container credentials), driven as a client would:
boto3 through the proxy, hand-signed requests with chosen dates, raw http.client calls.

    python3 tests/fakes/test_aws_fakes.py [-v]

Fails (exit 1) with a clear message when moto or boto3 is not installed: scripts/deps.sh installs
them, and the AWS tests are never skipped silently.
"""

import http.client
import json
import os
import socket
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import boto3  # noqa: F401
    import botocore.config
    import botocore.exceptions
    import moto  # noqa: F401
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover
    print("FAIL: %s: the AWS test fakes need moto[server] and boto3 (scripts/deps.sh installs "
          "them)" % e, file=sys.stderr)
    sys.exit(1)

import aws_creds_server  # noqa: E402
import aws_proxy  # noqa: E402

M = None
KEYS = None


def setUpModule():
    global M, KEYS
    M = aws_proxy.Moto().start()
    KEYS = M.create_user("selftest")
    M.sm().create_secret(Name="app/db", SecretString='{"user":"u","pass":"p"}')
    M.sm().create_secret(Name="app/bin", SecretBinary=b"\x00\xffbin")


def tearDownModule():
    M.stop()


def sm_client(url, keys=None, token=None):
    keys = keys or KEYS
    return boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=keys["AccessKeyId"],
                        aws_secret_access_key=keys["SecretAccessKey"], aws_session_token=token,
                        config=botocore.config.Config(retries={"total_max_attempts": 1}))


def signed_call(url, target, body, when=None, keys=None, service="secretsmanager"):
    """POST a SigV4-signed JSON 1.1 request dated `when` (epoch s); returns (status, headers, body)."""
    keys = keys or KEYS
    date = aws_proxy.amz_date(when if when is not None else time.time())
    data = json.dumps(body)
    req = AWSRequest("POST", url + "/", data=data,
                     headers={"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": target, "X-Amz-Date": date})
    req.context["timestamp"] = date
    a = SigV4Auth(Credentials(keys["AccessKeyId"], keys["SecretAccessKey"]), service, "us-east-1")
    cr = a.canonical_request(req)
    sig = a.signature(a.string_to_sign(req, cr), req)
    req.headers["Authorization"] = (
        "AWS4-HMAC-SHA256 Credential=%s/%s/us-east-1/%s/aws4_request, SignedHeaders=%s, Signature=%s"
        % (keys["AccessKeyId"], date[:8], service, a.signed_headers(a.headers_to_sign(req)), sig))
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("POST", "/", body=data.encode(), headers=dict(req.headers.items()))
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def raw(url, method, path, headers=None, body=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class ProxyTests(unittest.TestCase):
    def setUp(self):
        self.p = aws_proxy.AwsProxy(M).start()
        self.addCleanup(self.p.stop)

    def test_forwarding_is_checked_by_moto(self):
        c = sm_client(self.p.url)
        self.assertEqual(c.get_secret_value(SecretId="app/db")["SecretString"], '{"user":"u","pass":"p"}')
        self.assertEqual(c.get_secret_value(SecretId="app/bin")["SecretBinary"], b"\x00\xffbin")
        # A different last character: moto's keys are random alphanumerics, so
        # a fixed "X" left the key unchanged in 1 run of 62 (a flaky "ClientError
        # not raised").
        good = KEYS["SecretAccessKey"]
        wrong = good[:-1] + ("Y" if good.endswith("X") else "X")
        self.assertNotEqual(wrong, good)
        bad = sm_client(self.p.url, dict(KEYS, SecretAccessKey=wrong))
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            bad.get_secret_value(SecretId="app/db")
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        self.assertIn("SignatureDoesNotMatch", str(cm.exception.response["Error"]))
        r = c.batch_get_secret_value(SecretIdList=["app/db", "nope"])
        self.assertEqual(len(r["SecretValues"]), 1)
        log = self.p.requests()
        self.assertEqual([(e["target"], e["status"]) for e in log],
                         [("secretsmanager.GetSecretValue", 200), ("secretsmanager.GetSecretValue", 200),
                          ("secretsmanager.GetSecretValue", 403),
                          ("secretsmanager.BatchGetSecretValue", 200)])
        self.assertEqual(log[0]["akid"], KEYS["AccessKeyId"])
        self.assertEqual((log[0]["region"], log[0]["service"]), ("us-east-1", "secretsmanager"))
        self.assertEqual(log[0]["secret_ids"], ["app/db"])
        self.assertEqual(log[3]["secret_ids"], ["app/db", "nope"])
        self.assertIn("host", log[0]["signed_headers"])
        self.assertEqual(self.p.count("GetSecretValue"), 3)
        self.assertEqual(self.p.count("GetSecretValue", status=200), 2)
        self.assertEqual([e["seq"] for e in log], sorted(e["seq"] for e in log))

    def test_temporary_credentials_accepted(self):
        tc = M.assume_role()
        c = sm_client(self.p.url, tc, tc["SessionToken"])
        self.assertEqual(c.describe_secret(SecretId="app/db")["Name"], "app/db")
        self.assertEqual(self.p.requests()[0]["security_token"], tc["SessionToken"])

    def test_error_faults(self):
        c = sm_client(self.p.url)
        self.p.throttle_next(2, target="GetSecretValue")
        self.assertEqual(c.describe_secret(SecretId="app/db")["Name"], "app/db")   # not matched
        for _ in range(2):
            with self.assertRaises(botocore.exceptions.ClientError) as cm:
                c.get_secret_value(SecretId="app/db")
            self.assertEqual(cm.exception.response["Error"]["Code"], "ThrottlingException")
            self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        c.get_secret_value(SecretId="app/db")
        self.assertEqual([(e["status"], e["fault"]) for e in self.p.requests("GetSecretValue")],
                         [(400, "ThrottlingException")] * 2 + [(200, None)])
        # until cleared, only for one secret id; Retry-After
        self.p.fail_next(None, 503, "ServiceUnavailable", "busy", secret_id="app/bin", retry_after=3)
        for _ in range(3):
            st, h, body = signed_call(self.p.url, "secretsmanager.GetSecretValue", {"SecretId": "app/bin"})
            self.assertEqual((st, h.get("retry-after")), (503, "3"))
            self.assertEqual(json.loads(body)["__type"], "ServiceUnavailable")
        self.assertEqual(signed_call(self.p.url, "secretsmanager.GetSecretValue",
                                     {"SecretId": "app/db"})[0], 200)
        self.p.clear_faults()
        self.assertEqual(signed_call(self.p.url, "secretsmanager.GetSecretValue",
                                     {"SecretId": "app/bin"})[0], 200)
        self.p.server_error_next(1, 500)
        st, _, body = signed_call(self.p.url, "secretsmanager.DescribeSecret", {"SecretId": "app/db"})
        self.assertEqual((st, json.loads(body)["__type"]), (500, "InternalServiceError"))

    def test_drop(self):
        self.p.drop_next(1, target="GetSecretValue")
        with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
            signed_call(self.p.url, "secretsmanager.GetSecretValue", {"SecretId": "app/db"})
        self.assertEqual(signed_call(self.p.url, "secretsmanager.GetSecretValue",
                                     {"SecretId": "app/db"})[0], 200)
        self.assertEqual(self.p.requests()[0]["fault"], "drop")

    def test_clock_skew(self):
        self.p.set_clock_offset(7200)
        st, h, body = signed_call(self.p.url, "secretsmanager.GetSecretValue", {"SecretId": "app/db"})
        self.assertEqual(st, 403)
        err = json.loads(body)
        self.assertEqual(err["__type"], "InvalidSignatureException")
        self.assertTrue(err["message"].startswith("Signature expired: "), err)
        server = aws_proxy.parse_amz_date(time.strftime("%Y%m%dT%H%M%SZ",
                                                        time.strptime(h["date"], "%a, %d %b %Y %H:%M:%S GMT")))
        self.assertLess(abs(server - (time.time() + 7200)), 5, h["date"])
        # signed with the server's time: forwarded, and moto accepts it
        st, _, body = signed_call(self.p.url, "secretsmanager.GetSecretValue", {"SecretId": "app/db"},
                                  when=server)
        self.assertEqual(st, 200, body)
        self.p.set_clock_offset(-7200)
        st, _, body = signed_call(self.p.url, "secretsmanager.GetSecretValue", {"SecretId": "app/db"})
        self.assertEqual(st, 403)
        self.assertTrue(json.loads(body)["message"].startswith("Signature not yet current: "))
        self.p.set_clock_offset(None)
        self.assertEqual(signed_call(self.p.url, "secretsmanager.GetSecretValue",
                                     {"SecretId": "app/db"}, when=time.time() - 86400)[0], 200)
        self.assertEqual([e["fault"] for e in self.p.requests()], ["skew", None, "skew", None])

    def test_web_identity(self):
        self.p.set_web_identity("jwt-ok", aws_proxy.ROLE_ARN)
        form = {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
                "RoleArn": aws_proxy.ROLE_ARN, "RoleSessionName": "s1", "WebIdentityToken": "jwt-ok"}
        hdr = {"Content-Type": "application/x-www-form-urlencoded"}
        st, h, body = raw(self.p.url, "POST", "/", hdr, urllib.parse.urlencode(form))
        self.assertEqual(st, 200, body)
        self.assertEqual(h["content-type"], "text/xml")
        import xml.etree.ElementTree as ET
        ns = {"s": "https://sts.amazonaws.com/doc/2011-06-15/"}
        root = ET.fromstring(body)
        cred = root.find("s:AssumeRoleWithWebIdentityResult/s:Credentials", ns)
        got = {k: cred.find("s:" + k, ns).text for k in ("AccessKeyId", "SecretAccessKey",
                                                          "SessionToken", "Expiration")}
        self.assertRegex(got["Expiration"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        # the credentials are real: moto accepts them
        c = sm_client(self.p.url, got, got["SessionToken"])
        self.assertEqual(c.get_secret_value(SecretId="app/db")["Name"], "app/db")
        e = self.p.requests(action="AssumeRoleWithWebIdentity")[0]
        self.assertEqual((e["status"], e["issued_akid"], e["signed"]), (200, got["AccessKeyId"], False))
        form["WebIdentityToken"] = "jwt-bad"
        st, h, body = raw(self.p.url, "POST", "/", hdr, urllib.parse.urlencode(form))
        self.assertEqual(st, 400)
        self.assertIn(b"<Code>InvalidIdentityToken</Code>", body)
        form["WebIdentityToken"] = "jwt-ok"
        form["RoleArn"] = "arn:aws:iam::123456789012:role/other"
        self.assertEqual(raw(self.p.url, "POST", "/", hdr, urllib.parse.urlencode(form))[0], 403)

    def test_sts_assume_role_forwarded(self):
        sts = boto3.client("sts", endpoint_url=self.p.url, region_name="us-east-1",
                           aws_access_key_id=KEYS["AccessKeyId"],
                           aws_secret_access_key=KEYS["SecretAccessKey"],
                           config=botocore.config.Config(retries={"total_max_attempts": 1}))
        c = sts.assume_role(RoleArn=aws_proxy.ROLE_ARN, RoleSessionName="xx")["Credentials"]
        self.assertTrue(c["AccessKeyId"].startswith("ASIA"))
        e = self.p.requests(action="AssumeRole")[0]
        self.assertEqual((e["status"], e["service"], e["form"]["RoleSessionName"]), (200, "sts", "xx"))
        self.p.fail_next(1, 400, "Throttling", "Rate exceeded", action="AssumeRole")
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            sts.assume_role(RoleArn=aws_proxy.ROLE_ARN, RoleSessionName="xx")
        self.assertEqual(cm.exception.response["Error"]["Code"], "Throttling")


class CredsServerTests(unittest.TestCase):
    def setUp(self):
        self.s = aws_creds_server.FakeCredsServer(lambda: M.assume_role(), region="eu-west-1",
                                                  ecs_token="tok", expiration_s=60).start()
        self.addCleanup(self.s.stop)

    def test_imdsv2_strict(self):
        u = self.s.url
        base = "/latest/meta-data/iam/security-credentials/"
        self.assertEqual(raw(u, "GET", base)[0], 401)                     # IMDSv1 refused
        self.assertEqual(raw(u, "PUT", "/latest/api/token")[0], 400)      # no TTL
        self.assertEqual(raw(u, "PUT", "/latest/api/token",
                             {"X-aws-ec2-metadata-token-ttl-seconds": "99999"})[0], 400)
        self.assertEqual(raw(u, "PUT", "/latest/api/token",
                             {"X-aws-ec2-metadata-token-ttl-seconds": "60",
                              "X-Forwarded-For": "1.2.3.4"})[0], 403)
        self.assertEqual(raw(u, "GET", "/latest/api/token")[0], 405)
        st, h, tok = raw(u, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        self.assertEqual((st, h["x-aws-ec2-metadata-token-ttl-seconds"]), (200, "60"))
        t = {"X-aws-ec2-metadata-token": tok.decode()}
        self.assertEqual(raw(u, "GET", base, {"X-aws-ec2-metadata-token": "nope"})[0], 401)
        st, _, role = raw(u, "GET", base, t)
        self.assertEqual((st, role), (200, b"rs-instance-role"))
        st, _, body = raw(u, "GET", base + "rs-instance-role", t)
        c = json.loads(body)
        self.assertEqual((c["Code"], c["Type"]), ("Success", "AWS-HMAC"))
        self.assertTrue({"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "LastUpdated"} <= set(c))
        self.assertEqual(raw(u, "GET", base + "other-role", t)[0], 404)
        self.assertEqual(raw(u, "GET", "/latest/meta-data/placement/region", t)[2], b"eu-west-1")
        doc = json.loads(raw(u, "GET", "/latest/dynamic/instance-identity/document", t)[2])
        self.assertEqual(doc["region"], "eu-west-1")
        # the credentials work against moto
        p = aws_proxy.AwsProxy(M).start()
        try:
            keys = {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"]}
            self.assertEqual(sm_client(p.url, keys, c["Token"]).describe_secret(SecretId="app/db")["Name"],
                             "app/db")
        finally:
            p.stop()
        self.s.expire_tokens()
        self.assertEqual(raw(u, "GET", base, t)[0], 401)
        kinds = [(e["kind"], e["status"]) for e in self.s.requests()]
        self.assertEqual(kinds[0], ("imds-role", 401))
        self.assertEqual(len(self.s.issued()), 1)

    def test_ecs(self):
        u, path = self.s.url, self.s.ecs_path
        self.assertEqual(raw(u, "GET", path)[0], 401)
        self.assertEqual(raw(u, "GET", path, {"Authorization": "tok2"})[0], 401)
        self.assertEqual(raw(u, "GET", "/v2/credentials/other", {"Authorization": "tok"})[0], 404)
        self.s.set_expiration(5)
        st, _, body = raw(u, "GET", path, {"Authorization": "tok"})
        c = json.loads(body)
        self.assertEqual(st, 200)
        self.assertTrue({"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"} <= set(c))
        exp = time.mktime(time.strptime(c["Expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        self.assertLess(abs(exp - (time.time() + 5)), 2)
        self.s.fail_next(1, 500, prefix=path)
        self.assertEqual(raw(u, "GET", path, {"Authorization": "tok"})[0], 500)
        self.assertEqual([e["status"] for e in self.s.requests("ecs")], [401, 401, 404, 200, 500])
        self.assertEqual(self.s.requests("ecs")[3]["authorization"], "tok")


class LifecycleTests(unittest.TestCase):
    def test_stop_frees_ports(self):
        p = aws_proxy.AwsProxy(M).start()
        port = p.port
        p.stop()
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        with aws_proxy.Moto() as m2:
            mport = m2.port
            self.assertIsNone(m2.proc.poll())
        self.assertIsNotNone(m2.proc.poll())
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", mport), timeout=1).close()


if __name__ == "__main__":
    unittest.main()
