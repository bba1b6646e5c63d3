#!/usr/bin/env python3
"""Self-test of tests/fakes/gcp_fake.py: starts the fake over real TLS and drives Secret Manager, the OAuth token
endpoint (RS256 JWTs signed here with `cryptography`), STS, IAM Credentials, the metadata server and every fault
and control through http.client, as a client would. Each refusal the fake promises is provoked and its exact
answer checked, so the fake stays strict.

    python3 tests/fakes/test_gcp_fake.py [-v]
"""

import base64
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import unittest
import urllib.parse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fakecheck  # noqa: E402  (what every fake's self-test shares)
import gcp_fake  # noqa: E402

CP = gcp_fake.CLOUD_PLATFORM
EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
PROJECT, NUMBER = "fake-project", 123456789012
FORM_CT = {"Content-Type": "application/x-www-form-urlencoded"}
SUBJECT_TOKEN = "eyJhbGciOiJSUzI1NiJ9.workload-subject-token.sig"
IMPERSONATED = "target-sa@fake-project.iam.gserviceaccount.com"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
OAUTH_KEYS = {"error", "error_description"}
UNAUTH_MISSING = gcp_fake.UNAUTH_MISSING
UNAUTH_INVALID = gcp_fake.UNAUTH_INVALID
TIMEFRAME = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your "
             "iat and exp values in the JWT claim.")
SM_INFO = {"service": "secretmanager.googleapis.com",
           "method": "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion"}
MD_TOKEN = "/computeMetadata/v1/instance/service-accounts/default/token"
MD = {"Metadata-Flavor": "Google"}

TMP = PKI_DIR = PKI = G = CTX = SA = SA2 = USER = EXT = None


def setUpModule():
    global TMP, PKI_DIR, PKI, G, CTX, SA, SA2, USER, EXT
    TMP = tempfile.mkdtemp(prefix="fakegcp-test-")
    try:
        PKI_DIR = os.path.join(TMP, "pki")
        PKI = gcp_fake.make_ca_and_cert(PKI_DIR)
        G = gcp_fake.FakeGCP(tls_dir=PKI_DIR, project_id=PROJECT, project_number=NUMBER).start()
        CTX = ssl.create_default_context(cafile=PKI["ca.pem"])
        SA = G.add_service_account()
        SA2 = G.add_service_account()
        USER = G.add_authorized_user(account="alice@example.com")
        EXT = G.add_external_account(SUBJECT_TOKEN, impersonate=IMPERSONATED, subject="wl-1",
                                     credential_file="/run/token")
    except BaseException:
        tearDownModule()   # unittest skips tearDownModule when setUpModule fails
        raise


def tearDownModule():
    try:
        if G is not None:
            G.stop()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ helpers


def call(method, path, body=None, headers=None, token=None, g=None, ctx=None, timeout=10):
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    return fakecheck.http_call(g or G, method, path, body, hdrs, ctx=ctx or CTX, timeout=timeout)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


sign = gcp_fake.sign_jwt


def jwt_for(sa, header=None, pem=None, drop=(), **claims):
    now = int(time.time())
    c = {"iss": sa["client_email"], "scope": CP, "aud": sa["token_uri"], "iat": now, "exp": now + 3600}
    c.update(claims)
    for k in drop:
        c.pop(k, None)
    h = {"alg": "RS256", "typ": "JWT", "kid": sa["private_key_id"]}
    h.update(header or {})
    h = {k: v for k, v in h.items() if v is not None}
    return sign(h, c, pem or sa["private_key"])


def token_req(fields, g=None, headers=FORM_CT, method="POST", raw=None):
    body = raw if raw is not None else urllib.parse.urlencode(fields).encode()
    return call(method, "/token", body=body, headers=headers, g=g)


def jwt_grant(assertion, g=None):
    return token_req({"grant_type": gcp_fake.JWT_BEARER, "assertion": assertion}, g=g)


def sa_token(sa=None, g=None, **claims):
    r = jwt_grant(jwt_for(sa or SA, **claims), g=g)
    assert r.status == 200, r
    return r.json["access_token"]


def refresh_fields(user=None, **over):
    user = user or USER
    f = {"grant_type": "refresh_token", "client_id": user["client_id"], "client_secret": user["client_secret"],
         "refresh_token": user["refresh_token"]}
    f.update(over)
    return {k: v for k, v in f.items() if v is not None}


def sts_fields(**over):
    f = {"grant_type": gcp_fake.TOKEN_EXCHANGE, "audience": EXT["audience"], "scope": CP,
         "requested_token_type": gcp_fake.ACCESS_TOKEN_TYPE, "subject_token": SUBJECT_TOKEN,
         "subject_token_type": JWT_TYPE}
    f.update(over)
    return {k: v for k, v in f.items() if v is not None}


def sts(fields=None, g=None, headers=FORM_CT, method="POST", raw=None):
    body = raw if raw is not None else urllib.parse.urlencode(fields or sts_fields()).encode()
    return call(method, "/v1/token", body=body, headers=headers, g=g)


def sts_token():
    r = sts()
    assert r.status == 200, r
    return r.json["access_token"]


def impersonate(token, email=IMPERSONATED, body=None, method="POST"):
    return call(method, "/v1/projects/-/serviceAccounts/%s:generateAccessToken" % email,
                body=body if body is not None else {"scope": [CP], "lifetime": "3600s"}, token=token)


def sm_path(secret, version="latest", project=PROJECT, location=None):
    loc = "locations/%s/" % location if location else ""
    return "/v1/projects/%s/%ssecrets/%s/versions/%s:access" % (project, loc, secret, version)


def access(secret, version="latest", token=None, project=PROJECT, location=None, g=None, method="GET",
           headers=None):
    return call(method, sm_path(secret, version, project, location), token=token, g=g, headers=headers)


def control(name, args=None, method="POST", g=None):
    return fakecheck.control_call((g or G).control_url + "/" + name, args, method, CTX)


def decoded(r):
    return base64.b64decode(r.json["payload"]["data"])


