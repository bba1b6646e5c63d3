#!/usr/bin/env python3
"""Self-test of tests/fakes/azure_fake.py: starts the fake over real TLS and drives Key Vault, the Entra token
endpoint, IMDS and every fault and control through http.client, as a client would. Each refusal the fake
promises is provoked and its exact answer checked, so the fake stays strict. Standard library only.

    python3 tests/fakes/test_azure_fake.py [-v]
"""

import json
import os
import re
import shutil
import socket
import ssl
import sys
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import azure_fake as azure  # noqa: E402  (not "azure": the SDK's package name)
import fakecheck  # noqa: E402  (what every fake's self-test shares)

VAULT_SCOPE = "https://vault.azure.net/.default"
MGMT_SCOPE = "https://management.azure.com/.default"
APP, APP_SECRET = "app-cs-0001", "client-secret-one"
FED, FED_ASSERTION = "app-fed-0001", "eyJhbGciOiJSUzI1NiJ9.fed-assertion-1.sig"
OTHER_TENANT, OTHER_APP, OTHER_SECRET = "0b8e3c7a-1d2e-4f30-9a4b-5c6d7e8f9a0b", "app-other", "other-secret"
FORM_CT = {"Content-Type": "application/x-www-form-urlencoded"}
AAD_KEYS = {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}
IMDS_KEYS = {"access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource",
             "token_type"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")

TMP = PKI_DIR = PKI = FA = CTX = None


def setUpModule():
    global TMP, PKI_DIR, PKI, FA, CTX
    TMP = tempfile.mkdtemp(prefix="fakeazure-test-")
    PKI_DIR = os.path.join(TMP, "pki")
    PKI = azure.make_ca_and_cert(PKI_DIR)
    FA = azure.FakeAzure(tls_dir=PKI_DIR).start()
    CTX = ssl.create_default_context(cafile=PKI["ca.pem"])
    FA.add_client_secret_app(FA.tenant_id, APP, APP_SECRET)
    FA.add_federated_app(None, FED, FED_ASSERTION)
    FA.add_client_secret_app(OTHER_TENANT, OTHER_APP, OTHER_SECRET)


def tearDownModule():
    FA.stop()
    shutil.rmtree(TMP, ignore_errors=True)


def call(method, path, body=None, headers=None, token=None, fa=None, ctx=None, timeout=10):
    fa = fa or FA
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    return fakecheck.http_call(fa, method, path, body, hdrs, ctx=ctx or CTX, timeout=timeout)


def kv(path, token=None, api="7.4", method="GET", body=None, fa=None, headers=None, ctx=None):
    q = "" if api is None else "?api-version=" + api
    return call(method, path + q, body=body, token=token, fa=fa, headers=headers, ctx=ctx)


def token_req(fields, tenant=None, headers=FORM_CT, method="POST", fa=None, raw=None, ctx=None):
    fa = fa or FA
    body = raw if raw is not None else urllib.parse.urlencode(fields).encode()
    return call(method, "/%s/oauth2/v2.0/token" % (tenant or fa.tenant_id), body=body, headers=headers, fa=fa,
                ctx=ctx)


def cs_fields(client_id=APP, secret=APP_SECRET, scope=VAULT_SCOPE, **extra):
    f = {"grant_type": "client_credentials", "client_id": client_id, "scope": scope, "client_secret": secret}
    f.update(extra)
    return {k: v for k, v in f.items() if v is not None}


def fed_fields(client_id=FED, assertion=FED_ASSERTION, scope=VAULT_SCOPE, atype=azure.ASSERTION_TYPE):
    f = {"grant_type": "client_credentials", "client_id": client_id, "scope": scope,
         "client_assertion_type": atype, "client_assertion": assertion}
    return {k: v for k, v in f.items() if v is not None}


def get_token(fields=None, tenant=None, fa=None, ctx=None):
    r = token_req(fields or cs_fields(), tenant=tenant, fa=fa, ctx=ctx)
    assert r.status == 200, r
    return r.json["access_token"]


def imds(query, headers=None, method="GET", fa=None):
    hdrs = {"Metadata": "true"} if headers is None else headers
    q = urllib.parse.urlencode(query)
    return call(method, azure.IMDS_PATH + ("?" + q if q else ""), headers=hdrs, fa=fa)


def imds_q(**kw):
    q = {"api-version": "2018-02-01", "resource": "https://vault.azure.net"}
    q.update(kw)
    return {k: v for k, v in q.items() if v is not None}


def control(name, args=None, method="POST", fa=None):
    return fakecheck.control_call((fa or FA).control_url + "/" + name, args, method, CTX)


def challenge(fa=None, authority="https://login.microsoftonline.com", resource="https://vault.azure.net"):
    fa = fa or FA
    return 'Bearer authorization="%s/%s", resource="%s"' % (authority, fa.tenant_id, resource)


class Base(unittest.TestCase):
    def setUp(self):
        FA.clear_faults()
        FA.clear_requests()
        FA.token_ttl = azure.DEFAULT_TTL

    def assertKV(self, r, status, code, message=None, inner=None):
        """A Key Vault error: exact status and body shape."""
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("content-type"), "application/json; charset=utf-8")
        err = r.json["error"]
        self.assertEqual(err["code"], code, r)
        if message is not None:
            self.assertEqual(err["message"], message)
        if inner is None:
            self.assertNotIn("innererror", err)
        else:
            self.assertEqual(err["innererror"], {"code": inner})
        self.assertEqual(set(err) - {"innererror"}, {"code", "message"})

    def assert401(self, r, message, fa=None):
        self.assertKV(r, 401, "Unauthorized", message)
        self.assertEqual(r.headers["www-authenticate"], challenge(fa))

    def assertAAD(self, r, status, error, code):
        """An Entra error: exact status, error, code and the full body shape."""
        self.assertEqual(r.status, status, r)
        self.assertEqual(set(r.json), AAD_KEYS, r)
        self.assertEqual(r.json["error"], error, r)
        self.assertEqual(r.json["error_codes"], [code], r)
        d = r.json["error_description"]
        self.assertTrue(d.startswith("AADSTS%d: " % code), d)
        self.assertIn("\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s" % (
            r.json["trace_id"], r.json["correlation_id"], r.json["timestamp"]), d)
        self.assertRegex(r.json["timestamp"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")
        self.assertEqual(r.json["error_uri"], "https://login.microsoftonline.com/error?code=%d" % code)
        self.assertNotIn("access_token", r.json)

    def assertIMDS(self, r, status, error, description=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(set(r.json), {"error", "error_description"}, r)
        self.assertEqual(r.json["error"], error)
        if description is not None:
            self.assertEqual(r.json["error_description"], description)


# ------------------------------------------------------------------------------------------------


class TLSTests(Base):
    def test_chain_verifies_and_other_ca_fails(self):
        for sni in ("127.0.0.1", "localhost"):
            with socket.create_connection(("127.0.0.1", FA.port), timeout=5) as raw:
                with CTX.wrap_socket(raw, server_hostname=sni) as s:
                    self.assertIn(("IP Address", "127.0.0.1"), s.getpeercert()["subjectAltName"])
        other = ssl.create_default_context(cafile=PKI["other-ca.pem"])
        with self.assertRaises(ssl.SSLCertVerificationError):
            call("GET", "/secrets/x?api-version=7.4", ctx=other)
        self.assertEqual(FA.requests(), [])   # a failed handshake is no request


class VaultAuthTests(Base):
    def test_no_authorization_gets_the_challenge(self):
        FA.set_secret("auth-a", "v")
        # the SDK's first request: no token, empty body
        r = kv("/secrets/auth-a", headers={"Content-Length": "0"})
        self.assert401(r, "AKV10000: Request is missing a Bearer or PoP token.")
        for hdr in ("Basic dXNlcjpwYXNz", "Bearer ", "Bearer", "bearerx token"):
            r = kv("/secrets/auth-a", headers={"Authorization": hdr})
            self.assert401(r, "AKV10000: Request is missing a Bearer or PoP token.")
        # the challenge comes before any other check: also for a bad api-version or a missing secret
        self.assert401(kv("/secrets/auth-a", api="1.0"), "AKV10000: Request is missing a Bearer or PoP token.")
        self.assert401(kv("/secrets/nope"), "AKV10000: Request is missing a Bearer or PoP token.")
        self.assertEqual(FA.count("vault", 401), 7)

    def test_scheme_is_case_insensitive(self):
        FA.set_secret("auth-b", "v")
        tok = get_token()
        self.assertEqual(kv("/secrets/auth-b", headers={"Authorization": "bearer " + tok}).status, 200)

    def test_unknown_token(self):
        self.assert401(kv("/secrets/x", token="eyJ0eXAiOiJKV1QifQ.e30.c2ln"),
                       "AKV10046: Unable to resolve the key used for signature validation.")
        forged = get_token()[:-4] + "AAAA"      # a token the fake never issued
        self.assert401(kv("/secrets/x", token=forged),
                       "AKV10046: Unable to resolve the key used for signature validation.")

    def test_expired_token_by_ttl(self):
        FA.set_secret("auth-c", "v")
        FA.token_ttl = 60
        r = token_req(cs_fields())
        self.assertEqual(r.json["expires_in"], 60)
        tok = r.json["access_token"]
        self.assertEqual(kv("/secrets/auth-c", token=tok).status, 200)
        FA.advance_time(61)
        self.assert401(kv("/secrets/auth-c", token=tok), "[TokenExpired] Error validating token: 'S2S12086'.")
        info = [t for t in FA.tokens() if t["value"] == tok][0]
        self.assertTrue(info["expired"])
        self.assertEqual(info["expiry"] - info["issued"], 60)
        self.assertEqual(kv("/secrets/auth-c", token=get_token()).status, 200)   # a fresh one works

    def test_expire_tokens(self):
        FA.set_secret("auth-d", "v")
        t1, t2 = get_token(), get_token(fed_fields())
        self.assertEqual(FA.expire_tokens(identity=FED), len([t for t in FA.tokens() if t["identity"] == FED]))
        self.assertEqual(kv("/secrets/auth-d", token=t1).status, 200)
        self.assert401(kv("/secrets/auth-d", token=t2), "[TokenExpired] Error validating token: 'S2S12086'.")
        self.assertGreaterEqual(FA.expire_tokens(), 2)
        self.assert401(kv("/secrets/auth-d", token=t1), "[TokenExpired] Error validating token: 'S2S12086'.")
        # the JWT's own exp claim still lies in the future: only the server knows
        import base64
        claims = json.loads(base64.urlsafe_b64decode(t1.split(".")[1] + "==="))
        self.assertGreater(claims["exp"], time.time() + 600)
        self.assertEqual(kv("/secrets/auth-d", token=get_token()).status, 200)

    def test_token_for_another_resource_is_refused(self):
        FA.set_secret("auth-e", "v")
        r = token_req(cs_fields(scope=MGMT_SCOPE))
        self.assertEqual(r.status, 200)                       # Entra issues it ...
        self.assert401(kv("/secrets/auth-e", token=r.json["access_token"]),   # ... the vault refuses it
                       "AKV10022: Invalid audience. Expected https://vault.azure.net, found: "
                       "https://management.azure.com.")
        self.assertEqual([t["audience"] for t in FA.tokens() if t["value"] == r.json["access_token"]],
                         ["https://management.azure.com"])
        tok = FA.issue_token(APP, audience="https://graph.microsoft.com")
        self.assertEqual(kv("/secrets/auth-e", token=tok).json["error"]["message"],
                         "AKV10022: Invalid audience. Expected https://vault.azure.net, found: "
                         "https://graph.microsoft.com.")

    def test_token_of_another_tenant_is_refused(self):
        FA.set_secret("auth-f", "v")
        tok = get_token(cs_fields(OTHER_APP, OTHER_SECRET), tenant=OTHER_TENANT)
        self.assert401(kv("/secrets/auth-f", token=tok),
                       "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, found "
                       "https://sts.windows.net/%s/." % (FA.tenant_id, OTHER_TENANT))

    def test_api_version(self):
        FA.set_secret("auth-g", "v")
        tok = get_token()
        for api in ("7.4", "7.5"):
            self.assertEqual(kv("/secrets/auth-g", token=tok, api=api).status, 200)
        for api in ("7.3", "2016-10-01", "", "7.6"):
            self.assertKV(kv("/secrets/auth-g", token=tok, api=api), 400, "BadParameter",
                          "The specified version (%s) is not recognized. Consider using the latest supported "
                          "version (7.5)." % api)
        r = kv("/secrets/auth-g", token=tok, api=None)
        self.assertKV(r, 400, "BadParameter")
        self.assertIn("api-version", r.json["error"]["message"])

    def test_vault_host(self):
        d = os.path.join(TMP, "pki-vault-host")
        with azure.FakeAzure(tls_dir=d, vault_host="fakevault.vault.azure.net") as fa:
            self.assertEqual(fa.vault_url, "https://fakevault.vault.azure.net:%d" % fa.port)
            ctx = fa.ssl_context()
            with socket.create_connection(("127.0.0.1", fa.port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="fakevault.vault.azure.net") as s:
                    self.assertIn(("DNS", "fakevault.vault.azure.net"), s.getpeercert()["subjectAltName"])
            fa.add_client_secret_app(None, "vh", "vh-secret")
            vid = fa.set_secret("vh", "v")
            r = kv("/secrets/vh", token=get_token(cs_fields("vh", "vh-secret"), fa=fa, ctx=ctx), fa=fa, ctx=ctx)
            self.assertEqual(r.json["id"], "https://fakevault.vault.azure.net:%d/secrets/vh/%s" % (fa.port, vid))

    def test_challenge_authority_is_configurable(self):
        with azure.FakeAzure(tls_dir=PKI_DIR, tenant_id="contoso.onmicrosoft.com",
                             challenge_authority="https://login.windows.net/") as fa:
            r = kv("/secrets/x", fa=fa)
            self.assertEqual(r.headers["www-authenticate"],
                             'Bearer authorization="https://login.windows.net/contoso.onmicrosoft.com", '
                             'resource="https://vault.azure.net"')


class VaultSecretTests(Base):
    @classmethod
    def setUpClass(cls):
        cls.tok = get_token()

    def get(self, path, **kw):
        return kv(path, token=self.tok, **kw)

    def test_latest_exact_json(self):
        vid = FA.set_secret("full", "the-value", content_type="text/plain", tags={"env": "dev", "n": 1},
                            nbf=1493938000, exp=4102444800)
        r = self.get("/secrets/full")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "application/json; charset=utf-8")
        info = FA.secret_info("full")["versions"][0]
        self.assertEqual(r.json, {
            "value": "the-value", "id": "%s/secrets/full/%s" % (FA.vault_url, vid), "contentType": "text/plain",
            "tags": {"env": "dev", "n": "1"},
            "attributes": {"enabled": True, "nbf": 1493938000, "exp": 4102444800, "created": info["created"],
                           "updated": info["updated"], "recoverableDays": 90,
                           "recoveryLevel": "Recoverable+Purgeable"}})
        self.assertIsInstance(r.json["attributes"]["created"], int)
        self.assertLess(abs(info["created"] - time.time()), 3600 * 24 * 365)
        for h in ("x-ms-request-id", "x-ms-keyvault-region", "x-ms-keyvault-service-version"):
            self.assertIn(h, r.headers)

    def test_optional_members_are_omitted(self):
        vid = FA.set_secret("minimal", "m")
        r = self.get("/secrets/minimal")
        self.assertEqual(set(r.json), {"value", "id", "attributes"})
        self.assertEqual(set(r.json["attributes"]),
                         {"enabled", "created", "updated", "recoverableDays", "recoveryLevel"})
        self.assertTrue(r.json["id"].endswith("/" + vid))

    def test_versions_rotation_and_pin(self):
        v1 = FA.set_secret("rot", "one")
        v2 = FA.set_secret("rot", "two", content_type="application/json")
        self.assertTrue(HEX32.match(v1) and HEX32.match(v2) and v1 != v2)
        self.assertEqual(FA.versions("rot"), [v1, v2])
        r = self.get("/secrets/rot")
        self.assertEqual((r.json["value"], r.json["id"].rsplit("/", 1)[1]), ("two", v2))
        r = self.get("/secrets/rot/" + v1)
        self.assertEqual((r.json["value"], r.json["id"].rsplit("/", 1)[1]), ("one", v1))
        self.assertNotIn("contentType", r.json)
        self.assertEqual(self.get("/secrets/rot/" + v1.upper()).json["value"], "one")
        self.assertEqual(self.get("/secrets/rot/").json["value"], "two")   # empty version = latest
        self.assertKV(self.get("/secrets/rot/" + "0" * 32), 404, "SecretNotFound",
                      "A secret with (name/id) rot/%s was not found in this key vault. If you recently deleted "
                      "this secret you may be able to recover it using the correct recovery command. For help "
                      "resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182" % ("0" * 32))
        self.assertEqual([e["version"] for e in FA.requests("vault")][:3], [v2, v1, v1])

    def test_tamper_value_keeps_the_version(self):
        v1 = FA.set_secret("tamper", "one")
        v2 = FA.set_secret("tamper", "two")
        self.assertEqual(FA.tamper_value("tamper", "TWO"), v2)
        self.assertEqual(FA.tamper_value("tamper", "ONE", version=v1), v1)
        self.assertEqual(FA.versions("tamper"), [v1, v2])
        r = self.get("/secrets/tamper")
        self.assertEqual((r.json["value"], r.json["id"].rsplit("/", 1)[1]), ("TWO", v2))
        self.assertEqual(self.get("/secrets/tamper/" + v1).json["value"], "ONE")
        with self.assertRaises(KeyError):
            FA.tamper_value("no-such-secret", "x")

    def test_names_are_case_insensitive(self):
        vid = FA.set_secret("Mixed-Case", "mc")
        r = self.get("/secrets/mixed-CASE")
        self.assertEqual(r.json["value"], "mc")
        self.assertEqual(r.json["id"], "%s/secrets/Mixed-Case/%s" % (FA.vault_url, vid))

    def test_expired_and_not_yet_valid_are_served(self):
        # Key Vault does not enforce nbf/exp on get; the client must.
        FA.set_secret("expired", "old", exp=int(time.time()) - 10)
        FA.set_secret("future", "new", nbf=int(time.time()) + 3600)
        r = self.get("/secrets/expired")
        self.assertEqual((r.status, r.json["value"]), (200, "old"))
        self.assertLess(r.json["attributes"]["exp"], time.time())
        r = self.get("/secrets/future")
        self.assertEqual((r.status, r.json["value"]), (200, "new"))

    def test_disabled(self):
        v1 = FA.set_secret("dis", "a")
        v2 = FA.set_secret("dis", "b", enabled=False)
        self.assertKV(self.get("/secrets/dis"), 403, "Forbidden",
                      "Operation get is not allowed on a disabled secret.", inner="SecretDisabled")
        self.assertEqual(self.get("/secrets/dis/" + v1).json["value"], "a")
        self.assertEqual(FA.enable_secret("dis"), v2)
        self.assertEqual(self.get("/secrets/dis").json["attributes"]["enabled"], True)
        self.assertEqual(FA.disable_secret("dis", version=v1), v1)
        self.assertEqual(self.get("/secrets/dis/" + v1).json["error"]["innererror"]["code"], "SecretDisabled")
        self.assertEqual(self.get("/secrets/dis").status, 200)
        self.assertEqual(FA.requests("vault")[0]["error"], "SecretDisabled")

    def test_missing_and_deleted(self):
        self.assertKV(self.get("/secrets/never-there"), 404, "SecretNotFound",
                      "A secret with (name/id) never-there was not found in this key vault. If you recently "
                      "deleted this secret you may be able to recover it using the correct recovery command. For "
                      "help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
        v1 = FA.set_secret("gone", "x")
        self.assertTrue(FA.delete_secret("gone"))
        self.assertFalse(FA.delete_secret("gone"))
        self.assertKV(self.get("/secrets/gone"), 404, "SecretNotFound")
        self.assertKV(self.get("/secrets/gone/" + v1), 404, "SecretNotFound")
        v2 = FA.set_secret("gone", "y")              # recreated from scratch
        self.assertEqual(FA.versions("gone"), [v2])
        self.assertEqual(self.get("/secrets/gone").json["value"], "y")

    def test_bad_paths_and_methods(self):
        self.assertKV(self.get("/secrets/bad_name"), 400, "BadParameter",
                      "The request URI contains an invalid name: bad_name")
        self.assertKV(self.get("/secrets/" + "a" * 128), 400, "BadParameter")
        self.assertKV(self.get("/secrets"), 404, "NotFound")
        self.assertKV(self.get("/secrets/a/b/c"), 404, "NotFound")
        FA.set_secret("meth", "v")
        self.assertKV(kv("/secrets/meth", token=self.tok, method="PATCH"), 405, "MethodNotAllowed")
        self.assertKV(kv("/secrets/meth/" + FA.versions("meth")[0], token=self.tok, method="DELETE"), 405,
                      "MethodNotAllowed")

    def test_denied_identity(self):
        FA.set_secret("deny-me", "d")
        FA.set_secret("deny-other", "o")
        FA.deny(APP, "deny-me")
        try:
            r = self.get("/secrets/deny-me")
            self.assertKV(r, 403, "Forbidden", inner="ForbiddenByPolicy")
            oid = r.json["error"]["message"].split("oid=")[1].split(";")[0]
            self.assertEqual(r.json["error"]["message"],
                             "The user, group or application 'appid=%s;oid=%s;iss=https://sts.windows.net/%s/' "
                             "does not have secrets get permission on key vault 'fakevault;location=westeurope'. "
                             "For help resolving this issue, please see "
                             "https://go.microsoft.com/fwlink/?linkid=2125287" % (APP, oid, FA.tenant_id))
            self.assertEqual(self.get("/secrets/deny-other").status, 200)
            # another identity is not affected
            self.assertEqual(kv("/secrets/deny-me", token=get_token(fed_fields())).status, 200)
            # denial comes before existence
            FA.deny(APP, "*", code="AccessDenied")
            self.assertKV(self.get("/secrets/no-such"), 403, "Forbidden", inner="AccessDenied")
            FA.allow(APP, "*")
            FA.deny(APP, "deny-me", code="ForbiddenByRbac")
            r = self.get("/secrets/deny-me")
            self.assertKV(r, 403, "Forbidden", inner="ForbiddenByRbac")
            self.assertIn("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'", r.json["error"]["message"])
            with self.assertRaises(ValueError):
                FA.deny(APP, "deny-me", code="Nope")
        finally:
            FA.allow(APP, "deny-me")
            FA.allow(APP, "*")
        self.assertEqual(self.get("/secrets/deny-me").status, 200)

    def test_put_and_delete_on_the_wire(self):
        r = kv("/secrets/wire", token=self.tok, method="PUT",
               body={"value": "w1", "contentType": "text/plain", "tags": {"a": "b"}, "attributes": {"exp": 4102444800}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["value"], r.json["contentType"], r.json["tags"], r.json["attributes"]["exp"]),
                         ("w1", "text/plain", {"a": "b"}, 4102444800))
        self.assertEqual(self.get("/secrets/wire").json["id"], r.json["id"])
        self.assertKV(kv("/secrets/wire", token=self.tok, method="PUT", body={"nope": 1}), 400, "BadParameter")
        r = kv("/secrets/wire", token=self.tok, method="DELETE")
        self.assertEqual(r.status, 200)
        self.assertNotIn("value", r.json)
        self.assertEqual(r.json["recoveryId"], FA.vault_url + "/deletedsecrets/wire")
        self.assertEqual(r.json["scheduledPurgeDate"] - r.json["deletedDate"], 90 * 86400)
        self.assertKV(self.get("/secrets/wire"), 404, "SecretNotFound")
        self.assertKV(kv("/secrets/wire", token=self.tok, method="PUT", body={"value": "w2"}), 409, "Conflict",
                      inner="ObjectIsDeletedButRecoverable")

    def test_control_api_validation(self):
        for bad in ("a_b", "", "x" * 128, "sp ace"):
            with self.assertRaises(ValueError):
                FA.set_secret(bad, "v")
        with self.assertRaises(ValueError):
            FA.set_secret("ok", 5)
        with self.assertRaises(KeyError):
            FA.versions("never-set")
        with self.assertRaises(KeyError):
            FA.disable_secret("never-set")


class TokenEndpointTests(Base):
    def test_client_secret_success(self):
        before = len(FA.tokens())
        r = token_req(cs_fields())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"token_type", "expires_in", "ext_expires_in", "access_token"})
        self.assertEqual(r.json["token_type"], "Bearer")
        self.assertIs(type(r.json["expires_in"]), int)
        self.assertEqual((r.json["expires_in"], r.json["ext_expires_in"]), (azure.DEFAULT_TTL, azure.DEFAULT_TTL))
        self.assertIn("no-store", r.headers["cache-control"])
        tok = r.json["access_token"]
        self.assertEqual(tok.count("."), 2)                  # JWT-shaped (but not signed)
        self.assertGreater(len(tok), 1000)
        t = FA.tokens()[-1]
        self.assertEqual(len(FA.tokens()), before + 1)
        self.assertEqual((t["value"], t["identity"], t["kind"], t["tenant"], t["audience"], t["expired"]),
                         (tok, APP, "client_secret", FA.tenant_id, "https://vault.azure.net", False))
        FA.set_secret("tok-a", "v")
        self.assertEqual(kv("/secrets/tok-a", token=tok).status, 200)
        # charset parameter on the content type and a trailing slash before /.default are fine
        r = token_req(cs_fields(scope="https://vault.azure.net//.default"),
                      headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        self.assertEqual(r.status, 200, r)

    def test_opaque_token_format(self):
        with azure.FakeAzure(tls_dir=PKI_DIR, token_format="opaque") as fa:
            fa.add_client_secret_app(None, "o", "s")
            r = token_req(cs_fields("o", "s"), fa=fa)
            self.assertEqual(r.status, 200)
            self.assertNotIn(".", r.json["access_token"])

    def test_federated_success_and_rotation(self):
        FA.set_secret("tok-b", "v")
        r = token_req(fed_fields())
        self.assertEqual(r.status, 200, r)
        self.assertEqual(FA.tokens()[-1]["kind"], "federated")
        self.assertEqual(kv("/secrets/tok-b", token=r.json["access_token"]).status, 200)
        FA.add_federated_app(None, FED, "rotated-assertion-2")
        self.assertEqual(token_req(fed_fields(assertion="rotated-assertion-2")).status, 200)
        self.assertTrue(FA.remove_federated_assertion(None, FED, "rotated-assertion-2"))
        self.assertAAD(token_req(fed_fields(assertion="rotated-assertion-2")), 401, "invalid_client", 70021)
        self.assertEqual(FA.requests("token")[-1]["form"]["client_assertion"], "rotated-assertion-2")

    def test_client_secret_rotation(self):
        FA.add_client_secret_app(None, "app-rot", "s1")
        FA.add_client_secret_app(None, "app-rot", "s2")
        self.assertEqual(token_req(cs_fields("app-rot", "s1")).status, 200)
        self.assertEqual(token_req(cs_fields("app-rot", "s2")).status, 200)
        FA.remove_client_secret(None, "app-rot", "s1")
        self.assertAAD(token_req(cs_fields("app-rot", "s1")), 401, "invalid_client", 7000215)

    def test_refusals(self):
        guid = "9d3c2b1a-0f9e-4d8c-b7a6-a5b4c3d2e1f0"
        cases = [
            # (what, fields, kwargs for token_req, status, error, code)
            ("json body", None, {"raw": json.dumps(cs_fields()).encode(),
                                 "headers": {"Content-Type": "application/json"}}, 400, "invalid_request", 900144),
            ("no content type", None, {"raw": urllib.parse.urlencode(cs_fields()).encode(), "headers": {}},
             400, "invalid_request", 900144),
            ("missing grant_type", cs_fields(grant_type=None), {}, 400, "invalid_request", 900144),
            ("password grant", cs_fields(grant_type="password"), {}, 400, "unsupported_grant_type", 70003),
            ("missing client_id", cs_fields(client_id=None), {}, 400, "invalid_request", 900144),
            ("missing scope", cs_fields(scope=None), {}, 400, "invalid_request", 90014),
            ("scope without /.default", cs_fields(scope="https://vault.azure.net"), {}, 400, "invalid_scope",
             1002012),
            ("delegated scope", cs_fields(scope="https://vault.azure.net/user_impersonation"), {}, 400,
             "invalid_scope", 1002012),
            ("two scopes", cs_fields(scope=VAULT_SCOPE + " offline_access/.default"), {}, 400, "invalid_scope",
             1002012),
            ("unknown resource", cs_fields(scope="https://evil.example/.default"), {}, 400, "invalid_resource",
             500011),
            ("wrong secret", cs_fields(secret="not-it"), {}, 401, "invalid_client", 7000215),
            ("empty secret", cs_fields(secret=""), {}, 401, "invalid_client", 7000215),
            ("unknown client", cs_fields(client_id="who-is-this"), {}, 400, "unauthorized_client", 700016),
            ("app of another tenant", cs_fields(OTHER_APP, OTHER_SECRET), {}, 400, "unauthorized_client", 700016),
            ("unknown tenant", cs_fields(), {"tenant": guid}, 400, "invalid_request", 90002),
            ("malformed tenant", cs_fields(), {"tenant": "not_a_tenant"}, 400, "invalid_request", 900023),
            ("no credential", cs_fields(secret=None), {}, 401, "invalid_client", 7000218),
            ("both credentials", dict(cs_fields(), client_assertion_type=azure.ASSERTION_TYPE,
                                      client_assertion="x"), {}, 400, "invalid_request", 9002313),
            ("bad assertion type", fed_fields(atype="urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
             {}, 400, "invalid_request", 9002313),
            ("assertion type only", fed_fields(assertion=None), {}, 400, "invalid_request", 9002313),
            ("wrong assertion", fed_fields(assertion="forged"), {}, 401, "invalid_client", 70021),
            ("assertion to a secret app", fed_fields(client_id=APP), {}, 401, "invalid_client", 70021),
            ("secret to a federated app", cs_fields(client_id=FED, secret=FED_ASSERTION), {}, 401,
             "invalid_client", 7000215),
            ("GET", cs_fields(), {"method": "GET"}, 400, "invalid_request", 900561),
        ]
        before = len(FA.tokens())
        for what, fields, kw, status, error, code in cases:
            with self.subTest(what):
                self.assertAAD(token_req(fields, **kw), status, error, code)
        self.assertEqual(len(FA.tokens()), before)          # no refusal issued a token
        log = FA.requests("token")
        self.assertEqual(len(log), len(cases))
        self.assertEqual([e["error"] for e in log], ["AADSTS%d" % c[5] for c in cases])
        self.assertTrue(all(e["issued_token"] is None for e in log))

    def test_other_paths(self):
        r = call("POST", "/%s/oauth2/token" % FA.tenant_id, body=b"", headers=FORM_CT)   # v1 endpoint
        self.assertEqual(r.status, 404)
        self.assertEqual(FA.requests()[-1]["endpoint"], "token")


class IMDSTests(Base):
    def test_system_assigned_success(self):
        with azure.FakeAzure(tls_dir=PKI_DIR, token_ttl=86399) as fa:
            cid = fa.add_managed_identity()
            self.assertEqual(fa.add_managed_identity(), cid)          # one system identity
            fa.set_secret("mi", "v")
            r = imds(imds_q(), fa=fa)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(set(r.json), IMDS_KEYS)
            self.assertTrue(all(isinstance(v, str) for v in r.json.values()), r.json)
            self.assertEqual((r.json["expires_in"], r.json["ext_expires_in"]), ("86399", "86399"))
            self.assertEqual(int(r.json["expires_on"]) - int(r.json["not_before"]), 86399 + 300)
            self.assertEqual((r.json["client_id"], r.json["resource"], r.json["token_type"]),
                             (cid, "https://vault.azure.net", "Bearer"))
            t = fa.tokens()[-1]
            self.assertEqual((t["kind"], t["identity"], t["tenant"]), ("managed_identity", cid, fa.tenant_id))
            self.assertEqual(kv("/secrets/mi", token=r.json["access_token"], fa=fa).status, 200)
            # the resource is echoed as sent; a trailing slash names the same audience
            r = imds(imds_q(resource="https://vault.azure.net/"), fa=fa)
            self.assertEqual(r.json["resource"], "https://vault.azure.net/")
            self.assertEqual(kv("/secrets/mi", token=r.json["access_token"], fa=fa).status, 200)
            # the system identity's client id also selects it; "system" is the control API's alias
            self.assertEqual(imds(imds_q(client_id=cid), fa=fa).json["client_id"], cid)
            fa.deny("system", "mi")
            self.assertKV(kv("/secrets/mi", token=r.json["access_token"], fa=fa), 403, "Forbidden",
                          inner="ForbiddenByPolicy")
            e = fa.requests("imds")[0]
            self.assertEqual((e["identity"], e["status"], e["issued_token"] is not None), (cid, 200, True))

    def test_user_assigned_and_selection(self):
        with azure.FakeAzure(tls_dir=PKI_DIR) as fa:
            self.assertIMDS(imds(imds_q(), fa=fa), 400, "invalid_request", "Identity not found")
            fa.add_managed_identity("ua-1")
            # a single user-assigned identity and no system one: used by default
            self.assertEqual(imds(imds_q(), fa=fa).json["client_id"], "ua-1")
            fa.add_managed_identity("ua-2")
            self.assertIMDS(imds(imds_q(), fa=fa), 400, "invalid_request")
            r = imds(imds_q(client_id="ua-2"), fa=fa)
            self.assertEqual((r.status, r.json["client_id"]), (200, "ua-2"))
            self.assertIMDS(imds(imds_q(client_id="ua-3"), fa=fa), 400, "invalid_request", "Identity not found")
            self.assertIMDS(imds(imds_q(object_id="00000000-0000-0000-0000-000000000000"), fa=fa), 400,
                            "invalid_request", "Identity not found")
            self.assertIMDS(imds(imds_q(msi_res_id="/subscriptions/x"), fa=fa), 400, "invalid_request",
                            "Identity not found")
            self.assertIMDS(imds(imds_q(client_id="ua-1", object_id="y"), fa=fa), 400, "invalid_request")
            sysid = fa.add_managed_identity()
            self.assertEqual(imds(imds_q(), fa=fa).json["client_id"], sysid)   # system wins without client_id
            self.assertTrue(fa.remove_managed_identity("ua-2"))
            self.assertIMDS(imds(imds_q(client_id="ua-2"), fa=fa), 400, "invalid_request", "Identity not found")
            self.assertEqual(fa.requests("imds")[4]["identity"], "ua-3")

    def test_refusals(self):
        with azure.FakeAzure(tls_dir=PKI_DIR) as fa:
            fa.add_managed_identity()
            cases = [
                ("no Metadata header", imds_q(), {}, "GET", 400, "bad_request_102",
                 "Required metadata header not specified"),
                ("Metadata: True", imds_q(), {"Metadata": "True"}, "GET", 400, "bad_request_102", None),
                ("Metadata: false", imds_q(), {"Metadata": "false"}, "GET", 400, "bad_request_102", None),
                ("old api-version", imds_q(**{"api-version": "2017-09-01"}), None, "GET", 400, "invalid_request",
                 None),
                ("no api-version", imds_q(**{"api-version": None}), None, "GET", 400, "invalid_request", None),
                ("no resource", imds_q(resource=None), None, "GET", 400, "invalid_request",
                 "Required query variable 'resource' is missing"),
                ("unknown resource", imds_q(resource="https://evil.example"), None, "GET", 400, "invalid_resource",
                 None),
                ("POST", imds_q(), None, "POST", 405, "method_not_allowed", None),
                ("via a proxy", imds_q(), {"Metadata": "true", "X-Forwarded-For": "10.0.0.1"}, "GET", 400,
                 "invalid_request", None),
            ]
            for what, q, hdrs, method, status, error, desc in cases:
                with self.subTest(what):
                    self.assertIMDS(imds(q, headers=hdrs, method=method, fa=fa), status, error, desc)
            self.assertEqual(fa.tokens(), [])
            r = call("GET", "/metadata/instance?api-version=2021-02-01", headers={"Metadata": "true"}, fa=fa)
            self.assertIMDS(r, 404, "not_found")
            # a management token from IMDS: issued, but the vault refuses it
            r = imds(imds_q(resource="https://management.azure.com/"), fa=fa)
            self.assertEqual(r.status, 200)
            self.assertKV(kv("/secrets/x", token=r.json["access_token"], fa=fa), 401, "Unauthorized",
                          "AKV10022: Invalid audience. Expected https://vault.azure.net, found: "
                          "https://management.azure.com.")


class FaultTests(Base):
    @classmethod
    def setUpClass(cls):
        cls.tok = get_token()
        FA.set_secret("fa", "va")
        FA.set_secret("fb", "vb")

    def test_challenge_with_a_foreign_resource(self):
        FA.fault_challenge_foreign("https://evil.example", count=2)
        for _ in range(2):
            r = kv("/secrets/fa", token=self.tok)      # even a valid token gets it
            self.assertKV(r, 401, "Unauthorized")
            self.assertEqual(r.headers["www-authenticate"], challenge(resource="https://evil.example"))
        self.assertEqual(kv("/secrets/fa", token=self.tok).status, 200)
        FA.fault_challenge_foreign("https://vault.azure.net.evil.example", scope="https://evil.example/.default",
                                   authorization="https://login.evil.example/t")
        r = kv("/secrets/fa")
        self.assertEqual(r.headers["www-authenticate"],
                         'Bearer authorization="https://login.evil.example/t", '
                         'resource="https://vault.azure.net.evil.example", scope="https://evil.example/.default"')
        self.assertEqual([e["fault"] for e in FA.requests("vault")], ["challenge", "challenge", None, "challenge"])

    def test_429_with_retry_after_per_endpoint(self):
        FA.fault_status("vault", 429, retry_after=7, count=2)
        for _ in range(2):
            r = kv("/secrets/fa", token=self.tok)
            self.assertKV(r, 429, "Throttled")
            self.assertEqual(r.headers["retry-after"], "7")
        self.assertEqual(kv("/secrets/fa", token=self.tok).status, 200)
        FA.fault_status("token", 429, retry_after=3)
        r = token_req(cs_fields())
        self.assertAAD(r, 429, "temporarily_unavailable", 90033)
        self.assertEqual(r.headers["retry-after"], "3")
        self.assertEqual(token_req(cs_fields()).status, 200)
        with azure.FakeAzure(tls_dir=PKI_DIR) as fa:
            fa.add_managed_identity()
            fa.fault_status("imds", 429, retry_after=1)
            r = imds(imds_q(), fa=fa)
            self.assertIMDS(r, 429, "too_many_requests")
            self.assertEqual(r.headers["retry-after"], "1")
            self.assertEqual(imds(imds_q(), fa=fa).status, 200)

    def test_status_faults_are_not_processed_and_filter_by_secret(self):
        FA.fault_status("vault", 503, secret="fb", count=None)
        self.assertEqual(kv("/secrets/fa", token=self.tok).status, 200)
        for _ in range(3):
            r = kv("/secrets/FB")              # no token needed: the request is never processed
            self.assertKV(r, 503, "ServiceUnavailable")
            self.assertNotIn("retry-after", r.headers)
        FA.clear_faults()
        self.assertEqual(kv("/secrets/fb", token=self.tok).json["value"], "vb")
        FA.fault_status("token", 503)
        self.assertAAD(token_req(cs_fields()), 503, "temporarily_unavailable", 90033)
        FA.fault_status("token", 500, body={"custom": True})
        r = token_req(cs_fields())
        self.assertEqual((r.status, r.json), (500, {"custom": True}))
        FA.fault_status("vault", 502, body="<html>bad gateway</html>")
        r = kv("/secrets/fa", token=self.tok)
        self.assertEqual((r.status, r.body, r.headers["content-type"]),
                         (502, b"<html>bad gateway</html>", "text/plain; charset=utf-8"))
        self.assertEqual(FA.faults(), [])
        self.assertEqual([e["fault"] for e in FA.requests("vault")][1:4], ["status"] * 3)
        self.assertEqual([e["identity"] for e in FA.requests("vault")][1:4], [None] * 3)
        with azure.FakeAzure(tls_dir=PKI_DIR) as fa:
            fa.fault_status("imds", 503)
            self.assertIMDS(imds(imds_q(), fa=fa), 503, "service_unavailable")
            fa.fault_status("imds", 410)
            self.assertIMDS(imds(imds_q(), fa=fa), 410, "gone")

    def test_delay(self):
        FA.fault_delay("token", 0.4, count=1)
        t0 = time.monotonic()
        self.assertEqual(token_req(cs_fields()).status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        t0 = time.monotonic()
        self.assertEqual(token_req(cs_fields()).status, 200)
        self.assertLess(time.monotonic() - t0, 0.4)
        FA.fault_delay("vault", 0.3, secret="fb")          # until cleared
        t0 = time.monotonic()
        kv("/secrets/fa", token=self.tok)
        self.assertLess(time.monotonic() - t0, 0.3)
        for _ in range(2):
            t0 = time.monotonic()
            self.assertEqual(kv("/secrets/fb", token=self.tok).status, 200)
            self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        FA.clear_faults()
        log = FA.requests()
        self.assertEqual([e["delay_s"] for e in log], [0.4, 0, 0, 0.3, 0.3])
        self.assertEqual([e["fault"] for e in log], ["delay", None, None, "delay", "delay"])

    def test_fault_arguments_are_checked(self):
        for call_ in (lambda: FA.fault_status("nope", 500), lambda: FA.fault_status("vault", 99),
                      lambda: FA.fault_status("vault", 500, count=0), lambda: FA.fault_delay("imds", -1),
                      lambda: FA.fault_challenge_foreign(count=0)):
            with self.assertRaises(ValueError):
                call_()
        self.assertEqual(FA.faults(), [])


class LogTests(Base):
    def test_entries(self):
        FA.set_secret("log-a", "log-value-a")
        r = token_req(cs_fields())
        tok = r.json["access_token"]
        kv("/secrets/log-a")
        kv("/secrets/log-a", token=tok, api="7.5")
        call("GET", "/nowhere")
        log = FA.requests()
        self.assertEqual([e["endpoint"] for e in log], ["token", "vault", "vault", None])
        self.assertEqual([e["status"] for e in log], [200, 401, 200, 404])
        self.assertEqual([e["seq"] for e in log], sorted(e["seq"] for e in log))
        t, v401, v200, none = log
        self.assertEqual((t["method"], t["path"], t["identity"], t["tenant"], t["issued_token"], t["error"]),
                         ("POST", "/%s/oauth2/v2.0/token" % FA.tenant_id, APP, FA.tenant_id, tok, None))
        self.assertEqual(t["form"], cs_fields())
        self.assertEqual(t["headers"]["content-type"], "application/x-www-form-urlencoded")
        self.assertIn("client_secret=" + APP_SECRET, t["body"])
        self.assertEqual((v401["token"], v401["identity"], v401["error"], v401["secret"]),
                         (None, None, "Unauthorized", "log-a"))
        self.assertEqual((v200["token"], v200["identity"], v200["secret"], v200["version"], v200["query"]),
                         (tok, APP, "log-a", FA.versions("log-a")[-1], {"api-version": ["7.5"]}))
        self.assertEqual(v200["headers"]["authorization"], "Bearer " + tok)
        self.assertEqual(none["error"], "not_found")
        self.assertTrue(all(e["done"] and e["duration_ms"] >= 0 for e in log))
        self.assertLess(abs(log[0]["time"] - time.time()), 60)
        self.assertEqual(FA.count(), 4)
        self.assertEqual(FA.count("vault"), 2)
        self.assertEqual(FA.count("vault", 401), 1)
        self.assertTrue(FA.wait_for_requests(2, "vault", timeout=1))
        self.assertFalse(FA.wait_for_requests(3, "vault", timeout=0.1))
        control("count", {"endpoint": "vault"})                # control requests are never recorded
        self.assertEqual(FA.count(), 4)
        FA.clear_requests()
        self.assertEqual(FA.requests(), [])
        with self.assertRaises(ValueError):
            FA.requests("nope")

    def test_redaction(self):
        FA.set_secret("log-b", "log-value-b")
        tok = get_token()
        fed = get_token(fed_fields())
        kv("/secrets/log-b", token=tok)
        kv("/secrets/log-new", token=tok, method="PUT", body={"value": "put-value"})
        with azure.FakeAzure(tls_dir=PKI_DIR) as fa:
            fa.add_managed_identity()
            mi = imds(imds_q(), fa=fa).json["access_token"]
            self.assertIn(mi, fa.sensitive_values())
            self.assertNotIn(mi, json.dumps(fa.requests(redact=True)))
        plain, red = json.dumps(FA.requests()), json.dumps(FA.requests(redact=True))
        secrets_ = [APP_SECRET, FED_ASSERTION, tok, fed, "put-value"]
        for s in secrets_:
            self.assertIn(s, plain)
            self.assertNotIn(s, red)
        self.assertEqual(set(azure.SENSITIVE_FIELDS), {"token", "issued_token", "body", "form", "headers"})
        e = FA.requests("vault", redact=True)[0]
        self.assertEqual((e["token"], e["headers"]["authorization"]), ("<redacted>", "Bearer <redacted>"))
        t = FA.requests("token", redact=True)[0]
        self.assertEqual((t["form"]["client_secret"], t["form"]["client_id"], t["issued_token"]),
                         ("<redacted>", APP, "<redacted>"))
        self.assertTrue(t["body"].startswith("<redacted "))
        values = FA.sensitive_values()
        for s in secrets_ + ["log-value-b", OTHER_SECRET]:
            self.assertIn(s, values)
        self.assertNotIn("log-b", values)

    def test_concurrency(self):
        FA.set_secret("conc", "c")
        tok = get_token()
        results = fakecheck.in_threads(20, lambda i: (kv("/secrets/conc", token=tok) if i % 2 else
                                                      token_req(cs_fields())).status)
        self.assertEqual(results, [200] * 20)
        self.assertEqual((FA.count("vault"), FA.count("token")), (10, 11))


class ControlTests(Base):
    def test_control_endpoint(self):
        fakecheck.check_control_basics(self, FA, CTX)
        st, body = control("set_secret", {"name": "ctl", "value": "ctl-value", "tags": {"k": "v"}})
        self.assertEqual(st, 200)
        self.assertTrue(HEX32.match(body["result"]))
        tok = get_token()
        self.assertEqual(kv("/secrets/ctl", token=tok).json["tags"], {"k": "v"})
        st, body = control("add_managed_identity", {"client_id": "ctl-ua"})
        self.assertEqual((st, body["result"]), (200, "ctl-ua"))
        control("fault_status", {"endpoint": "vault", "status": 429, "retry_after": 2})
        self.assertEqual(kv("/secrets/ctl", token=tok).headers["retry-after"], "2")
        st, body = control("count?endpoint=vault", method="GET")
        self.assertEqual((st, body["result"]), (200, 2))
        st, body = control("requests", {"endpoint": "vault", "redact": True})
        self.assertEqual([e["token"] for e in body["result"]], ["<redacted>", "<redacted>"])
        st, body = control("tokens", {})
        self.assertIn(tok, [t["value"] for t in body["result"]])
        self.assertEqual(control("set_secret", {"name": "bad_name", "value": "v"})[0], 400)
        self.assertEqual(control("set_secret", {"name": "x"})[0], 400)
        self.assertEqual(control("versions", {"name": "never-set"})[0], 400)
        self.assertEqual(control("set_token_ttl", {"seconds": 0})[0], 400)
        self.assertEqual(control("set_token_ttl", {"seconds": 120}), (200, {"result": None}))
        self.assertEqual(token_req(cs_fields()).json["expires_in"], 120)
        self.assertEqual((FA.count("token"), FA.count("vault")), (2, 2))   # no control request recorded


class ScriptTests(unittest.TestCase):
    def test_script_mode(self):
        state = os.path.join(TMP, "state.json")
        with open(state, "w") as f:
            json.dump({"tenant_id": "tenant-from-state.example.com", "token_ttl": 300, "calls": [
                {"method": "set_secret", "args": {"name": "app", "value": "script-value"}},
                {"method": "add_client_secret_app", "args": {"tenant": None, "client_id": "c", "secret": "cs"}},
            ]}, f)
        with fakecheck.script_fake(self, os.path.join(HERE, "azure_fake.py"), "--tls-dir", PKI_DIR,
                                   "--state", state) as (line, info):
            for s in ("script-value", "cs"):
                self.assertNotIn('"%s"' % s, line)
            self.assertEqual(set(info), fakecheck.SCRIPT_KEYS | {"tenant", "vault_url", "authority_host",
                                                                 "imds_endpoint"})
            self.assertTrue(info["tls"])
            self.assertEqual(info["imds_endpoint"], info["url"] + "/metadata/identity/oauth2/token")
            self.assertEqual(info["tenant"], "tenant-from-state.example.com")

            class P:   # enough of a FakeAzure for call()
                tls, port, tenant_id = True, info["port"], info["tenant"]
            r = token_req(cs_fields("c", "cs"), fa=P)
            self.assertEqual((r.status, r.json["expires_in"]), (200, 300))
            r = kv("/secrets/app", token=r.json["access_token"], fa=P)
            self.assertEqual((r.status, r.json["value"]), (200, "script-value"))
            self.assertEqual(fakecheck.control_call(info["control"] + "/count", method="GET", ctx=CTX),
                             (200, {"result": 2}))


class LifecycleTests(unittest.TestCase):
    def test_stop_interrupts_a_delayed_request(self):
        fa = azure.FakeAzure(tls_dir=PKI_DIR).start()
        fa.fault_delay("vault", 30)
        fakecheck.check_stop_cuts_a_delayed_request(self, fa, lambda: kv("/secrets/x", fa=fa))

    def test_context_manager_temp_pki_and_plain_http(self):
        fakecheck.check_temp_pki(self, azure.FakeAzure, "/secrets/x?api-version=7.4", 401)
        with azure.FakeAzure(tls=False) as fa:
            self.assertTrue(fa.url.startswith("http://127.0.0.1:"))
            self.assertEqual(kv("/secrets/x", fa=fa).status, 401)


if __name__ == "__main__":
    unittest.main()
