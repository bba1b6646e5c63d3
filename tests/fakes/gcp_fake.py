#!/usr/bin/env python3
"""gcp_fake.py - a strict fake of GCP Secret Manager and the Google token services, for runsecrets' tests.

One real HTTPS server on loopback (not a mock of our own functions) serves, told apart by path:

    GET  /v1/projects/{p}/secrets/{s}/versions/{v}:access                 Secret Manager (the backend's endpoint
    GET  /v1/projects/{p}/locations/{l}/secrets/{s}/versions/{v}:access   is the fake's url; p = id or number)
    POST /token                                       OAuth 2.0 token endpoint (service-account files' token_uri):
                                                      jwt-bearer (RS256 verified) and refresh_token grants
    POST /v1/token                                    STS token exchange (external_account token_url)
    POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken   IAM Credentials (impersonation)
    GET  /computeMetadata/v1/instance/service-accounts/{default|email}/{token|email}, /computeMetadata/v1/
         project/{project-id|numeric-project-id}                          the GCE metadata server

Every request is checked strictly and refused the way Google refuses it. Python 3.11 standard library, plus
`cryptography` for RSA keys and RS256 verification (and the test PKI). CRC32C is computed here, table-driven.
The server machinery (TLS, connections, start/stop, request log, control endpoint, script mode) is
fakeserver.py's, shared with vault.py and azure_fake.py; this file holds only the Google protocol.

Run as a script:

    python3 tests/fakes/gcp_fake.py --port 0 --tls-dir DIR [--state FILE.json] [--project-id P]
                                    [--project-number N] [--plain-http]

prints one JSON line {"url", "port", "control", "ca", "tls", "pid", "project_id", "project_number", "endpoint",
"token_uri", "sts_url", "metadata_url"} once listening (never a token or a secret) and exits 0 on
SIGTERM/SIGINT. Or import it:

    g = FakeGCP(tls_dir=d, project_id="p", project_number=123456).start()
    n = g.add_version("db-password", b"s3cret")
    sa = g.add_service_account()          # the service-account file's content (token_uri -> the fake)
    ...
    g.stop()

Control endpoint (same port, never recorded, no faults): POST /__control/<method> with a JSON object of keyword
arguments calls the FakeGCP method of that name (CONTROL_METHODS) and answers {"result": ...}; GET
/__control/<method>?k=v does the same with string arguments; GET /__control/ lists the methods.

Access tokens are opaque "ya29." strings; the fake's records are what counts (expire_tokens(), advance_time()).
JWT assertions are judged by the real clock plus `jwt_clock_offset` (to play a skewed client), not by
advance_time(): a client that signs with its real clock keeps working after the fake's clock moved on.

-------------------------------------------------------------------------------------------------------------------
Differences from /work/shared/backend-apis.md section 4 (GCP) and from the helpers' plan, found in Google's public
reference, Google's own client code and real answers quoted in public repositories. The fake follows these:

Secret Manager
 1. `name` in the answer, and in NOT_FOUND / FAILED_PRECONDITION messages, uses the project NUMBER whatever the
    request used: gcloud output "FAILED_PRECONDITION: Secret Version [projects/348557092514/secrets/codex-api-token-
    260413/versions/1] is in DISABLED state." for --project=bq-wh-nb (a captured transcript in a public repo), and
    "NOT_FOUND: Secret [projects/153396971788/secrets/X] not found or has no versions." (same source). The
    PERMISSION_DENIED message instead names the resource AS REQUESTED (project id, unresolved "latest"):
    "Permission 'secretmanager.versions.access' denied for resource 'projects/relax-server/secrets/OPENAI_API_KEY/
    versions/latest' (or it may not exist)." - so IAM is checked before the secret is looked up, and a denied
    caller cannot tell a missing secret from a forbidden one. Newer answers say "... denied on resource (or it may
    not exist)." without the name; the fake keeps the older form because it names the resource (plan).
 2. FAILED_PRECONDITION and NOT_FOUND bodies carry no "details" (google-github-actions/get-secretmanager-secrets
    #268 quotes {"error":{"code":400,"message":"Secret Version [<path>/versions/4] is in DESTROYED state.","status":
    "FAILED_PRECONDITION"}}). "details" (google.rpc.ErrorInfo) are present on 401 (reason CREDENTIALS_MISSING /
    ACCESS_TOKEN_EXPIRED, domain googleapis.com, metadata {service, method}), on IAM 403s (reason
    IAM_PERMISSION_DENIED, metadata {permission, resource}) and on 429 (RATE_LIMIT_EXCEEDED).
 3. `latest` is the most recently CREATED version whatever its state (reference: "an alias to the most recently
    created SecretVersion"): a destroyed newest version makes `latest` answer FAILED_PRECONDITION naming that
    version's number (#268 above), it does not fall back to an older enabled one.
 4. A token without the cloud-platform scope is NOT 401: Google answers 403 PERMISSION_DENIED "Request had
    insufficient authentication scopes." with ErrorInfo reason ACCESS_TOKEN_SCOPE_INSUFFICIENT (google.rpc
    ErrorReason docs; many public client error maps) and a WWW-Authenticate: Bearer ... error="insufficient_scope"
    challenge. 401 UNAUTHENTICATED is for a missing, unknown or expired token (the plan said 401 for all three).
 5. dataCrc32c: the reference says the service generates and stores a checksum when the writer gave none, so
    versions carry one; versions written before the field existed have none - add_version(crc=False) gives such a
    version (the member is then absent, not null). It is an int64 in a JSON string (proto3 JSON mapping).
 6. A self-signed JWT (iss = sub = client_email, aud = "https://secretmanager.googleapis.com/" or a scope claim
    holding cloud-platform, exp - iat <= 3600, RS256 with kid = private_key_id) is accepted as a bearer token, as
    Google accepts it (backend-apis.md "Auth"); accept_self_signed_jwt=False turns that off.
 7. Regional secrets are separate resources from global ones of the same id. Google serves them only on
    secretmanager.<loc>.rep.googleapis.com; the fake serves both forms on one port and cannot check the host.
Token endpoint (jwt-bearer)
 8. aud must be the token_uri the key file names (google-auth signs aud = token_uri); a wrong one is 400
    invalid_grant "Invalid JWT: Failed audience check." (googleapis/google-cloud-python#15228, google/oauth2l#130).
    Google also accepts its own aliases (https://oauth2.googleapis.com/token, .../oauth2/v4/token); the fake, being
    Google at another address, accepts only its token_uri, so a backend that ignores token_uri is caught.
 9. iat/exp outside the window (exp - iat > 3600, iat in the future beyond the skew, exp passed) is 400
    invalid_grant "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check
    your iat and exp values in the JWT claim." (a-marenkov/gsheets#96, 2023 wording).
10. An iss that is no service account is 400 invalid_grant "Invalid grant: account not found"; a bad signature, a
    kid that is not one of the account's current keys (deleted / rotated key) or a key of another account is 400
    invalid_grant "Invalid JWT Signature." (googleapis/google-cloud-python#10004, google-github-actions/setup-gcloud
    #76: "key had been rotated").
11. A missing or empty scope claim is 400 invalid_scope "Empty or missing scope not allowed."; an unknown scope is
    400 invalid_scope "Invalid OAuth scope or ID token audience provided."; a valid scope WITHOUT cloud-platform
    gets a token (Google issues it) which Secret Manager then refuses with 403 (item 4) - the plan had the token
    endpoint refuse it.
12. Success is {"access_token","expires_in":3599,"token_type":"Bearer"} (expires_in a number).
Token endpoint (refresh_token, authorized_user)
13. Unknown client_id: 401 invalid_client "The OAuth client was not found."; wrong client_secret: 401
    invalid_client "Unauthorized"; unknown refresh token: 400 invalid_grant "Bad Request"; revoked: 400
    invalid_grant "Token has been expired or revoked."; missing refresh_token: 400 invalid_request "Missing
    required parameter: refresh_token" (googleads/google-ads-dotnet#400). Success adds "scope".
14. gcloud's application_default_credentials.json has NO token_uri (the client defaults to
    https://oauth2.googleapis.com/token); add_authorized_user() adds "token_uri" pointing at the fake, so a backend
    must honour token_uri when present and default to Google's otherwise.
STS and IAM Credentials
15. An audience that is not a provider's full resource name: 400 invalid_request 'Invalid value for "audience".
    This value should be the full resource name of the Identity Provider. See https://cloud.google.com/iam/docs/
    reference/sts/rest/v1/TopLevel/token for the list of possible formats.' (google-github-actions/auth#211); a
    well-formed one naming no provider: 400 invalid_target 'The target service indicated by the "audience"
    parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it
    doesn't exist.' (many CI logs). The REST reference documents a JSON body with camelCase names; google-auth
    sends RFC 8693 form fields. The fake takes both (JSON also with snake_case names).
16. Success: {"access_token","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":
    "Bearer","expires_in":3599}.
17. generateAccessToken answers {"accessToken","expireTime":"2021-08-26T00:57:30Z"} (RFC 3339, UTC, whole seconds -
    googleapis/google-api-go-client#1185; here never later than token_ttl from now); lifetime defaults to 3600s
    and may not exceed it (the 12 h extension
    needs an org policy); a caller without the grant gets 403 "Permission 'iam.serviceAccounts.getAccessToken'
    denied on resource (or it may not exist)." with ErrorInfo domain iam.googleapis.com (many CI logs).
Metadata server
18. Without "Metadata-Flavor: Google" the answer is 403 text/html "Your client does not have permission to get URL
    <code>PATH</code> from this server. Missing Metadata-Flavor:Google header." (GoogleCloudPlatform GKE tutorial
    transcript); every answer carries Metadata-Flavor: Google; the token is {"access_token","expires_in","token_
    type":"Bearer"}; plain values (email, project-id) are Content-Type application/text. No attached account: 404.
Unverified (the fake's best guess, consistent in shape; a client must not depend on the exact text):
    Secret Manager: the 401 reason for an unknown (not expired) token (ACCESS_TOKEN_TYPE_UNSUPPORTED here), the
    INVALID_ARGUMENT text for a malformed resource name, "Secret Version [...] not found." for a missing pinned
    version, the HTML 404 for unknown paths/methods, the texts of injected 429/500/503/504. Token endpoint:
    whether Google insists on typ "JWT" and on a kid (the fake does: google-auth always sends both), the size of
    the clock skew it tolerates (60 s here, jwt_clock_skew), the texts for a malformed assertion, alg other than
    RS256, typ other than JWT, a sub claim (domain-wide delegation), unsupported grant_type, wrong method/content
    type. STS: texts for grant_type, subject_token_type,
    requested_token_type, missing scope and an unknown subject token. IAM: texts for missing scope and bad
    lifetime. Metadata: refusal of X-Forwarded-For (403), the 404 text.
-------------------------------------------------------------------------------------------------------------------
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import datetime
import json
import os
import re
import secrets as _secrets
import sys
import time
import urllib.parse

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import fakeserver  # noqa: E402  (the server machinery every fake shares)
from fakeserver import TLS_FILES, make_ca_and_cert  # noqa: E402,F401  (the shared test PKI, re-exported)

# --------------------------------------------------------------------------------------------------
# constants

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Scopes the token endpoint knows; anything else is invalid_scope. Only cloud-platform opens Secret Manager.
KNOWN_SCOPES = frozenset((
    CLOUD_PLATFORM, "https://www.googleapis.com/auth/cloud-platform.read-only",
    "https://www.googleapis.com/auth/iam", "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/devstorage.read_only", "https://www.googleapis.com/auth/pubsub",
    "openid", "email", "profile"))
IAM_SCOPES = frozenset((CLOUD_PLATFORM, "https://www.googleapis.com/auth/iam"))
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TOKEN_TYPES = ("urn:ietf:params:oauth:token-type:jwt", "urn:ietf:params:oauth:token-type:id_token",
                       "urn:ietf:params:oauth:token-type:saml2", "urn:ietf:params:aws:token-type:aws4_request")
SM_SERVICE = "secretmanager.googleapis.com"
SM_METHOD = "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion"
IAM_SERVICE = "iamcredentials.googleapis.com"
IAM_METHOD = "google.iam.credentials.v1.IAMCredentials.GenerateAccessToken"
DEFAULT_PROJECT_ID = "fake-project"
DEFAULT_PROJECT_NUMBER = 123456789012
DEFAULT_TTL = 3599
MAX_JWT_LIFETIME = 3600
MAX_PAYLOAD = 64 * 1024
MAX_REQUEST_BYTES = 1024 * 1024
MAX_LOG_ENTRIES = 100_000
MAX_DELAY_S = 60.0
ENDPOINTS = ("secretmanager", "token", "sts", "iam", "metadata")
JSON_CT = "application/json; charset=UTF-8"
HTML_CT = "text/html; charset=UTF-8"
METADATA_PREFIX = "/computeMetadata/v1/"
UNAUTH_MISSING = ("Request is missing required authentication credential. Expected OAuth 2 access token, login "
                  "cookie or other valid authentication credential. See https://developers.google.com/identity/"
                  "sign-in/web/devconsole-project.")
UNAUTH_INVALID = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                  "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/"
                  "devconsole-project.")
INSUFFICIENT_SCOPES = "Request had insufficient authentication scopes."
JWT_TIMEFRAME = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check "
                 "your iat and exp values in the JWT claim.")
REALM = 'Bearer realm="https://accounts.google.com/"'

SECRET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
LOCATION_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
SM_PATH_RE = re.compile(r"^/v1/projects/([^/]+)/(?:locations/([^/]+)/)?secrets/([^/]+)/versions/([^/]+):access$")
SM_PREFIX_RE = re.compile(r"^/v1/projects/[^/]+/(?:locations/[^/]+/)?secrets(?:/|$)")
IAM_PATH_RE = re.compile(r"^/v1/projects/-/serviceAccounts/([^/]+):generateAccessToken$")
PROVIDER_RE = re.compile(r"^//iam\.googleapis\.com/(?:projects/\d+/locations/global/workloadIdentityPools/[^/]+/"
                         r"providers/[^/]+|locations/global/workforcePools/[^/]+/providers/[^/]+)$")
LIFETIME_RE = re.compile(r"^(\d+)(?:\.\d{1,9})?s$")
EMAIL_RE = re.compile(r"^[^@\s/]+@[^@\s/]+$")

# Log entry fields that may hold a secret; requests(redact=True) blanks them.
SENSITIVE_FIELDS = ("token", "issued_token", "body", "form", "headers")
# Form / JSON fields that are credentials.
SENSITIVE_FORM = ("assertion", "client_secret", "refresh_token", "subject_token")

# Methods reachable through /__control/<name>.
CONTROL_METHODS = frozenset("""
    add_version disable_version enable_version destroy_version delete_secret versions secret_names
    add_service_account add_service_account_key remove_service_account_key add_authorized_user
    revoke_refresh_token add_external_account allow_impersonation enable_metadata disable_metadata deny allow
    issue_token tokens set_token_ttl expire_tokens advance_time
    fault_status fault_delay fault_bad_crc clear_faults faults
    requests clear_requests count sensitive_values