class Base(unittest.TestCase):
    def setUp(self):
        G.clear_faults()
        G.clear_requests()
        G.token_ttl = gcp_fake.DEFAULT_TTL
        G.jwt_clock_offset = 0

    def assertGoogle(self, r, status, code, message=None, reason=None, details=True):
        """A Google API error: exact status, JSON shape, status name; ErrorInfo reason when `reason`."""
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("content-type"), "application/json; charset=UTF-8")
        self.assertEqual(set(r.json), {"error"})
        err = r.json["error"]
        self.assertEqual((err["code"], err["status"]), (status, code), r)
        if message is not None:
            self.assertEqual(err["message"], message)
        if reason is None:
            self.assertEqual(set(err), {"code", "message", "status"}, r)
        else:
            self.assertEqual(set(err), {"code", "message", "status", "details"}, r)
            self.assertEqual(len(err["details"]), 1)
            self.assertEqual(err["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo")
            self.assertEqual(err["details"][0]["reason"], reason)
        return err

    def assertOAuth(self, r, status, error, description=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(set(r.json), OAUTH_KEYS, r)
        self.assertEqual(r.json["error"], error, r)
        if description is not None:
            self.assertEqual(r.json["error_description"], description)
        self.assertNotIn("access_token", r.json)

    def assert401(self, r, message, reason, challenge='Bearer realm="https://accounts.google.com/", '
                                                      'error="invalid_token"'):
        err = self.assertGoogle(r, 401, "UNAUTHENTICATED", message, reason)
        self.assertEqual(r.headers["www-authenticate"], challenge)
        return err


# ------------------------------------------------------------------------------------------------ CRC32C


class CRCTests(unittest.TestCase):
    def test_vectors(self):
        # backend-apis.md's computed vectors, and RFC 3720 B.4's (32 zero bytes, 32 0xFF bytes, 0..31)
        self.assertEqual(gcp_fake.crc32c(b"123456789"), 3808858755)
        self.assertEqual(gcp_fake.crc32c(b"my secret data"), 4065306638)
        self.assertEqual(gcp_fake.crc32c(b"hunter2"), 1736498283)
        self.assertEqual(gcp_fake.crc32c(b""), 0)
        self.assertEqual(gcp_fake.crc32c(bytes(32)), 0x8A9136AA)
        self.assertEqual(gcp_fake.crc32c(b"\xff" * 32), 0x62A8AB43)
        self.assertEqual(gcp_fake.crc32c(bytes(range(32))), 0x46DD794E)

    def test_continuation(self):
        self.assertEqual(gcp_fake.crc32c(b"6789", gcp_fake.crc32c(b"12345")), 3808858755)


# ------------------------------------------------------------------------------------------------ TLS


class TLSTests(Base):
    def test_chain_verifies_and_other_ca_fails(self):
        for sni in ("127.0.0.1", "localhost"):
            with socket.create_connection(("127.0.0.1", G.port), timeout=5) as raw:
                with CTX.wrap_socket(raw, server_hostname=sni) as s:
                    self.assertIn(("IP Address", "127.0.0.1"), s.getpeercert()["subjectAltName"])
        other = ssl.create_default_context(cafile=PKI["other-ca.pem"])
        with self.assertRaises(ssl.SSLCertVerificationError):
            call("GET", sm_path("x"), ctx=other)
        self.assertEqual(G.requests(), [])   # a failed handshake is no request


# ------------------------------------------------------------------------------------------------ Secret Manager


class AccessTests(Base):
    def test_latest_exact_json_by_id_and_number(self):
        G.add_version("sm-a", b"first")
        G.add_version("sm-a", b"my secret data")
        tok = sa_token()
        for project in (PROJECT, str(NUMBER)):
            r = access("sm-a", token=tok, project=project)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers["content-type"], "application/json; charset=UTF-8")
            self.assertEqual(r.json, {"name": "projects/%d/secrets/sm-a/versions/2" % NUMBER,
                                      "payload": {"data": "bXkgc2VjcmV0IGRhdGE=", "dataCrc32c": "4065306638"}})
        e = G.requests("secretmanager")[0]
        self.assertEqual((e["project"], e["secret"], e["version"], e["identity"], e["status"]),
                         (PROJECT, "sm-a", 2, SA["client_email"], 200))

    def test_pinned_versions_and_rotation(self):
        n1 = G.add_version("sm-b", "v-one")
        tok = sa_token()
        self.assertEqual(decoded(access("sm-b", token=tok)), b"v-one")
        n2 = G.add_version("sm-b", "v-two")
        self.assertEqual((n1, n2), (1, 2))
        r = access("sm-b", token=tok)
        self.assertEqual((decoded(r), r.json["name"]), (b"v-two", "projects/%d/secrets/sm-b/versions/2" % NUMBER))
        r = access("sm-b", "1", token=tok)
        self.assertEqual((decoded(r), r.json["name"]), (b"v-one", "projects/%d/secrets/sm-b/versions/1" % NUMBER))
        self.assertEqual([v["n"] for v in G.versions("sm-b")], [1, 2])

    def test_crc_present_and_correct_binary(self):
        data = bytes(range(256)) * 4
        G.add_version("sm-bin", data)
        r = access("sm-bin", token=sa_token())
        self.assertEqual(decoded(r), data)
        crc = r.json["payload"]["dataCrc32c"]
        self.assertIsInstance(crc, str)
        self.assertEqual(int(crc), gcp_fake.crc32c(data))

    def test_version_without_stored_crc(self):
        G.add_version("sm-nocrc", b"old", crc=False)
        r = access("sm-nocrc", token=sa_token())
        self.assertEqual(r.json["payload"], {"data": base64.b64encode(b"old").decode()})

    def test_regional(self):
        G.add_version("sm-reg", b"regional", location="us-central1")
        tok = sa_token()
        r = access("sm-reg", token=tok, location="us-central1")
        self.assertEqual((r.status, decoded(r)), (200, b"regional"))
        self.assertEqual(r.json["name"], "projects/%d/locations/us-central1/secrets/sm-reg/versions/1" % NUMBER)
        # a regional secret is not the global one of the same id, nor one in another region
        self.assertGoogle(access("sm-reg", token=tok), 404, "NOT_FOUND",
                          "Secret [projects/%d/secrets/sm-reg] not found or has no versions." % NUMBER)
        self.assertGoogle(access("sm-reg", token=tok, location="europe-west1"), 404, "NOT_FOUND",
                          "Secret [projects/%d/locations/europe-west1/secrets/sm-reg] not found or has no versions."
                          % NUMBER)
        G.add_version("sm-glob", b"global")      # nor is a global secret reachable through a regional path
        self.assertGoogle(access("sm-glob", token=tok, location="us-central1"), 404, "NOT_FOUND",
                          "Secret [projects/%d/locations/us-central1/secrets/sm-glob] not found or has no versions."
                          % NUMBER)
        self.assertEqual(decoded(access("sm-glob", token=tok)), b"global")
        self.assertEqual(G.requests("secretmanager")[0]["location"], "us-central1")

    def test_payload_limit_and_argument_checks(self):
        G.add_version("sm-max", bytes(64 * 1024))
        with self.assertRaises(ValueError):
            G.add_version("sm-max", bytes(64 * 1024 + 1))
        with self.assertRaises(ValueError):
            G.add_version("bad/name", b"x")
        with self.assertRaises(ValueError):
            G.add_version("sm-max", b"x", data_b64="eA==")
        with self.assertRaises(ValueError):
            G.add_version("sm-max", 5)
        self.assertEqual(len(decoded(access("sm-max", token=sa_token()))), 64 * 1024)


class AccessRefusalTests(Base):
    def test_no_or_malformed_authorization(self):
        G.add_version("ref-a", b"v")
        for hdrs in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "},
                     {"Authorization": "Bearer"}):
            err = self.assert401(access("ref-a", headers=hdrs), UNAUTH_MISSING, "CREDENTIALS_MISSING",
                                 challenge='Bearer realm="https://accounts.google.com/"')
            self.assertEqual(err["details"][0]["domain"], "googleapis.com")
            self.assertEqual(err["details"][0]["metadata"], SM_INFO)
        # the token is checked before anything else: a missing secret or bad project still gets 401
        self.assert401(access("nope", project="other-project"), UNAUTH_MISSING, "CREDENTIALS_MISSING",
                       challenge='Bearer realm="https://accounts.google.com/"')
        self.assertEqual(G.count("secretmanager", 401), 5)

    def test_unknown_token(self):
        G.add_version("ref-b", b"v")
        for tok in ("ya29.not-issued-here", "eyJ0eXAiOiJKV1QifQ.e30.c2ln"):
            self.assert401(access("ref-b", token=tok), UNAUTH_INVALID, "ACCESS_TOKEN_TYPE_UNSUPPORTED")

    def test_expired_by_ttl_and_by_expire_tokens(self):
        G.add_version("ref-c", b"v")
        G.token_ttl = 60
        r = jwt_grant(jwt_for(SA))
        self.assertEqual(r.json["expires_in"], 60)
        tok = r.json["access_token"]
        self.assertEqual(access("ref-c", token=tok).status, 200)
        G.advance_time(61)
        self.assert401(access("ref-c", token=tok), UNAUTH_INVALID, "ACCESS_TOKEN_EXPIRED")
        fresh = sa_token()     # the JWT is judged by the real clock, not the advanced one
        self.assertEqual(access("ref-c", token=fresh).status, 200)
        self.assertGreaterEqual(G.expire_tokens(SA["client_email"]), 2)
        self.assert401(access("ref-c", token=fresh), UNAUTH_INVALID, "ACCESS_TOKEN_EXPIRED")
        self.assertTrue(all(t["expired"] for t in G.tokens() if t["identity"] == SA["client_email"]))

    def test_missing_scope_is_403(self):
        G.add_version("ref-d", b"v")
        r = jwt_grant(jwt_for(SA, scope=EMAIL_SCOPE))
        self.assertEqual(r.status, 200)           # Google issues it ...
        err = self.assertGoogle(access("ref-d", token=r.json["access_token"]), 403, "PERMISSION_DENIED",
                                "Request had insufficient authentication scopes.", "ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        self.assertEqual(err["details"][0]["metadata"], SM_INFO)    # ... Secret Manager refuses it
        r = access("ref-d", token=G.issue_token("x@example.com", scopes=[EMAIL_SCOPE, "openid"]))
        self.assertEqual(r.headers["www-authenticate"], 'Bearer realm="https://accounts.google.com/", '
                         'error="insufficient_scope", scope="%s"' % CP)
        self.assertEqual(access("ref-d", token=G.issue_token("x@example.com", scopes=[EMAIL_SCOPE, CP])).status, 200)

    def test_disabled_version(self):
        G.add_version("ref-e", b"one")
        G.add_version("ref-e", b"two")
        tok = sa_token()
        G.disable_version("ref-e", 2)
        msg = "Secret Version [projects/%d/secrets/ref-e/versions/2] is in DISABLED state." % NUMBER
        self.assertGoogle(access("ref-e", token=tok), 400, "FAILED_PRECONDITION", msg)
        self.assertGoogle(access("ref-e", "2", token=tok), 400, "FAILED_PRECONDITION", msg)
        self.assertEqual(decoded(access("ref-e", "1", token=tok)), b"one")
        self.assertEqual(G.requests("secretmanager")[0]["version"], 2)
        G.enable_version("ref-e", 2)
        self.assertEqual(decoded(access("ref-e", token=tok)), b"two")

    def test_destroyed_version(self):
        G.add_version("ref-f", b"one")
        G.add_version("ref-f", b"two")
        tok = sa_token()
        G.destroy_version("ref-f", 2)
        # latest is the newest version whatever its state: it does not fall back to version 1
        msg = "Secret Version [projects/%d/secrets/ref-f/versions/2] is in DESTROYED state." % NUMBER
        self.assertGoogle(access("ref-f", token=tok, project=str(NUMBER)), 400, "FAILED_PRECONDITION", msg)
        self.assertGoogle(access("ref-f", "2", token=tok), 400, "FAILED_PRECONDITION", msg)
        self.assertEqual(decoded(access("ref-f", "1", token=tok)), b"one")
        with self.assertRaises(ValueError):
            G.enable_version("ref-f", 2)        # destroyed is for good
        self.assertEqual(G.versions("ref-f")[1], {"n": 2, "state": "DESTROYED", "crc": gcp_fake.crc32c(b"two"),
                                                  "with_crc": True, "size": 0})

    def test_missing_secret_version_and_deleted(self):
        tok = sa_token()
        self.assertGoogle(access("ref-none", token=tok), 404, "NOT_FOUND",
                          "Secret [projects/%d/secrets/ref-none] not found or has no versions." % NUMBER)
        self.assertGoogle(access("ref-none", "3", token=tok), 404, "NOT_FOUND",
                          "Secret [projects/%d/secrets/ref-none] not found or has no versions." % NUMBER)
        G.add_version("ref-g", b"x")
        self.assertGoogle(access("ref-g", "7", token=tok), 404, "NOT_FOUND",
                          "Secret Version [projects/%d/secrets/ref-g/versions/7] not found." % NUMBER)
        self.assertTrue(G.delete_secret("ref-g"))
        self.assertFalse(G.delete_secret("ref-g"))
        self.assertGoogle(access("ref-g", "1", token=tok), 404, "NOT_FOUND",
                          "Secret [projects/%d/secrets/ref-g] not found or has no versions." % NUMBER)
        self.assertEqual(G.add_version("ref-g", b"again"), 1)   # a new secret numbers from 1

    def test_denied_identity(self):
        G.add_version("ref-h", b"x")
        G.add_version("ref-h2", b"y")
        tok, other = sa_token(), sa_token(SA2)
        G.deny(SA["client_email"], "ref-h")
        try:
            err = self.assertGoogle(access("ref-h", token=tok), 403, "PERMISSION_DENIED",
                                    "Permission 'secretmanager.versions.access' denied for resource 'projects/%s/"
                                    "secrets/ref-h/versions/latest' (or it may not exist)." % PROJECT,
                                    "IAM_PERMISSION_DENIED")
            self.assertEqual(err["details"][0]["metadata"],
                             {"permission": "secretmanager.versions.access",
                              "resource": "projects/%s/secrets/ref-h/versions/latest" % PROJECT})
            self.assertEqual(access("ref-h2", token=tok).status, 200)
            self.assertEqual(access("ref-h", token=other).status, 200)
            G.deny(SA["client_email"])      # every secret; a missing one looks the same (no existence oracle)
            self.assertGoogle(access("ref-h2", "1", token=tok, project=str(NUMBER)), 403, "PERMISSION_DENIED",
                              "Permission 'secretmanager.versions.access' denied for resource 'projects/%d/secrets/"
                              "ref-h2/versions/1' (or it may not exist)." % NUMBER, "IAM_PERMISSION_DENIED")
            self.assertEqual(access("ref-missing", token=tok).json["error"]["status"], "PERMISSION_DENIED")
        finally:
            self.assertTrue(G.allow(SA["client_email"], "ref-h"))
            self.assertTrue(G.allow(SA["client_email"]))
        self.assertFalse(G.allow(SA["client_email"]))
        self.assertEqual(access("ref-h", token=tok).status, 200)

    def test_other_project_is_denied(self):
        G.add_version("ref-i", b"x")
        self.assertGoogle(access("ref-i", token=sa_token(), project="other-project"), 403, "PERMISSION_DENIED",
                          "Permission 'secretmanager.versions.access' denied for resource 'projects/other-project/"
                          "secrets/ref-i/versions/latest' (or it may not exist).", "IAM_PERMISSION_DENIED")

    def test_malformed_names_paths_and_methods(self):
        tok = sa_token()
        for secret, version in (("bad$id", "latest"), ("x" * 256, "1"), ("ok", "abc"), ("ok", "0"), ("ok", "-1")):
            r = access(secret, version, token=tok)
            self.assertGoogle(r, 400, "INVALID_ARGUMENT", "Resource ID [projects/%s/secrets/%s/versions/%s] is not "
                              "in a valid format." % (PROJECT, secret, version))
        G.add_version("ref-j", b"x")
        for method, path in (("POST", sm_path("ref-j")), ("DELETE", sm_path("ref-j")),
                             ("GET", "/v1/projects/%s/secrets/ref-j/versions/latest" % PROJECT),
                             ("GET", "/v1/projects/%s/secrets/ref-j" % PROJECT), ("GET", "/v2/whatever")):
            r = call(method, path, token=tok)
            self.assertEqual((r.status, r.headers["content-type"]), (404, "text/html; charset=UTF-8"), (method, path))
            self.assertIn(b"was not found on this server.", r.body)

    def test_self_signed_jwt_bearer(self):
        G.add_version("ref-k", b"jwt-bearer")
        now = int(time.time())
        base = {"iss": SA["client_email"], "sub": SA["client_email"], "iat": now, "exp": now + 3600}
        head = {"alg": "RS256", "typ": "JWT", "kid": SA["private_key_id"]}
        ok_aud = sign(head, dict(base, aud="https://secretmanager.googleapis.com/"), SA["private_key"])
        ok_scope = sign(head, dict(base, scope=CP), SA["private_key"])
        self.assertEqual(decoded(access("ref-k", token=ok_aud)), b"jwt-bearer")
        self.assertEqual(access("ref-k", token=ok_scope).status, 200)
        self.assertEqual(G.requests("secretmanager")[0]["identity"], SA["client_email"])
        bad = [sign(head, dict(base, aud="https://storage.googleapis.com/"), SA["private_key"]),
               sign(head, dict(base, aud="https://secretmanager.googleapis.com/", sub="x@y.z"), SA["private_key"]),
               sign(head, dict(base, aud="https://secretmanager.googleapis.com/", exp=now + 7200), SA["private_key"]),
               sign(head, dict(base, aud="https://secretmanager.googleapis.com/"), SA2["private_key"]),
               sign(head, dict(base, scope=EMAIL_SCOPE), SA["private_key"])]
        for i, t in enumerate(bad[:4]):
            self.assert401(access("ref-k", token=t), UNAUTH_INVALID, "ACCESS_TOKEN_TYPE_UNSUPPORTED")
        self.assertEqual(access("ref-k", token=bad[4]).status, 403)     # valid, but without cloud-platform
        G.accept_self_signed_jwt = False
        try:
            self.assert401(access("ref-k", token=ok_aud), UNAUTH_INVALID, "ACCESS_TOKEN_TYPE_UNSUPPORTED")
        finally:
            G.accept_self_signed_jwt = True


# ------------------------------------------------------------------------------------------------ token endpoint


class JwtGrantTests(Base):
    def test_success(self):
        r = jwt_grant(jwt_for(SA))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"access_token", "expires_in", "token_type"})
        self.assertEqual((r.json["expires_in"], r.json["token_type"]), (3599, "Bearer"))
        self.assertTrue(r.json["access_token"].startswith("ya29."))
        self.assertEqual(r.headers["cache-control"], "no-cache, no-store, max-age=0, must-revalidate")
        t = [t for t in G.tokens() if t["value"] == r.json["access_token"]][0]
        self.assertEqual((t["identity"], t["kind"], t["scopes"], t["expired"]),
                         (SA["client_email"], "service_account", [CP], False))
        e = G.requests("token")[0]
        self.assertEqual((e["grant_type"], e["identity"], e["issued_token"]),
                         (gcp_fake.JWT_BEARER, SA["client_email"], r.json["access_token"]))

    def test_key_file(self):
        self.assertEqual(SA["type"], "service_account")
        self.assertEqual(SA["token_uri"], G.url + "/token")
        self.assertEqual(SA["project_id"], PROJECT)
        self.assertRegex(SA["private_key_id"], r"^[0-9a-f]{40}$")
        self.assertTrue(SA["private_key"].startswith("-----BEGIN PRIVATE KEY-----\n"))
        self.assertTrue(SA["client_email"].endswith("@%s.iam.gserviceaccount.com" % PROJECT))

    def test_bad_signature_wrong_kid_and_other_keys(self):
        other_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        good = jwt_for(SA)
        head, claims, sig = good.split(".")
        flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        cases = {
            "foreign key, right kid": jwt_for(SA, pem=other_pem),
            "flipped signature": ".".join((head, claims, flipped)),
            "claims changed after signing": ".".join((head, b64url(json.dumps(dict(
                json.loads(base64.urlsafe_b64decode(claims + "==")), scope=CP + " openid")).encode()), sig)),
            "unknown kid": jwt_for(SA, header={"kid": "0" * 40}),
            "no kid": jwt_for(SA, header={"kid": None}),
            "kid of another account": jwt_for(SA, header={"kid": SA2["private_key_id"]}, pem=SA2["private_key"]),
            "alg HS256": jwt_for(SA, header={"alg": "HS256"}),
            "alg none": ".".join((b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": SA["private_key_id"]})
                                         .encode()), claims, "c2ln")),
        }
        for name, assertion in cases.items():
            with self.subTest(name):
                self.assertOAuth(jwt_grant(assertion), 400, "invalid_grant", "Invalid JWT Signature.")
        self.assertEqual(G.count("token", 400), len(cases))
        self.assertEqual([e["issued_token"] for e in G.requests("token")], [None] * len(cases))

    def test_key_rotation_and_deletion(self):
        sa = G.add_service_account("rotating@fake-project.iam.gserviceaccount.com")
        new = G.add_service_account_key(sa["client_email"])
        self.assertNotEqual(new["private_key_id"], sa["private_key_id"])
        self.assertEqual(jwt_grant(jwt_for(sa)).status, 200)       # old key still valid
        self.assertEqual(jwt_grant(jwt_for(new)).status, 200)
        self.assertTrue(G.remove_service_account_key(sa["client_email"], sa["private_key_id"]))
        self.assertFalse(G.remove_service_account_key(sa["client_email"], sa["private_key_id"]))
        self.assertOAuth(jwt_grant(jwt_for(sa)), 400, "invalid_grant", "Invalid JWT Signature.")
        self.assertEqual(jwt_grant(jwt_for(new)).status, 200)
        with self.assertRaises(ValueError):
            G.add_service_account("rotating@fake-project.iam.gserviceaccount.com")
        with self.assertRaises(KeyError):
            G.add_service_account_key("nobody@fake-project.iam.gserviceaccount.com")

    def test_wrong_aud(self):
        for aud in ("https://oauth2.googleapis.com/token", G.url + "/token/", G.url, [SA["token_uri"]], None):
            with self.subTest(aud=aud):
                a = jwt_for(SA, aud=aud) if aud is not None else jwt_for(SA, drop=("aud",))
                self.assertOAuth(jwt_grant(a), 400, "invalid_grant", "Invalid JWT: Failed audience check.")

    def test_wrong_iss(self):
        for iss in ("nobody@fake-project.iam.gserviceaccount.com", USER["account"], 7):
            self.assertOAuth(jwt_grant(jwt_for(SA, iss=iss)), 400, "invalid_grant",
                             "Invalid grant: account not found")
        self.assertOAuth(jwt_grant(jwt_for(SA, drop=("iss",))), 400, "invalid_grant",
                         "Invalid grant: account not found")
        # iss of another account signed with this account's key
        self.assertOAuth(jwt_grant(jwt_for(SA, iss=SA2["client_email"])), 400, "invalid_grant",
                         "Invalid JWT Signature.")

    def test_scope(self):
        for claims in ({"scope": ""}, {"scope": "   "}, {"scope": ["x"]}):
            self.assertOAuth(jwt_grant(jwt_for(SA, **claims)), 400, "invalid_scope",
                             "Empty or missing scope not allowed.")
        self.assertOAuth(jwt_grant(jwt_for(SA, drop=("scope",))), 400, "invalid_scope",
                         "Empty or missing scope not allowed.")
        for scope in ("cloud-platform", CP + " https://www.googleapis.com/auth/nope"):
            self.assertOAuth(jwt_grant(jwt_for(SA, scope=scope)), 400, "invalid_scope",
                             "Invalid OAuth scope or ID token audience provided.")
        r = jwt_grant(jwt_for(SA, scope=CP + " " + EMAIL_SCOPE))
        self.assertEqual(r.status, 200)
        self.assertEqual(G.tokens()[-1]["scopes"], [CP, EMAIL_SCOPE])

    def test_timeframe(self):
        now = int(time.time())
        bad = {"exp - iat > 3600": dict(iat=now, exp=now + 3601),
               "iat in the future": dict(iat=now + 300, exp=now + 900),
               "expired": dict(iat=now - 7200, exp=now - 3700),
               "exp before iat": dict(iat=now, exp=now - 1),
               "string iat": dict(iat=str(now), exp=now + 3600),
               "float exp": dict(iat=now, exp=now + 3600.5),
               "bool iat": dict(iat=True, exp=now + 3600)}
        for name, claims in bad.items():
            with self.subTest(name):
                self.assertOAuth(jwt_grant(jwt_for(SA, **claims)), 400, "invalid_grant", TIMEFRAME)
        self.assertOAuth(jwt_grant(jwt_for(SA, drop=("exp",))), 400, "invalid_grant", TIMEFRAME)
        self.assertOAuth(jwt_grant(jwt_for(SA, drop=("iat",))), 400, "invalid_grant", TIMEFRAME)
        self.assertEqual(jwt_grant(jwt_for(SA, iat=now + 30, exp=now + 3630)).status, 200)   # within the skew
        self.assertEqual(jwt_grant(jwt_for(SA, iat=now - 600, exp=now + 3000)).status, 200)
        G.jwt_clock_offset = -600        # the fake's JWT clock runs 10 min behind the client's
        self.assertOAuth(jwt_grant(jwt_for(SA)), 400, "invalid_grant", TIMEFRAME)
        self.assertEqual(jwt_grant(jwt_for(SA, iat=now - 600, exp=now + 3000)).status, 200)

    def test_header_sub_and_form(self):
        self.assertOAuth(jwt_grant(jwt_for(SA, header={"typ": "JWS"})), 400, "invalid_grant",
                         "Invalid JWT: Malformed assertion.")
        self.assertOAuth(jwt_grant(jwt_for(SA, header={"typ": None})), 400, "invalid_grant",
                         "Invalid JWT: Malformed assertion.")
        for a in ("not-a-jwt", "a.b", "a.b.c.d", "!!.??.**", b64url(b"[1]") + "." + b64url(b"{}") + ".c2ln"):
            self.assertOAuth(jwt_grant(a), 400, "invalid_grant", "Invalid JWT: Malformed assertion.")
        self.assertOAuth(jwt_grant(jwt_for(SA, sub="someone@example.com")), 401, "unauthorized_client")
        self.assertEqual(jwt_grant(jwt_for(SA, sub=SA["client_email"])).status, 200)
        self.assertOAuth(token_req({"grant_type": gcp_fake.JWT_BEARER}), 400, "invalid_request",
                         "Missing required parameter: assertion")
        self.assertOAuth(token_req({"assertion": jwt_for(SA)}), 400, "unsupported_grant_type", "Invalid grant_type: ")
        self.assertOAuth(token_req({"grant_type": "client_credentials"}), 400, "unsupported_grant_type",
                         "Invalid grant_type: client_credentials")
        r = token_req(None, headers={"Content-Type": "application/json"},
                      raw=json.dumps({"grant_type": gcp_fake.JWT_BEARER, "assertion": jwt_for(SA)}).encode())
        self.assertOAuth(r, 400, "invalid_request")
        self.assertOAuth(token_req({}, method="GET"), 405, "invalid_request")


