#!/usr/bin/env python3
"""Self-test of tests/fakes/vault.py: starts the fake over real TLS and drives every endpoint and every
fault control through http.client/urllib, as a client would. Standard library only.

    python3 tests/fakes/test_vault_fake.py [-v]
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fakecheck  # noqa: E402  (what every fake's self-test shares)
import vault  # noqa: E402

_ROOT = object()
CONN_ERRORS = fakecheck.CONN_ERRORS

TMP = None
PKI = None
FV = None
CTX = None


def setUpModule():
    global TMP, PKI, FV, CTX
    TMP = tempfile.mkdtemp(prefix="fakevault-test-")
    PKI = vault.make_ca_and_cert(os.path.join(TMP, "pki"))
    FV = vault.FakeVault(tls_dir=os.path.join(TMP, "pki")).start()
    CTX = ssl.create_default_context(cafile=PKI["ca.pem"])
    FV.add_kv_mount("secret", version=2)
    FV.add_kv_mount("kv", version=1)
    FV.add_kv_mount("team/kv", version=2)
    FV.add_kv_mount("short", version=2, max_versions=2)
    FV.add_database_mount("database")
    FV.add_database_role("readonly", ttl=60, max_ttl=120)
    FV.add_database_role("fixed", ttl=30, max_ttl=30, renewable=False)
    FV.add_mount("pki", "pki")
    FV.add_kv_mount("secret", version=2, namespace="team-a")
    FV.add_database_mount("database", namespace="team-a")
    FV.add_database_role("readonly", namespace="team-a", ttl=60, max_ttl=600)
    FV.add_approle("app", "rid-1", "sid-1", ttl=60, max_ttl=120, policies=["app"])
    FV.add_approle("once", "rid-once", "sid-once", secret_id_num_uses=1)
    FV.add_approle("nsapp", "rid-ns", "sid-ns", namespace="team-a")
    FV.add_kubernetes_role("web", ["k8s-jwt-1"], ttl=60, service_account_name="web-sa",
                           service_account_namespace="prod")
    FV.add_kubernetes_role("web", ["k8s-jwt-2"], mount="k8s/cluster-2")
    FV.add_jwt_role("ci", ["jwt-1"], default=True, ttl=90)
    FV.add_jwt_role("other", ["jwt-2"])
    FV.put_kv("secret", "app", {"user": "u1", "password": "p1"}, custom_metadata={"owner": "jdoe"})
    FV.put_kv("kv", "plain", {"foo": "bar"})
    FV.put_kv("kv", "withttl", {"foo": "bar", "ttl": "1h"})
    FV.put_kv("team/kv", "deep/x", {"k": "v"})
    FV.put_kv("secret", "nsapp", {"who": "team-a"}, namespace="team-a")


def tearDownModule():
    FV.stop()
    shutil.rmtree(TMP, ignore_errors=True)


def call(method, path, body=None, token=_ROOT, headers=None, fv=None, ctx=None, host="127.0.0.1",
         raw_body=None, request_header=True, timeout=10):
    fv = fv or FV
    hdrs = {}
    if request_header:
        hdrs["X-Vault-Request"] = "true"
    if token is _ROOT:
        token = fv.root_token
    if token is not None:
        hdrs["X-Vault-Token"] = token
    hdrs.update(headers or {})
    data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
    return fakecheck.http_call(fv, method, path, data, hdrs, ctx=ctx or CTX, host=host, timeout=timeout)


def login_approle(role_id="rid-1", secret_id="sid-1", **kw):
    r = call("POST", "/v1/auth/approle/login", {"role_id": role_id, "secret_id": secret_id}, token=None, **kw)
    assert r.status == 200, r
    return r.json["auth"]["client_token"]


def control(name, args=None, method="POST", fv=None):
    fv = fv or FV
    return fakecheck.control_call(fv.control_url + "/" + name, args, method, fv.ssl_context() if fv.tls else None)


class Base(unittest.TestCase):
    def setUp(self):
        FV.clear_faults()
        FV.clear_latency()
        FV.unseal()
        FV.set_health_state("active")
        FV.set_require_request_header(False)
        FV.clear_requests()

    def assertErrors(self, r, status, errors=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("content-type"), "application/json")
        self.assertIsInstance(r.json.get("errors"), list, r)
        if errors is not None:
            self.assertEqual(r.json["errors"], errors)


# ------------------------------------------------------------------------------------------------


class TLSTests(Base):
    def test_chain_verifies_for_every_hostname(self):
        for host, sni in (("127.0.0.1", "127.0.0.1"), ("localhost", "localhost")):
            with socket.create_connection(("127.0.0.1", FV.port), timeout=5) as raw:
                with CTX.wrap_socket(raw, server_hostname=sni) as s:
                    cert = s.getpeercert()
                    sans = dict((v, k) for k, v in cert["subjectAltName"])
                    self.assertEqual(sans.get("localhost"), "DNS")
                    self.assertEqual(sans.get("127.0.0.1"), "IP Address")
                    self.assertIn("0:0:0:0:0:0:0:1", sans)   # ::1
            self.assertEqual(call("GET", "/v1/sys/health", host=host).status, 200)

    def test_other_ca_and_wrong_name_fail(self):
        before = FV.stats().get("tls_handshake_failures", 0)
        other = ssl.create_default_context(cafile=PKI["other-ca.pem"])
        with self.assertRaises(ssl.SSLCertVerificationError):
            call("GET", "/v1/sys/health", ctx=other)
        with socket.create_connection(("127.0.0.1", FV.port), timeout=5) as raw:
            with self.assertRaises(ssl.SSLCertVerificationError):
                CTX.wrap_socket(raw, server_hostname="vault.example.com")
        deadline = time.monotonic() + 3
        while FV.stats().get("tls_handshake_failures", 0) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertGreaterEqual(FV.stats()["tls_handshake_failures"], before + 2)

    def test_pki_files(self):
        for name in vault.TLS_FILES:
            self.assertTrue(os.path.exists(PKI[name]), name)
        self.assertEqual(os.stat(PKI["server-key.pem"]).st_mode & 0o777, 0o600)

    def test_mutual_tls(self):
        with vault.FakeVault(tls_dir=os.path.join(TMP, "pki"), require_client_cert=True) as mv:
            self.assertEqual(call("GET", "/v1/sys/health", fv=mv, ctx=mv.ssl_context(client_cert=True)).status, 200)
            with self.assertRaises(CONN_ERRORS):
                call("GET", "/v1/sys/health", fv=mv, ctx=mv.ssl_context())
            wrong = mv.ssl_context()
            wrong.load_cert_chain(PKI["other-client.pem"], PKI["other-client-key.pem"])
            with self.assertRaises(CONN_ERRORS):
                call("GET", "/v1/sys/health", fv=mv, ctx=wrong)
            self.assertGreaterEqual(mv.stats().get("tls_handshake_failures", 0), 1)

    def test_plain_http_mode(self):
        with vault.FakeVault(tls=False) as pv:
            self.assertTrue(pv.url.startswith("http://127.0.0.1:"))
            pv.add_kv_mount("secret")
            pv.put_kv("secret", "x", {"a": 1})
            r = call("GET", "/v1/secret/data/x", fv=pv)
            self.assertEqual((r.status, r.json["data"]["data"]), (200, {"a": 1}))


class ProtocolTests(Base):
    def test_token_required_and_recorded(self):
        r = call("GET", "/v1/secret/data/app", token=None)
        self.assertErrors(r, 403, ["permission denied"])
        self.assertErrors(call("GET", "/v1/secret/data/app", token="hvs.nope"), 403, ["permission denied"])
        r = call("GET", "/v1/secret/data/app", token=None,
                 headers={"Authorization": "Bearer " + FV.root_token, "X-Vault-Namespace": ""})
        self.assertEqual(r.status, 200)
        log = FV.requests(prefix="secret/")
        self.assertEqual(len(log), 3)
        self.assertEqual(log[0]["x_vault_request"], "true")
        self.assertIsNone(log[0]["token"])
        self.assertEqual(log[1]["headers"]["x-vault-token"], "hvs.nope")
        self.assertEqual(log[2]["token"], FV.root_token)
        self.assertEqual(log[2]["namespace"], "")
        self.assertEqual([e["status"] for e in log], [403, 403, 200])

    def test_require_request_header(self):
        FV.set_require_request_header(True)
        self.assertErrors(call("GET", "/v1/secret/data/app", request_header=False), 412,
                          ['missing "X-Vault-Request" header'])
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 200)
        self.assertIsNone(FV.requests()[0]["x_vault_request"])

    def test_unknown_path_and_method(self):
        self.assertErrors(call("GET", "/v1/nomount/x"), 404,
                          ['no handler for route "nomount/x". route entry not found.'])
        self.assertErrors(call("GET", "/v1/sys/nothing"), 404)
        self.assertErrors(call("GET", "/notv1"), 404, [])
        self.assertErrors(call("DELETE", "/v1/secret/data/app"), 405)
        self.assertErrors(call("PUT", "/v1/kv/plain", {"a": 1}), 405)
        self.assertErrors(call("LIST", "/v1/secret/metadata/"), 405)
        self.assertErrors(call("POST", "/v1/auth/token/lookup-self"), 405)
        self.assertErrors(call("GET", "/v1/auth/token/renew-self"), 405)
        self.assertErrors(call("GET", "/v1/sys/leases/renew"), 405)
        self.assertErrors(call("GET", "/v1/auth/approle/login", token=None), 405)
        self.assertErrors(call("POST", "/v1/sys/health"), 405)
        self.assertErrors(call("GET", "/v1/secret/app"), 404, [vault.KV2_INVALID_PATH])

    def test_malformed_and_missing(self):
        r = call("POST", "/v1/auth/approle/login", raw_body=b"{not json", token=None)
        self.assertErrors(r, 400)
        self.assertTrue(r.json["errors"][0].startswith("failed to parse JSON input"))
        r = call("PUT", "/v1/sys/leases/renew", raw_body=b"[1,2]")
        self.assertErrors(r, 400)
        self.assertIn("cannot unmarshal array", r.json["errors"][0])
        self.assertErrors(call("POST", "/v1/auth/approle/login", {}, token=None), 400, ["missing role_id"])
        self.assertErrors(call("PUT", "/v1/sys/leases/renew", {}), 400, ["lease_id must be specified"])
        self.assertErrors(call("PUT", "/v1/sys/leases/renew", {"lease_id": "x", "increment": "soon"}), 400)
        self.assertErrors(call("POST", "/v1/auth/approle/login", {"role_id": {"x": 1}}, token=None), 400)

    def test_body_limit_and_chunked(self):
        old = FV.max_request_bytes
        FV.max_request_bytes = 1000
        try:
            r = call("PUT", "/v1/sys/leases/renew", raw_body=b"{" + b" " * 2000 + b"}")
            self.assertErrors(r, 413)
        finally:
            FV.max_request_bytes = old
        conn = http.client.HTTPSConnection("127.0.0.1", FV.port, context=CTX, timeout=5)
        try:
            body = iter([b'{"role_id": "rid-1",', b' "secret_id": "sid-1"}'])
            conn.request("POST", "/v1/auth/approle/login", body=body, encode_chunked=True,
                         headers={"Transfer-Encoding": "chunked"})
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            self.assertIn("client_token", json.loads(r.read())["auth"])
        finally:
            conn.close()

    def test_keep_alive(self):
        conn = http.client.HTTPSConnection("127.0.0.1", FV.port, context=CTX, timeout=5)
        try:
            for _ in range(3):
                conn.request("GET", "/v1/secret/data/app", headers={"X-Vault-Token": FV.root_token})
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                r.read()
        finally:
            conn.close()
        clients = {e["client"] for e in FV.requests()}
        self.assertEqual(len(clients), 1)


class KVTests(Base):
    def test_kv1(self):
        r = call("GET", "/v1/kv/plain")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["data"], {"foo": "bar"})
        self.assertEqual((r.json["lease_duration"], r.json["lease_id"], r.json["renewable"]),
                         (2764800, "", False))
        for k in ("request_id", "wrap_info", "warnings", "auth"):
            self.assertIn(k, r.json)
        self.assertEqual(call("GET", "/v1/kv/withttl").json["lease_duration"], 3600)
        self.assertErrors(call("GET", "/v1/kv/absent"), 404, [])

    def test_kv2_versions_rotation_delete(self):
        FV.put_kv("secret", "rot", {"v": "1"})
        r = call("GET", "/v1/secret/data/rot")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["data"]["data"], {"v": "1"})
        meta = r.json["data"]["metadata"]
        self.assertEqual((meta["version"], meta["deletion_time"], meta["destroyed"]), (1, "", False))
        self.assertRegex(meta["created_time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
        self.assertIsNone(meta["custom_metadata"])
        self.assertEqual(FV.put_kv("secret", "rot", {"v": "2"}), 2)
        self.assertEqual(call("GET", "/v1/secret/data/rot").json["data"]["data"], {"v": "2"})
        self.assertEqual(call("GET", "/v1/secret/data/rot?version=1").json["data"]["data"], {"v": "1"})
        self.assertEqual(call("GET", "/v1/secret/data/rot?version=0").json["data"]["metadata"]["version"], 2)
        self.assertErrors(call("GET", "/v1/secret/data/rot?version=9"), 404, [])
        self.assertErrors(call("GET", "/v1/secret/data/rot?version=abc"), 400)
        self.assertErrors(call("GET", "/v1/secret/data/absent"), 404, [])
        FV.delete_kv("secret", "rot")
        r = call("GET", "/v1/secret/data/rot")
        self.assertEqual(r.status, 404)
        self.assertIsNone(r.json["data"]["data"])
        self.assertNotEqual(r.json["data"]["metadata"]["deletion_time"], "")
        self.assertEqual(call("GET", "/v1/secret/data/rot?version=1").status, 200)
        FV.destroy_kv("secret", "rot", versions=[1])
        r = call("GET", "/v1/secret/data/rot?version=1")
        self.assertEqual(r.status, 404)
        self.assertTrue(r.json["data"]["metadata"]["destroyed"])
        r = call("GET", "/v1/secret/metadata/rot")
        self.assertEqual(r.status, 200)
        self.assertEqual((r.json["data"]["current_version"], sorted(r.json["data"]["versions"])), (2, ["1", "2"]))
        FV.delete_kv_metadata("secret", "rot")
        self.assertErrors(call("GET", "/v1/secret/metadata/rot"), 404, [])

    def test_kv2_custom_metadata_and_max_versions(self):
        r = call("GET", "/v1/secret/data/app")
        self.assertEqual(r.json["data"]["metadata"]["custom_metadata"], {"owner": "jdoe"})
        for i in range(4):
            FV.put_kv("short", "s", {"i": i})
        self.assertErrors(call("GET", "/v1/short/data/s?version=1"), 404, [])
        self.assertEqual(call("GET", "/v1/short/data/s?version=3").json["data"]["data"], {"i": 2})
        self.assertEqual(call("GET", "/v1/short/metadata/s").json["data"]["oldest_version"], 3)

    def test_ui_mounts(self):
        def ui(path, **kw):
            return call("GET", "/v1/sys/internal/ui/mounts/" + path, **kw)
        r = ui("secret/app")
        self.assertEqual(r.status, 200)
        d = r.json["data"]
        self.assertEqual((d["path"], d["type"], d["options"]), ("secret/", "kv", {"version": "2"}))
        self.assertEqual(ui("kv/plain").json["data"]["options"], {"version": "1"})
        self.assertEqual(ui("team/kv/deep/x").json["data"]["path"], "team/kv/")
        self.assertEqual(ui("secret").json["data"]["path"], "secret/")
        d = ui("database/creds/readonly").json["data"]
        self.assertEqual((d["path"], d["type"], d["options"]), ("database/", "database", None))
        self.assertEqual(ui("pki/issue/x").json["data"]["type"], "pki")
        self.assertEqual(ui("auth/approle/login").json["data"]["type"], "approle")
        self.assertEqual(ui("auth/k8s/cluster-2/login").json["data"]["path"], "auth/k8s/cluster-2/")
        self.assertErrors(ui("nope/x"), 403, [
            "preflight capability check returned 403, please ensure client's policies grant access "
            'to path "nope/x/"'])
        self.assertErrors(ui("team/other"), 403)
        self.assertErrors(ui("secret/app", token=None), 403, ["permission denied"])
        self.assertErrors(call("POST", "/v1/sys/internal/ui/mounts/secret/app", {}), 405)

    def test_namespaces(self):
        ns = {"X-Vault-Namespace": "team-a"}
        self.assertErrors(call("GET", "/v1/secret/data/nsapp"), 404, [])   # root mount, no such key
        self.assertErrors(call("GET", "/v1/database/creds/x", headers={"X-Vault-Namespace": "team-b"}), 404)
        r = call("GET", "/v1/secret/data/nsapp", headers=ns)
        self.assertEqual((r.status, r.json["data"]["data"]), (200, {"who": "team-a"}))
        self.assertEqual(call("GET", "/v1/secret/data/nsapp", headers={"X-Vault-Namespace": "team-a/"}).status, 200)
        self.assertEqual(call("GET", "/v1/team-a/secret/data/nsapp").status, 200)
        self.assertErrors(call("GET", "/v1/secret/data/app", headers=ns), 404, [])
        self.assertEqual(call("GET", "/v1/sys/internal/ui/mounts/secret/x", headers=ns).json["data"]["path"], "secret/")
        self.assertEqual(call("GET", "/v1/sys/internal/ui/mounts/team-a/secret/x").json["data"]["path"],
                         "team-a/secret/")
        self.assertEqual({e["namespace"] for e in FV.requests() if e["namespace"]}, {"team-a", "team-a/", "team-b"})
        # A token from the namespace works there but not in the root namespace.
        r = call("POST", "/v1/auth/approle/login", {"role_id": "rid-ns", "secret_id": "sid-ns"},
                 token=None, headers=ns)
        self.assertEqual(r.status, 200)
        tok = r.json["auth"]["client_token"]
        self.assertEqual(call("GET", "/v1/secret/data/nsapp", token=tok, headers=ns).status, 200)
        self.assertErrors(call("GET", "/v1/secret/data/app", token=tok), 403, ["permission denied"])
        # Its role does not exist in the root namespace's approle mount.
        self.assertErrors(call("POST", "/v1/auth/approle/login", {"role_id": "rid-ns", "secret_id": "sid-ns"},
                               token=None), 400, ["invalid role or secret ID"])


class AuthTests(Base):
    def test_approle(self):
        r = call("POST", "/v1/auth/approle/login", {"role_id": "rid-1", "secret_id": "sid-1"}, token=None)
        self.assertEqual(r.status, 200)
        a = r.json["auth"]
        self.assertTrue(a["client_token"].startswith("hvs."))
        self.assertEqual((a["lease_duration"], a["renewable"], a["policies"], a["token_policies"]),
                         (60, True, ["default", "app"], ["default", "app"]))
        self.assertEqual(a["metadata"], {"role_name": "app"})
        self.assertTrue(a["accessor"])
        self.assertIsNone(r.json["data"])
        self.assertEqual(call("GET", "/v1/secret/data/app", token=a["client_token"]).status, 200)
        bad = ["invalid role or secret ID"]
        self.assertErrors(call("PUT", "/v1/auth/approle/login", {"role_id": "rid-1", "secret_id": "x"}, token=None), 400, bad)
        self.assertErrors(call("POST", "/v1/auth/approle/login", {"role_id": "zz", "secret_id": "sid-1"}, token=None), 400, bad)
        self.assertErrors(call("POST", "/v1/auth/approle/login", {"role_id": "rid-1"}, token=None), 400, ["missing secret_id"])
        login_approle("rid-once", "sid-once")
        self.assertErrors(call("POST", "/v1/auth/approle/login", {"role_id": "rid-once", "secret_id": "sid-once"},
                               token=None), 400, bad)
        self.assertErrors(call("POST", "/v1/auth/nomount/login", {}, token=None), 403, ["permission denied"])

    def test_kubernetes(self):
        r = call("POST", "/v1/auth/kubernetes/login", {"role": "web", "jwt": "k8s-jwt-1"}, token=None)
        self.assertEqual(r.status, 200)
        md = r.json["auth"]["metadata"]
        self.assertEqual((md["role"], md["service_account_name"], md["service_account_namespace"]),
                         ("web", "web-sa", "prod"))
        self.assertErrors(call("POST", "/v1/auth/kubernetes/login", {"role": "web", "jwt": "forged"}, token=None),
                          403, ["permission denied"])
        self.assertErrors(call("POST", "/v1/auth/kubernetes/login", {"role": "nope", "jwt": "k8s-jwt-1"}, token=None),
                          400, ['invalid role name "nope"'])
        self.assertErrors(call("POST", "/v1/auth/kubernetes/login", {"role": "web"}, token=None), 400, ["missing jwt"])
        self.assertErrors(call("POST", "/v1/auth/kubernetes/login", {"jwt": "x"}, token=None), 400, ["missing role"])
        r = call("POST", "/v1/auth/k8s/cluster-2/login", {"role": "web", "jwt": "k8s-jwt-2"}, token=None)
        self.assertEqual(r.status, 200)

    def test_jwt(self):
        r = call("POST", "/v1/auth/jwt/login", {"jwt": "jwt-1"}, token=None)     # default role
        self.assertEqual((r.status, r.json["auth"]["lease_duration"]), (200, 90))
        self.assertEqual(r.json["auth"]["metadata"], {"role": "ci"})
        self.assertEqual(call("POST", "/v1/auth/jwt/login", {"role": "other", "jwt": "jwt-2"}, token=None).status, 200)
        r = call("POST", "/v1/auth/jwt/login", {"role": "other", "jwt": "jwt-1"}, token=None)
        self.assertErrors(r, 400)
        self.assertTrue(r.json["errors"][0].startswith("error validating token"))
        self.assertErrors(call("POST", "/v1/auth/jwt/login", {"role": "zz", "jwt": "jwt-1"}, token=None),
                          400, ['role "zz" could not be found'])
        self.assertErrors(call("POST", "/v1/auth/jwt/login", {"role": "ci"}, token=None), 400, ["missing token"])

    def test_lookup_renew_revoke_self(self):
        tok = login_approle()
        r = call("GET", "/v1/auth/token/lookup-self", token=tok)
        self.assertEqual(r.status, 200)
        d = r.json["data"]
        self.assertEqual((d["id"], d["creation_ttl"], d["renewable"], d["path"], d["policies"], d["type"]),
                         (tok, 60, True, "auth/approle/login", ["default", "app"], "service"))
        self.assertTrue(58 <= d["ttl"] <= 60, d["ttl"])
        self.assertRegex(d["expire_time"], r"Z$")
        # renew-self: "1h" is capped by max_ttl (120 s from issue) with a warning.
        r = call("POST", "/v1/auth/token/renew-self", {"increment": "1h"}, token=tok)
        self.assertEqual(r.status, 200)
        self.assertTrue(115 <= r.json["auth"]["lease_duration"] <= 120, r.json)
        self.assertIn("capped", r.json["warnings"][0])
        r = call("PUT", "/v1/auth/token/renew-self", {"increment": 30}, token=tok)
        self.assertEqual((r.json["auth"]["lease_duration"], r.json["warnings"]), (30, None))
        self.assertEqual(call("POST", "/v1/auth/token/renew-self", token=tok).json["auth"]["lease_duration"], 60)
        self.assertTrue(call("GET", "/v1/auth/token/lookup-self", token=tok).json["data"]["ttl"] <= 60)
        acc = FV.token_info(tok)["accessor"]
        self.assertEqual([e["ttl"] for e in FV.token_events() if e["accessor"] == acc][1:], [30, 60])
        # root: no expiry, not renewable
        d = call("GET", "/v1/auth/token/lookup-self").json["data"]
        self.assertEqual((d["ttl"], d["expire_time"], d["policies"]), (0, None, ["root"]))
        self.assertErrors(call("POST", "/v1/auth/token/renew-self", {"increment": "1h"}), 400, ["lease is not renewable"])
        static = FV.add_token(ttl=600, renewable=False)
        self.assertErrors(call("POST", "/v1/auth/token/renew-self", token=static), 400, ["lease is not renewable"])
        # revoke-self
        r = call("POST", "/v1/auth/token/revoke-self", token=tok)
        self.assertEqual((r.status, r.body), (204, b""))
        self.assertErrors(call("GET", "/v1/auth/token/lookup-self", token=tok), 403, ["permission denied"])
        self.assertIsNone(FV.token_info(tok))

    def test_token_expiry_real_time(self):
        FV.add_approle("quick", "rid-quick", "sid-quick", ttl=1)
        tok = login_approle("rid-quick", "sid-quick")
        static = FV.add_token(ttl=1)
        self.assertEqual(call("GET", "/v1/secret/data/app", token=tok).status, 200)
        self.assertEqual(call("GET", "/v1/secret/data/app", token=static).status, 200)
        time.sleep(1.3)
        self.assertErrors(call("GET", "/v1/secret/data/app", token=tok), 403, ["permission denied"])
        self.assertErrors(call("GET", "/v1/auth/token/lookup-self", token=static), 403, ["permission denied"])
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 200)   # root never expires
        self.assertGreaterEqual(sum(1 for e in FV.token_events() if e["event"] == "expired"), 2)


class LeaseTests(Base):
    def creds(self, role="readonly", token=_ROOT, headers=None):
        r = call("GET", "/v1/database/creds/" + role, token=token, headers=headers)
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_dynamic_creds(self):
        a, b = self.creds(), self.creds()
        self.assertTrue(a["lease_id"].startswith("database/creds/readonly/"))
        self.assertEqual((a["renewable"], a["lease_duration"]), (True, 60))
        self.assertNotEqual(a["data"]["username"], b["data"]["username"])
        self.assertNotEqual(a["data"]["password"], b["data"]["password"])
        self.assertNotEqual(a["lease_id"], b["lease_id"])
        self.assertErrors(call("GET", "/v1/database/creds/nope"), 400, ["unknown role: nope"])
        self.assertErrors(call("POST", "/v1/database/creds/readonly", {}), 405)
        self.assertErrors(call("GET", "/v1/database/config/x"), 404)
        self.assertEqual(self.creds("fixed")["renewable"], False)

    def test_renew_shorter_than_asked_and_revoke(self):
        lid = self.creds()["lease_id"]
        r = call("PUT", "/v1/sys/leases/renew", {"lease_id": lid, "increment": 3600})
        self.assertEqual(r.status, 200)
        self.assertEqual((r.json["lease_id"], r.json["renewable"]), (lid, True))
        self.assertTrue(115 <= r.json["lease_duration"] <= 120, r.json)
        self.assertIn("capped", r.json["warnings"][0])
        r = call("POST", "/v1/sys/leases/renew", {"lease_id": lid, "increment": "30s"})
        self.assertEqual(r.json["lease_duration"], 30)
        self.assertEqual(call("PUT", "/v1/sys/renew", {"lease_id": lid, "increment": 10}).json["lease_duration"], 10)
        self.assertEqual(call("PUT", "/v1/sys/leases/renew/" + lid, {}).json["lease_duration"], 60)
        self.assertEqual([x["granted"] for x in FV.lease_renewals() if x["lease_id"] == lid][1:], [30, 10, 60])
        r = call("PUT", "/v1/sys/leases/lookup", {"lease_id": lid})
        self.assertEqual((r.status, r.json["data"]["id"], r.json["data"]["renewable"]), (200, lid, True))
        self.assertErrors(call("PUT", "/v1/sys/leases/lookup", {"lease_id": "nope"}), 400, ["invalid lease"])
        r = call("PUT", "/v1/sys/leases/revoke", {"lease_id": lid})
        self.assertEqual((r.status, r.body), (204, b""))
        self.assertIn({"lease_id": lid, "reason": "revoked"},
                      [{"lease_id": x["lease_id"], "reason": x["reason"]} for x in FV.revocations()])
        self.assertErrors(call("PUT", "/v1/sys/leases/renew", {"lease_id": lid}), 400, ["lease not found"])
        self.assertEqual(call("PUT", "/v1/sys/leases/revoke", {"lease_id": "database/creds/readonly/unknown"}).status, 204)
        lid2 = self.creds()["lease_id"]
        self.assertEqual(call("PUT", "/v1/sys/revoke/" + lid2).status, 204)
        self.assertIsNone(FV.lease_info(lid2))
        self.assertErrors(call("PUT", "/v1/sys/leases/revoke", {}), 400, ["lease_id must be specified"])

    def test_renew_errors(self):
        self.assertErrors(call("PUT", "/v1/sys/leases/renew", {"lease_id": "database/creds/readonly/zz"}),
                          400, ["lease not found"])
        lid = self.creds("fixed")["lease_id"]
        self.assertErrors(call("PUT", "/v1/sys/leases/renew", {"lease_id": lid}), 400, ["lease is not renewable"])
        self.assertErrors(call("PUT", "/v1/sys/leases/renew", {"lease_id": lid}, token=None), 403)

    def test_expiry_and_token_cascade(self):
        lid = self.creds()["lease_id"]
        FV.advance_time(61)
        self.assertErrors(call("PUT", "/v1/sys/leases/renew", {"lease_id": lid}), 400, ["lease not found"])
        self.assertEqual([x["reason"] for x in FV.revocations() if x["lease_id"] == lid], ["expired"])
        tok = login_approle()
        lid = self.creds(token=tok)["lease_id"]
        self.assertEqual(call("POST", "/v1/auth/token/revoke-self", token=tok).status, 204)
        self.assertEqual([x["reason"] for x in FV.revocations() if x["lease_id"] == lid], ["token-revoked"])

    def test_namespaced_lease(self):
        ns = {"X-Vault-Namespace": "team-a"}
        body = self.creds(headers=ns)
        lid = body["lease_id"]
        self.assertRegex(lid, r"^database/creds/readonly/[A-Za-z0-9]{24}\.[A-Za-z0-9]{5}$")
        self.assertErrors(call("PUT", "/v1/sys/leases/renew", {"lease_id": lid}), 400, ["lease not found"])
        r = call("PUT", "/v1/sys/leases/renew", {"lease_id": lid, "increment": 3600}, headers=ns)
        self.assertEqual(r.status, 200)
        self.assertTrue(595 <= r.json["lease_duration"] <= 600, r.json)   # capped by max_ttl 600


class HealthTests(Base):
    def test_health(self):
        r = call("GET", "/v1/sys/health", token=None)
        self.assertEqual((r.status, r.json["sealed"], r.json["initialized"], r.json["standby"]), (200, False, True, False))
        r = call("HEAD", "/v1/sys/health", token=None)
        self.assertEqual((r.status, r.body), (200, b""))
        FV.set_health_state("standby")
        self.assertEqual(call("GET", "/v1/sys/health", token=None).status, 429)
        self.assertEqual(call("GET", "/v1/sys/health?standbyok=true", token=None).status, 200)
        FV.set_health_state("perfstandby")
        self.assertEqual(call("GET", "/v1/sys/health", token=None).status, 473)
        FV.set_health_state("uninit")
        self.assertEqual(call("GET", "/v1/sys/health", token=None).status, 501)
        FV.set_health_state("active")
        FV.seal()
        r = call("GET", "/v1/sys/health", token=None)
        self.assertEqual((r.status, r.json["sealed"]), (503, True))
        self.assertEqual(call("GET", "/v1/sys/health?sealedcode=200", token=None).status, 200)
        self.assertEqual(call("GET", "/v1/sys/seal-status", token=None).json["sealed"], True)
        self.assertErrors(call("GET", "/v1/sys/health?sealedcode=x", token=None), 400)


class FaultTests(Base):
    def test_sealed(self):
        FV.set_sealed(True)
        self.assertErrors(call("GET", "/v1/secret/data/app"), 503, ["Vault is sealed"])
        self.assertErrors(call("POST", "/v1/auth/approle/login", {"role_id": "rid-1", "secret_id": "sid-1"},
                               token=None), 503, ["Vault is sealed"])
        self.assertErrors(call("GET", "/v1/secret/data/app", token=None), 503, ["Vault is sealed"])
        FV.set_sealed(False)
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 200)

    def test_429(self):
        FV.fail_next_429(2, retry_after=3, prefix="secret/")
        for _ in range(2):
            r = call("GET", "/v1/secret/data/app")
            self.assertErrors(r, 429, ['request path "secret/data/app": rate limit quota exceeded'])
            self.assertEqual(r.headers["retry-after"], "3")
        self.assertEqual(call("GET", "/v1/kv/plain").status, 200)
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 200)
        FV.fail_next_429(1)
        self.assertEqual(call("GET", "/v1/sys/health").status, 200)     # exempt
        self.assertEqual(call("GET", "/v1/kv/plain").status, 429)
        self.assertEqual(call("GET", "/v1/kv/plain").status, 200)
        self.assertEqual([e["fault"] for e in FV.requests()].count("rate_limit"), 3)

    def test_latency(self):
        FV.add_latency(300, prefix="/v1/secret/")
        t0 = time.monotonic()
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        t0 = time.monotonic()
        call("GET", "/v1/kv/plain")
        self.assertLess(time.monotonic() - t0, 0.25)
        self.assertEqual(FV.requests(prefix="secret/")[0]["latency_ms"], 300)
        FV.clear_latency()
        t0 = time.monotonic()
        call("GET", "/v1/secret/data/app")
        self.assertLess(time.monotonic() - t0, 0.25)

    def test_drop_request(self):
        FV.drop_next_connections(1, prefix="secret/")
        with self.assertRaises(CONN_ERRORS):
            call("GET", "/v1/secret/data/app")
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 200)
        self.assertEqual([e["fault"] for e in FV.requests()], ["drop", None])
        self.assertIsNone(FV.requests()[0]["status"])

    def test_drop_accept(self):
        before = FV.stats().get("dropped_accepts", 0)
        FV.drop_next_connections(2, mode="accept")
        for _ in range(2):
            with self.assertRaises(CONN_ERRORS):
                call("GET", "/v1/sys/health")
        self.assertEqual(call("GET", "/v1/sys/health").status, 200)
        self.assertEqual(FV.stats()["dropped_accepts"], before + 2)

    def test_truncate(self):
        FV.truncate_next_responses(1, prefix="secret/")
        conn = http.client.HTTPSConnection("127.0.0.1", FV.port, context=CTX, timeout=5)
        try:
            conn.request("GET", "/v1/secret/data/app", headers={"X-Vault-Token": FV.root_token})
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            with self.assertRaises(http.client.IncompleteRead):
                r.read()
        finally:
            conn.close()
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 200)
        self.assertEqual(FV.requests()[0]["fault"], "truncate")

    def test_non_json(self):
        FV.non_json_next_responses(1)
        r = call("GET", "/v1/secret/data/app")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/html"))
        self.assertIsNone(r.json)
        self.assertEqual(call("GET", "/v1/secret/data/app").json["data"]["data"]["user"], "u1")

    def test_force_status(self):
        FV.force_status("secret/data/app", 502, count=2)
        self.assertErrors(call("GET", "/v1/secret/data/app"), 502, ["forced status 502"])
        self.assertErrors(call("GET", "/v1/secret/data/app", token=None), 502)
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 200)
        FV.force_status("kv/", 500, body="oops", headers={"X-Test": "1"})
        for _ in range(3):
            r = call("GET", "/v1/kv/plain")
            self.assertEqual((r.status, r.body, r.headers["x-test"]), (500, b"oops", "1"))
        FV.force_status("secret/", 403, body={"errors": ["permission denied"]})
        self.assertErrors(call("GET", "/v1/secret/data/app"), 403, ["permission denied"])
        FV.clear_force_status("kv/")
        self.assertEqual(call("GET", "/v1/kv/plain").status, 200)
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 403)
        FV.clear_force_status()
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 200)

    def test_oversize(self):
        FV.oversize_responses("secret/data/big", count=1)
        r = call("GET", "/v1/secret/data/big")
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(len(r.body), 2 * 1024 * 1024)
        self.assertLess(len(r.body), 2 * 1024 * 1024 + 1024)
        self.assertGreater(len(r.json["data"]["data"]["padding"]), 2_000_000)
        self.assertErrors(call("GET", "/v1/secret/data/big"), 404)

    def test_clear_faults(self):
        FV.fail_next_429(5)
        FV.force_status("", 500)
        FV.truncate_next_responses(5)
        FV.clear_faults()
        self.assertEqual(call("GET", "/v1/secret/data/app").status, 200)


class LogTests(Base):
    def test_log_fields_and_counts(self):
        call("GET", "/v1/secret/data/app?version=1")
        call("PUT", "/v1/sys/leases/renew", {"lease_id": "x", "increment": 5})
        call("GET", "/v1/kv/plain")
        log = FV.requests()
        self.assertEqual([e["method"] for e in log], ["GET", "PUT", "GET"])
        self.assertEqual(log[0]["query"], {"version": ["1"]})
        self.assertEqual(log[0]["path"], "/v1/secret/data/app")
        self.assertEqual(log[1]["json"], {"lease_id": "x", "increment": 5})
        self.assertEqual(json.loads(log[1]["body"]), {"lease_id": "x", "increment": 5})
        self.assertTrue(log[0]["mono"] <= log[1]["mono"] <= log[2]["mono"])
        self.assertLess(abs(log[0]["wall"] - time.time()), 60)
        self.assertEqual([e["seq"] for e in log], sorted(e["seq"] for e in log))
        self.assertEqual(FV.count("GET"), 2)
        self.assertEqual(FV.count("PUT", "sys/leases/"), 1)
        self.assertEqual(FV.count(prefix="/v1/secret/"), 1)
        self.assertTrue(FV.wait_for_requests(3, timeout=1))
        self.assertFalse(FV.wait_for_requests(4, timeout=0.1))
        control("count", {"prefix": "secret/"})      # control requests are not recorded
        self.assertEqual(FV.count(), 3)
        FV.clear_requests()
        self.assertEqual(FV.requests(), [])

    def test_concurrency(self):
        results = fakecheck.in_threads(24, lambda i: call("GET", "/v1/secret/data/app" if i % 2 else
                                                          "/v1/kv/plain").status)
        self.assertEqual(results, [200] * 24)
        self.assertEqual(FV.count("GET"), 24)
        self.assertEqual(FV.count(prefix="kv/"), 12)


class ControlTests(Base):
    def test_control_endpoint(self):
        fakecheck.check_control_basics(self, FV, CTX)
        self.assertEqual(control("put_kv", {"mount": "secret", "path": "ctl", "data": {"x": "y"}}), (200, {"result": 1}))
        self.assertEqual(call("GET", "/v1/secret/data/ctl").json["data"]["data"], {"x": "y"})
        self.assertEqual(control("set_sealed", {"sealed": True})[0], 200)
        self.assertEqual(call("GET", "/v1/secret/data/ctl").status, 503)
        control("unseal", {})
        control("fail_next_429", {"n": 1, "retry_after": 7})
        self.assertEqual(call("GET", "/v1/secret/data/ctl").headers["retry-after"], "7")
        st, body = control("count?prefix=secret/", method="GET")
        self.assertEqual((st, body["result"]), (200, 3))
        st, body = control("requests", {"method": "GET", "prefix": "secret/data/ctl"})
        self.assertEqual(len(body["result"]), 3)
        self.assertEqual(control("put_kv", {"mount": "secret"})[0], 400)
        self.assertEqual(control("put_kv", {"mount": "zzz", "path": "a", "data": {}})[0], 400)
        self.assertEqual(control("requests")[0], 200)
        self.assertEqual(FV.count(), 3)


class ScriptTests(unittest.TestCase):
    def test_script_mode(self):
        state = os.path.join(TMP, "state.json")
        with open(state, "w") as f:
            json.dump({"root_token": "hvs.scriptroot", "calls": [
                {"method": "add_kv_mount", "args": {"path": "secret", "version": 2}},
                {"method": "put_kv", "args": {"mount": "secret", "path": "app", "data": {"a": "b"}}},
                {"method": "add_approle", "args": {"role_name": "r", "role_id": "i", "secret_id": "s"}},
            ]}, f)
        with fakecheck.script_fake(self, os.path.join(HERE, "vault.py"), "--tls-dir", os.path.join(TMP, "pki"),
                                   "--state", state) as (line, info):
            self.assertNotIn("hvs.", line)
            self.assertEqual(set(info), fakecheck.SCRIPT_KEYS)
            self.assertTrue(info["tls"])

            class P:   # enough of a FakeVault for call()
                tls, port, root_token = True, info["port"], "hvs.scriptroot"
            r = call("GET", "/v1/secret/data/app", fv=P)
            self.assertEqual((r.status, r.json["data"]["data"]), (200, {"a": "b"}))
            self.assertEqual(call("POST", "/v1/auth/approle/login", {"role_id": "i", "secret_id": "s"},
                                  token=None, fv=P).status, 200)
            self.assertEqual(fakecheck.control_call(info["control"] + "/count", method="GET", ctx=CTX),
                             (200, {"result": 2}))


class LifecycleTests(unittest.TestCase):
    def test_stop_interrupts_and_joins(self):
        fv = vault.FakeVault(tls=False).start()
        fv.add_latency(5000)
        fakecheck.check_stop_cuts_a_delayed_request(self, fv, lambda: call("GET", "/v1/sys/health", fv=fv))

    def test_context_manager_and_temp_pki(self):
        fakecheck.check_temp_pki(self, vault.FakeVault, "/v1/sys/health", 200)

    def test_ipv6_loopback(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            fv = vault.FakeVault(tls_dir=os.path.join(TMP, "pki"), host="::1").start()
        except OSError as e:
            self.skipTest("cannot bind ::1: %s" % e)
        try:
            self.assertEqual(fv.url, "https://[::1]:%d" % fv.port)
            self.assertEqual(call("GET", "/v1/sys/health", fv=fv, host="::1").status, 200)
        finally:
            fv.stop()

    def test_parse_duration(self):
        for v, s in ((30, 30), ("30", 30), ("1h", 3600), ("1h30m", 5400), ("90s", 90), ("2d", 172800),
                     ("1.5h", 5400), ("", 0)):
            self.assertEqual(vault.parse_duration(v), s, v)
        for v in ("soon", True, "-1", -5, "1x", None):
            with self.assertRaises(ValueError):
                vault.parse_duration(v)


if __name__ == "__main__":
    unittest.main()
