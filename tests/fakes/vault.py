#!/usr/bin/env python3
"""vault.py - a strict fake HashiCorp Vault server for runsecrets' integration tests.

A real HTTP(S) server on loopback (not a mock of our own functions): the broker talks to it exactly as
it would talk to Vault. Python 3.11 standard library only; `cryptography` is used only to generate test
certificates (make_ca_and_cert, re-exported from fakeserver.py). The server machinery (TLS, connections,
start/stop, request log, control endpoint, script mode) is fakeserver.py's, shared with the other fakes;
this file holds only the Vault protocol.

Run as a script:

    python3 tests/fakes/vault.py --port 0 --tls-dir DIR [--state FILE.json] [--plain-http]
        [--require-client-cert] [--require-request-header] [--root-token TOKEN]

prints one JSON line {"url", "port", "control", "ca", "tls", "pid"} once listening (never a token) and
exits 0 on SIGTERM/SIGINT. Or import it:

    v = FakeVault(tls_dir=d).start()
    v.add_kv_mount("secret", version=2); v.put_kv("secret", "app", {"k": "v"})
    ...
    v.stop()

Wire behaviour follows Vault's own source where it could be checked (see /work/shared/backend-apis.md,
section 1): error bodies are {"errors": [...]}, PUT == POST, a token is needed everywhere except logins,
sys/health and sys/seal-status, a missing/invalid/expired token gives 403 {"errors":["permission denied"]}.

Control endpoint (same port, no token, never recorded, no faults): POST /__control/<method> with a
JSON object of keyword arguments calls the FakeVault method of that name (CONTROL_METHODS) and answers
{"result": ...}; GET /__control/<method>?k=v does the same with string arguments; GET /__control/ lists
the methods. 400 {"error": ...} on bad arguments, 404 for an unknown method.
"""

from __future__ import annotations

import argparse
import collections
import copy
import datetime
import json
import os
import re
import secrets
import ssl
import string
import sys
import time
import traceback
import urllib.parse
import uuid

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import fakeserver  # noqa: E402  (the server machinery every fake shares)
from fakeserver import TLS_FILES, ensure_certs, make_ca_and_cert  # noqa: E402,F401  (re-exported)

# --------------------------------------------------------------------------------------------------
# constants

SYSTEM_DEFAULT_TTL = 2764800          # 768h: Vault's system default_lease_ttl
SYSTEM_MAX_TTL = 2764800              # 768h: Vault's system max_lease_ttl
MAX_REQUEST_BYTES = 32 * 1024 * 1024  # Vault's default max_request_size
MAX_LATENCY_MS = 60_000
MAX_LOG_ENTRIES = 100_000
MAX_NS_DEPTH = 16
DEFAULT_OVERSIZE = 2 * 1024 * 1024
VAULT_VERSION = "1.15.6"
KV2_INVALID_PATH = ("Invalid path for a versioned K/V secrets engine. See the API docs for the "
                    "appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' "
                    "for this operation.")
NON_JSON_BODY = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
                 b"<body><h1>Bad Gateway</h1><p>fake proxy error page</p></body></html>\n")
# Vault's rate-limit quotas exempt these by default (rate_limit_exempt_paths).
RATE_LIMIT_EXEMPT = ("sys/health", "sys/seal-status")

# Methods reachable through /__control/<name>.
CONTROL_METHODS = frozenset("""
    set_sealed seal unseal set_health_state set_require_request_header advance_time
    add_namespace add_kv_mount add_mount add_database_mount add_database_role
    put_kv delete_kv destroy_kv delete_kv_metadata
    add_approle add_kubernetes_role add_jwt_role add_token revoke_token token_info tokens
    leases lease_info revoke_lease revocations lease_renewals token_events
    fail_next_429 add_latency clear_latency drop_next_connections truncate_next_responses
    non_json_next_responses force_status clear_force_status oversize_responses clear_faults
    requests clear_requests count stats
""".split())

_B62 = string.ascii_letters + string.digits


def _rand(n):
    return "".join(secrets.choice(_B62) for _ in range(n))


def _rfc3339(ts):
    """Vault-style RFC 3339 UTC time with nanoseconds: 2018-03-22T02:24:06.945319214Z."""
    dt = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%06d000Z" % dt.microsecond


def _go_duration(seconds):
    """Format whole seconds the way Go's time.Duration prints them (1h2m3s, 45s, 0s)."""
    s = int(seconds)
    if s == 0:
        return "0s"
    out = "-" if s < 0 else ""
    s = abs(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        out += "%dh%dm%ds" % (h, m, sec)
    elif m:
        out += "%dm%ds" % (m, sec)
    else:
        out += "%ds" % sec
    return out


_DUR_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value):
    """Seconds from a Vault duration: int/float seconds, "3600", or Go-style "1h30m", "90s", "2d".

    Raises ValueError for anything else (bool, negative, garbage)."""
    if isinstance(value, bool) or value is None:
        raise ValueError("invalid duration %r" % (value,))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("negative duration")
        return int(value)
    if not isinstance(value, str):
        raise ValueError("invalid duration %r" % (value,))
    s = value.strip()
    if s == "":
        return 0
    if re.fullmatch(r"\d+", s):
        return int(s)
    pos, total = 0, 0.0
    for m in _DUR_PART.finditer(s):
        if m.start() != pos:
            raise ValueError("invalid duration %r" % value)
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError("invalid duration %r" % value)
    return int(total)


def _norm_ns(ns):
    """'team-a' / '/team-a/' / 'a/b' -> 'team-a/' / 'a/b/'; '' or 'root' -> '' (root namespace)."""
    ns = (ns or "").strip().strip("/")
    if ns in ("", "root"):
        return ""
    ns = re.sub("/+", "/", ns)
    return ns + "/"


def _norm_mount(path):
    p = re.sub("/+", "/", (path or "").strip().strip("/"))
    if not p:
        raise ValueError("empty mount path")
    return p + "/"


def _norm_prefix(prefix):
    """Fault/log prefixes are matched against the path after /v1/ (namespace header not included)."""
    if prefix is None:
        return None
    p = str(prefix).lstrip("/")
    if p.startswith("v1/"):
        p = p[3:]
    return p


_int = fakeserver.arg_int


def _bool(v):
    return fakeserver.arg_bool(v, blank=True)   # a bare ?sealed means true, as Vault's own flags


# --------------------------------------------------------------------------------------------------
# state objects (all guarded by FakeVault._lock)


class _Mount:
    def __init__(self, ns, path, type_, options, max_versions=10, description=""):
        self.ns = ns
        self.path = path
        self.type = type_
        self.options = options
        self.description = description
        self.accessor = "%s_%s" % (type_, secrets.token_hex(4))
        self.uuid = str(uuid.uuid4())
        self.max_versions = max_versions
        self.kv = {}       # kv v1: key -> dict; kv v2: key -> _KV2Secret
        self.roles = {}    # database: role name -> _DBRole

    @property
    def kv_version(self):
        return (self.options or {}).get("version", "1") if self.type == "kv" else None


class _KV2Secret:
    def __init__(self, now_wall):
        self.versions = {}   # int -> {"data", "created", "deletion_time", "destroyed"}
        self.current = 0
        self.custom_metadata = None
        self.created = _rfc3339(now_wall)
        self.updated = self.created


class _DBRole:
    def __init__(self, name, ttl, max_ttl, renewable):
        self.name, self.ttl, self.max_ttl, self.renewable = name, ttl, max_ttl, renewable


class _AuthMount:
    def __init__(self, ns, path, type_):
        self.ns, self.path, self.type = ns, path, type_
        self.accessor = "auth_%s_%s" % (type_, secrets.token_hex(4))
        self.uuid = str(uuid.uuid4())
        self.roles = {}          # name -> _AuthRole
        self.default_role = ""   # jwt