""".split())


# --------------------------------------------------------------------------------------------------
# CRC32C (Castagnoli): reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF, table-driven


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC32C of `data` (bytes-like), continuing from `crc` (0 to start): an int in [0, 2**32)."""
    table = _CRC32C_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in bytes(data):
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# --------------------------------------------------------------------------------------------------
# small helpers


_b64url = fakeserver.b64url


def _b64url_decode(s):
    if not isinstance(s, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", s):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def sign_jwt(header, claims, pem):
    """A compact RS256 JWS of HEADER and CLAIMS (dicts) signed with the PEM private key: a client's side of
    the jwt-bearer grant, for the self-test and the benchmark (the fake itself only verifies)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    key = serialization.load_pem_private_key(pem.encode(), None)
    head = fakeserver.b64url(json.dumps(header).encode()) + "." + fakeserver.b64url(json.dumps(claims).encode())
    return head + "." + fakeserver.b64url(key.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256()))


_int_or_none = fakeserver.int_or_none


def _scopes(v):
    """A scope list from a space-separated string, a comma-separated string or a list."""
    if v is None:
        return None
    if isinstance(v, str):
        return [s for s in re.split(r"[\s,]+", v) if s]
    return [str(s) for s in v]


def _check_secret_id(secret):
    if not isinstance(secret, str) or not SECRET_ID_RE.match(secret):
        raise ValueError("invalid secret id %r (^[A-Za-z0-9_-]{1,255}$)" % (secret,))
    return secret


def _check_location(location):
    if location is not None and (not isinstance(location, str) or not LOCATION_RE.match(location)):
        raise ValueError("invalid location %r" % (location,))
    return location


def _rfc3339(ts):
    return datetime.datetime.fromtimestamp(int(ts), tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------
# state objects (guarded by FakeGCP._lock)


class _Version:
    def __init__(self, n, data, with_crc, now):
        self.n = n
        self.data = data
        self.crc = crc32c(data)
        self.with_crc = with_crc
        self.state = "ENABLED"
        self.created = now


class _Secret:
    def __init__(self, secret_id, location):
        self.id = secret_id
        self.location = location
        self.versions = {}            # n -> _Version, creation order
        self.next = 1


class _Account:
    def __init__(self, email, client_id):
        self.email = email
        self.client_id = client_id
        self.keys = {}                # key id -> (public key, private PEM)


class _Client:
    def __init__(self, client_id, client_secret):
        self.client_id = client_id
        self.client_secret = client_secret


class _Refresh:
    def __init__(self, client_id, account, scopes):
        self.client_id = client_id
        self.account = account
        self.scopes = scopes
        self.revoked = False


class _Provider:
    def __init__(self, audience, subject_token_type):
        self.audience = audience
        self.subject_token_type = subject_token_type
        self.subjects = {}            # subject token -> principal


class _Token:
    def __init__(self, value, identity, kind, scopes, issued, expiry):
        self.value = value
        self.identity = identity
        self.kind = kind
        self.scopes = tuple(scopes)
        self.issued = issued
        self.expiry = expiry
        self.forced_expired = False


class _Resp(fakeserver.Resp):
    __slots__ = ()
    JSON_CT = JSON_CT


def _gerr(status, code, message, details=None, headers=None):
    """Google's API error: {"error":{"code","message","status"[,"details"]}}."""
    err = {"code": status, "message": message, "status": code}
    if details:
        err["details"] = details
    return _Resp(status, {"error": err}, headers=headers, error=code)


def _error_info(reason, domain, metadata):
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": domain,
            "metadata": metadata}