class RefreshGrantTests(Base):
    def test_file_and_success(self):
        self.assertEqual(set(USER), {"type", "client_id", "client_secret", "refresh_token", "account",
                                     "universe_domain", "token_uri"})
        self.assertEqual((USER["type"], USER["token_uri"]), ("authorized_user", G.url + "/token"))
        r = token_req(refresh_fields())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"access_token", "expires_in", "scope", "token_type"})
        self.assertEqual(r.json["scope"].split(), [CP, EMAIL_SCOPE, "openid"])
        G.add_version("rt-a", b"user-value")
        self.assertEqual(decoded(access("rt-a", token=r.json["access_token"])), b"user-value")
        self.assertEqual(G.requests("secretmanager")[0]["identity"], "alice@example.com")
        r = token_req(refresh_fields(scope=CP))
        self.assertEqual((r.status, r.json["scope"]), (200, CP))

    def test_refusals(self):
        other = G.add_authorized_user(account="bob@example.com")
        self.assertOAuth(token_req(refresh_fields(client_id="nope.apps.googleusercontent.com")), 401,
                         "invalid_client", "The OAuth client was not found.")
        self.assertOAuth(token_req(refresh_fields(client_id=None)), 401, "invalid_client",
                         "The OAuth client was not found.")
        self.assertOAuth(token_req(refresh_fields(client_secret="wrong")), 401, "invalid_client", "Unauthorized")
        self.assertOAuth(token_req(refresh_fields(client_secret=None)), 401, "invalid_client", "Unauthorized")
        self.assertOAuth(token_req(refresh_fields(refresh_token=None)), 400, "invalid_request",
                         "Missing required parameter: refresh_token")
        self.assertOAuth(token_req(refresh_fields(refresh_token="1//0unknown")), 400, "invalid_grant", "Bad Request")
        # another client's refresh token
        self.assertOAuth(token_req(refresh_fields(refresh_token=other["refresh_token"])), 400, "invalid_grant",
                         "Bad Request")
        self.assertOAuth(token_req(refresh_fields(scope="https://www.googleapis.com/auth/pubsub")), 400,
                         "invalid_scope")
        self.assertTrue(G.revoke_refresh_token(other["refresh_token"]))
        self.assertFalse(G.revoke_refresh_token("1//0unknown"))
        self.assertOAuth(token_req(refresh_fields(other)), 400, "invalid_grant", "Token has been expired or revoked.")
        self.assertEqual(token_req(refresh_fields()).status, 200)