class _AuthRole:
    def __init__(self, name, ttl, max_ttl, renewable, policies):
        self.name = name
        self.ttl = ttl
        self.max_ttl = max_ttl
        self.renewable = renewable
        self.policies = policies
        self.role_id = None
        self.secret_ids = {}      # approle: secret_id -> remaining uses (None = unlimited)
        self.bind_secret_id = True
        self.jwts = set()         # kubernetes/jwt: accepted JWT strings
        self.sa_name = "default"
        self.sa_namespace = "default"


class _Token:
    def __init__(self, tid, ns, policies, ttl, max_ttl, renewable, now, wall, path, meta, display_name):
        self.id = tid
        self.accessor = _rand(24)
        self.ns = ns
        self.policies = policies
        self.ttl = ttl                # creation_ttl; 0 = never expires
        self.max_ttl = max_ttl
        self.renewable = renewable
        self.issue_mono = now
        self.issue_wall = wall
        self.expire_mono = now + ttl if ttl > 0 else None
        self.path = path
        self.meta = meta
        self.display_name = display_name
        self.entity_id = str(uuid.uuid4()) if path != "auth/token/root" else ""
        self.orphan = True
        self.last_renewal_wall = None


class _Lease:
    def __init__(self, lid, ns, mount, role, ttl, max_ttl, renewable, token_id, now, wall, username):
        self.id = lid
        self.ns = ns
        self.mount = mount
        self.role = role
        self.ttl = ttl              # the role's default TTL (renew without increment)
        self.max_ttl = max_ttl
        self.renewable = renewable
        self.token_id = token_id
        self.issue_mono = now
        self.issue_wall = wall
        self.expire_mono = now + ttl
        self.last_renewal_wall = None
        self.username = username


class _Resp:
    __slots__ = ("status", "obj", "raw", "ctype", "headers")

    def __init__(self, status, obj=None, raw=None, ctype="application/json", headers=None):
        self.status = status
        self.obj = obj
        self.raw = raw
        self.ctype = ctype
        self.headers = headers or []


class _BadRequest(Exception):
    pass


def _err(status, *msgs):
    return _Resp(status, {"errors": list(msgs)})


def _env(data=None, *, lease_id="", renewable=False, lease_duration=0, auth=None, warnings=None,
         mount_type=""):
    """Vault's response envelope."""
    return {"request_id": str(uuid.uuid4()), "lease_id": lease_id, "renewable": renewable,
            "lease_duration": lease_duration, "data": data, "wrap_info": None,
            "warnings": list(warnings) if warnings else None, "auth": auth, "mount_type": mount_type}


def _op(method, query):
    """HTTP method -> Vault logical operation."""
    if method == "GET":
        lst = query.get("list")
        if lst and lst[-1].lower() in ("true", "1"):
            return "list"
        return "read"
    return {"LIST": "list", "POST": "update", "PUT": "update", "DELETE": "delete",
            "PATCH": "patch", "HEAD": "head"}.get(method, "other")


def _parse_body(op, body):
    if op not in ("update", "patch", "delete") or not body.strip():
        return {}
    try:
        obj = json.loads(body)
    except ValueError as e:
        raise _BadRequest("failed to parse JSON input: %s" % e) from None
    if not isinstance(obj, dict):
        kind = {list: "array", str: "string", bool: "bool", type(None): "null"}.get(type(obj), "number")
        raise _BadRequest("failed to parse JSON input: json: cannot unmarshal %s into Go value of "
                          "type map[string]interface {}" % kind)
    return obj


def _str_field(data, name):
    v = data.get(name)
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)    # Go's weak decoding turns numbers into strings
    raise _BadRequest('error converting input for field "%s": expected a string' % name)


def _dur_field(data, name):
    if name not in data or data[name] is None:
        return 0
    try:
        return parse_duration(data[name])
    except ValueError as e:
        raise _BadRequest('error converting input %r for field "%s": %s' % (data[name], name, e)) from None


# --------------------------------------------------------------------------------------------------
# HTTP plumbing (the shared part is fakeserver.FakeHandler)


class _Handler(fakeserver.FakeHandler):
    server_version = "FakeVault/" + VAULT_VERSION
    Resp = _Resp

    do_LIST = fakeserver.FakeHandler.do_GET

    def _write(self, resp, truncate=False):
        if resp.raw is not None:
            body = resp.raw
        elif resp.status == 204:
            body = b""
        else:
            body = json.dumps(resp.obj).encode()
        headers = list(resp.headers)
        if resp.status != 204:
            headers += [("Content-Type", resp.ctype), ("Cache-Control", "no-store")]
        if truncate:
            # The full length announced, half the body sent, the connection closed (no "Connection: close").
            self.send_response(resp.status)
            for k, v in headers + [("Content-Length", str(len(body) if body else 64))]:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if resp.status != 204:
            headers.append(("Content-Length", str(len(body))))
        self._send(resp.status, headers, body)

    def _serve(self, path, raw_query, entry, t0):
        fake = self.server.fake
        fault = None
        try:
            body, refusal = self._read_body_or(fake.max_request_bytes,
                                               lambda: _err(413, "http: request body too large"),
                                               lambda reason: _err(400, reason))
            # Each entry is finished before its answer is written: a test
            # reading the log right after its response must find it.
            if refusal is not None:
                fake._finish_entry(entry, refusal.status, t0)
                return self._write(refusal)
            fake._entry_body(entry, body)

            if not path.startswith("/v1/"):
                fake._finish_entry(entry, 404, t0)
                return self._write(_err(404))
            rel = path[4:]

            if fake._take_fault("drop", rel):
                fake._note("dropped_requests")
                self.close_connection = True
                return fake._finish_entry(entry, None, t0, "drop")

            delay_ms = fake._latency_for(rel)
            if delay_ms:
                entry["latency_ms"] = delay_ms
                if fake._stopping.wait(delay_ms / 1000.0):
                    self.close_connection = True
                    return fake._finish_entry(entry, None, t0, "stopping")

            try:
                resp = fake._process(self.command, rel, raw_query, self.headers, body, entry)
            except Exception as e:   # a bug in the fake: say so loudly, answer 500
                traceback.print_exc(file=sys.stderr)
                resp = _err(500, "fakevault internal error: %s" % e)
            fault = entry.get("fault")
            truncate = fake._take_fault("truncate", rel) is not None
            if truncate:
                fault = "truncate"
                fake._note("truncated_responses")
            fake._finish_entry(entry, resp.status, t0, fault)
            self._write(resp, truncate=truncate)
        except OSError:
            self.close_connection = True
            fake._finish_entry(entry, entry.get("status"), t0, "client-io-error")


# --------------------------------------------------------------------------------------------------
# the fake