def _oauth_err(status, error, description, headers=None):
    """The OAuth/STS error: {"error","error_description"}."""
    return _Resp(status, {"error": error, "error_description": description}, headers=headers, error=error)


def _html(status, text, headers=None, error=None):
    body = ("<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error %d</title>\n  <p><b>%d.</b> "
            "<ins>That\u2019s an error.</ins>\n  <p>%s  <ins>That\u2019s all we know.</ins>\n" % (status, status, text))
    return _Resp(status, raw=body.encode(), ctype=HTML_CT, headers=headers, error=error or "html_%d" % status)


def _not_found_html(path):
    return _html(404, "The requested URL <code>%s</code> was not found on this server." % path, error="not_found")


# --------------------------------------------------------------------------------------------------
# HTTP plumbing (the shared part is fakeserver.FakeHandler)


class _Handler(fakeserver.JsonHandler):
    server_version = "ESF"
    Resp = _Resp

    def version_string(self):
        return "Metadata Server for VM" if self.path.startswith("/computeMetadata/") else self.server_version

    def _json_body(self, obj):
        return json.dumps(obj, indent=2).encode() + b"\n"

    def _too_large(self, fake):
        return _gerr(413, "INVALID_ARGUMENT", "Request payload size exceeds the limit: %d bytes."
                     % fake.max_request_bytes)

    def _bad_body(self, reason):
        return _gerr(400, "INVALID_ARGUMENT", reason)

    def _no_endpoint(self, path):
        return _not_found_html(path)

    def _internal_error(self, exc):
        return _gerr(500, "INTERNAL", "fakegcp internal error: %s" % exc)


# --------------------------------------------------------------------------------------------------
# the fake