# ------------------------------------------------------------------------------------------------ STS + IAM


class StsTests(Base):
    def test_file(self):
        self.assertEqual(EXT, {
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/%d/locations/global/workloadIdentityPools/pool-1/providers/"
                        "provider-1" % NUMBER,
            "subject_token_type": JWT_TYPE, "token_url": G.url + "/v1/token",
            "credential_source": {"file": "/run/token"}, "universe_domain": "googleapis.com",
            "service_account_impersonation_url": G.url + "/v1/projects/-/serviceAccounts/%s:generateAccessToken"
                                                 % IMPERSONATED})
        plain = G.add_external_account("another-subject-token", pool="pool-2")
        self.assertNotIn("service_account_impersonation_url", plain)
        self.assertEqual(plain["credential_source"], {"file": ""})

    def test_success_form_and_json(self):
        r = sts()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"access_token", "issued_token_type", "token_type", "expires_in"})
        self.assertEqual((r.json["issued_token_type"], r.json["token_type"], r.json["expires_in"]),
                         (gcp_fake.ACCESS_TOKEN_TYPE, "Bearer", 3599))
        principal = ("principal://iam.googleapis.com/projects/%d/locations/global/workloadIdentityPools/pool-1/"
                     "subject/wl-1" % NUMBER)
        self.assertEqual(G.requests("sts")[0]["identity"], principal)
        G.add_version("sts-a", b"federated")
        self.assertEqual(decoded(access("sts-a", token=r.json["access_token"])), b"federated")  # used directly
        G.deny(principal, "sts-a")
        try:
            self.assertEqual(access("sts-a", token=r.json["access_token"]).status, 403)
        finally:
            G.allow(principal, "sts-a")
        camel = {"grantType": gcp_fake.TOKEN_EXCHANGE, "audience": EXT["audience"], "scope": CP,
                 "requestedTokenType": gcp_fake.ACCESS_TOKEN_TYPE, "subjectToken": SUBJECT_TOKEN,
                 "subjectTokenType": JWT_TYPE}
        for body in (camel, sts_fields()):
            r = sts(raw=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, r)

    def test_rotation_of_the_subject_token(self):
        G.add_external_account("rotated-subject-token", subject="wl-1")
        self.assertEqual(sts(sts_fields(subject_token="rotated-subject-token")).status, 200)
        self.assertEqual(sts().status, 200)

    def test_refusals(self):
        issued = len(G.tokens())
        self.assertOAuth(sts(sts_fields(audience="https://iam.googleapis.com/projects/1/x")), 400, "invalid_request",
                         "Invalid value for \"audience\". This value should be the full resource name of the Identity "
                         "Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token for "
                         "the list of possible formats.")
        self.assertOAuth(sts(sts_fields(audience=None)), 400, "invalid_request")
        self.assertOAuth(sts(sts_fields(audience=EXT["audience"].replace("provider-1", "provider-9"))), 400,
                         "invalid_target", "The target service indicated by the \"audience\" parameters is invalid. "
                         "This might either be because the pool or provider is disabled or deleted or because it "
                         "doesn't exist.")
        self.assertOAuth(sts(sts_fields(subject_token_type="urn:ietf:params:oauth:token-type:id_token")), 400,
                         "invalid_request", "Invalid value of subject_token_type in request.")
        self.assertOAuth(sts(sts_fields(subject_token_type=None)), 400, "invalid_request")
        self.assertOAuth(sts(sts_fields(requested_token_type="urn:ietf:params:oauth:token-type:id_token")), 400,
                         "invalid_request", "Invalid value of requested_token_type in request.")
        self.assertOAuth(sts(sts_fields(grant_type=gcp_fake.JWT_BEARER)), 400, "unsupported_grant_type")
        self.assertOAuth(sts(sts_fields(scope=None)), 400, "invalid_scope", "Empty or missing scope not allowed.")
        self.assertOAuth(sts(sts_fields(scope="https://www.googleapis.com/auth/nope")), 400, "invalid_scope")
        self.assertOAuth(sts(sts_fields(subject_token="not-registered")), 400, "invalid_grant")
        self.assertOAuth(sts(sts_fields(subject_token=None)), 400, "invalid_request",
                         "Missing required parameter: subject_token")
        self.assertOAuth(sts(raw=b"{}", headers={"Content-Type": "text/plain"}), 400, "invalid_request")
        self.assertOAuth(sts(method="GET"), 405, "invalid_request")
        self.assertEqual(G.count("sts", 200), 0)
        self.assertEqual(len(G.tokens()), issued)      # no refusal issued a token