class FakeVault(fakeserver.FakeServer):
    """A strict fake Vault on 127.0.0.1. All public methods are thread-safe."""

    NAME = "fakevault"
    CONTROL_METHODS = CONTROL_METHODS
    Handler = _Handler

    def __init__(self, tls_dir=None, *, tls=True, host="127.0.0.1", port=0,
                 require_client_cert=False, require_request_header=False, root_token=None,
                 hostnames=("localhost", "127.0.0.1", "::1"), revoke_leases_with_token=True,
                 max_request_bytes=MAX_REQUEST_BYTES, conn_timeout=30.0, handshake_timeout=5.0,
                 max_log_entries=MAX_LOG_ENTRIES):
        super().__init__(tls_dir, tls=tls, host=host, port=port, hostnames=hostnames,
                         max_request_bytes=max_request_bytes, conn_timeout=conn_timeout,
                         handshake_timeout=handshake_timeout, max_log_entries=max_log_entries)
        self.require_client_cert = bool(require_client_cert)
        self.revoke_leases_with_token = bool(revoke_leases_with_token)

        self._sealed = False
        self._health_state = "active"
        self._require_request_header = bool(require_request_header)
        self._namespaces = {""}
        self._ns_ids = {"": "root"}
        self._mounts = {}         # (ns, path) -> _Mount
        self._auth_mounts = {}    # (ns, path) -> _AuthMount
        self._tokens = {}         # token string -> _Token
        self._leases = {}         # lease id -> _Lease
        self._revocations = collections.deque(maxlen=max_log_entries)
        self._renewals = collections.deque(maxlen=max_log_entries)
        self._token_events = collections.deque(maxlen=max_log_entries)
        self._stats = collections.Counter()
        self._last_handshake_error = ""
        self._faults = {k: [] for k in ("rate_limit", "latency", "drop", "truncate", "non_json",
                                        "force", "oversize")}
        self._accept_drops = 0
        self._oversize_cache = {}
        self.cluster_id = str(uuid.uuid4())
        self.root_token = root_token or ("hvs." + _rand(24))
        self.add_token(self.root_token, ttl=0, policies=["root"], display_name="root",
                       _path="auth/token/root")

    # ------------------------------------------------------------------ lifecycle (see FakeServer)

    def _server_ssl_context(self):
        ctx = super()._server_ssl_context()
        if self.require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.tls_files["ca.pem"])
        return ctx

    def ssl_context(self, client_cert=False, cafile=None):
        """A client SSLContext trusting ca.pem (or `cafile`), optionally presenting client.pem."""
        ctx = super().ssl_context(cafile)
        if client_cert:
            ctx.load_cert_chain(self.tls_files["client.pem"], self.tls_files["client-key.pem"])
        return ctx

    def _accepted(self):
        self._note("connections")

    def _admit(self):
        return not self._take_accept_drop()

    def _handshake_failed(self, err):
        self._note("tls_handshake_failures", str(err))

    # ------------------------------------------------------------------ clock

    def _now(self):
        return time.monotonic() + self._offset

    def _time_advanced_locked(self):
        self._reap_locked()   # advance_time() expires tokens/leases without sleeping

    # ------------------------------------------------------------------ setup API

    def add_namespace(self, namespace):
        """Register a namespace (and its parents). Mount/role helpers do this implicitly."""
        ns = _norm_ns(namespace)
        with self._lock:
            self._add_ns_locked(ns)
        return ns

    def _add_ns_locked(self, ns):
        parts = ns.strip("/").split("/") if ns else []
        cur = ""
        for seg in parts:
            if seg in ("sys", "auth", "cubbyhole", "identity"):
                raise ValueError("reserved namespace name %r" % seg)
            parent = cur
            cur += seg + "/"
            if cur not in self._namespaces:
                for (mns, mp) in self._mounts:
                    if mns == parent and (seg + "/").startswith(mp):
                        raise ValueError("namespace %r collides with mount %r" % (cur, mp))
                self._namespaces.add(cur)
                self._ns_ids[cur] = _rand(5)

    def _check_mount_locked(self, ns, path):
        if path.split("/", 1)[0] in ("sys", "auth", "cubbyhole", "identity"):
            raise ValueError("reserved mount path %r" % path)
        for (mns, mp) in self._mounts:
            if mns == ns and (mp.startswith(path) or path.startswith(mp)):
                raise ValueError("path is already in use at %s" % mp)
        for cand in self._namespaces:
            if cand != ns and cand.startswith(ns):
                child = cand[len(ns):].split("/", 1)[0] + "/"
                if path.startswith(child) or child.startswith(path):
                    raise ValueError("mount path %r collides with namespace %r" % (path, cand))

    def add_mount(self, path, type, namespace="", options=None, description=""):  # noqa: A002
        """A generic (non-kv) secrets mount: visible in sys/internal/ui/mounts, nothing else."""
        ns, p = _norm_ns(namespace), _norm_mount(path)
        with self._lock:
            self._add_ns_locked(ns)
            self._check_mount_locked(ns, p)
            self._mounts[(ns, p)] = _Mount(ns, p, str(type), copy.deepcopy(options),
                                           description=description)
        return p

    def add_kv_mount(self, path, version=2, namespace="", max_versions=10, options="default"):
        """A KV mount (type "kv"); options default to {"version": "<version>"} (pass None to mimic
        an old v1 mount without options)."""
        version = _int(version, "version")
        if version not in (1, 2):
            raise ValueError("kv version must be 1 or 2")
        if options == "default":
            options = {"version": str(version)}
        ns, p = _norm_ns(namespace), _norm_mount(path)
        with self._lock:
            self._add_ns_locked(ns)
            self._check_mount_locked(ns, p)
            m = _Mount(ns, p, "kv", copy.deepcopy(options), max_versions=_int(max_versions, "max_versions"))
            if (m.options or {}).get("version") != "2" and version == 2:
                raise ValueError("a kv v2 mount needs options.version == '2'")
            self._mounts[(ns, p)] = m
        return p

    def add_database_mount(self, path="database", namespace=""):
        ns, p = _norm_ns(namespace), _norm_mount(path)
        with self._lock:
            self._add_ns_locked(ns)
            self._check_mount_locked(ns, p)
            self._mounts[(ns, p)] = _Mount(ns, p, "database", None)
        return p

    def add_database_role(self, role, mount="database", namespace="", ttl=3600, max_ttl=86400,
                          renewable=True):
        """Dynamic creds at <mount>/creds/<role>; ttl = default lease TTL, max_ttl caps renewals."""
        ttl, max_ttl = parse_duration(ttl), parse_duration(max_ttl)
        with self._lock:
            m = self._get_mount_locked(mount, namespace, "database")
            m.roles[str(role)] = _DBRole(str(role), ttl, max_ttl, _bool(renewable))

    def _get_mount_locked(self, mount, namespace, type_=None):
        key = (_norm_ns(namespace), _norm_mount(mount))
        m = self._mounts.get(key)
        if m is None:
            raise KeyError("no mount %r in namespace %r" % (key[1], key[0]))
        if type_ and m.type != type_:
            raise ValueError("mount %r is of type %r, not %r" % (key[1], m.type, type_))
        return m

    def put_kv(self, mount, path, data, namespace="", custom_metadata=None):
        """Write a secret. KV v2: adds a new version (rotation) and returns its number; KV v1:
        overwrites and returns None."""
        if not isinstance(data, dict):
            raise ValueError("data must be a JSON object")
        data = json.loads(json.dumps(data))
        key = str(path).strip("/")
        with self._lock:
            m = self._get_mount_locked(mount, namespace, "kv")
            if m.kv_version != "2":
                m.kv[key] = data
                return None
            s = m.kv.get(key)
            wall = self._wall()
            if s is None:
                s = m.kv[key] = _KV2Secret(wall)
            s.current += 1
            s.updated = _rfc3339(wall)
            s.versions[s.current] = {"data": data, "created": _rfc3339(wall), "deletion_time": "",
                                     "destroyed": False}
            if custom_metadata is not None:
                s.custom_metadata = {str(k): str(v) for k, v in dict(custom_metadata).items()} or None
            limit = m.max_versions if m.max_versions > 0 else 10
            while len(s.versions) > limit:
                del s.versions[min(s.versions)]
            return s.current

    def _kv2_locked(self, mount, path, namespace):
        m = self._get_mount_locked(mount, namespace, "kv")
        if m.kv_version != "2":
            raise ValueError("mount %r is not kv v2" % m.path)
        s = m.kv.get(str(path).strip("/"))
        if s is None:
            raise KeyError("no secret %r" % path)
        return m, s

    def delete_kv(self, mount, path, versions=None, namespace=""):
        """KV v1: remove. KV v2: soft-delete `versions` (default: the latest)."""
        with self._lock:
            m = self._get_mount_locked(mount, namespace, "kv")
            if m.kv_version != "2":
                return m.kv.pop(str(path).strip("/"), None) is not None
            m, s = self._kv2_locked(mount, path, namespace)
            for v in (versions or [s.current]):
                ver = s.versions.get(_int(v, "version"))
                if ver and not ver["deletion_time"]:
                    ver["deletion_time"] = _rfc3339(self._wall())
            return True

    def destroy_kv(self, mount, path, versions=None, namespace=""):
        """KV v2: permanently destroy `versions` (default: the latest)."""
        with self._lock:
            m, s = self._kv2_locked(mount, path, namespace)
            for v in (versions or [s.current]):
                ver = s.versions.get(_int(v, "version"))
                if ver:
                    ver["destroyed"] = True
                    ver["data"] = None
            return True

    def delete_kv_metadata(self, mount, path, namespace=""):
        """KV v2: remove the secret and all its versions."""
        with self._lock:
            m = self._get_mount_locked(mount, namespace, "kv")
            return m.kv.pop(str(path).strip("/"), None) is not None

    def _auth_mount_locked(self, mount, namespace, type_):
        ns, p = _norm_ns(namespace), _norm_mount(mount)
        self._add_ns_locked(ns)
        am = self._auth_mounts.get((ns, p))
        if am is None:
            if p == "token/":
                raise ValueError("auth/token is the token store")
            am = self._auth_mounts[(ns, p)] = _AuthMount(ns, p, type_)
        elif am.type != type_:
            raise ValueError("auth mount %r is of type %r" % (p, am.type))
        return am

    def _role(self, name, ttl, max_ttl, renewable, policies):
        pol = ["default"] + [str(p) for p in (policies or []) if p != "default"]
        return _AuthRole(str(name), parse_duration(ttl), parse_duration(max_ttl), _bool(renewable), pol)

    def add_approle(self, role_name, role_id, secret_id, mount="approle", namespace="", ttl=3600,
                    max_ttl=0, renewable=True, policies=None, secret_id_num_uses=0,
                    bind_secret_id=True):
        """Accept POST auth/<mount>/login {"role_id","secret_id"}. secret_id may be a list.
        secret_id_num_uses > 0 makes each secret_id single/limited-use. max_ttl 0 = system max."""
        with self._lock:
            am = self._auth_mount_locked(mount, namespace, "approle")
            for r in am.roles.values():
                if r.role_id == str(role_id) and r.name != str(role_name):
                    raise ValueError("role_id already used by role %r" % r.name)
            role = self._role(role_name, ttl, max_ttl, renewable, policies)
            role.role_id = str(role_id)
            role.bind_secret_id = _bool(bind_secret_id)
            uses = _int(secret_id_num_uses, "secret_id_num_uses") or None
            sids = secret_id if isinstance(secret_id, (list, tuple)) else [secret_id]
            role.secret_ids = {str(s): uses for s in sids if s is not None}
            am.roles[role.name] = role

    def add_kubernetes_role(self, role, jwts, mount="kubernetes", namespace="", ttl=3600, max_ttl=0,
                            renewable=True, policies=None, service_account_name="default",
                            service_account_namespace="default"):
        """Accept POST auth/<mount>/login {"role","jwt"} for the given JWT strings."""
        with self._lock:
            am = self._auth_mount_locked(mount, namespace, "kubernetes")
            r = self._role(role, ttl, max_ttl, renewable, policies)
            r.jwts = {str(j) for j in ([jwts] if isinstance(jwts, str) else jwts)}
            r.sa_name, r.sa_namespace = str(service_account_name), str(service_account_namespace)
            am.roles[r.name] = r

    def add_jwt_role(self, role, jwts, mount="jwt", namespace="", default=False, ttl=3600, max_ttl=0,
                     renewable=True, policies=None):
        """Accept POST auth/<mount>/login {"role"?, "jwt"}; default=True makes it the mount's
        default_role (used when "role" is omitted)."""
        with self._lock:
            am = self._auth_mount_locked(mount, namespace, "jwt")
            r = self._role(role, ttl, max_ttl, renewable, policies)
            r.jwts = {str(j) for j in ([jwts] if isinstance(jwts, str) else jwts)}
            am.roles[r.name] = r
            if _bool(default):
                am.default_role = r.name

    def add_token(self, token=None, ttl=0, max_ttl=0, renewable=None, policies=None, namespace="",
                  meta=None, display_name="token", _path="auth/token/create"):
        """Register a static token; ttl 0 = never expires (like root). Returns the token."""
        ttl, max_ttl = parse_duration(ttl), parse_duration(max_ttl)
        tid = str(token) if token else "hvs." + _rand(24)
        with self._lock:
            ns = _norm_ns(namespace)
            self._add_ns_locked(ns)
            t = _Token(tid, ns, list(policies) if policies else ["default"], ttl,
                       max_ttl or SYSTEM_MAX_TTL, ttl > 0 if renewable is None else _bool(renewable),
                       self._now(), self._wall(), _path, dict(meta) if meta else None, display_name)
            self._tokens[tid] = t
        return tid

    def revoke_token(self, token):
        """Server-side revocation (its leases go too when revoke_leases_with_token)."""
        with self._lock:
            if token not in self._tokens:
                return False
            self._drop_token_locked(token, "revoked", "api")
            return True

    def token_info(self, token):
        with self._lock:
            self._reap_locked()
            t = self._tokens.get(token)
            return self._token_dict_locked(t) if t else None

    def tokens(self):
        with self._lock:
            self._reap_locked()
            return [self._token_dict_locked(t) for t in self._tokens.values()]

    def _token_dict_locked(self, t):
        now = self._now()
        return {"id": t.id, "accessor": t.accessor, "namespace": t.ns, "policies": list(t.policies),
                "creation_ttl": t.ttl, "max_ttl": t.max_ttl, "renewable": t.renewable,
                "ttl": self._remaining(t.expire_mono, now), "path": t.path,
                "display_name": t.display_name, "meta": copy.deepcopy(t.meta)}

    def leases(self):
        with self._lock:
            self._reap_locked()
            return [self._lease_dict_locked(le) for le in self._leases.values()]

    def lease_info(self, lease_id):
        with self._lock:
            self._reap_locked()
            le = self._leases.get(lease_id)
            return self._lease_dict_locked(le) if le else None

    def _lease_dict_locked(self, le):
        return {"lease_id": le.id, "namespace": le.ns, "mount": le.mount, "role": le.role,
                "ttl": self._remaining(le.expire_mono, self._now()), "max_ttl": le.max_ttl,
                "renewable": le.renewable, "username": le.username,
                "token_accessor": self._tokens[le.token_id].accessor if le.token_id in self._tokens else None}

    def revoke_lease(self, lease_id):
        """Server-side revocation of a lease (as an operator would)."""
        with self._lock:
            return self._revoke_lease_locked(lease_id, "revoked", "api")

    def revocations(self):
        """Every lease that ended: [{"lease_id","reason","via","username","mono","wall"}]; reason is
        "revoked" (revoke endpoint or API), "expired", "token-revoked" or "token-expired"."""
        with self._lock:
            self._reap_locked()
            return [dict(r) for r in self._revocations]

    def lease_renewals(self):
        """[{"lease_id","requested","granted","mono","wall"}] for every successful lease renewal."""
        with self._lock:
            return [dict(r) for r in self._renewals]

    def token_events(self):
        """[{"accessor","event": "renewed"|"revoked"|"expired", "ttl"?, "via", "mono","wall"}]."""
        with self._lock:
            self._reap_locked()
            return [dict(r) for r in self._token_events]

    def apply_state(self, state):
        """Apply a state document: {"root_token"?: str, "require_request_header"?: bool,
        "calls": [{"method": name, "args": {...}}, ...]} or just the list of calls. Methods are
        limited to CONTROL_METHODS."""
        calls = state
        if isinstance(state, dict):
            if state.get("root_token"):
                with self._lock:
                    old = self._tokens.pop(self.root_token, None)
                    self.root_token = str(state["root_token"])
                    if old:
                        old.id = self.root_token
                        self._tokens[self.root_token] = old
            if "require_request_header" in state:
                self.set_require_request_header(state["require_request_header"])
            calls = state.get("calls", [])
        return self._apply_calls(calls)

    # ------------------------------------------------------------------ fault API

    def set_sealed(self, sealed=True):
        """Sealed: every /v1 request except sys/health and sys/seal-status -> 503 Vault is sealed."""
        with self._lock:
            self._sealed = _bool(sealed)

    def seal(self):
        self.set_sealed(True)

    def unseal(self):
        self.set_sealed(False)

    def set_health_state(self, state):
        """sys/health role: "active" (200), "standby" (429), "perfstandby" (473), "drsecondary"
        (472), "uninit" (501). Sealed (503) is set_sealed()."""
        if state not in ("active", "standby", "perfstandby", "drsecondary", "uninit"):
            raise ValueError("unknown health state %r" % state)
        with self._lock:
            self._health_state = state

    def set_require_request_header(self, required=True):
        """Like a Vault Proxy/Agent with require_request_header: 412 without X-Vault-Request: true."""
        with self._lock:
            self._require_request_header = _bool(required)

    def _add_fault(self, kind, rule):
        with self._lock:
            self._faults[kind].append(rule)

    def fail_next_429(self, n=1, retry_after=1, prefix=None):
        """The next n matching requests get 429 + Retry-After. With prefix=None, sys/health and
        sys/seal-status are exempt (as with Vault's rate-limit quotas)."""
        self._add_fault("rate_limit", {"remaining": _int(n, "n"), "prefix": _norm_prefix(prefix),
                                       "retry_after": _int(retry_after, "retry_after")})

    def add_latency(self, ms, prefix=None):
        """Delay every matching request by ms (rules add up; capped at 60 s) until clear_latency()."""
        self._add_fault("latency", {"remaining": None, "prefix": _norm_prefix(prefix),
                                    "ms": max(0, _int(ms, "ms"))})

    def clear_latency(self):
        with self._lock:
            self._faults["latency"].clear()

    def drop_next_connections(self, n=1, mode="request", prefix=None):
        """Close without any response. mode="request": after reading the next n matching requests
        (recorded with fault "drop"); mode="accept": right after accept, before the TLS handshake
        (no request is read; prefix does not apply)."""
        n = _int(n, "n")
        if mode == "accept":
            with self._lock:
                self._accept_drops += n
        elif mode == "request":
            self._add_fault("drop", {"remaining": n, "prefix": _norm_prefix(prefix)})
        else:
            raise ValueError("mode must be 'request' or 'accept'")

    def truncate_next_responses(self, n=1, prefix=None):
        """The next n matching requests are processed normally, but their response announces the
        full Content-Length, sends only half the body, and the connection is closed."""
        self._add_fault("truncate", {"remaining": _int(n, "n"), "prefix": _norm_prefix(prefix)})

    def non_json_next_responses(self, n=1, prefix=None, status=200):
        """The next n matching requests get an HTML page (text/html) instead of JSON, as from a
        misbehaving proxy; the request is not processed."""
        self._add_fault("non_json", {"remaining": _int(n, "n"), "prefix": _norm_prefix(prefix),
                                     "status": _int(status, "status")})

    def force_status(self, prefix, status, body=None, count=None, headers=None):
        """Matching requests get `status` with `body` (dict/list -> JSON, str -> text/plain; default
        {"errors":["forced status N"]}) without processing; count=None means until cleared."""
        status = _int(status, "status")
        self._add_fault("force", {"remaining": None if count is None else _int(count, "count"),
                                  "prefix": _norm_prefix(prefix), "status": status, "body": body,
                                  "headers": [(str(k), str(v)) for k, v in (headers or {}).items()]})

    def clear_force_status(self, prefix=None):
        p = _norm_prefix(prefix)
        with self._lock:
            self._faults["force"] = [r for r in self._faults["force"]
                                     if p is not None and r["prefix"] != p]

    def oversize_responses(self, prefix, size=DEFAULT_OVERSIZE, count=None):
        """Matching requests get 200 with a valid KV-v2-shaped JSON body of at least `size` bytes
        (data.data.padding); count=None means until clear_faults()."""
        self._add_fault("oversize", {"remaining": None if count is None else _int(count, "count"),
                                     "prefix": _norm_prefix(prefix), "size": _int(size, "size")})

    def clear_faults(self):
        """Remove every fault rule (sealed/health/require_request_header are left as they are)."""
        with self._lock:
            for v in self._faults.values():
                v.clear()
            self._accept_drops = 0

    def _take_fault(self, kind, rel):
        """Consume one use of the first matching rule of `kind`; returns a copy or None."""
        with self._lock:
            for r in self._faults[kind]:
                if r["remaining"] is not None and r["remaining"] <= 0:
                    continue
                p = r["prefix"]
                if p is None:
                    if kind == "rate_limit" and rel in RATE_LIMIT_EXEMPT:
                        continue
                elif not rel.startswith(p):
                    continue
                if r["remaining"] is not None:
                    r["remaining"] -= 1
                self._faults[kind] = [x for x in self._faults[kind]
                                      if x["remaining"] is None or x["remaining"] > 0]
                return dict(r)
            return None

    def _take_accept_drop(self):
        with self._lock:
            if self._accept_drops > 0:
                self._accept_drops -= 1
                self._stats["dropped_accepts"] += 1
                return True
            return False

    def _latency_for(self, rel):
        with self._lock:
            total = sum(r["ms"] for r in self._faults["latency"]
                        if r["prefix"] is None or rel.startswith(r["prefix"]))
        return min(total, MAX_LATENCY_MS)

    # ------------------------------------------------------------------ request log API

    def requests(self, method=None, prefix=None):
        """Recorded requests (oldest first), optionally filtered by HTTP method and by a prefix of the
        path after /v1/. Each: {"seq","mono","wall","method","path","rel","query","raw_query",
        "headers" (lower-case names), "header_list","body","json","token","namespace",
        "x_vault_request","client","status","fault","latency_ms","duration_ms"}."""
        return self._entries(lambda e: self._match_entry(e, method, prefix))

    def count(self, method=None, prefix=None):
        return self._count(lambda e: self._match_entry(e, method, prefix))

    def wait_for_requests(self, n, method=None, prefix=None, timeout=5.0):
        """Wait (bounded) until count(method, prefix) >= n and those requests completed; bool."""
        return self._wait_done(n, lambda e: self._match_entry(e, method, prefix), timeout)

    def stats(self):
        """Connection-level counters: connections, tls_handshake_failures, dropped_accepts,
        dropped_requests, truncated_responses, open_connections, last_handshake_error."""
        with self._lock:
            d = dict(self._stats)
            d["last_handshake_error"] = self._last_handshake_error
        with self._conn_lock:
            d["open_connections"] = len(self._conns)
        return d

    @staticmethod
    def _match_entry(e, method, prefix):
        if method is not None and e["method"] != str(method).upper():
            return False
        p = _norm_prefix(prefix)
        if p is not None and (e["rel"] is None or not e["rel"].startswith(p)):
            return False
        return True

    def _note(self, key, detail=None):
        with self._lock:
            self._stats[key] += 1
            if detail is not None:
                self._last_handshake_error = detail

    def _make_entry(self, handler, path, raw_query):
        hdrs = handler.headers
        tok = hdrs.get("X-Vault-Token") or ""
        auth = hdrs.get("Authorization") or ""
        if not tok and auth[:7].lower() == "bearer ":
            tok = auth[7:].strip()
        return {
            "mono": time.monotonic(), "wall": time.time(), "method": handler.command,
            "path": path, "rel": path[4:] if path.startswith("/v1/") else None,
            "query": urllib.parse.parse_qs(raw_query, keep_blank_values=True), "raw_query": raw_query,
            "headers": {k.lower(): v for k, v in hdrs.items()},
            "header_list": [[k, v] for k, v in hdrs.items()],
            "body": "", "json": None, "token": tok or None,
            "namespace": hdrs.get("X-Vault-Namespace"), "x_vault_request": hdrs.get("X-Vault-Request"),
            "client": "%s:%s" % handler.client_address[:2], "status": None, "fault": None,
            "latency_ms": 0, "duration_ms": None, "done": False,
        }

    def _entry_body(self, entry, body):
        text = body.decode("utf-8", "replace")
        try:
            js = json.loads(body) if body.strip() else None
        except ValueError:
            js = None
        with self._lock:
            entry["body"] = text
            entry["json"] = js

    # ------------------------------------------------------------------ request processing

    def _process(self, method, rel, raw_query, headers, body, entry):
        query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        rule = self._take_fault("non_json", rel)
        if rule:
            entry["fault"] = "non_json"
            return _Resp(rule["status"], raw=NON_JSON_BODY, ctype="text/html; charset=utf-8")
        rule = self._take_fault("force", rel)
        if rule:
            entry["fault"] = "force"
            b = rule["body"]
            if b is None:
                return _Resp(rule["status"], {"errors": ["forced status %d" % rule["status"]]},
                             headers=rule["headers"])
            if isinstance(b, str):
                return _Resp(rule["status"], raw=b.encode(), ctype="text/plain; charset=utf-8",
                             headers=rule["headers"])
            return _Resp(rule["status"], b, headers=rule["headers"])
        rule = self._take_fault("oversize", rel)
        if rule:
            entry["fault"] = "oversize"
            return _Resp(200, raw=self._oversize_body(rule["size"]))
        if self._require_request_header and headers.get("X-Vault-Request") != "true":
            return _err(412, 'missing "X-Vault-Request" header')
        rule = self._take_fault("rate_limit", rel)
        if rule:
            entry["fault"] = "rate_limit"
            return _Resp(429, {"errors": ['request path "%s": rate limit quota exceeded' % rel]},
                         headers=[("Retry-After", str(rule["retry_after"]))])

        op = _op(method, query)
        with self._lock:
            self._reap_locked()
            ns_hdr = _norm_ns(headers.get("X-Vault-Namespace") or "")
            ns, p = self._resolve_ns_locked(ns_hdr, rel)
            if p == "sys/health":
                return self._health_locked(op, query)
            if p == "sys/seal-status":
                if op != "read":
                    return _err(405, "unsupported operation")
                return _Resp(200, self._seal_status_locked())
            if self._sealed:
                return _err(503, "Vault is sealed")
            try:
                data = _parse_body(op, body)
                if p.startswith("auth/") and p.endswith("/login"):
                    am = self._auth_mounts.get((ns, p[5:-5]))
                    if am is not None:
                        return self._login_locked(ns, am, op, data)
                tok = self._token_for_locked(headers, ns)
                if tok is None:
                    return _err(403, "permission denied")
                return self._route_locked(ns, ns_hdr, p, op, query, data, tok)
            except _BadRequest as e:
                return _err(400, str(e))

    def _oversize_body(self, size):
        with self._lock:
            cached = self._oversize_cache.get(size)
        if cached:
            return cached
        env = _env({"data": {"padding": ""}, "metadata": {
            "created_time": _rfc3339(self._wall()), "custom_metadata": None, "deletion_time": "",
            "destroyed": False, "version": 1}}, mount_type="kv")
        base = len(json.dumps(env).encode())
        env["data"]["data"]["padding"] = "A" * max(0, size - base)
        raw = json.dumps(env).encode()
        with self._lock:
            self._oversize_cache[size] = raw
        return raw

    def _resolve_ns_locked(self, ns, p):
        """Namespaces may also be given as leading path segments (/v1/team-a/secret/...)."""
        for _ in range(MAX_NS_DEPTH):
            seg, sep, rest = p.partition("/")
            cand = ns + seg + "/"
            if seg and sep and cand in self._namespaces:
                ns, p = cand, rest
                continue
            break
        return ns, p

    def _token_for_locked(self, headers, ns):
        tid = headers.get("X-Vault-Token") or ""
        if not tid:
            auth = headers.get("Authorization") or ""
            if auth[:7].lower() == "bearer ":
                tid = auth[7:].strip()
        if not tid:
            return None
        t = self._tokens.get(tid)
        if t is None:
            return None
        if t.expire_mono is not None and t.expire_mono <= self._now():
            self._drop_token_locked(tid, "expired", "expiry")
            return None
        if not ns.startswith(t.ns):
            return None
        return t

    @staticmethod
    def _remaining(expire, now):
        if expire is None:
            return 0
        return max(0, int(round(expire - now)))

    def _reap_locked(self):
        now = self._now()
        for tid in [k for k, t in self._tokens.items()
                    if t.expire_mono is not None and t.expire_mono <= now]:
            self._drop_token_locked(tid, "expired", "expiry")
        for lid in [k for k, le in self._leases.items() if le.expire_mono <= now]:
            self._revoke_lease_locked(lid, "expired", "expiry")

    def _drop_token_locked(self, tid, reason, via):
        t = self._tokens.pop(tid, None)
        if t is None:
            return
        self._token_events.append({"accessor": t.accessor, "event": reason, "via": via,
                                   "mono": time.monotonic(), "wall": time.time()})
        if self.revoke_leases_with_token:
            for lid in [k for k, le in self._leases.items() if le.token_id == tid]:
                self._revoke_lease_locked(lid, "token-" + reason, via)

    def _revoke_lease_locked(self, lid, reason, via):
        le = self._leases.pop(lid, None)
        if le is None:
            return False
        self._revocations.append({"lease_id": lid, "reason": reason, "via": via,
                                  "username": le.username, "mono": time.monotonic(),
                                  "wall": time.time()})
        return True

    @staticmethod
    def _calc_ttl(increment, backend_ttl, max_ttl, start, now):
        """Vault's framework.CalculateTTL for a renewal: returns (ttl, warnings)."""
        ttl = increment if increment > 0 else (backend_ttl if backend_ttl > 0 else SYSTEM_DEFAULT_TTL)
        max_valid = int(start + max_ttl - now)
        if max_valid <= 0:
            return 0, []
        warnings = []
        if ttl > max_valid:
            warnings.append('TTL of "%s" exceeded the effective max_ttl of "%s"; TTL value is capped '
                            'accordingly' % (_go_duration(ttl), _go_duration(max_valid)))
            ttl = max_valid
        return int(ttl), warnings

    # --- unauthenticated system endpoints

    def _health_locked(self, op, query):
        if op not in ("read", "head"):
            return _err(405, "unsupported operation")

        def code(name, default):
            v = query.get(name)
            if not v:
                return default
            try:
                c = int(v[-1])
            except ValueError:
                raise _BadRequest("bad code value %r" % v[-1]) from None
            return c

        def flag(name):
            v = query.get(name)
            return bool(v) and v[-1].lower() in ("", "1", "true")

        try:
            st = self._health_state
            if st == "uninit":
                status = code("uninitcode", 501)
            elif self._sealed:
                status = code("sealedcode", 503)
            elif st == "drsecondary":
                status = code("drsecondarycode", 472)
            elif st == "perfstandby":
                status = (code("activecode", 200) if flag("perfstandbyok")
                          else code("performancestandbycode", 473))
            elif st == "standby":
                status = code("activecode", 200) if flag("standbyok") else code("standbycode", 429)
            else:
                status = code("activecode", 200)
        except _BadRequest as e:
            return _err(400, str(e))
        body = {"initialized": st != "uninit", "sealed": self._sealed,
                "standby": st in ("standby", "perfstandby") or self._sealed,
                "performance_standby": st == "perfstandby",
                "replication_performance_mode": "disabled",
                "replication_dr_mode": "secondary" if st == "drsecondary" else "disabled",
                "server_time_utc": int(self._wall()), "version": VAULT_VERSION,
                "cluster_name": "vault-cluster-fake", "cluster_id": self.cluster_id}
        return _Resp(status, body)

    def _seal_status_locked(self):
        return {"type": "shamir", "initialized": self._health_state != "uninit",
                "sealed": self._sealed, "t": 1, "n": 1, "progress": 0, "nonce": "",
                "version": VAULT_VERSION, "build_date": "2024-01-01T00:00:00Z", "migration": False,
                "cluster_name": "vault-cluster-fake", "cluster_id": self.cluster_id,
                "recovery_seal": False, "storage_type": "inmem"}

    # --- auth

    def _auth_obj(self, t, ttl):
        return {"client_token": t.id, "accessor": t.accessor, "policies": list(t.policies),
                "token_policies": list(t.policies), "metadata": copy.deepcopy(t.meta),
                "lease_duration": ttl, "renewable": t.renewable, "entity_id": t.entity_id,
                "token_type": "service", "orphan": t.orphan, "mfa_requirement": None, "num_uses": 0}

    def _login_locked(self, ns, am, op, data):
        if op != "update":
            return _err(405, "unsupported operation")
        if am.type == "approle":
            rid = _str_field(data, "role_id")
            if not rid:
                return _err(400, "missing role_id")
            role = next((r for r in am.roles.values() if r.role_id == rid), None)
            if role is None:
                return _err(400, "invalid role or secret ID")
            sid = _str_field(data, "secret_id")
            if role.bind_secret_id:
                if not sid:
                    return _err(400, "missing secret_id")
                if sid not in role.secret_ids:
                    return _err(400, "invalid role or secret ID")
                left = role.secret_ids[sid]
                if left is not None:
                    if left <= 1:
                        del role.secret_ids[sid]
                    else:
                        role.secret_ids[sid] = left - 1
            meta = {"role_name": role.name}
            display = "approle"
        elif am.type == "kubernetes":
            name = _str_field(data, "role")
            if not name:
                return _err(400, "missing role")
            jwt = _str_field(data, "jwt")
            if not jwt:
                return _err(400, "missing jwt")
            role = am.roles.get(name)
            if role is None:
                return _err(400, 'invalid role name "%s"' % name)
            if jwt not in role.jwts:
                return _err(403, "permission denied")
            sa_uid = uuid.uuid5(uuid.NAMESPACE_URL, role.sa_namespace + "/" + role.sa_name)
            meta = {"role": role.name, "service_account_name": role.sa_name,
                    "service_account_namespace": role.sa_namespace,
                    "service_account_secret_name": "", "service_account_uid": str(sa_uid)}
            display = "%s-%s-%s" % (am.path.rstrip("/").replace("/", "-"), role.sa_namespace, role.sa_name)
        else:   # jwt
            name = _str_field(data, "role") or am.default_role
            if not name:
                return _err(400, "missing role")
            role = am.roles.get(name)
            if role is None:
                return _err(400, 'role "%s" could not be found' % name)
            jwt = _str_field(data, "jwt")
            if not jwt:
                return _err(400, "missing token")
            if jwt not in role.jwts:
                return _err(400, "error validating token: failed to verify signature: "
                                 "failed to verify id token signature")
            meta = {"role": role.name}
            display = "%s-%s" % (am.path.rstrip("/").replace("/", "-"), role.name)
        max_ttl = role.max_ttl or SYSTEM_MAX_TTL
        ttl = min(role.ttl or SYSTEM_DEFAULT_TTL, max_ttl)
        tid = "hvs." + _rand(91)
        t = _Token(tid, ns, list(role.policies), ttl, max_ttl, role.renewable, self._now(),
                   self._wall(), "auth/%slogin" % am.path, meta, display)
        t.role_ttl = role.ttl
        self._tokens[tid] = t
        return _Resp(200, _env(None, auth=self._auth_obj(t, ttl)))

    def _lookup_self_locked(self, t):
        now = self._now()
        exp = None if t.expire_mono is None else _rfc3339(self._wall() + (t.expire_mono - now))
        d = {"accessor": t.accessor, "creation_time": int(t.issue_wall), "creation_ttl": t.ttl,
             "display_name": t.display_name, "entity_id": t.entity_id, "expire_time": exp,
             "explicit_max_ttl": 0, "id": t.id, "issue_time": _rfc3339(t.issue_wall),
             "meta": copy.deepcopy(t.meta), "num_uses": 0, "orphan": t.orphan, "path": t.path,
             "policies": list(t.policies), "renewable": t.renewable,
             "ttl": self._remaining(t.expire_mono, now), "type": "service"}
        if t.last_renewal_wall is not None:
            d["last_renewal_time"] = int(t.last_renewal_wall)
            d["last_renewal"] = _rfc3339(t.last_renewal_wall)
        return _Resp(200, _env(d, mount_type="token"))

    def _renew_self_locked(self, t, data):
        inc = _dur_field(data, "increment")
        if not t.renewable or t.expire_mono is None:
            return _err(400, "lease is not renewable")
        now = self._now()
        ttl, warnings = self._calc_ttl(inc, getattr(t, "role_ttl", t.ttl), t.max_ttl, t.issue_mono, now)
        if ttl <= 0:
            return _err(400, "past the max TTL, cannot renew")
        t.expire_mono = now + ttl
        t.last_renewal_wall = self._wall()
        self._token_events.append({"accessor": t.accessor, "event": "renewed", "ttl": ttl,
                                   "requested": inc, "via": "auth/token/renew-self",
                                   "mono": time.monotonic(), "wall": time.time()})
        return _Resp(200, _env(None, auth=self._auth_obj(t, ttl), warnings=warnings, mount_type="token"))

    # --- routing (token already validated)

    def _route_locked(self, ns, ns_hdr, p, op, query, data, tok):
        if p == "auth/token/lookup-self":
            if op != "read":
                return _err(405, "unsupported operation")
            return self._lookup_self_locked(tok)
        if p == "auth/token/renew-self":
            if op != "update":
                return _err(405, "unsupported operation")
            return self._renew_self_locked(tok, data)
        if p == "auth/token/revoke-self":
            if op != "update":
                return _err(405, "unsupported operation")
            self._drop_token_locked(tok.id, "revoked", "auth/token/revoke-self")
            return _Resp(204)
        ui = "sys/internal/ui/mounts/"
        if p.startswith(ui):
            if op != "read":
                return _err(405, "unsupported operation")
            return self._ui_mount_locked(ns_hdr, ns, p[len(ui):])
        for base in ("sys/leases/renew", "sys/renew"):
            if p == base or p.startswith(base + "/"):
                if op != "update":
                    return _err(405, "unsupported operation")
                return self._lease_renew_locked(ns, p[len(base) + 1:], data, "/v1/" + base)
        for base in ("sys/leases/revoke", "sys/revoke"):
            if p == base or p.startswith(base + "/"):
                if op != "update":
                    return _err(405, "unsupported operation")
                lid = p[len(base) + 1:] or _str_field(data, "lease_id")
                if not lid:
                    return _err(400, "lease_id must be specified")
                le = self._leases.get(lid)
                if le is not None and le.ns == ns:
                    self._revoke_lease_locked(lid, "revoked", base)
                return _Resp(204)   # Vault: revoking an unknown lease is not an error
        if p == "sys/leases/lookup":
            if op != "update":
                return _err(405, "unsupported operation")
            return self._lease_lookup_locked(ns, _str_field(data, "lease_id"))
        m = self._match_mount_locked(ns, p)
        if m is not None:
            sub = p[len(m.path):] if p.startswith(m.path) else ""
            if m.type == "kv" and m.kv_version == "2":
                return self._kv2_locked_route(m, sub, op, query)
            if m.type == "kv":
                return self._kv1_locked_route(m, sub, op)
            if m.type == "database":
                if sub.startswith("creds/") and len(sub) > 6 and "/" not in sub[6:]:
                    if op != "read":
                        return _err(405, "unsupported operation")
                    return self._db_creds_locked(ns, m, sub[6:], tok)
                return _err(404, "unsupported path")
            return _err(404, "unsupported path")
        return _err(404, 'no handler for route "%s". route entry not found.' % p)

    def _match_mount_locked(self, ns, p):
        best = None
        for (mns, mp), m in self._mounts.items():
            if mns == ns and (p.startswith(mp) or p + "/" == mp):
                if best is None or len(mp) > len(best.path):
                    best = m
        return best

    # --- sys/internal/ui/mounts

    def _ui_mount_locked(self, ns_hdr, ns, target):
        sanitized = target.lstrip("/")
        if not sanitized.endswith("/"):
            sanitized += "/"
        denied = _err(403, "preflight capability check returned 403, please ensure client's policies "
                           'grant access to path "%s"' % sanitized)
        if target.strip("/") == "":
            return _err(400, "path not set")
        ns2, t2 = self._resolve_ns_locked(ns, sanitized)
        rel_ns = ns2[len(ns_hdr):]
        if t2.startswith("auth/"):
            rest = t2[5:]
            best = None
            for (mns, mp), am in self._auth_mounts.items():
                if mns == ns2 and rest.startswith(mp) and (best is None or len(mp) > len(best.path)):
                    best = am
            if best is None and rest.startswith("token/"):
                return _Resp(200, _env(self._mount_info("auth/token/", "token", None, "auth_token",
                                                        "", rel_ns)))
            if best is None:
                return denied
            return _Resp(200, _env(self._mount_info("auth/" + best.path, best.type, None,
                                                    best.accessor, best.uuid, rel_ns)))
        m = self._match_mount_locked(ns2, t2)
        if m is None:
            return denied
        return _Resp(200, _env(self._mount_info(m.path, m.type, m.options, m.accessor, m.uuid, rel_ns,
                                                m.description)))

    @staticmethod
    def _mount_info(path, type_, options, accessor, uid, rel_ns, description=""):
        return {"accessor": accessor, "config": {"default_lease_ttl": 0, "force_no_cache": False,
                                                 "max_lease_ttl": 0},
                "description": description, "external_entropy_access": False, "local": False,
                "options": copy.deepcopy(options), "path": rel_ns + path, "plugin_version": "",
                "running_plugin_version": "v%s+builtin.vault" % VAULT_VERSION, "running_sha256": "",
                "seal_wrap": False, "type": type_, "uuid": uid}

    # --- KV

    def _kv1_locked_route(self, m, key, op):
        if op != "read":
            return _err(405, "unsupported operation")
        v = m.kv.get(key)
        if v is None or key == "":
            return _err(404)
        ttl = SYSTEM_DEFAULT_TTL
        if "ttl" in v:
            try:
                ttl = parse_duration(v["ttl"])
            except ValueError:
                pass
        return _Resp(200, _env(v, lease_duration=ttl, mount_type="kv"))

    def _kv2_locked_route(self, m, sub, op, query):
        if sub.startswith("data/"):
            if op != "read":
                return _err(405, "unsupported operation")
            key = sub[5:]
            ver_param = 0
            if query.get("version"):
                raw = query["version"][-1]
                try:
                    ver_param = int(raw) if raw != "" else 0
                except ValueError:
                    return _err(400, 'error converting input %s for field "version": cannot parse '
                                     "'%s' as int" % (raw, raw))
            s = m.kv.get(key)
            if s is None:
                return _err(404)
            ver = ver_param if ver_param > 0 else s.current
            v = s.versions.get(ver)
            if v is None:
                return _err(404)
            meta = {"created_time": v["created"], "custom_metadata": copy.deepcopy(s.custom_metadata),
                    "deletion_time": v["deletion_time"], "destroyed": v["destroyed"], "version": ver}
            if v["deletion_time"] or v["destroyed"]:
                # Vault answers 404 with the metadata and data: null (RespondWithStatusCode).
                return _Resp(404, _env({"data": None, "metadata": meta}, mount_type="kv"))
            return _Resp(200, _env({"data": v["data"], "metadata": meta}, mount_type="kv"))
        if sub.startswith("metadata/"):
            if op != "read":
                return _err(405, "unsupported operation")
            s = m.kv.get(sub[9:])
            if s is None:
                return _err(404)
            versions = {str(n): {"created_time": v["created"], "deletion_time": v["deletion_time"],
                                 "destroyed": v["destroyed"]} for n, v in s.versions.items()}
            return _Resp(200, _env({
                "cas_required": False, "created_time": s.created, "current_version": s.current,
                "custom_metadata": copy.deepcopy(s.custom_metadata), "delete_version_after": "0s",
                "max_versions": 0, "oldest_version": min(s.versions) if s.versions else 0,
                "updated_time": s.updated, "versions": versions}, mount_type="kv"))
        return _err(404, KV2_INVALID_PATH)

    # --- dynamic secrets and leases

    def _db_creds_locked(self, ns, m, role_name, tok):
        role = m.roles.get(role_name)
        if role is None:
            return _err(400, "unknown role: %s" % role_name)
        wall = self._wall()
        username = "v-%s-%s-%s-%d" % (tok.display_name[:10], role_name[:10], _rand(20), int(wall))
        password = "A1a-" + _rand(20)
        lid = "%screds/%s/%s" % (m.path, role_name, _rand(24))
        if ns:
            lid += "." + self._ns_ids.get(ns, "ns")
        max_ttl = role.max_ttl or SYSTEM_MAX_TTL
        ttl = min(role.ttl or SYSTEM_DEFAULT_TTL, max_ttl)
        self._leases[lid] = _Lease(lid, ns, m.path, role_name, role.ttl or SYSTEM_DEFAULT_TTL, max_ttl,
                                   role.renewable, tok.id, self._now(), wall, username)
        return _Resp(200, _env({"username": username, "password": password}, lease_id=lid,
                               renewable=role.renewable, lease_duration=ttl, mount_type="database"))

    def _lease_renew_locked(self, ns, url_lid, data, via):
        lid = url_lid or _str_field(data, "lease_id")
        if not lid:
            return _err(400, "lease_id must be specified")
        inc = _dur_field(data, "increment")
        le = self._leases.get(lid)
        if le is None or le.ns != ns:
            return _err(400, "lease not found")
        if not le.renewable:
            return _err(400, "lease is not renewable")
        now = self._now()
        ttl, warnings = self._calc_ttl(inc, le.ttl, le.max_ttl, le.issue_mono, now)
        if ttl <= 0:
            return _err(400, "past the max TTL, cannot renew")
        le.expire_mono = now + ttl
        le.last_renewal_wall = self._wall()
        self._renewals.append({"lease_id": lid, "requested": inc, "granted": ttl, "via": via,
                               "mono": time.monotonic(), "wall": time.time()})
        return _Resp(200, _env(None, lease_id=lid, renewable=True, lease_duration=ttl,
                               warnings=warnings))

    def _lease_lookup_locked(self, ns, lid):
        if not lid:
            return _err(400, "lease_id must be specified")
        le = self._leases.get(lid)
        if le is None or le.ns != ns:
            return _err(400, "invalid lease")
        now = self._now()
        return _Resp(200, _env({
            "id": le.id, "issue_time": _rfc3339(le.issue_wall),
            "expire_time": _rfc3339(self._wall() + (le.expire_mono - now)),
            "last_renewal": _rfc3339(le.last_renewal_wall) if le.last_renewal_wall else None,
            "renewable": le.renewable, "ttl": self._remaining(le.expire_mono, now)}))


# --------------------------------------------------------------------------------------------------
# script entry point


def main(argv=None):
    ap = argparse.ArgumentParser(description="Strict fake HashiCorp Vault for runsecrets tests.")
    fakeserver.add_server_args(ap)
    ap.add_argument("--state", help="JSON state file applied before listening (see apply_state)")
    ap.add_argument("--require-client-cert", action="store_true")
    ap.add_argument("--require-request-header", action="store_true")
    ap.add_argument("--root-token", help="fixed root token (never printed)")
    return fakeserver.run_script(ap, argv, lambda args: FakeVault(
        require_client_cert=args.require_client_cert, require_request_header=args.require_request_header,
        root_token=args.root_token, **fakeserver.server_kwargs(args)))


if __name__ == "__main__":
    sys.exit(main())
