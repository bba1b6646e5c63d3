#!/usr/bin/env python3
"""azure_fake.py - a strict fake of Azure Key Vault, the Entra ID token endpoint and IMDS, for runsecrets' tests.

One real HTTPS server on loopback (not a mock of our own functions) serves three things, told apart by path:

    /secrets/{name}[/{version}]?api-version=7.4|7.5      Key Vault (the backend's vault_url is the fake's url)
    POST /{tenant}/oauth2/v2.0/token                       Entra ID  (auth.authority_host is the fake's url)
    GET  /metadata/identity/oauth2/token?...               IMDS      (auth.imds_endpoint is url + that path)

Every request is checked strictly (headers, form fields, scope/resource, api-version, token) and refused the way
the real service refuses it. Python 3.11 standard library only; `cryptography` is used only to generate the test
PKI. The server machinery (TLS, connections, start/stop, request log, control endpoint, script mode) is
fakeserver.py's, shared with vault.py; this file holds only the Azure protocol.

Run as a script:

    python3 tests/fakes/azure_fake.py --port 0 --tls-dir DIR [--state FILE.json] [--tenant T] [--plain-http]

prints one JSON line {"url", "port", "control", "ca", "tls", "pid", "tenant", "vault_url", "authority_host",
"imds_endpoint"} once listening (never a token or a secret) and exits 0 on SIGTERM/SIGINT. Or import it:

    a = FakeAzure(tls_dir=d).start()
    ver = a.set_secret("db-password", "s3cret")
    a.add_client_secret_app(a.tenant_id, "app-1", "client-secret-1")
    ...
    a.stop()

Control endpoint (same port, never recorded, no faults): POST /__control/<method> with a JSON object of keyword
arguments calls the FakeAzure method of that name (CONTROL_METHODS) and answers {"result": ...}; GET
/__control/<method>?k=v does the same with string arguments; GET /__control/ lists the methods. 400 {"error"} on
bad arguments, 404 for an unknown method.

Tokens the fake issues are JWT-shaped but NOT signed (random signature bytes); their claims (aud, tid, exp, ...)
mirror what the fake records, but the fake's own records are what counts: expire_tokens() and advance_time() make
a token expire while its `exp` claim still says otherwise. A client must treat tokens as opaque and use
expires_in; token_format="opaque" gives random strings instead.

-------------------------------------------------------------------------------------------------------------------
Differences from /work/shared/backend-apis.md section 3 (Azure), found in Microsoft's public reference and in
real service answers recorded in public repositories; the fake follows these, not backend-apis.md:

Key Vault
 1. A policy denial is 403 {"error":{"code":"Forbidden","message":"The user, group or application
    'appid=..;oid=..;iss=https://sts.windows.net/<tenant>/' does not have secrets get permission on key vault
    '<vault>;location=<region>'. For help resolving this issue, please see
    https://go.microsoft.com/fwlink/?linkid=2125287","innererror":{"code":"ForbiddenByPolicy"}}} (access-policy
    vaults; seen in hashicorp/terraform-provider-azurerm and Azure SDK recordings). backend-apis.md names only
    AccessDenied / ForbiddenByRbac; deny(..., code=) can produce all three (ForbiddenByRbac with the RBAC text).
 2. Disabled secret: 403 {"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled
    secret.","innererror":{"code":"SecretDisabled"}}} (Azure/azure-sdk-for-js#24756, Azure/azure-powershell#15378).
 3. Not found: 404 {"error":{"code":"SecretNotFound","message":"A secret with (name/id) NAME was not found in this
    key vault. If you recently deleted this secret you may be able to recover it using the correct recovery
    command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"}} (no
    innererror; Azure/azure-sdk-for-js#25489). A deleted secret answers the same.
 4. The 401 body backend-apis.md marks [unverified] is confirmed: {"error":{"code":"Unauthorized","message":
    "AKV10000: Request is missing a Bearer or PoP token."}} (azure-sdk-for-js keyvault-secrets recordings, 2022).
    Other 401s: expired token "[TokenExpired] Error validating token: 'S2S12086'." (Azure/azure-sdk-for-python
    #27266); wrong audience "AKV10022: Invalid audience. Expected https://vault.azure.net, found: <aud>."
    (crossplane-contrib/provider-azure#346); other tenant "AKV10032: Invalid issuer. Expected one of
    https://sts.windows.net/<tenant>/, found https://sts.windows.net/<other>/." (MicrosoftDocs/azure-docs#75410);
    unknown signer "AKV10046: Unable to resolve the key used for signature validation." (Azure-Samples/
    azuresandbox#362). Every 401 carries the WWW-Authenticate challenge.
 5. The challenge's authority host varies: recordings from 2021-2022 say https://login.windows.net/<tenant>, a 2024
    trace (Azure/azure-sdk-for-js#31094) says https://login.microsoftonline.com/<tenant>. The fake sends the
    latter (attribute challenge_authority); a client must take only the tenant (last path segment) from it and
    keep its configured authority host (the Python SDK's HttpChallenge.get_tenant_id does exactly that).
 6. Wrong api-version: 400 {"error":{"code":"BadParameter","message":"The specified version (X) is not
    recognized. Consider using the latest supported version (7.5)."}} (Azure/azure-sdk-for-python#28595). The REST
    reference marks api-version required; what the service answers when it is absent is unverified (a docs
    maintainer says it defaults to the latest: MicrosoftDocs/azure-docs#126651) - the fake refuses (strict).
 7. nbf / exp are NOT enforced by Key Vault: "About Azure Key Vault secrets", date-time controlled operations: a
    get works for not-yet-valid and expired secrets. So the fake serves them (200) and the *client* must refuse
    to serve them (backend-apis.md's "should not be served" is the backend's duty, not the service's).
 8. Optional members are omitted when unset (the REST reference's Get Secret example has only value, id and
    attributes {enabled, created, updated, recoveryLevel}): contentType, tags, attributes.nbf, attributes.exp are
    absent unless set; recoverableDays (90) and recoveryLevel ("Recoverable+Purgeable") are always present.
 9. Object names are case-insensitive (GET /secrets/DB-Password finds db-password; `id` keeps the name as
    created), and GET /secrets/{name}/ (empty version, as the JS SDK sends it) is the latest version.
Entra ID token endpoint
10. Error bodies also carry error_uri ("https://login.microsoftonline.com/error?code=N"), and error_description
    ends with "\\r\\nTrace ID: ..\\r\\nCorrelation ID: ..\\r\\nTimestamp: YYYY-MM-DD hh:mm:ssZ" (Azure/azure-
    workload-identity#616, OfficeDev/microsoft-365-agents-toolkit#8621). invalid_client answers are 401
    (AADSTS7000215 wrong secret, AADSTS7000218 no credential, AADSTS70021 no matching federated credential - 401
    invalid_client since 2023, external-secrets/external-secrets#2783), the others 400.
11. The success body also has ext_expires_in (integer, like expires_in).
IMDS
12. The success body also has client_id and ext_expires_in (strings too) - azure-rest-api-specs imds 2018-02-01
    example getIdentityToken.json; not_before is the issue time minus 5 minutes as in the how-to-use-vm-token
    sample; expires_in/expires_on/not_before/ext_expires_in are strings.
13. Errors are {"error", "error_description"} only: missing or not exactly "true" Metadata header -> 400
    bad_request_102 "Required metadata header not specified" (how-to-use-vm-token error table); no such identity
    -> 400 invalid_request "Identity not found" (MicrosoftDocs/azure-docs#21322). With no client_id and no
    system-assigned identity, a single user-assigned identity is used; several -> 400.
Unverified (the fake's best guess, consistent in shape; a client must not depend on the exact text):
    KV: missing api-version text, invalid-name 400 text, 405 text, 409 on PUT of a deleted secret, 429 "Throttled"
    text. Entra: AADSTS70003 (unsupported grant type) text, AADSTS9002313 for both/malformed credentials,
    AADSTS90033 on injected 429/5xx. IMDS: the api-version error text at the identity path, "Required query
    variable 'resource' is missing", the several-identities text, X-Forwarded-For refusal text.
-------------------------------------------------------------------------------------------------------------------
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import re
import secrets as _secrets
import sys
import urllib.parse
import uuid

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import fakeserver  # noqa: E402  (the server machinery every fake shares)
from fakeserver import TLS_FILES, make_ca_and_cert  # noqa: E402,F401  (the shared test PKI, re-exported)

# --------------------------------------------------------------------------------------------------
# constants

VAULT_RESOURCE = "https://vault.azure.net"
KV_API_VERSIONS = ("7.4", "7.5")
IMDS_API_VERSIONS = ("2018-02-01",)
IMDS_PATH = "/metadata/identity/oauth2/token"
# Resources Entra and IMDS know (the fake issues tokens for them; only the first one opens the vault).
KNOWN_RESOURCES = ("https://vault.azure.net", "https://management.azure.com", "https://graph.microsoft.com",
                   "https://storage.azure.com")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_TENANT = "5f1e6d0c-3b2a-4c9d-8e7f-a1b2c3d4e5f6"
DEFAULT_TTL = 3599
RECOVERABLE_DAYS = 90
RECOVERY_LEVEL = "Recoverable+Purgeable"
MAX_REQUEST_BYTES = 1024 * 1024
MAX_LOG_ENTRIES = 100_000
MAX_DELAY_S = 60.0
ENDPOINTS = ("vault", "token", "imds")
JSON_CT = "application/json; charset=utf-8"
NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DNS_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
TOKEN_PATH_RE = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
NOT_FOUND_HELP = "https://go.microsoft.com/fwlink/?linkid=2125182"
FORBIDDEN_HELP = "https://go.microsoft.com/fwlink/?linkid=2125287"
DENY_CODES = ("ForbiddenByPolicy", "AccessDenied", "ForbiddenByRbac")

# Log entry fields that may hold a secret; requests(redact=True) blanks them.
SENSITIVE_FIELDS = ("token", "issued_token", "body", "form", "headers")

# Methods reachable through /__control/<name>.
CONTROL_METHODS = frozenset("""
    set_secret disable_secret enable_secret delete_secret versions secret_info tamper_value
    add_client_secret_app remove_client_secret add_federated_app remove_federated_assertion
    add_managed_identity remove_managed_identity deny allow
    issue_token tokens set_token_ttl expire_tokens advance_time
    fault_challenge_foreign fault_status fault_delay clear_faults faults
    requests clear_requests count sensitive_values