class ImpersonationTests(Base):
    def test_success(self):
        G.add_version("imp-a", b"impersonated")
        fed = sts_token()
        t0 = G._wall()
        r = impersonate(fed)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"accessToken", "expireTime"})
        self.assertRegex(r.json["expireTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        exp = time.mktime(time.strptime(r.json["expireTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        self.assertAlmostEqual(exp, t0 + 3599, delta=3)
        t = G.tokens()[-1]
        self.assertEqual((t["identity"], t["kind"], t["scopes"]), (IMPERSONATED, "impersonated", [CP]))
        self.assertEqual(decoded(access("imp-a", token=r.json["accessToken"])), b"impersonated")
        self.assertEqual(G.requests("secretmanager")[0]["identity"], IMPERSONATED)
        r = impersonate(fed, body={"scope": [CP], "lifetime": "600s"})
        exp = time.mktime(time.strptime(r.json["expireTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        self.assertAlmostEqual(exp, G._wall() + 600, delta=3)
        # the email may arrive percent-encoded, as google-auth's URL template leaves it
        r = call("POST", "/v1/projects/-/serviceAccounts/%s:generateAccessToken" % IMPERSONATED.replace("@", "%40"),
                 body={"scope": [CP]}, token=fed)
        self.assertEqual(r.status, 200, r)
        G.deny(IMPERSONATED, "imp-a")
        try:
            self.assertEqual(access("imp-a", token=r.json["accessToken"]).status, 403)
        finally:
            G.allow(IMPERSONATED, "imp-a")

    def test_refusals(self):
        fed = sts_token()
        denied = ("Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).")
        self.assertGoogle(impersonate(None), 401, "UNAUTHENTICATED", UNAUTH_MISSING, "CREDENTIALS_MISSING")
        err = self.assertGoogle(impersonate("ya29.bad"), 401, "UNAUTHENTICATED", UNAUTH_INVALID,
                                "ACCESS_TOKEN_TYPE_UNSUPPORTED")
        self.assertEqual(err["details"][0]["metadata"]["service"], "iamcredentials.googleapis.com")
        # a token of someone not granted the impersonation, and an unknown target
        err = self.assertGoogle(impersonate(sa_token()), 403, "PERMISSION_DENIED", denied, "IAM_PERMISSION_DENIED")
        self.assertEqual(err["details"][0]["domain"], "iam.googleapis.com")
        self.assertEqual(err["details"][0]["metadata"]["permission"], "iam.serviceAccounts.getAccessToken")
        self.assertGoogle(impersonate(fed, email="other@fake-project.iam.gserviceaccount.com"), 403,
                          "PERMISSION_DENIED", denied, "IAM_PERMISSION_DENIED")
        self.assertGoogle(impersonate(G.issue_token(G.requests("sts")[-1]["identity"], scopes=[EMAIL_SCOPE])), 403,
                          "PERMISSION_DENIED", gcp_fake.INSUFFICIENT_SCOPES, "ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        for body in ({}, {"scope": []}, {"scope": "x"}, {"scope": [CP], "lifetime": "7200s"},
                     {"scope": [CP], "lifetime": "0s"}, {"scope": [CP], "lifetime": "3600"},
                     {"scope": ["https://www.googleapis.com/auth/nope"]}):
            with self.subTest(body=body):
                self.assertGoogle(impersonate(fed, body=body), 400, "INVALID_ARGUMENT")
        r = call("POST", "/v1/projects/-/serviceAccounts/%s:generateAccessToken" % IMPERSONATED, body=b"{nope",
                 token=fed, headers={"Content-Type": "application/json"})
        self.assertGoogle(r, 400, "INVALID_ARGUMENT")
        self.assertEqual(impersonate(fed, method="GET", body=b"").status, 404)
        G.expire_tokens(G.requests("sts")[-1]["identity"])
        self.assertGoogle(impersonate(fed), 401, "UNAUTHENTICATED", UNAUTH_INVALID, "ACCESS_TOKEN_EXPIRED")
        self.assertEqual(G.count("iam", 200), 0)

    def test_allow_impersonation(self):
        tok = sa_token(SA2)
        self.assertEqual(impersonate(tok).status, 403)
        G.allow_impersonation(SA2["client_email"], IMPERSONATED)
        self.assertEqual(impersonate(tok).status, 200)


# ------------------------------------------------------------------------------------------------ metadata


class MetadataTests(Base):
    def tearDown(self):
        G.disable_metadata()

    def test_requires_the_header(self):
        G.enable_metadata(SA2["client_email"])
        issued = len(G.tokens())
        for hdrs in ({}, {"Metadata-Flavor": "google"}, {"Metadata-Flavor": "Google "}, {"Metadata": "true"}):
            r = call("GET", MD_TOKEN, headers=hdrs)
            self.assertEqual((r.status, r.headers["content-type"], r.headers["metadata-flavor"]),
                             (403, "text/html; charset=UTF-8", "Google"), hdrs)
            self.assertIn(("Your client does not have permission to get URL <code>%s</code> from this server. Missing "
                           "Metadata-Flavor:Google header." % MD_TOKEN).encode(), r.body)
            self.assertNotIn(b"access_token", r.body)
        r = call("GET", MD_TOKEN, headers=dict(MD, **{"X-Forwarded-For": "10.0.0.1"}))
        self.assertEqual(r.status, 403)
        self.assertEqual(G.count("metadata", 403), 5)
        self.assertEqual(len(G.tokens()), issued)      # no refusal issued a token

    def test_success(self):
        G.enable_metadata(SA2["client_email"])
        r = call("GET", MD_TOKEN, headers=MD)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.headers["content-type"], r.headers["metadata-flavor"], r.headers["server"]),
                         ("application/json", "Google", "Metadata Server for VM"))
        self.assertEqual(set(r.json), {"access_token", "expires_in", "token_type"})
        self.assertEqual((r.json["expires_in"], r.json["token_type"]), (3599, "Bearer"))
        G.add_version("md-a", b"from-metadata")
        self.assertEqual(decoded(access("md-a", token=r.json["access_token"])), b"from-metadata")
        self.assertEqual(G.requests("secretmanager")[0]["identity"], SA2["client_email"])
        r = call("GET", "/computeMetadata/v1/instance/service-accounts/%s/token" % SA2["client_email"], headers=MD)
        self.assertEqual(r.status, 200)
        for path, want in (("instance/service-accounts/default/email", SA2["client_email"]),
                           ("project/project-id", PROJECT), ("project/numeric-project-id", str(NUMBER))):
            r = call("GET", "/computeMetadata/v1/" + path, headers=MD)
            self.assertEqual((r.status, r.body.decode(), r.headers["content-type"]), (200, want, "application/text"))

    def test_scopes_and_absent_account(self):
        r = call("GET", MD_TOKEN, headers=MD)
        self.assertEqual((r.status, r.headers["metadata-flavor"]), (404, "Google"))
        G.enable_metadata(SA2["client_email"], scopes=[EMAIL_SCOPE])
        r = call("GET", MD_TOKEN, headers=MD)
        G.add_version("md-b", b"x")
        self.assertEqual(access("md-b", token=r.json["access_token"]).status, 403)    # instance lacks the scope
        r = call("GET", MD_TOKEN + "?scopes=" + urllib.parse.quote(CP + "," + EMAIL_SCOPE), headers=MD)
        self.assertEqual(access("md-b", token=r.json["access_token"]).status, 200)
        self.assertEqual(call("GET", MD_TOKEN + "?scopes=nope", headers=MD).status, 400)
        self.assertEqual(call("GET", "/computeMetadata/v1/instance/service-accounts/other@x.y/token",
                              headers=MD).status, 404)
        self.assertEqual(call("POST", MD_TOKEN, headers=MD).status, 405)


# ------------------------------------------------------------------------------------------------ faults


class FaultTests(Base):
    def test_429_with_retry_after_per_endpoint(self):
        G.add_version("f-a", b"x")
        tok = sa_token()
        for ep in gcp_fake.ENDPOINTS:
            G.fault_status(ep, 429, retry_after=7)
        r = access("f-a", token=tok)
        err = self.assertGoogle(r, 429, "RESOURCE_EXHAUSTED", reason="RATE_LIMIT_EXCEEDED")
        self.assertIn("secretmanager.googleapis.com", err["message"])
        self.assertEqual(r.headers["retry-after"], "7")
        r = jwt_grant(jwt_for(SA))
        self.assertOAuth(r, 429, "temporarily_unavailable")
        self.assertEqual(r.headers["retry-after"], "7")
        self.assertEqual(sts().status, 429)
        r = impersonate(tok)
        self.assertGoogle(r, 429, "RESOURCE_EXHAUSTED", reason="RATE_LIMIT_EXCEEDED")
        r = call("GET", MD_TOKEN, headers=MD)
        self.assertEqual((r.status, r.headers["retry-after"], r.headers["metadata-flavor"]), (429, "7", "Google"))
        self.assertEqual(G.faults(), [])                  # count=1 each: all consumed
        self.assertEqual(access("f-a", token=tok).status, 200)
        self.assertEqual([e["fault"] for e in G.requests()], [None] + ["status"] * 5 + [None])

    def test_5xx_bodies_not_processed_and_per_secret(self):
        G.add_version("f-b", b"x")
        G.add_version("f-c", b"y")
        tok = sa_token()
        for status, code in ((503, "UNAVAILABLE"), (500, "INTERNAL"), (504, "DEADLINE_EXCEEDED")):
            G.fault_status("secretmanager", status)
            self.assertGoogle(access("f-b"), status, code)   # not processed: no token needed
        G.fault_status("secretmanager", 503, count=None, secret="f-b")
        self.assertEqual(access("f-c", token=tok).status, 200)
        for _ in range(3):
            self.assertEqual(access("f-b", token=tok).status, 503)
        G.clear_faults()
        self.assertEqual(access("f-b", token=tok).status, 200)
        G.fault_status("token", 500, body={"custom": 1})
        r = jwt_grant(jwt_for(SA))
        self.assertEqual((r.status, r.json), (500, {"custom": 1}))
        G.fault_status("sts", 502, body="bad gateway")
        r = sts()
        self.assertEqual((r.status, r.body, r.headers["content-type"]), (502, b"bad gateway",
                                                                         "text/plain; charset=utf-8"))

    def test_delay(self):
        G.add_version("f-d", b"x")
        tok = sa_token()
        G.fault_delay("secretmanager", 0.4, count=1)
        t0 = time.monotonic()
        self.assertEqual(access("f-d", token=tok).status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        e = G.requests("secretmanager")[0]
        self.assertEqual((e["fault"], e["delay_s"]), ("delay", 0.4))
        t0 = time.monotonic()
        self.assertEqual(access("f-d", token=tok).status, 200)
        self.assertLess(time.monotonic() - t0, 0.3)

    def test_bad_crc(self):
        G.add_version("f-e", b"checked-value")
        G.add_version("f-nocrc", b"old", crc=False)
        G.add_version("f-other", b"o")
        tok = sa_token()
        good = gcp_fake.crc32c(b"checked-value")
        G.fault_bad_crc("f-e", count=2)
        for _ in range(2):
            r = access("f-e", token=tok)
            self.assertEqual(decoded(r), b"checked-value")
            self.assertNotEqual(int(r.json["payload"]["dataCrc32c"]), good)
            self.assertNotEqual(int(r.json["payload"]["dataCrc32c"]), gcp_fake.crc32c(decoded(r)))
        self.assertEqual(G.requests("secretmanager")[0]["fault"], "bad_crc")
        r = access("f-e", token=tok)
        self.assertEqual(int(r.json["payload"]["dataCrc32c"]), good)
        G.fault_bad_crc("f-e", mode="data")
        r = access("f-e", token=tok)
        self.assertEqual(int(r.json["payload"]["dataCrc32c"]), good)
        self.assertNotEqual(decoded(r), b"checked-value")
        self.assertEqual(len(decoded(r)), len(b"checked-value"))
        G.fault_bad_crc("f-nocrc")
        r = access("f-nocrc", token=tok)
        self.assertNotEqual(int(r.json["payload"]["dataCrc32c"]), gcp_fake.crc32c(b"old"))
        G.fault_bad_crc("f-e")
        self.assertEqual(int(access("f-other", token=tok).json["payload"]["dataCrc32c"]), gcp_fake.crc32c(b"o"))
        # an error answer does not use the fault up
        G.disable_version("f-e", 1)
        self.assertEqual(access("f-e", token=tok).status, 400)
        self.assertEqual(len(G.faults()), 1)

    def test_argument_checks(self):
        for bad in (lambda: G.fault_status("vault", 500), lambda: G.fault_status("token", 700),
                    lambda: G.fault_status("token", 500, count=0), lambda: G.fault_delay("sts", -1),
                    lambda: G.fault_bad_crc("x", mode="both"), lambda: G.fault_bad_crc("bad/id"),
                    lambda: G.requests("nope"), lambda: G.set_token_ttl(0)):
            with self.assertRaises(ValueError):
                bad()
        self.assertEqual(G.faults(), [])


# ------------------------------------------------------------------------------------------------ log, redaction


class LogTests(Base):
    def test_entries(self):
        G.add_version("log-a", b"v")
        tok = sa_token()
        access("log-a", "1", token=tok)
        es = G.requests()
        self.assertEqual([e["endpoint"] for e in es], ["token", "secretmanager"])
        self.assertEqual([e["seq"] for e in es], sorted(e["seq"] for e in es))
        e = es[1]
        for k in ("time", "mono", "method", "path", "query", "raw_query", "headers", "body", "form", "grant_type",
                  "token", "identity", "issued_token", "project", "location", "secret", "version", "status",
                  "error", "fault", "delay_s", "duration_ms", "client", "done"):
            self.assertIn(k, e)
        self.assertEqual((e["method"], e["path"], e["token"], e["status"], e["done"]),
                         ("GET", sm_path("log-a", "1"), tok, 200, True))
        self.assertEqual(es[0]["form"]["grant_type"], gcp_fake.JWT_BEARER)
        self.assertEqual(G.count(), 2)
        self.assertEqual(G.count("secretmanager", 200), 1)
        self.assertTrue(G.wait_for_requests(2, timeout=1))
        self.assertFalse(G.wait_for_requests(3, timeout=0.2))
        r = call("GET", "/unknown/path")
        self.assertEqual(r.status, 404)
        self.assertEqual(G.requests()[-1]["endpoint"], None)

    def test_redaction_and_sensitive_values(self):
        G.add_version("log-b", b"log-value-b")
        G.add_version("log-bin", b"\xff\xfe binary")
        assertion = jwt_for(SA)
        tok = jwt_grant(assertion).json["access_token"]
        access("log-b", token=tok)
        user_tok = token_req(refresh_fields()).json["access_token"]
        fed = sts_token()
        imp = impersonate(fed).json["accessToken"]
        G.enable_metadata(SA2["client_email"])
        try:
            md = call("GET", MD_TOKEN, headers=MD).json["access_token"]
        finally:
            G.disable_metadata()
        plain, red = json.dumps(G.requests()), json.dumps(G.requests(redact=True))
        secrets_ = [assertion, tok, USER["client_secret"], USER["refresh_token"], user_tok, SUBJECT_TOKEN, fed, imp,
                    md]
        for s in secrets_:
            self.assertIn(s, plain)
            self.assertNotIn(s, red)
        self.assertEqual(set(gcp_fake.SENSITIVE_FIELDS), {"token", "issued_token", "body", "form", "headers"})
        e = G.requests("secretmanager", redact=True)[0]
        self.assertEqual((e["token"], e["headers"]["authorization"]), ("<redacted>", "Bearer <redacted>"))
        t = G.requests("token", redact=True)
        self.assertEqual((t[0]["form"]["assertion"], t[0]["form"]["grant_type"], t[0]["issued_token"]),
                         ("<redacted>", gcp_fake.JWT_BEARER, "<redacted>"))
        self.assertEqual((t[1]["form"]["client_secret"], t[1]["form"]["refresh_token"], t[1]["form"]["client_id"]),
                         ("<redacted>", "<redacted>", USER["client_id"]))
        self.assertTrue(t[0]["body"].startswith("<redacted "))
        self.assertEqual(G.requests("sts", redact=True)[0]["form"]["subject_token"], "<redacted>")
        values = G.sensitive_values()
        pem_body = "".join(SA["private_key"].strip().splitlines()[1:-1])
        for s in secrets_ + ["log-value-b", base64.b64encode(b"log-value-b").decode(),
                             base64.b64encode(b"\xff\xfe binary").decode(), SA["private_key"], pem_body,
                             SA2["private_key"]]:
            self.assertIn(s, values)
        for s in ("log-b", SA["client_email"], SA["private_key_id"], USER["client_id"], PROJECT, ""):
            self.assertNotIn(s, values)

    def test_destroyed_data_is_gone(self):
        G.add_version("log-c", b"destroy-me-value")
        self.assertIn("destroy-me-value", G.sensitive_values())
        G.destroy_version("log-c", 1)
        self.assertNotIn("destroy-me-value", G.sensitive_values())

    def test_concurrency(self):
        G.add_version("conc", b"c")
        tok = sa_token()
        G.clear_requests()
        results = fakecheck.in_threads(20, lambda i: (access("conc", token=tok) if i % 2 else
                                                      jwt_grant(jwt_for(SA))).status)
        self.assertEqual(results, [200] * 20)
        self.assertEqual((G.count("secretmanager"), G.count("token")), (10, 10))


# ------------------------------------------------------------------------------------------------ control, script


class ControlTests(Base):
    def test_control_endpoint(self):
        fakecheck.check_control_basics(self, G, CTX)
        self.assertEqual(control("add_version", {"secret": "ctl", "data": "ctl-value"}), (200, {"result": 1}))
        self.assertEqual(control("add_version", {"secret": "ctl", "data_b64": base64.b64encode(b"\x00\x01").decode()}),
                         (200, {"result": 2}))
        st, body = control("add_service_account", {"email": "ctl-sa@fake-project.iam.gserviceaccount.com"})
        self.assertEqual(st, 200)
        key = body["result"]
        tok = sa_token(key)
        self.assertEqual(decoded(access("ctl", "1", token=tok)), b"ctl-value")
        self.assertEqual(decoded(access("ctl", token=tok)), b"\x00\x01")
        self.assertEqual(control("disable_version", {"secret": "ctl", "n": 2}), (200, {"result": 2}))
        self.assertEqual(access("ctl", token=tok).status, 400)
        control("fault_status", {"endpoint": "secretmanager", "status": 429, "retry_after": 2})
        self.assertEqual(access("ctl", "1", token=tok).headers["retry-after"], "2")
        st, body = control("count?endpoint=secretmanager", method="GET")
        self.assertEqual((st, body["result"]), (200, 4))
        st, body = control("requests", {"endpoint": "secretmanager", "redact": True})
        self.assertEqual({e["token"] for e in body["result"]}, {"<redacted>"})
        st, body = control("tokens", {})
        self.assertIn(tok, [t["value"] for t in body["result"]])
        self.assertEqual(control("add_version", {"secret": "bad/id", "data": "v"})[0], 400)
        self.assertEqual(control("add_version", {"secret": "x"})[0], 400)
        self.assertEqual(control("versions", {"secret": "never-set"})[0], 400)
        self.assertEqual(control("set_token_ttl", {"seconds": 0})[0], 400)
        self.assertEqual(control("set_token_ttl", {"seconds": 120}), (200, {"result": None}))
        self.assertEqual(jwt_grant(jwt_for(SA)).json["expires_in"], 120)
        self.assertEqual((G.count("token"), G.count("secretmanager")), (2, 4))   # no control request recorded

    def test_constructor_and_unstarted(self):
        with self.assertRaises(ValueError):
            gcp_fake.FakeGCP(tls=False, project_id="Bad_Project")
        g = gcp_fake.FakeGCP(tls=False)
        with self.assertRaises(RuntimeError):
            g.add_service_account()
        with self.assertRaises(RuntimeError):
            g.add_external_account("t")


class ScriptTests(unittest.TestCase):
    def test_script_mode(self):
        state = os.path.join(TMP, "state.json")
        with open(state, "w") as f:
            json.dump({"token_ttl": 300, "calls": [
                {"method": "add_version", "args": {"secret": "app", "data": "script-value"}},
                {"method": "add_service_account", "args": {"email": "script@fake-project.iam.gserviceaccount.com"}},
            ]}, f)
        with fakecheck.script_fake(self, os.path.join(HERE, "gcp_fake.py"), "--tls-dir", PKI_DIR, "--state", state,
                                   "--project-id", "script-project", "--project-number", "42") as (line, info):
            self.assertNotIn("script-value", line)
            self.assertNotIn("PRIVATE KEY", line)
            self.assertEqual(set(info), fakecheck.SCRIPT_KEYS | {"project_id", "project_number", "endpoint",
                                                                 "token_uri", "sts_url", "metadata_url"})
            self.assertEqual((info["project_id"], info["project_number"]), ("script-project", 42))
            self.assertEqual((info["token_uri"], info["sts_url"], info["metadata_url"], info["endpoint"]),
                             (info["url"] + "/token", info["url"] + "/v1/token", info["url"], info["url"]))

            class P:   # enough of a FakeGCP for call()
                tls, port = True, info["port"]
            st, body = fakecheck.control_call(info["control"] + "/add_service_account_key",
                                              {"email": "script@fake-project.iam.gserviceaccount.com"}, ctx=CTX)
            self.assertEqual(st, 200)
            r = jwt_grant(jwt_for(body["result"]), g=P)
            self.assertEqual((r.status, r.json["expires_in"]), (200, 300))
            r = access("app", token=r.json["access_token"], project="script-project", g=P)
            self.assertEqual((r.status, decoded(r), r.json["name"]),
                             (200, b"script-value", "projects/42/secrets/app/versions/1"))
            self.assertEqual(fakecheck.control_call(info["control"] + "/count", method="GET", ctx=CTX),
                             (200, {"result": 2}))


class LifecycleTests(unittest.TestCase):
    def test_stop_interrupts_a_delayed_request(self):
        g = gcp_fake.FakeGCP(tls_dir=PKI_DIR).start()
        g.fault_delay("secretmanager", 30)
        fakecheck.check_stop_cuts_a_delayed_request(self, g, lambda: access("x", g=g))

    def test_context_manager_temp_pki_and_plain_http(self):
        fakecheck.check_temp_pki(self, gcp_fake.FakeGCP, sm_path("x", project=gcp_fake.DEFAULT_PROJECT_ID), 401)
        with gcp_fake.FakeGCP(tls=False) as g:
            self.assertTrue(g.url.startswith("http://127.0.0.1:"))
            self.assertEqual(access("x", g=g).status, 401)


if __name__ == "__main__":
    unittest.main()