class FakeGCP(fakeserver.CloudFake):
    """A strict fake of Secret Manager, the OAuth token endpoint, STS, IAM Credentials and the metadata server on
    one TLS port. Thread-safe.

    The fake hosts one project (project_id / project_number). token_ttl is the lifetime of the tokens issued next;
    jwt_clock_skew the tolerance (s) for a JWT's iat in the future; jwt_clock_offset moves the clock JWTs are
    judged by (a client whose clock is off); accept_self_signed_jwt lets a service account's self-signed JWT be
    used as a bearer token at Secret Manager, as Google does."""

    NAME = "fakegcp"
    CONTROL_METHODS = CONTROL_METHODS
    Handler = _Handler
    ENDPOINTS = ENDPOINTS
    MAX_DELAY_S = MAX_DELAY_S
    SENSITIVE_FORM = SENSITIVE_FORM
    REDACT_HEADERS = ("authorization", "x-goog-iam-authorization-token")

    def __init__(self, tls_dir=None, *, tls=True, host="127.0.0.1", port=0, project_id=DEFAULT_PROJECT_ID,
                 project_number=DEFAULT_PROJECT_NUMBER, token_ttl=DEFAULT_TTL, jwt_clock_skew=60,
                 accept_self_signed_jwt=True, hostnames=("localhost", "127.0.0.1", "::1"),
                 max_request_bytes=MAX_REQUEST_BYTES, conn_timeout=30.0, handshake_timeout=5.0,
                 max_log_entries=MAX_LOG_ENTRIES):
        super().__init__(tls_dir, tls=tls, host=host, port=port, hostnames=hostnames,
                         max_request_bytes=max_request_bytes, conn_timeout=conn_timeout,
                         handshake_timeout=handshake_timeout, max_log_entries=max_log_entries)
        if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", str(project_id)):
            raise ValueError("invalid project id %r" % (project_id,))
        self.project_id = str(project_id)
        self.project_number = fakeserver.arg_int(project_number, "project_number")
        self.token_ttl = int(token_ttl)
        self.jwt_clock_skew = int(jwt_clock_skew)
        self.jwt_clock_offset = 0
        self.accept_self_signed_jwt = bool(accept_self_signed_jwt)

        self._secrets = {}            # (location or None, secret id) -> _Secret
        self._accounts = {}           # email -> _Account
        self._clients = {}            # client id -> _Client
        self._refresh = {}            # refresh token -> _Refresh
        self._providers = {}          # audience -> _Provider
        self._impersonation = set()   # (principal, service account email)
        self._metadata = None         # {"email", "scopes"} or None
        self._denied = set()          # (identity, (location, secret id) or "*")
        # self._tokens: token value -> _Token (CloudFake)
        self._seen_assertions = []    # JWT assertions received (credentials for an hour: sensitive)

    # ------------------------------------------------------------------ addresses

    @property
    def token_uri(self):
        """The token endpoint the service-account and authorized_user files name."""
        return self.url + "/token" if self._server else None

    @property
    def sts_url(self):
        return self.url + "/v1/token" if self._server else None

    @property
    def metadata_url(self):
        """The backend's metadata_url (https: the fake serves everything on one TLS port)."""
        return self.url

    def script_info(self):
        return dict(super().script_info(), project_id=self.project_id, project_number=self.project_number,
                    endpoint=self.url, token_uri=self.token_uri, sts_url=self.sts_url,
                    metadata_url=self.metadata_url)

    def _require_started(self):
        if self._server is None:
            raise RuntimeError("start() the fake first: credential files name its URLs")

    def _project_ok(self, p):
        return p == self.project_id or p == str(self.project_number)

    # ------------------------------------------------------------------ secrets

    def add_version(self, secret, data=None, data_b64=None, location=None, crc=True):
        """Add a version to `secret` (created if absent; regional when `location` is given) and return its number
        (1, 2, ...). data: bytes, or str (UTF-8); data_b64: the bytes base64-encoded (for the control endpoint).
        crc=False: a version without a stored checksum (written before dataCrc32c existed)."""
        _check_secret_id(secret)
        _check_location(location)
        if (data is None) == (data_b64 is None):
            raise ValueError("give exactly one of data and data_b64")
        if data_b64 is not None:
            try:
                data = base64.b64decode(data_b64, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("data_b64 is not base64") from None
        elif isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, (bytes, bytearray)):
            raise ValueError("data must be bytes or str")
        data = bytes(data)
        if len(data) > MAX_PAYLOAD:
            raise ValueError("payload larger than 64 KiB")
        with self._lock:
            s = self._secrets.get((location, secret))
            if s is None:
                s = self._secrets[(location, secret)] = _Secret(secret, location)
            n = s.next
            s.next += 1
            s.versions[n] = _Version(n, data, fakeserver.arg_bool(crc), int(self._wall()))
            return n

    def _version_locked(self, secret, n, location):
        s = self._secrets.get((location, str(secret)))
        if s is None:
            raise KeyError("no secret %r%s" % (secret, " in %s" % location if location else ""))
        v = s.versions.get(fakeserver.arg_int(n, "n"))
        if v is None:
            raise KeyError("secret %r has no version %r" % (secret, n))
        return v

    def _set_state(self, secret, n, location, state):
        with self._lock:
            v = self._version_locked(secret, n, location)
            if v.state == "DESTROYED":
                raise ValueError("version %s of %r is destroyed" % (n, secret))
            v.state = state
            if state == "DESTROYED":
                v.data = b""
            return v.n

    def disable_version(self, secret, n, location=None):
        """Access answers 400 FAILED_PRECONDITION "... is in DISABLED state." until enable_version."""
        return self._set_state(secret, n, location, "DISABLED")

    def enable_version(self, secret, n, location=None):
        return self._set_state(secret, n, location, "ENABLED")

    def destroy_version(self, secret, n, location=None):
        """Destroy for good (the data is dropped): access answers FAILED_PRECONDITION "... is in DESTROYED state."."""
        return self._set_state(secret, n, location, "DESTROYED")

    def delete_secret(self, secret, location=None):
        """Delete the secret and all its versions (immediate, as in Google): access answers 404. False if absent."""
        with self._lock:
            return self._secrets.pop((location, str(secret)), None) is not None

    def versions(self, secret, location=None):
        """[{"n", "state", "crc", "with_crc", "size"}] oldest first (no data)."""
        with self._lock:
            s = self._secrets.get((location, str(secret)))
            if s is None:
                raise KeyError("no secret %r" % (secret,))
            return [{"n": v.n, "state": v.state, "crc": v.crc, "with_crc": v.with_crc, "size": len(v.data)}
                    for v in s.versions.values()]

    def secret_names(self):
        """The resource names of every secret (project number form)."""
        with self._lock:
            return sorted(self._secret_name(s) for s in self._secrets.values())

    def _secret_name(self, s):
        loc = "locations/%s/" % s.location if s.location else ""
        return "projects/%d/%ssecrets/%s" % (self.project_number, loc, s.id)

    # ------------------------------------------------------------------ identities

    def add_service_account(self, email=None):
        """Create a service account (email default sa-N@<project>.iam.gserviceaccount.com) with a fresh 2048-bit
        RSA key; return the key file's content (a dict) with token_uri pointing at the fake (start() first)."""
        self._require_started()
        with self._lock:
            if email is None:
                email = "sa-%d@%s.iam.gserviceaccount.com" % (len(self._accounts) + 1, self.project_id)
            if not EMAIL_RE.match(str(email)):
                raise ValueError("invalid service account email %r" % (email,))
            if email in self._accounts:
                raise ValueError("service account %r exists (add_service_account_key adds a key)" % email)
            self._accounts[email] = _Account(email, str(100000000000000000000 + _secrets.randbelow(10 ** 20)))
        return self.add_service_account_key(email)

    def add_service_account_key(self, email):
        """Another key for an existing account (rotation): the new key file's content. Older keys stay valid."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        self._require_started()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        kid = _secrets.token_hex(20)
        with self._lock:
            acct = self._accounts.get(email)
            if acct is None:
                raise KeyError("no service account %r" % (email,))
            acct.keys[kid] = (key.public_key(), pem)
            return {"type": "service_account", "project_id": self.project_id, "private_key_id": kid,
                    "private_key": pem, "client_email": email, "client_id": acct.client_id,
                    "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": self.token_uri,
                    "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                    "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" +
                                            urllib.parse.quote(email),
                    "universe_domain": "googleapis.com"}

    def remove_service_account_key(self, email, key_id):
        """Delete a key: JWTs signed with it (kid = key_id) get "Invalid JWT Signature.". False if absent."""
        with self._lock:
            acct = self._accounts.get(email)
            return acct is not None and acct.keys.pop(str(key_id), None) is not None

    def add_authorized_user(self, account=None, client_id=None, client_secret=None, refresh_token=None,
                            scopes=None):
        """An authorized_user credential (gcloud's application default credentials): returns the file's content
        {"type","client_id","client_secret","refresh_token","account","universe_domain","token_uri"} - the real
        file has no token_uri (difference 14). `account` is the identity its tokens carry."""
        self._require_started()
        scopes = _scopes(scopes) or [CLOUD_PLATFORM, "https://www.googleapis.com/auth/userinfo.email", "openid"]
        with self._lock:
            if account is None:
                account = "user-%d@example.com" % (len(self._refresh) + 1)
            if client_id is None:
                client_id = "%d-%s.apps.googleusercontent.com" % (_secrets.randbelow(10 ** 12), _secrets.token_hex(16))
            client = self._clients.get(client_id)
            if client is None:
                client = self._clients[client_id] = _Client(client_id, client_secret or "GOCSPX-" +
                                                            _secrets.token_urlsafe(21))
            elif client_secret is not None and client_secret != client.client_secret:
                raise ValueError("client %r exists with another secret" % client_id)
            refresh_token = refresh_token or "1//0" + _secrets.token_urlsafe(70)
            if refresh_token in self._refresh:
                raise ValueError("refresh token already registered")
            self._refresh[refresh_token] = _Refresh(client_id, str(account), scopes)
            return {"type": "authorized_user", "client_id": client_id, "client_secret": client.client_secret,
                    "refresh_token": refresh_token, "account": str(account), "universe_domain": "googleapis.com",
                    "token_uri": self.token_uri}

    def revoke_refresh_token(self, refresh_token):
        """The refresh grant then answers invalid_grant "Token has been expired or revoked.". False if unknown."""
        with self._lock:
            r = self._refresh.get(refresh_token)
            if r is None:
                return False
            r.revoked = True
            return True

    def add_external_account(self, subject_token, impersonate=None, subject=None, pool="pool-1",
                             provider="provider-1", subject_token_type="urn:ietf:params:oauth:token-type:jwt",
                             credential_file=None):
        """Register `subject_token` (the workload's token file content) with the provider pool/provider; the STS
        exchange maps it to principal://.../subject/<subject>. impersonate: a service account email the principal
        may impersonate (created keyless if unknown); the file then names service_account_impersonation_url.
        Returns the external_account file's content; credential_source.file is `credential_file` or "" (for the
        test to fill). Calling again with another token adds it (rotation)."""
        self._require_started()
        if not isinstance(subject_token, str) or not subject_token:
            raise ValueError("subject_token must be a non-empty string")
        if subject_token_type not in SUBJECT_TOKEN_TYPES:
            raise ValueError("subject_token_type must be one of %s" % ", ".join(SUBJECT_TOKEN_TYPES))
        for part in (pool, provider):
            if not re.fullmatch(r"[a-z0-9-]{4,32}", str(part)):
                raise ValueError("invalid pool/provider id %r" % (part,))
        audience = ("//iam.googleapis.com/projects/%d/locations/global/workloadIdentityPools/%s/providers/%s"
                    % (self.project_number, pool, provider))
        with self._lock:
            prov = self._providers.get(audience)
            if prov is None:
                prov = self._providers[audience] = _Provider(audience, subject_token_type)
            elif prov.subject_token_type != subject_token_type:
                raise ValueError("provider %s takes %s" % (provider, prov.subject_token_type))
            subject = subject or "subject-%d" % (len(prov.subjects) + 1)
            principal = ("principal://iam.googleapis.com/projects/%d/locations/global/workloadIdentityPools/%s/"
                         "subject/%s" % (self.project_number, pool, subject))
            prov.subjects[subject_token] = principal
            out = {"type": "external_account", "audience": audience, "subject_token_type": subject_token_type,
                   "token_url": self.sts_url, "credential_source": {"file": credential_file or ""},
                   "universe_domain": "googleapis.com"}
            if impersonate:
                if not EMAIL_RE.match(str(impersonate)):
                    raise ValueError("invalid service account email %r" % (impersonate,))
                if impersonate not in self._accounts:
                    self._accounts[impersonate] = _Account(impersonate, str(_secrets.randbelow(10 ** 21)))
                self._impersonation.add((principal, impersonate))
                out["service_account_impersonation_url"] = (
                    "%s/v1/projects/-/serviceAccounts/%s:generateAccessToken" % (self.url, impersonate))
            return out

    def allow_impersonation(self, principal, email):
        """Let `principal` (any identity) call generateAccessToken for `email`."""
        with self._lock:
            if email not in self._accounts:
                self._accounts[email] = _Account(email, str(_secrets.randbelow(10 ** 21)))
            self._impersonation.add((str(principal), str(email)))

    def enable_metadata(self, email, scopes=None):
        """Attach service account `email` to the "instance": the metadata server hands out its tokens (scopes:
        the instance's access scopes, default cloud-platform)."""
        if not EMAIL_RE.match(str(email)):
            raise ValueError("invalid service account email %r" % (email,))
        with self._lock:
            self._metadata = {"email": str(email), "scopes": _scopes(scopes) or [CLOUD_PLATFORM]}

    def disable_metadata(self):
        with self._lock:
            self._metadata = None

    def deny(self, identity, secret="*", location=None):
        """Refuse `identity` (a service account email, an authorized user's account, a principal://...) access to
        `secret` ("*": every secret): 403 PERMISSION_DENIED naming secretmanager.versions.access."""
        if secret != "*":
            _check_secret_id(secret)
        with self._lock:
            self._denied.add((str(identity), "*" if secret == "*" else (location, secret)))

    def allow(self, identity, secret="*", location=None):
        """Undo deny(identity, secret)."""
        key = (str(identity), "*" if secret == "*" else (location, secret))
        with self._lock:
            if key in self._denied:
                self._denied.remove(key)
                return True
            return False

    # ------------------------------------------------------------------ tokens

    def issue_token(self, identity, scopes=None, ttl=None, kind="test"):
        """Mint an access token directly (no request), e.g. one with other scopes."""
        with self._lock:
            return self._issue_locked(str(identity), kind, _scopes(scopes) or [CLOUD_PLATFORM], ttl)[0].value

    def _issue_locked(self, identity, kind, scopes, ttl=None):
        ttl = self.token_ttl if ttl is None else int(ttl)
        now = int(self._wall())
        value = "ya29.c." + _secrets.token_urlsafe(120)
        tok = _Token(value, identity, kind, scopes, now, now + ttl)
        self._tokens[value] = tok
        return tok, ttl, now

    def tokens(self):
        """Every token issued, oldest first: {"value", "identity", "kind", "scopes", "issued", "expiry" (epoch s,
        fake clock), "expired"}."""
        with self._lock:
            wall = self._wall()
            return [{"value": t.value, "identity": t.identity, "kind": t.kind, "scopes": list(t.scopes),
                     "issued": t.issued, "expiry": t.expiry, "expired": t.forced_expired or wall >= t.expiry}
                    for t in self._tokens.values()]

    def _token_valid_locked(self, tok):
        return not tok.forced_expired and self._wall() < tok.expiry

    # ------------------------------------------------------------------ faults

    def fault_status(self, endpoint, status, retry_after=None, count=1, body=None, secret=None):
        """The next `count` requests to `endpoint` (None: until clear_faults; secretmanager: only those for
        `secret` if given) get `status` without being processed, with Retry-After if given. body: dict -> JSON,
        str -> text/plain; default: the endpoint's own error shape (Google's JSON error for secretmanager/iam:
        429 RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED)."""
        return super().fault_status(endpoint, status, retry_after=retry_after, count=count, body=body,
                                    secret=secret)

    def fault_bad_crc(self, secret, count=1, mode="crc"):
        """The next `count` successful accesses of `secret` (None: until clear_faults) answer with a payload whose
        dataCrc32c does not match: mode "crc" sends a wrong checksum with the right data, "data" flips a bit of the
        data and keeps the stored checksum (corruption in transit)."""
        if mode not in ("crc", "data"):
            raise ValueError("mode must be 'crc' or 'data'")
        _check_secret_id(secret)
        self._add_fault({"kind": "crc", "endpoint": "secretmanager", "secret": str(secret), "mode": mode,
                         "remaining": _int_or_none(count, "count")})

    # ------------------------------------------------------------------ request log

    def sensitive_values(self):
        """Every string a client must never leak: secret payloads (as text when UTF-8, and base64 as on the wire),
        private keys (PEM and the base64 body), client secrets, refresh tokens, subject tokens, issued tokens,
        every bearer token and JWT assertion seen."""
        with self._lock:
            out = set()
            for s in self._secrets.values():
                for v in s.versions.values():
                    if not v.data:
                        continue
                    out.add(base64.b64encode(v.data).decode())
                    try:
                        out.add(v.data.decode("utf-8"))
                    except UnicodeDecodeError:
                        pass
            for acct in self._accounts.values():
                for _, pem in acct.keys.values():
                    out.add(pem)
                    out.add("".join(pem.strip().splitlines()[1:-1]))
            out.update(c.client_secret for c in self._clients.values())
            out.update(self._refresh)
            for prov in self._providers.values():
                out.update(prov.subjects)
            out.update(self._tokens)
            out.update(self._seen_assertions)
            out.update(e["token"] for e in self._log if e["token"])
            out.discard("")
            return sorted(out)

    @staticmethod
    def _classify(path):
        if path == "/token":
            return "token"
        if path == "/v1/token":
            return "sts"
        if path.startswith("/v1/projects/-/serviceAccounts/"):
            return "iam"
        if SM_PREFIX_RE.match(path):
            return "secretmanager"
        if path.startswith("/computeMetadata/"):
            return "metadata"
        return None

    @staticmethod
    def _entry_fields(path, endpoint):
        project = location = secret = None
        if endpoint == "secretmanager":
            m = SM_PATH_RE.match(path)
            if m:
                project, location, secret = m.group(1), m.group(2), m.group(3)
        return {"grant_type": None, "project": project, "location": location, "secret": secret}

    # ------------------------------------------------------------------ request processing

    def _route(self, endpoint, method, path, raw_query, headers, body, entry):
        if endpoint == "secretmanager":
            return self._secretmanager(method, path, headers, entry)
        if endpoint == "token":
            return self._token_endpoint(method, headers, body, entry)
        if endpoint == "sts":
            return self._sts(method, headers, body, entry)
        if endpoint == "iam":
            return self._iam(method, path, headers, body, entry)
        return self._metadata_server(method, path, raw_query, headers, entry)

    def _default_fault_response(self, endpoint, status, hdrs):
        if endpoint in ("secretmanager", "iam"):
            if status == 429:
                service = SM_SERVICE if endpoint == "secretmanager" else IAM_SERVICE
                return _gerr(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Access requests' and limit "
                             "'Access requests per minute' of service '%s' for consumer 'project_number:%d'."
                             % (service, self.project_number),
                             [_error_info("RATE_LIMIT_EXCEEDED", "googleapis.com",
                                          {"service": service, "consumer": "projects/%d" % self.project_number})],
                             headers=hdrs)
            code, text = {500: ("INTERNAL", "Internal error encountered."),
                          503: ("UNAVAILABLE", "The service is currently unavailable."),
                          504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")
                          }.get(status, ("UNKNOWN", "Injected fault: HTTP %d." % status))
            return _gerr(status, code, text, headers=hdrs)
        if endpoint in ("token", "sts"):
            err = "temporarily_unavailable" if status in (429, 503) else "internal_failure"
            return _oauth_err(status, err, "Injected fault: HTTP %d." % status, headers=hdrs)
        return _Resp(status, raw=b"Injected fault.", ctype=HTML_CT, error="fault",
                     headers=hdrs + [("Metadata-Flavor", "Google")])

    # --- bearer tokens (Secret Manager and IAM Credentials)

    def _authenticate_locked(self, headers, entry, service, method_name):
        """(identity, scopes) of the caller, or (None, the 401/403 to answer)."""
        info = {"service": service, "method": method_name}
        auth = (headers.get("Authorization") or "").strip()
        if auth[:7].lower() != "bearer " or not auth[7:].strip():
            return None, _gerr(401, "UNAUTHENTICATED", UNAUTH_MISSING,
                               [_error_info("CREDENTIALS_MISSING", "googleapis.com", info)],
                               headers=[("WWW-Authenticate", REALM)])
        value = auth[7:].strip()
        challenge = [("WWW-Authenticate", REALM + ', error="invalid_token"')]
        tok = self._tokens.get(value)
        if tok is None:
            ident = (self._self_signed_identity_locked(value, "https://%s/" % service)
                     if self.accept_self_signed_jwt else None)
            if ident is None:
                return None, _gerr(401, "UNAUTHENTICATED", UNAUTH_INVALID,
                                   [_error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED", "googleapis.com", info)],
                                   headers=challenge)
            entry["identity"] = ident[0]
            identity, scopes = ident
        else:
            entry["identity"] = tok.identity
            if not self._token_valid_locked(tok):
                return None, _gerr(401, "UNAUTHENTICATED", UNAUTH_INVALID,
                                   [_error_info("ACCESS_TOKEN_EXPIRED", "googleapis.com", info)], headers=challenge)
            identity, scopes = tok.identity, tok.scopes
        needed = {CLOUD_PLATFORM} if service == SM_SERVICE else IAM_SCOPES
        if not needed & set(scopes):
            return None, _gerr(403, "PERMISSION_DENIED", INSUFFICIENT_SCOPES,
                               [_error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", "googleapis.com", info)],
                               headers=[("WWW-Authenticate", REALM + ', error="insufficient_scope", scope="%s"'
                                         % " ".join(sorted(needed)))])
        return (identity, scopes), None

    def _self_signed_identity_locked(self, value, audience):
        """(email, scopes) when `value` is a valid self-signed JWT of a known service account for `audience`
        (https://<service>/) or with a scope claim, else None."""
        try:
            header, claims, _ = self._parse_jwt(value)
        except ValueError:
            return None
        acct = self._accounts.get(claims.get("iss"))
        if acct is None or claims.get("sub") != claims.get("iss") or header.get("alg") != "RS256":
            return None
        if not self._verify_locked(acct, header.get("kid"), value):
            return None
        if self._jwt_time_error(claims):
            return None
        scope = claims.get("scope")
        if claims.get("aud") == audience:
            return acct.email, [CLOUD_PLATFORM]
        if isinstance(scope, str) and scope.split():
            return acct.email, scope.split()
        return None

    # --- Secret Manager

    def _secretmanager(self, method, path, headers, entry):
        m = SM_PATH_RE.match(path)
        if not m or method != "GET":
            return _not_found_html(path)
        project, location, secret, version = m.groups()
        requested = path[len("/v1/"):-len(":access")]
        with self._lock:
            who, err = self._authenticate_locked(headers, entry, SM_SERVICE, SM_METHOD)
            if err:
                return err
            identity = who[0]
            if (not SECRET_ID_RE.match(secret) or (location is not None and not LOCATION_RE.match(location))
                    or not (version == "latest" or re.fullmatch(r"[1-9][0-9]{0,18}", version))):
                return _gerr(400, "INVALID_ARGUMENT", "Resource ID [%s] is not in a valid format." % requested)
            if not self._project_ok(project) or self._denied_locked(identity, location, secret):
                return _gerr(403, "PERMISSION_DENIED", "Permission 'secretmanager.versions.access' denied for "
                             "resource '%s' (or it may not exist)." % requested,
                             [_error_info("IAM_PERMISSION_DENIED", SM_SERVICE,
                                          {"permission": "secretmanager.versions.access", "resource": requested})])
            s = self._secrets.get((location, secret))
            if s is None or not s.versions:
                name = "projects/%d/%ssecrets/%s" % (self.project_number,
                                                     "locations/%s/" % location if location else "", secret)
                return _gerr(404, "NOT_FOUND", "Secret [%s] not found or has no versions." % name)
            v = s.versions[next(reversed(s.versions))] if version == "latest" else s.versions.get(int(version))
            vname = "%s/versions/%s" % (self._secret_name(s), v.n if v else version)
            if v is None:
                return _gerr(404, "NOT_FOUND", "Secret Version [%s] not found." % vname)
            entry["version"] = v.n
            if v.state != "ENABLED":
                return _gerr(400, "FAILED_PRECONDITION", "Secret Version [%s] is in %s state." % (vname, v.state))
            data, crc = v.data, v.crc
            with_crc = v.with_crc
        rule = self._take_fault("crc", "secretmanager", secret)
        if rule:
            entry["fault"] = "bad_crc"
            with_crc = True
            if rule["mode"] == "crc":
                crc ^= 0x5A5A5A5A
            else:
                data = (bytes([data[0] ^ 0x01]) + data[1:]) if data else b"\x00"
        payload = {"data": base64.b64encode(data).decode()}
        if with_crc:
            payload["dataCrc32c"] = str(crc)
        return _Resp(200, {"name": vname, "payload": payload},
                     headers=[("Vary", "Origin"), ("Vary", "X-Origin"), ("Vary", "Referer")])

    def _denied_locked(self, identity, location, secret):
        return (identity, "*") in self._denied or (identity, (location, secret)) in self._denied

    # --- JWT

    @staticmethod
    def _parse_jwt(value):
        """(header, claims, signing input) of a compact JWS, or ValueError."""
        parts = value.split(".")
        if len(parts) != 3 or not all(parts):
            raise ValueError("not a compact JWS")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            _b64url_decode(parts[2])
        except (ValueError, binascii.Error):
            raise ValueError("bad JWT encoding") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("JWT parts are not objects")
        return header, claims, (parts[0] + "." + parts[1]).encode()

    def _verify_locked(self, acct, kid, value):
        """True when `value` carries a valid RS256 signature by acct's key `kid`."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        entry = acct.keys.get(kid) if isinstance(kid, str) else None
        if entry is None:
            return False
        head, _, sig = value.rpartition(".")
        try:
            entry[0].verify(_b64url_decode(sig), head.encode(), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError, binascii.Error):
            return False
        return True

    def _jwt_time_error(self, claims):
        """True when iat/exp are missing, not integers, or outside Google's window."""
        iat, exp = claims.get("iat"), claims.get("exp")
        if isinstance(iat, bool) or isinstance(exp, bool) or not isinstance(iat, int) or not isinstance(exp, int):
            return True
        now = time.time() + self.jwt_clock_offset
        return (exp <= iat or exp - iat > MAX_JWT_LIFETIME or iat > now + self.jwt_clock_skew
                or exp <= now - self.jwt_clock_skew)

    # --- OAuth token endpoint

    @staticmethod
    def _form(headers, body):
        """The urlencoded form fields, or None when the request is not a form."""
        ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return None
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return None
        return {k: v for k, v in pairs}

    def _token_endpoint(self, method, headers, body, entry):
        if method != "POST":
            return _oauth_err(405, "invalid_request", "Invalid request method %s: use POST." % method,
                              headers=[("Allow", "POST")])
        form = self._form(headers, body)
        if form is None:
            return _oauth_err(400, "invalid_request", "Request must be application/x-www-form-urlencoded.")
        entry["form"] = form
        grant = form.get("grant_type", "")
        entry["grant_type"] = grant
        if grant == JWT_BEARER:
            return self._jwt_grant(form, entry)
        if grant == "refresh_token":
            return self._refresh_grant(form, entry)
        return _oauth_err(400, "unsupported_grant_type", "Invalid grant_type: %s" % grant)

    def _token_ok(self, identity, kind, scopes, entry, extra=None):
        with self._lock:
            tok, ttl, _ = self._issue_locked(identity, kind, scopes)
        entry["issued_token"] = tok.value
        out = {"access_token": tok.value, "expires_in": ttl}
        out.update(extra or {})
        out["token_type"] = "Bearer"
        return _Resp(200, out, headers=[("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"),
                                        ("Pragma", "no-cache")])

    def _jwt_grant(self, form, entry):
        assertion = form.get("assertion")
        if not assertion:
            return _oauth_err(400, "invalid_request", "Missing required parameter: assertion")
        with self._lock:
            self._seen_assertions.append(assertion)
            try:
                header, claims, _ = self._parse_jwt(assertion)
            except ValueError:
                return _oauth_err(400, "invalid_grant", "Invalid JWT: Malformed assertion.")
            if header.get("typ") != "JWT":
                return _oauth_err(400, "invalid_grant", "Invalid JWT: Malformed assertion.")
            acct = self._accounts.get(claims.get("iss")) if isinstance(claims.get("iss"), str) else None
            if acct is None:
                return _oauth_err(400, "invalid_grant", "Invalid grant: account not found")
            entry["identity"] = acct.email
            if header.get("alg") != "RS256" or not self._verify_locked(acct, header.get("kid"), assertion):
                return _oauth_err(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") != self.token_uri:
            return _oauth_err(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        if self._jwt_time_error(claims):
            return _oauth_err(400, "invalid_grant", JWT_TIMEFRAME)
        if claims.get("sub") not in (None, acct.email):
            return _oauth_err(401, "unauthorized_client", "Client is unauthorized to retrieve access tokens using "
                              "this method, or client not authorized for any of the scopes requested.")
        scope = claims.get("scope")
        scopes = scope.split() if isinstance(scope, str) else []
        if not scopes:
            return _oauth_err(400, "invalid_scope", "Empty or missing scope not allowed.")
        if any(s not in KNOWN_SCOPES for s in scopes):
            return _oauth_err(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return self._token_ok(acct.email, "service_account", scopes, entry)

    def _refresh_grant(self, form, entry):
        client_id = form.get("client_id")
        with self._lock:
            client = self._clients.get(client_id) if client_id else None
            if client is None:
                return _oauth_err(401, "invalid_client", "The OAuth client was not found.")
            if form.get("client_secret") != client.client_secret:
                return _oauth_err(401, "invalid_client", "Unauthorized")
            rt = form.get("refresh_token")
            if not rt:
                return _oauth_err(400, "invalid_request", "Missing required parameter: refresh_token")
            r = self._refresh.get(rt)
            if r is None or r.client_id != client_id:
                return _oauth_err(400, "invalid_grant", "Bad Request")
            entry["identity"] = r.account
            if r.revoked:
                return _oauth_err(400, "invalid_grant", "Token has been expired or revoked.")
            scopes = list(r.scopes)
        asked = _scopes(form.get("scope"))
        if asked:
            if any(s not in scopes for s in asked):
                return _oauth_err(400, "invalid_scope", "The requested scope is invalid, unknown, malformed, or "
                                  "exceeds the scope granted by the resource owner.")
            scopes = asked
        return self._token_ok(r.account, "authorized_user", scopes, entry, {"scope": " ".join(scopes)})

    # --- STS

    def _sts(self, method, headers, body, entry):
        if method != "POST":
            return _oauth_err(405, "invalid_request", "Invalid request method %s: use POST." % method,
                              headers=[("Allow", "POST")])
        form = self._form(headers, body)
        if form is None:
            ctype = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            try:
                obj = json.loads(body) if ctype == "application/json" else None
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                return _oauth_err(400, "invalid_request", "Request must be application/x-www-form-urlencoded or "
                                  "application/json.")
            camel = {"grantType": "grant_type", "requestedTokenType": "requested_token_type",
                     "subjectToken": "subject_token", "subjectTokenType": "subject_token_type"}
            form = {camel.get(k, k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}
        entry["form"] = form
        entry["grant_type"] = form.get("grant_type")
        if form.get("grant_type") != TOKEN_EXCHANGE:
            return _oauth_err(400, "unsupported_grant_type", "Invalid value for \"grant_type\".")
        audience = form.get("audience", "")
        if not PROVIDER_RE.match(audience):
            return _oauth_err(400, "invalid_request", "Invalid value for \"audience\". This value should be the full "
                              "resource name of the Identity Provider. See https://cloud.google.com/iam/docs/reference"
                              "/sts/rest/v1/TopLevel/token for the list of possible formats.")
        if form.get("requested_token_type") != ACCESS_TOKEN_TYPE:
            return _oauth_err(400, "invalid_request", "Invalid value of requested_token_type in request.")
        if not form.get("subject_token"):
            return _oauth_err(400, "invalid_request", "Missing required parameter: subject_token")
        with self._lock:
            prov = self._providers.get(audience)
            if prov is None:
                return _oauth_err(400, "invalid_target", "The target service indicated by the \"audience\" parameters "
                                  "is invalid. This might either be because the pool or provider is disabled or "
                                  "deleted or because it doesn't exist.")
            if form.get("subject_token_type") != prov.subject_token_type:
                return _oauth_err(400, "invalid_request", "Invalid value of subject_token_type in request.")
            scopes = _scopes(form.get("scope")) or []
            if not scopes:
                return _oauth_err(400, "invalid_scope", "Empty or missing scope not allowed.")
            if any(s not in KNOWN_SCOPES for s in scopes):
                return _oauth_err(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
            principal = prov.subjects.get(form["subject_token"])
            if principal is None:
                return _oauth_err(400, "invalid_grant", "The given credential is rejected by the attribute "
                                  "condition.")
            entry["identity"] = principal
        return self._token_ok(principal, "sts", scopes, entry, {"issued_token_type": ACCESS_TOKEN_TYPE})

    # --- IAM Credentials

    def _iam(self, method, path, headers, body, entry):
        m = IAM_PATH_RE.match(path)
        if not m or method != "POST":
            return _not_found_html(path)
        email = m.group(1)
        resource = "projects/-/serviceAccounts/%s" % email
        with self._lock:
            who, err = self._authenticate_locked(headers, entry, IAM_SERVICE, IAM_METHOD)
            if err:
                return err
            if (who[0], email) not in self._impersonation or email not in self._accounts:
                return _gerr(403, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts.getAccessToken' denied on "
                             "resource (or it may not exist).",
                             [_error_info("IAM_PERMISSION_DENIED", "iam.googleapis.com",
                                          {"permission": "iam.serviceAccounts.getAccessToken",
                                           "resource": resource})])
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            req = None
        if not isinstance(req, dict):
            return _gerr(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        scopes = req.get("scope")
        if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) and s for s in scopes):
            return _gerr(400, "INVALID_ARGUMENT", "Scope required.")
        unknown = [s for s in scopes if s not in KNOWN_SCOPES]
        if unknown:
            return _gerr(400, "INVALID_ARGUMENT", "Invalid scope: %s" % unknown[0])
        ttl = 3600
        if "lifetime" in req:
            lm = LIFETIME_RE.match(req["lifetime"]) if isinstance(req["lifetime"], str) else None
            ttl = int(lm.group(1)) if lm else -1
            if not 1 <= ttl <= 3600:
                return _gerr(400, "INVALID_ARGUMENT", "The lifetime requested is not valid. It must be between 1s "
                             "and 3600s.")
        entry["identity"] = email
        with self._lock:
            tok, _, _ = self._issue_locked(email, "impersonated", scopes, ttl=min(ttl, self.token_ttl))
        entry["issued_token"] = tok.value
        return _Resp(200, {"accessToken": tok.value, "expireTime": _rfc3339(tok.expiry)})

    # --- metadata server

    def _metadata_server(self, method, path, raw_query, headers, entry):
        md = [("Metadata-Flavor", "Google")]
        if headers.get("X-Forwarded-For") is not None:
            return _html(403, "Your client does not have permission to get URL <code>%s</code> from this server."
                         % path, headers=md, error="forwarded")
        if headers.get("Metadata-Flavor") != "Google":
            return _html(403, "Your client does not have permission to get URL <code>%s</code> from this server. "
                         "Missing Metadata-Flavor:Google header." % path, headers=md, error="missing_header")
        if method != "GET":
            return _html(405, "Method not allowed.", headers=md, error="method")
        rest = path[len(METADATA_PREFIX):] if path.startswith(METADATA_PREFIX) else None
        plain = "application/text"
        if rest == "project/project-id":
            return _Resp(200, raw=self.project_id.encode(), ctype=plain, headers=md)
        if rest == "project/numeric-project-id":
            return _Resp(200, raw=str(self.project_number).encode(), ctype=plain, headers=md)
        m = re.fullmatch(r"instance/service-accounts/([^/]+)/(token|email)", rest or "")
        with self._lock:
            md_acct = copy.deepcopy(self._metadata)
        if not m or md_acct is None or m.group(1) not in ("default", md_acct["email"]):
            return _html(404, "The requested URL <code>%s</code> was not found on this server." % path, headers=md,
                         error="not_found")
        entry["identity"] = md_acct["email"]
        if m.group(2) == "email":
            return _Resp(200, raw=md_acct["email"].encode(), ctype=plain, headers=md)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(raw_query, keep_blank_values=True).items()}
        scopes = _scopes(query.get("scopes")) or md_acct["scopes"]
        if any(s not in KNOWN_SCOPES for s in scopes):
            return _html(400, "Invalid scopes.", headers=md, error="scopes")
        with self._lock:
            tok, ttl, _ = self._issue_locked(md_acct["email"], "metadata", scopes)
        entry["issued_token"] = tok.value
        return _Resp(200, {"access_token": tok.value, "expires_in": ttl, "token_type": "Bearer"},
                     ctype="application/json", headers=md)


# --------------------------------------------------------------------------------------------------
# script entry point


def main(argv=None):
    ap = argparse.ArgumentParser(description="Strict fake GCP (Secret Manager, token endpoint, STS, IAM "
                                             "Credentials, metadata server).")
    fakeserver.add_server_args(ap)
    ap.add_argument("--project-id", default=DEFAULT_PROJECT_ID)
    ap.add_argument("--project-number", type=int, default=DEFAULT_PROJECT_NUMBER)
    ap.add_argument("--state", help="JSON state file applied once listening (see apply_state)")
    return fakeserver.run_script(ap, argv, lambda a: _Scripted(a.state, project_id=a.project_id,
                                                               project_number=a.project_number,
                                                               **fakeserver.server_kwargs(a)))


class _Scripted(FakeGCP):
    """Script mode: the state file is applied after start() (key files need the port)."""

    def __init__(self, state_path, **kw):
        super().__init__(**kw)
        self._state_path = state_path

    def apply_state(self, state):
        if self._server is None:    # run_script applies --state before start(): deferred to start()
            return None
        return super().apply_state(state)

    def start(self):
        super().start()
        if self._state_path:
            with open(self._state_path, encoding="utf-8") as f:
                super().apply_state(json.load(f))
        return self


if __name__ == "__main__":
    sys.exit(main())