""".split())


_b64url = fakeserver.b64url
_int_or_none = fakeserver.int_or_none


_bool = fakeserver.arg_bool


def _check_name(name):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError("invalid Key Vault object name %r (^[0-9a-zA-Z-]{1,127}$)" % (name,))
    return name


def _norm_resource(r):
    return (r or "").strip().rstrip("/")


# --------------------------------------------------------------------------------------------------
# state objects (guarded by FakeAzure._lock)


class _Version:
    def __init__(self, vid, value, content_type, tags, enabled, nbf, exp, now):
        self.id = vid
        self.value = value
        self.content_type = content_type
        self.tags = tags
        self.enabled = enabled
        self.nbf = nbf
        self.exp = exp
        self.created = now
        self.updated = now


class _Secret:
    def __init__(self, name):
        self.name = name              # as created; lookups are case-insensitive
        self.versions = {}            # version id -> _Version, insertion order = creation order
        self.deleted = None           # deletion time (int) or None


class _App:
    def __init__(self, tenant, client_id):
        self.tenant = tenant
        self.client_id = client_id
        self.object_id = str(uuid.uuid4())
        self.secrets = []             # accepted client secrets
        self.assertions = []          # accepted federated assertions (the token file's contents)


class _Identity:
    def __init__(self, client_id, system):
        self.client_id = client_id
        self.object_id = str(uuid.uuid4())
        self.system = system


class _Token:
    def __init__(self, value, identity, object_id, tenant, audience, kind, issued, expiry):
        self.value = value
        self.identity = identity
        self.object_id = object_id
        self.tenant = tenant
        self.audience = audience
        self.kind = kind
        self.issued = issued
        self.expiry = expiry
        self.forced_expired = False


class _Resp(fakeserver.Resp):
    __slots__ = ()
    JSON_CT = JSON_CT


def _kv_err(status, code, message, inner=None, headers=None):
    err = {"code": code, "message": message}
    if inner:
        err["innererror"] = {"code": inner}
    return _Resp(status, {"error": err}, headers=headers, error=inner or code)


def _imds_err(status, error, description):
    return _Resp(status, {"error": error, "error_description": description}, error=error)


# --------------------------------------------------------------------------------------------------
# HTTP plumbing (the shared part is fakeserver.FakeHandler)


class _Handler(fakeserver.JsonHandler):
    server_version = "FakeAzure/1.0"
    Resp = _Resp

    def _too_large(self, fake):
        return _Resp(413, {"error": "request body too large"}, error="too_large")

    def _bad_body(self, reason):
        return _Resp(400, {"error": reason}, error="bad_request")

    def _no_endpoint(self, path):
        return _Resp(404, {"error": "not_found", "error_description": "no such endpoint"}, error="not_found")

    def _internal_error(self, exc):
        return _Resp(500, {"error": "fakeazure internal error: %s" % exc}, error="internal")


# --------------------------------------------------------------------------------------------------
# the fake


class FakeAzure(fakeserver.CloudFake):
    """A strict fake Azure (Key Vault + Entra token endpoint + IMDS) on one TLS port. Thread-safe.

    tenant_id is the vault's tenant: the challenge names it, tokens issued in another tenant are refused by
    the vault (AKV10032), managed identities live in it. token_ttl is the lifetime of the tokens issued next."""

    NAME = "fakeazure"
    CONTROL_METHODS = CONTROL_METHODS
    Handler = _Handler
    ENDPOINTS = ENDPOINTS
    MAX_DELAY_S = MAX_DELAY_S
    SECRET_CASEFOLD = True        # Key Vault's names are case-insensitive
    SENSITIVE_FORM = ("client_secret", "client_assertion")

    def __init__(self, tls_dir=None, *, tls=True, host="127.0.0.1", port=0, tenant_id=DEFAULT_TENANT,
                 token_ttl=DEFAULT_TTL, vault_name="fakevault", location="westeurope",
                 challenge_authority="https://login.microsoftonline.com", token_format="jwt", vault_host=None,
                 hostnames=("localhost", "127.0.0.1", "::1"), max_request_bytes=MAX_REQUEST_BYTES,
                 conn_timeout=30.0, handshake_timeout=5.0, max_log_entries=MAX_LOG_ENTRIES):
        if token_format not in ("jwt", "opaque"):
            raise ValueError("token_format must be 'jwt' or 'opaque'")
        super().__init__(tls_dir, tls=tls, host=host, port=port,
                         hostnames=tuple(hostnames) + ((vault_host,) if vault_host else ()),
                         max_request_bytes=max_request_bytes, conn_timeout=conn_timeout,
                         handshake_timeout=handshake_timeout, max_log_entries=max_log_entries)
        self.tenant_id = str(tenant_id)
        self.token_ttl = int(token_ttl)
        self.vault_name = vault_name
        self.location = location
        self.challenge_authority = challenge_authority.rstrip("/")
        self.token_format = token_format
        self.vault_host = vault_host
        self.kv_api_versions = KV_API_VERSIONS
        self.imds_api_versions = IMDS_API_VERSIONS

        self._secrets = {}            # lower-case name -> _Secret
        self._tenants = {self.tenant_id}
        self._apps = {}               # (tenant, client_id) -> _App
        self._identities = {}         # client_id -> _Identity (managed identities)
        self._denied = {}             # (identity, lower-case name or "*") -> code
        # self._tokens: token value -> _Token (CloudFake)

    # ------------------------------------------------------------------ lifecycle (see FakeServer)

    @property
    def vault_url(self):
        """The backend's vault_url (also the base of every secret `id`): the fake's url, or
        https://<vault_host>:<port> when vault_host is set (e.g. "fakevault.vault.azure.net", for a client that
        checks the challenge resource against the vault's domain; the name must then resolve to the fake, and
        the server certificate carries it only when the fake generated the PKI itself)."""
        if not self._server or not self.vault_host:
            return self.url
        return "%s://%s:%d" % ("https" if self.tls else "http", self.vault_host, self.port)

    @property
    def authority_host(self):
        """The backend's auth.authority_host: token URL = authority_host/<tenant>/oauth2/v2.0/token."""
        return self.url

    @property
    def imds_endpoint(self):
        """The backend's auth.imds_endpoint."""
        return self.url + IMDS_PATH if self._server else None

    def script_info(self):
        return dict(super().script_info(), tenant=self.tenant_id, vault_url=self.vault_url,
                    authority_host=self.authority_host, imds_endpoint=self.imds_endpoint)

    # ------------------------------------------------------------------ secrets

    def set_secret(self, name, value, content_type=None, tags=None, enabled=True, nbf=None, exp=None):
        """Add a new version (it becomes the latest; older ones stay readable by version id) and return its
        32-hex version id. A deleted secret is recreated from scratch (as if purged first)."""
        _check_name(name)
        if not isinstance(value, str):
            raise ValueError("value must be a string")
        if content_type is not None and not isinstance(content_type, str):
            raise ValueError("content_type must be a string")
        if tags is not None:
            if not isinstance(tags, dict):
                raise ValueError("tags must be an object")
            tags = {str(k): str(v) for k, v in tags.items()}
        nbf, exp = _int_or_none(nbf, "nbf"), _int_or_none(exp, "exp")
        with self._lock:
            s = self._secrets.get(name.lower())
            if s is None or s.deleted is not None:
                s = self._secrets[name.lower()] = _Secret(name)
            vid = uuid.uuid4().hex
            s.versions[vid] = _Version(vid, value, content_type, tags or None, _bool(enabled), nbf, exp,
                                       int(self._wall()))
            return vid

    def _secret_locked(self, name):
        s = self._secrets.get(str(name).lower())
        if s is None:
            raise KeyError("no secret %r" % name)
        return s

    def _version_locked(self, s, version):
        if version is None:
            return s.versions[next(reversed(s.versions))]
        v = s.versions.get(str(version).lower())
        if v is None:
            raise KeyError("secret %r has no version %r" % (s.name, version))
        return v

    def disable_secret(self, name, version=None):
        """Disable the latest version (or `version`): a get of it answers 403 SecretDisabled."""
        with self._lock:
            s = self._secret_locked(name)
            v = self._version_locked(s, version)
            v.enabled = False
            v.updated = int(self._wall())
            return v.id

    def enable_secret(self, name, version=None):
        with self._lock:
            s = self._secret_locked(name)
            v = self._version_locked(s, version)
            v.enabled = True
            v.updated = int(self._wall())
            return v.id

    def delete_secret(self, name):
        """Soft-delete: every get answers 404 SecretNotFound. Returns False if there was no such secret."""
        with self._lock:
            s = self._secrets.get(str(name).lower())
            if s is None or s.deleted is not None:
                return False
            s.deleted = int(self._wall())
            return True

    def tamper_value(self, name, value, version=None):
        """Change the value of the latest version (or `version`) in place, keeping its id. Key Vault never
        does this (a version is immutable): tests use it to see that a client which holds a version trusts
        the version id and does not take the value again. Returns the version id."""
        if not isinstance(value, str):
            raise ValueError("value must be a string")
        with self._lock:
            v = self._version_locked(self._secret_locked(name), version)
            v.value = value
            return v.id

    def versions(self, name):
        """Version ids of the secret, oldest first (the last one is the latest)."""
        with self._lock:
            return list(self._secret_locked(name).versions)

    def secret_info(self, name):
        """{"name", "deleted", "versions": [{"id", "enabled", "nbf", "exp", "created", "updated",
        "content_type", "tags"}]} (no values)."""
        with self._lock:
            s = self._secret_locked(name)
            return {"name": s.name, "deleted": s.deleted is not None,
                    "versions": [{"id": v.id, "enabled": v.enabled, "nbf": v.nbf, "exp": v.exp,
                                  "created": v.created, "updated": v.updated, "content_type": v.content_type,
                                  "tags": copy.deepcopy(v.tags)} for v in s.versions.values()]}

    # ------------------------------------------------------------------ identities

    def _app_locked(self, tenant, client_id):
        tenant = self.tenant_id if tenant is None else str(tenant)
        if not client_id:
            raise ValueError("client_id is required")
        self._tenants.add(tenant)
        key = (tenant, str(client_id))
        app = self._apps.get(key)
        if app is None:
            app = self._apps[key] = _App(tenant, str(client_id))
        return app

    def add_client_secret_app(self, tenant, client_id, secret):
        """Register an app (service principal) in `tenant` (None: the vault's tenant) that may log in with
        client_secret=`secret`; calling again adds another accepted secret (rotation)."""
        if not isinstance(secret, str) or not secret:
            raise ValueError("secret must be a non-empty string")
        with self._lock:
            app = self._app_locked(tenant, client_id)
            if secret not in app.secrets:
                app.secrets.append(secret)
            return app.client_id

    def remove_client_secret(self, tenant, client_id, secret):
        with self._lock:
            app = self._app_locked(tenant, client_id)
            if secret in app.secrets:
                app.secrets.remove(secret)
                return True
            return False

    def add_federated_app(self, tenant, client_id, assertion):
        """Register an app that may log in with client_assertion=`assertion` (the workload-identity token
        file's contents, compared as an opaque string); calling again adds another (file rotation)."""
        if not isinstance(assertion, str) or not assertion:
            raise ValueError("assertion must be a non-empty string")
        with self._lock:
            app = self._app_locked(tenant, client_id)
            if assertion not in app.assertions:
                app.assertions.append(assertion)
            return app.client_id

    def remove_federated_assertion(self, tenant, client_id, assertion):
        with self._lock:
            app = self._app_locked(tenant, client_id)
            if assertion in app.assertions:
                app.assertions.remove(assertion)
                return True
            return False

    def add_managed_identity(self, client_id=None):
        """client_id=None: the system-assigned identity (its client id, random, is returned); else a
        user-assigned identity with that client id. Both live in the vault's tenant."""
        with self._lock:
            if client_id is None:
                for ident in self._identities.values():
                    if ident.system:
                        return ident.client_id
                ident = _Identity(str(uuid.uuid4()), True)
            else:
                ident = self._identities.get(str(client_id)) or _Identity(str(client_id), False)
            self._identities[ident.client_id] = ident
            return ident.client_id

    def remove_managed_identity(self, client_id=None):
        with self._lock:
            cid = self._resolve_identity_locked(client_id)
            return self._identities.pop(cid, None) is not None

    def _resolve_identity_locked(self, identity):
        """'system' or None -> the system-assigned identity's client id; anything else as is."""
        if identity is None or identity == "system":
            for ident in self._identities.values():
                if ident.system:
                    return ident.client_id
            return None
        return str(identity)

    def deny(self, identity, name="*", code="ForbiddenByPolicy"):
        """Refuse `identity` (a client id, or "system") the secret `name` ("*": every secret) with 403
        Forbidden, innererror `code` (ForbiddenByPolicy, AccessDenied or ForbiddenByRbac)."""
        if code not in DENY_CODES:
            raise ValueError("code must be one of %s" % ", ".join(DENY_CODES))
        if name != "*":
            _check_name(name)
        with self._lock:
            cid = self._resolve_identity_locked(identity)
            if cid is None:
                raise ValueError("no system-assigned identity")
            self._denied[(cid, name.lower())] = code

    def allow(self, identity, name="*"):
        """Undo deny(identity, name)."""
        with self._lock:
            cid = self._resolve_identity_locked(identity)
            return self._denied.pop((cid, str(name).lower()), None) is not None

    # ------------------------------------------------------------------ tokens

    def issue_token(self, identity, audience=VAULT_RESOURCE, tenant=None, ttl=None, kind="test"):
        """Mint a token directly (no request), e.g. for a test that needs one for another audience."""
        with self._lock:
            return self._issue_locked(str(identity), None, self.tenant_id if tenant is None else str(tenant),
                                      _norm_resource(audience), kind, ttl)[0].value

    def _issue_locked(self, identity, object_id, tenant, audience, kind, ttl=None):
        ttl = self.token_ttl if ttl is None else int(ttl)
        now = int(self._wall())
        oid = object_id or str(uuid.uuid5(uuid.NAMESPACE_URL, "fakeazure:" + identity))
        if self.token_format == "opaque":
            value = _secrets.token_urlsafe(96)
        else:
            iss = "https://sts.windows.net/%s/" % tenant
            header = {"typ": "JWT", "alg": "RS256", "x5t": _b64url(os.urandom(20)),
                      "kid": _b64url(os.urandom(20))}
            claims = {"aud": audience, "iss": iss, "iat": now, "nbf": now, "exp": now + ttl,
                      "aio": _b64url(os.urandom(48)), "appid": identity,
                      "appidacr": "2" if kind == "managed_identity" else "1", "idp": iss, "oid": oid,
                      "rh": _b64url(os.urandom(24)) + ".", "sub": oid, "tid": tenant,
                      "uti": _b64url(os.urandom(16)), "ver": "1.0", "xms_tcdt": now - 86400 * 365}
            value = ".".join((_b64url(json.dumps(header, separators=(",", ":")).encode()),
                              _b64url(json.dumps(claims, separators=(",", ":")).encode()),
                              _b64url(os.urandom(256))))   # not a signature: nobody may verify it
        tok = _Token(value, identity, oid, tenant, audience, kind, now, now + ttl)
        self._tokens[value] = tok
        return tok, ttl, now

    def tokens(self):
        """Every token issued, oldest first: {"value", "identity", "expiry" (epoch s, fake clock), "issued",
        "tenant", "audience", "kind", "expired"}."""
        with self._lock:
            wall = self._wall()
            return [{"value": t.value, "identity": t.identity, "expiry": t.expiry, "issued": t.issued,
                     "tenant": t.tenant, "audience": t.audience, "kind": t.kind,
                     "expired": t.forced_expired or wall >= t.expiry} for t in self._tokens.values()]

    # ------------------------------------------------------------------ state file

    def _apply_state_keys(self, state):
        """{"tenant_id"?: str}: the vault's tenant."""
        if state.get("tenant_id"):
            with self._lock:
                self.tenant_id = str(state["tenant_id"])
                self._tenants.add(self.tenant_id)

    # ------------------------------------------------------------------ faults

    def fault_challenge_foreign(self, resource="https://evil.example", count=1, scope=None, authorization=None):
        """The next `count` vault requests (None: until clear_faults) get a 401 whose challenge names
        `resource` (and `scope`, `authorization` if given) - a client must not send a token there."""
        self._add_fault({"kind": "challenge", "endpoint": "vault", "secret": None,
                         "remaining": _int_or_none(count, "count"), "resource": str(resource),
                         "scope": scope, "authorization": authorization})

    # ------------------------------------------------------------------ request log

    def sensitive_values(self):
        """Every string a client must never leak: secret values (all versions), client secrets, federated
        assertions, issued tokens and every bearer token seen."""
        with self._lock:
            out = set()
            for s in self._secrets.values():
                out.update(v.value for v in s.versions.values() if v.value)
            for app in self._apps.values():
                out.update(app.secrets)
                out.update(app.assertions)
            out.update(self._tokens)
            out.update(e["token"] for e in self._log if e["token"])
            return sorted(out)

    @staticmethod
    def _classify(path):
        """The endpoint of a path: "vault", "token", "imds" or None."""
        if path == "/secrets" or path.startswith("/secrets/"):
            return "vault"
        if path.startswith("/metadata/"):
            return "imds"
        if "/oauth2/" in path:
            return "token"
        return None

    @staticmethod
    def _entry_fields(path, endpoint):
        secret = None
        if endpoint == "vault":
            parts = path.split("/")
            secret = parts[2] if len(parts) > 2 and parts[2] else None
        return {"tenant": None, "secret": secret}

    # ------------------------------------------------------------------ request processing

    def _process(self, endpoint, method, path, raw_query, headers, body, entry):
        resp = super()._process(endpoint, method, path, raw_query, headers, body, entry)
        if endpoint == "vault":
            resp.headers = self._kv_headers() + resp.headers
        return resp

    def _route(self, endpoint, method, path, raw_query, headers, body, entry):
        if endpoint == "vault":
            rule = self._take_fault("challenge", "vault", entry["secret"])
            if rule:
                entry["fault"] = "challenge"
                return self._kv_401("AKV10000: Request is missing a Bearer or PoP token.", rule)
            return self._vault_inner(method, path, raw_query, headers, body, entry)
        if endpoint == "token":
            return self._token_endpoint(method, path, headers, body, entry)
        return self._imds(method, path, raw_query, headers, entry)

    def _default_fault_response(self, endpoint, status, hdrs):
        if endpoint == "vault":
            if status == 429:
                return _kv_err(429, "Throttled", "Request was not processed because too many requests were "
                                    "received. Reason: A1", headers=hdrs)
            code = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable",
                    504: "GatewayTimeout"}.get(status, "Fault")
            return _kv_err(status, code, "Injected fault: HTTP %d." % status, headers=hdrs)
        if endpoint == "token":
            r = self._aad_err(status, "temporarily_unavailable" if status in (429, 503) else "server_error",
                              90033, "A transient error has occurred. Please try again.")
            r.headers = hdrs
            return r
        err = {404: "not_found", 410: "gone", 429: "too_many_requests", 500: "server_error",
               503: "service_unavailable"}.get(status, "server_error")
        r = _imds_err(status, err, "Injected fault: HTTP %d" % status)
        r.headers = hdrs
        return r

    # --- Key Vault

    def _kv_401(self, message, foreign=None):
        authority = "%s/%s" % (self.challenge_authority, self.tenant_id)
        resource = VAULT_RESOURCE
        scope = None
        if foreign:
            authority = foreign["authorization"] or authority
            resource = foreign["resource"]
            scope = foreign["scope"]
        challenge = 'Bearer authorization="%s", resource="%s"' % (authority, resource)
        if scope:
            challenge += ', scope="%s"' % scope
        return _kv_err(401, "Unauthorized", message, headers=[("WWW-Authenticate", challenge)])

    def _kv_headers(self):
        return [("Cache-Control", "no-cache"), ("Pragma", "no-cache"), ("Expires", "-1"),
                ("x-ms-keyvault-region", self.location), ("x-ms-request-id", str(uuid.uuid4())),
                ("x-ms-keyvault-service-version", "1.9.1720.1"),
                ("Strict-Transport-Security", "max-age=31536000;includeSubDomains"),
                ("X-Content-Type-Options", "nosniff")]

    def _authenticate_locked(self, headers, entry):
        """The caller's _Token, or the 401 to answer."""
        auth = (headers.get("Authorization") or "").strip()
        if auth[:7].lower() != "bearer " or not auth[7:].strip():
            return None, self._kv_401("AKV10000: Request is missing a Bearer or PoP token.")
        tok = self._tokens.get(auth[7:].strip())
        if tok is None:
            return None, self._kv_401("AKV10046: Unable to resolve the key used for signature validation.")
        entry["identity"], entry["tenant"] = tok.identity, tok.tenant
        if tok.forced_expired or self._wall() >= tok.expiry:
            return None, self._kv_401("[TokenExpired] Error validating token: 'S2S12086'.")
        if tok.tenant != self.tenant_id:
            return None, self._kv_401("AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, "
                                      "found https://sts.windows.net/%s/." % (self.tenant_id, tok.tenant))
        if tok.audience != VAULT_RESOURCE:
            return None, self._kv_401("AKV10022: Invalid audience. Expected %s, found: %s."
                                      % (VAULT_RESOURCE, tok.audience))
        return tok, None

    def _denied_locked(self, tok, name):
        code = self._denied.get((tok.identity, name.lower())) or self._denied.get((tok.identity, "*"))
        if code is None:
            return None
        caller = "appid=%s;oid=%s;iss=https://sts.windows.net/%s/" % (tok.identity, tok.object_id, tok.tenant)
        vault = "%s;location=%s" % (self.vault_name, self.location)
        if code == "ForbiddenByRbac":
            msg = ("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny "
                   "assignments or role definitions were changed recently, please observe propagation time.\r\n"
                   "Caller: %s\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: "
                   "'/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/fake/providers/"
                   "microsoft.keyvault/vaults/%s/secrets/%s'\r\nAssignment: (not found)\r\nDenyAssignmentId: "
                   "null\r\nDecisionReason: null \r\nVault: %s\r\n" % (caller, self.vault_name, name.lower(), vault))
        else:
            msg = ("The user, group or application '%s' does not have secrets get permission on key vault '%s'. "
                   "For help resolving this issue, please see %s" % (caller, vault, FORBIDDEN_HELP))
        return _kv_err(403, "Forbidden", msg, inner=code)

    def _bundle_locked(self, s, v):
        attrs = {"enabled": v.enabled}
        if v.nbf is not None:
            attrs["nbf"] = v.nbf
        if v.exp is not None:
            attrs["exp"] = v.exp
        attrs.update({"created": v.created, "updated": v.updated, "recoverableDays": RECOVERABLE_DAYS,
                      "recoveryLevel": RECOVERY_LEVEL})
        out = {"value": v.value, "id": "%s/secrets/%s/%s" % (self.vault_url, s.name, v.id)}
        if v.content_type is not None:
            out["contentType"] = v.content_type
        out["attributes"] = attrs
        if v.tags:
            out["tags"] = copy.deepcopy(v.tags)
        return out

    @staticmethod
    def _not_found(ref):
        return _kv_err(404, "SecretNotFound", "A secret with (name/id) %s was not found in this key vault. If "
                       "you recently deleted this secret you may be able to recover it using the correct "
                       "recovery command. For help resolving this issue, please see %s" % (ref, NOT_FOUND_HELP))

    def _vault_inner(self, method, path, raw_query, headers, body, entry):
        with self._lock:
            tok, err = self._authenticate_locked(headers, entry)
            if err:
                return err
            query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
            api = query.get("api-version", [None])[-1]
            if api is None:
                return _kv_err(400, "BadParameter", "The 'api-version' query parameter is missing. Consider "
                                    "using the latest supported version (%s)." % self.kv_api_versions[-1])
            if api not in self.kv_api_versions:
                return _kv_err(400, "BadParameter", "The specified version (%s) is not recognized. Consider "
                                    "using the latest supported version (%s)." % (api, self.kv_api_versions[-1]))
            parts = path.split("/")[2:]      # after "/secrets"
            if parts and parts[-1] == "" and len(parts) == 2:
                parts = parts[:1]            # /secrets/{name}/ = the latest version
            if not parts or len(parts) > 2 or not parts[0]:
                return _kv_err(404, "NotFound", "The requested resource was not found.")
            name = parts[0]
            version = parts[1] if len(parts) == 2 else None
            if not NAME_RE.match(name):
                return _kv_err(400, "BadParameter", "The request URI contains an invalid name: %s" % name)
            if method not in ("GET", "PUT", "DELETE") or (method != "GET" and version is not None):
                return _kv_err(405, "MethodNotAllowed",
                               "The requested resource does not support http method '%s'." % method)
            denial = self._denied_locked(tok, name)
            if denial:
                return denial
            s = self._secrets.get(name.lower())
            if method == "PUT":
                return self._kv_put_locked(name, s, body, entry)
            if s is None or s.deleted is not None:
                return self._not_found(name if version is None else "%s/%s" % (name, version))
            if method == "DELETE":
                s.deleted = int(self._wall())
                latest = s.versions[next(reversed(s.versions))]
                out = self._bundle_locked(s, latest)
                del out["value"]
                out.update({"recoveryId": "%s/deletedsecrets/%s" % (self.vault_url, s.name),
                            "deletedDate": s.deleted, "scheduledPurgeDate": s.deleted + RECOVERABLE_DAYS * 86400})
                return _Resp(200, out)
            if version is None:
                v = s.versions[next(reversed(s.versions))]
            else:
                v = s.versions.get(version.lower())
                if v is None:
                    return self._not_found("%s/%s" % (name, version))
            entry["version"] = v.id
            if not v.enabled:
                return _kv_err(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                               inner="SecretDisabled")
            return _Resp(200, self._bundle_locked(s, v))

    def _kv_put_locked(self, name, s, body, entry):
        if s is not None and s.deleted is not None:
            return _kv_err(409, "Conflict", "Secret %s is currently in a deleted but recoverable state, and its "
                           "name cannot be reused; in this state, the secret can only be recovered or purged."
                           % name, inner="ObjectIsDeletedButRecoverable")
        try:
            req = json.loads(body or b"null")
        except ValueError:
            req = None
        if not isinstance(req, dict) or not isinstance(req.get("value"), str):
            return _kv_err(400, "BadParameter", "Property value is required and must be a string.")
        attrs = req.get("attributes") or {}
        tags = req.get("tags")
        if not isinstance(attrs, dict) or (tags is not None and not isinstance(tags, dict)):
            return _kv_err(400, "BadParameter", "Invalid attributes or tags.")
        try:
            vid = self.set_secret(name, req["value"], content_type=req.get("contentType"), tags=tags,
                                  enabled=attrs.get("enabled", True), nbf=attrs.get("nbf"), exp=attrs.get("exp"))
        except ValueError as e:
            return _kv_err(400, "BadParameter", str(e))
        s = self._secrets[name.lower()]
        entry["version"] = vid
        return _Resp(200, self._bundle_locked(s, s.versions[vid]))

    # --- Entra ID token endpoint

    def _aad_err(self, status, error, code, text):
        ts = datetime.datetime.fromtimestamp(self._wall(), tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        desc = "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s" % (code, text, trace, corr, ts)
        return _Resp(status, {"error": error, "error_description": desc, "error_codes": [code], "timestamp": ts,
                              "trace_id": trace, "correlation_id": corr,
                              "error_uri": "https://login.microsoftonline.com/error?code=%d" % code},
                     headers=[("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")],
                     error="AADSTS%d" % code)

    def _token_endpoint(self, method, path, headers, body, entry):
        m = TOKEN_PATH_RE.match(path)
        if not m:
            return _Resp(404, {"error": "not_found", "error_description": "no such Entra endpoint"},
                         error="not_found")
        tenant = m.group(1)
        entry["tenant"] = tenant
        if method != "POST":
            return self._aad_err(400, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS "
                                 "requests. Received a %s request." % method)
        ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        form = {}
        if ctype == "application/x-www-form-urlencoded":   # anything else: Entra sees no parameters
            try:
                pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            except UnicodeDecodeError:
                pairs = []
            form = {k: v for k, v in pairs}
        entry["form"] = form
        entry["identity"] = form.get("client_id")
        with self._lock:
            if tenant not in self._tenants:
                if not (GUID_RE.match(tenant) or DNS_RE.match(tenant)):
                    return self._aad_err(400, "invalid_request", 900023, "Specified tenant identifier '%s' is "
                                         "neither a valid DNS name, nor a valid external domain." % tenant)
                return self._aad_err(400, "invalid_request", 90002, "Tenant '%s' not found. Check to make sure "
                                     "you have the correct tenant ID and are signing into the correct cloud. Check "
                                     "with your subscription administrator, this may happen if there are no active "
                                     "subscriptions for the tenant." % tenant)
            for field in ("grant_type", "client_id"):
                if not form.get(field):
                    return self._aad_err(400, "invalid_request", 900144, "The request body must contain the "
                                         "following parameter: '%s'." % field)
            if form["grant_type"] != "client_credentials":
                return self._aad_err(400, "unsupported_grant_type", 70003, "The app requested an unsupported "
                                     "grant type '%s'." % form["grant_type"])
            scope = form.get("scope")
            if not scope:
                return self._aad_err(400, "invalid_request", 90014, "The required field 'scope' is missing from "
                                     "the credential. Ensure that you have all the necessary parameters for the "
                                     "login request.")
            if not scope.endswith("/.default") or " " in scope:
                return self._aad_err(400, "invalid_scope", 1002012, "The provided value for scope %s is not "
                                     "valid. Client credential flows must have a scope value with /.default "
                                     "suffixed to the resource identifier (application ID URI)." % scope)
            resource = _norm_resource(scope[:-len("/.default")])
            if resource not in KNOWN_RESOURCES:
                return self._aad_err(400, "invalid_resource", 500011, "The resource principal named %s was not "
                                     "found in the tenant named %s. This can happen if the application has not "
                                     "been installed by the administrator of the tenant or consented to by any "
                                     "user in the tenant. You might have sent your authentication request to the "
                                     "wrong tenant." % (resource, tenant))
            client_id = form["client_id"]
            app = self._apps.get((tenant, client_id))
            if app is None:
                return self._aad_err(400, "unauthorized_client", 700016, "Application with identifier '%s' was "
                                     "not found in the directory '%s'. This can happen if the application has "
                                     "not been installed by the administrator of the tenant or consented to by "
                                     "any user in the tenant. You may have sent your authentication request to "
                                     "the wrong tenant." % (client_id, tenant))
            has_secret = "client_secret" in form
            has_assertion = "client_assertion" in form or "client_assertion_type" in form
            if has_secret and has_assertion:
                return self._aad_err(400, "invalid_request", 9002313, "Invalid request. Request is malformed or "
                                     "invalid. (both client_secret and client_assertion were sent)")
            if not has_secret and not has_assertion:
                return self._aad_err(401, "invalid_client", 7000218, "The request body must contain the "
                                     "following parameter: 'client_assertion' or 'client_secret'.")
            if has_secret:
                if form["client_secret"] not in app.secrets:
                    return self._aad_err(401, "invalid_client", 7000215, "Invalid client secret provided. "
                                         "Ensure the secret being sent in the request is the client secret value, "
                                         "not the client secret ID, for a secret added to app '%s'." % client_id)
                kind = "client_secret"
            else:
                if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
                    return self._aad_err(400, "invalid_request", 9002313, "Invalid request. Request is malformed "
                                         "or invalid. (client_assertion_type must be %s and client_assertion "
                                         "non-empty)" % ASSERTION_TYPE)
                if form["client_assertion"] not in app.assertions:
                    return self._aad_err(401, "invalid_client", 70021, "No matching federated identity record "
                                         "found for presented assertion. https://docs.microsoft.com/en-us/azure/"
                                         "active-directory/develop/workload-identity-federation")
                kind = "federated"
            tok, ttl, _ = self._issue_locked(client_id, app.object_id, tenant, resource, kind)
        entry["issued_token"] = tok.value
        return _Resp(200, {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl,
                           "access_token": tok.value},
                     headers=[("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache")])

    # --- IMDS

    def _imds(self, method, path, raw_query, headers, entry):
        if path != IMDS_PATH:
            return _imds_err(404, "not_found", "Not found")
        if method != "GET":
            return _imds_err(405, "method_not_allowed", "Not allowed")
        if headers.get("X-Forwarded-For") is not None:
            return _imds_err(400, "invalid_request", "Requests with an X-Forwarded-For header are refused")
        if headers.get("Metadata") != "true":
            return _imds_err(400, "bad_request_102", "Required metadata header not specified")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(raw_query, keep_blank_values=True).items()}
        if query.get("api-version") not in self.imds_api_versions:
            return _imds_err(400, "invalid_request", "Bad request. api-version is invalid or was not specified "
                             "in the request.")
        requested = query.get("resource")
        if not requested:
            return _imds_err(400, "invalid_request", "Required query variable 'resource' is missing")
        selectors = [k for k in ("client_id", "object_id", "msi_res_id") if query.get(k)]
        if len(selectors) > 1:
            return _imds_err(400, "invalid_request", "Only one of client_id, object_id and msi_res_id may be "
                             "specified")
        resource = _norm_resource(requested)
        with self._lock:
            entry["tenant"] = self.tenant_id
            if resource not in KNOWN_RESOURCES:
                return _imds_err(400, "invalid_resource", "AADSTS500011: The resource principal named %s was "
                                 "not found in the tenant named %s. This can happen if the application has not "
                                 "been installed by the administrator of the tenant or consented to by any user "
                                 "in the tenant. You might have sent your authentication request to the wrong "
                                 "tenant." % (requested, self.tenant_id))
            ident = None
            if selectors == ["client_id"]:
                entry["identity"] = query["client_id"]
                ident = self._identities.get(query["client_id"])
            elif selectors == ["object_id"]:
                ident = next((i for i in self._identities.values() if i.object_id == query["object_id"]), None)
            elif not selectors:
                ident = next((i for i in self._identities.values() if i.system), None)
                if ident is None:
                    users = [i for i in self._identities.values() if not i.system]
                    if len(users) > 1:
                        return _imds_err(400, "invalid_request", "Multiple user assigned identities exist, "
                                         "please specify the clientId / resourceId of the identity in the token "
                                         "request")
                    ident = users[0] if users else None
            if ident is None:
                return _imds_err(400, "invalid_request", "Identity not found")
            entry["identity"] = ident.client_id
            tok, ttl, now = self._issue_locked(ident.client_id, ident.object_id, self.tenant_id, resource,
                                               "managed_identity")
        entry["issued_token"] = tok.value
        return _Resp(200, {"access_token": tok.value, "client_id": ident.client_id, "expires_in": str(ttl),
                           "expires_on": str(now + ttl), "ext_expires_in": str(ttl),
                           "not_before": str(now - 300), "resource": requested, "token_type": "Bearer"})


# --------------------------------------------------------------------------------------------------
# script entry point


def main(argv=None):
    ap = argparse.ArgumentParser(description="Strict fake Azure (Key Vault, Entra token endpoint, IMDS).")
    fakeserver.add_server_args(ap)
    ap.add_argument("--tenant", default=DEFAULT_TENANT, help="the vault's tenant id")
    ap.add_argument("--state", help="JSON state file applied before listening (see apply_state)")
    return fakeserver.run_script(ap, argv, lambda args: FakeAzure(tenant_id=args.tenant,
                                                                  **fakeserver.server_kwargs(args)))


if __name__ == "__main__":
    sys.exit(main())
