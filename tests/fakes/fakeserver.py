"""fakeserver.py - the server machinery the strict cloud fakes (vault.py, azure_fake.py, ...) share.

What is the same in every such fake lives here, once; each fake keeps only its protocol:

    make_ca_and_cert / ensure_certs  the test PKI (CA, server leaf, client leaves, an unrelated CA)
    FakeServer                       a threaded HTTP(S) server on loopback with connection tracking; start/stop
                                     (idempotent: cuts open connections, joins every thread, removes a temporary
                                     PKI), with-statement, port/url/control_url/ca_file, the fake clock offset,
                                     the request log (sequence numbers, completion, bounded waits) and the control
                                     endpoint's method dispatch
    FakeHandler                      the request handler: TLS handshake in the handler thread (bounded), request
                                     bodies (Content-Length or chunked, bounded), /__control/<method> routing
    add_server_args / run_script     script mode: one JSON line once listening, exit 0 on SIGTERM/SIGINT
    Resp / JsonHandler / CloudFake   what the bearer-token cloud fakes (azure_fake.py, gcp_fake.py) add on top:
                                     a response object, JSON answers with the delay fault and the fake-bug 500,
                                     status/delay fault rules, token expiry, the request log's common fields,
                                     filters and redaction

A fake subclasses FakeServer (NAME, CONTROL_METHODS, Handler, _new_entry's fields, its own log filters) and
FakeHandler (server_version, Resp, _write, _serve). The control endpoint is the same everywhere: POST
/__control/<method> with a JSON object of keyword arguments calls the fake's method of that name (only those in
CONTROL_METHODS) and answers {"result": ...}; GET /__control/<method>?k=v does the same with string arguments;
GET /__control/ lists the methods; 400 {"error"} on bad arguments, 404 for an unknown method. Control requests
are never recorded and never meet a fault, whatever the fake injects.

Python 3.11 standard library only; `cryptography` is used only by make_ca_and_cert.
"""

from __future__ import annotations

import base64
import collections
import copy
import datetime
import http.server
import ipaddress
import json
import os
import shutil
import signal
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

TLS_FILES = ("ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "other-ca.pem",
             "other-ca-key.pem", "client.pem", "client-key.pem", "other-client.pem",
             "other-client-key.pem")

CONTROL_PREFIX = "/__control"

# --------------------------------------------------------------------------------------------------
# control arguments: a GET /__control/<method>?k=v gives every argument as a string


def arg_int(v, name):
    """An integer argument: an int or a numeric string; a bool or anything else -> ValueError."""
    if isinstance(v, bool):
        raise ValueError("%s must be an integer" % name)
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ValueError("%s must be an integer, got %r" % (name, v)) from None


def arg_bool(v, blank=False):
    """A boolean argument: strings "1", "true", "yes", "on" (any case) are true, and "" too when blank=True
    (a bare ?flag); anything else by its truth value."""
    if isinstance(v, str):
        s = v.strip().lower()
        return s in ("1", "true", "yes", "on") or (blank and s == "")
    return bool(v)


def int_or_none(v, name):
    """None, or arg_int(v, name)."""
    return None if v is None else arg_int(v, name)


def b64url(data):
    """base64url without padding (JWT segments)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------------------------------
# certificates


def make_ca_and_cert(directory, hostnames=("localhost", "127.0.0.1", "::1"), client=True, days=7):
    """Generate test PKI into `directory` and return {name: path}.

    ca.pem/ca-key.pem          the CA the fake's server certificate chains to
    server.pem/server-key.pem  server leaf (serverAuth), SANs = hostnames (IPs become iPAddress SANs)
    other-ca.pem/-key.pem      an unrelated CA (wrong-CA tests)
    client.pem/client-key.pem  client leaf (clientAuth) signed by ca.pem (mTLS)       [client=True]
    other-client.pem/-key.pem  client leaf signed by other-ca.pem (wrong client cert) [client=True]
    Keys are unencrypted PKCS#8 PEM, mode 0600. Existing files are overwritten."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before = now - datetime.timedelta(hours=1)
    not_after = now + datetime.timedelta(days=days)
    paths = {}

    def write(name, data, private=False):
        path = os.path.join(directory, name)
        tmp = path + ".tmp.%d" % os.getpid()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        paths[name] = path

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "runsecrets tests"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key_pem(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    def cert_pem(c):
        return c.public_bytes(serialization.Encoding.PEM)

    def ku(**on):
        fields = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                      data_encipherment=False, key_agreement=False, key_cert_sign=False,
                      crl_sign=False, encipher_only=False, decipher_only=False)
        fields.update(on)
        return x509.KeyUsage(**fields)

    def make_ca(cn):
        k = ec.generate_private_key(ec.SECP256R1())
        n = name(cn)
        c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(not_before).not_valid_after(not_after)
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
             .add_extension(ku(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
             .sign(k, hashes.SHA256()))
        return k, c

    def make_leaf(ca_key, ca_cert, cn, eku, sans):
        k = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
             .public_key(k.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(not_before).not_valid_after(not_after)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(ku(digital_signature=True), critical=True)
             .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return k, b.sign(ca_key, hashes.SHA256())

    sans = []
    for h in hostnames:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))

    # The CA's name is kept as it was when only the Vault fake had a PKI: clients and tests see it.
    ca_key, ca_cert = make_ca("runsecrets fake vault CA")
    other_key, other_cert = make_ca("runsecrets unrelated CA")
    srv_key, srv_cert = make_leaf(ca_key, ca_cert, hostnames[0] if hostnames else "localhost",
                                  ExtendedKeyUsageOID.SERVER_AUTH, sans)
    write("ca.pem", cert_pem(ca_cert))
    write("ca-key.pem", key_pem(ca_key), private=True)
    write("other-ca.pem", cert_pem(other_cert))
    write("other-ca-key.pem", key_pem(other_key), private=True)
    write("server.pem", cert_pem(srv_cert))
    write("server-key.pem", key_pem(srv_key), private=True)
    if client:
        ck, cc = make_leaf(ca_key, ca_cert, "runsecrets-client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
        write("client.pem", cert_pem(cc))
        write("client-key.pem", key_pem(ck), private=True)
        ok, oc = make_leaf(other_key, other_cert, "unrelated-client", ExtendedKeyUsageOID.CLIENT_AUTH, [])
        write("other-client.pem", cert_pem(oc))
        write("other-client-key.pem", key_pem(ok), private=True)
    return paths


def ensure_certs(directory, hostnames=("localhost", "127.0.0.1", "::1")):
    """Reuse the PKI in `directory` if complete, else generate it. Returns {name: path}."""
    paths = {n: os.path.join(directory, n) for n in TLS_FILES}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    make_ca_and_cert(directory, hostnames)
    return paths


# --------------------------------------------------------------------------------------------------
# HTTP plumbing


class _TooLarge(Exception):
    """A request body over the fake's limit. Its repr() is part of the control endpoint's 400 text, so
    the name stays what it was in each fake before they shared this module."""


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, addr, handler, fake, ssl_ctx):
        self.fake = fake
        self.ssl_ctx = ssl_ctx
        self.handler_threads = []
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, handler)

    def server_bind(self):
        # HTTPServer.server_bind() calls getfqdn(), a DNS lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port

    def get_request(self):
        sock, addr = self.socket.accept()
        self.fake._accepted()
        try:   # headers and body are separate writes: without this, Nagle + delayed ACK add ~40 ms
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.ssl_ctx is not None:
            # The handshake runs in the handler thread (with a timeout), never in the accept loop.
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def verify_request(self, request, client_address):
        return self.fake._admit()

    def process_request(self, request, client_address):
        # Our own thread list (not ThreadingMixIn's) so stop() can join them after cutting their sockets.
        t = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                             name=self.fake.NAME + "-conn", daemon=True)
        with self.fake._conn_lock:
            self.handler_threads = [x for x in self.handler_threads if x.is_alive()]
            self.handler_threads.append(t)
        t.start()

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], OSError):
            return
        sys.stderr.write("%s: error handling a connection:\n" % self.fake.NAME)
        traceback.print_exc(file=sys.stderr)


class FakeHandler(http.server.BaseHTTPRequestHandler):
    """Base handler. A fake's subclass sets server_version and Resp (its response class: Resp(status, obj)
    answers JSON) and implements _write(resp) and _serve(path, raw_query, entry, t0) for every request that
    is not a control request; `entry` is already in the log (FakeServer._new_entry)."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    Resp = None

    def setup(self):
        fake = self.server.fake
        self.timeout = fake.conn_timeout
        self._dead = not fake._conn_opened(self.request)
        if not self._dead and isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.settimeout(fake.handshake_timeout)
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                self._dead = True
                fake._handshake_failed(e)
        super().setup()

    def handle(self):
        if self._dead:
            self.close_connection = True
            return
        try:
            super().handle()
        except (OSError, ssl.SSLError):
            self.close_connection = True

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._conn_closed(self.request)

    def log_message(self, format, *args):  # noqa: A002 - keep stdout/stderr clean, never log tokens
        pass

    def do_GET(self):
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self, limit):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:   # each iteration consumes >= 1 byte of a body bounded by `limit`
                line = self.rfile.readline(1026)
                if not line.endswith(b"\n"):
                    raise ValueError("bad chunk header")
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    for _ in range(64):
                        if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                            break
                    return bytes(out)
                if len(out) + size > limit:
                    raise _TooLarge()
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise ValueError("short chunk")
                out += chunk
                self.rfile.readline(3)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl)
        except ValueError:
            raise ValueError("bad Content-Length") from None
        if n < 0:
            raise ValueError("bad Content-Length")
        if n > limit:
            raise _TooLarge()
        data = self.rfile.read(n)
        if len(data) != n:
            raise ValueError("short body")
        return data

    def _read_body_or(self, limit, too_large, bad):
        """(body, None), or (None, too_large()) / (None, bad(reason)) - the fake's own refusals - with the
        connection marked to close (what is left of the request cannot be read reliably)."""
        try:
            return self._read_body(limit), None
        except _TooLarge:
            self.close_connection = True
            return None, too_large()
        except ValueError as e:
            self.close_connection = True
            return None, bad(str(e))

    def _dispatch(self):
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            # Before the log and the faults: a test can always reach and steer the fake.
            return self._control(path[len(CONTROL_PREFIX):].strip("/"), split.query)
        t0 = time.monotonic()
        entry = self.server.fake._new_entry(self, path, split.query)
        return self._serve(path, split.query, entry, t0)

    def _control(self, name, query):
        fake = self.server.fake
        try:
            body = self._read_body(fake.max_request_bytes)
        except (_TooLarge, ValueError) as e:
            self.close_connection = True
            return self._write(self.Resp(400, {"error": "bad control request: %r" % e}))
        status, obj = fake._control(name, query, body)
        self._write(self.Resp(status, obj))

    def _send(self, status, headers, body):
        """Status line, `headers` (pairs, in order), "Connection: close" when this is the connection's last
        answer, then `body` (not for HEAD)."""
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _write(self, resp):
        raise NotImplementedError

    def _serve(self, path, raw_query, entry, t0):
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------
# the fake's server side


class FakeServer:
    """What every fake server is: bound on start(), stopped for good by stop(), usable in a with-statement;
    thread-safe. A subclass sets NAME (thread names, temp PKI prefix, error messages), CONTROL_METHODS and
    Handler, and implements _make_entry(handler, path, raw_query) -> the log entry dict (without "seq"; it
    must have "status", "duration_ms" and "done": False, and "fault" if _finish_entry is given one)."""

    NAME = "fakeserver"
    CONTROL_METHODS = frozenset()
    Handler = FakeHandler

    def __init__(self, tls_dir=None, *, tls=True, host="127.0.0.1", port=0,
                 hostnames=("localhost", "127.0.0.1", "::1"), max_request_bytes=1024 * 1024,
                 conn_timeout=30.0, handshake_timeout=5.0, max_log_entries=100_000):
        self.tls = bool(tls)
        self.host = host
        self._want_port = int(port)
        self.max_request_bytes = int(max_request_bytes)
        self.conn_timeout = float(conn_timeout)
        self.handshake_timeout = float(handshake_timeout)
        self._tmp_tls_dir = None
        self.tls_files = {}
        if self.tls:
            if tls_dir is None:
                tls_dir = self._tmp_tls_dir = tempfile.mkdtemp(prefix=self.NAME + "-tls-")
            self.tls_files = ensure_certs(tls_dir, tuple(hostnames))
        self.tls_dir = tls_dir

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._conn_lock = threading.Lock()
        self._conns = set()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None
        self._offset = 0.0
        self._log = collections.deque(maxlen=max_log_entries)
        self._seq = 0

    # ------------------------------------------------------------------ lifecycle

    def _server_ssl_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.tls_files["server.pem"], self.tls_files["server-key.pem"])
        ctx.set_alpn_protocols(["http/1.1"])   # no h2: clients must fall back to HTTP/1.1
        return ctx

    def start(self):
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("already started")
        ctx = self._server_ssl_context() if self.tls else None
        self._stopping.clear()
        self._server = _Server((self.host, self._want_port), self.Handler, self, ctx)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.NAME + "-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving, cut open connections, join all server threads. Idempotent."""
        srv = self._server
        if srv is None:
            return
        self._stopping.set()
        srv.shutdown()
        with self._conn_lock:
            conns = list(self._conns)
            threads = list(srv.handler_threads)
        for c in conns:
            try:
                socket.socket.shutdown(c, socket.SHUT_RDWR)
            except OSError:
                pass
        srv.server_close()
        self._thread.join(timeout=10)
        for t in threads:
            t.join(timeout=5)
        self._server = None
        self._thread = None
        if self._tmp_tls_dir:
            shutil.rmtree(self._tmp_tls_dir, ignore_errors=True)
            self._tmp_tls_dir = None

    def __enter__(self):
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self._server.server_address[1] if self._server else None

    @property
    def url(self):
        if not self._server:
            return None
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % ("https" if self.tls else "http", host, self.port)

    @property
    def control_url(self):
        return self.url + CONTROL_PREFIX if self._server else None

    @property
    def ca_file(self):
        return self.tls_files.get("ca.pem")

    def ssl_context(self, cafile=None):
        """A client SSLContext trusting ca.pem (or `cafile`)."""
        return ssl.create_default_context(cafile=cafile or self.tls_files["ca.pem"])

    def script_info(self):
        """What script mode prints once listening (never a token or a secret)."""
        return {"url": self.url, "port": self.port, "control": self.control_url, "ca": self.ca_file,
                "tls": self.tls, "pid": os.getpid()}

    # ------------------------------------------------------------------ connection hooks

    def _accepted(self):
        """A connection was accepted (accept loop)."""

    def _admit(self):
        """False: close the accepted connection at once (accept loop)."""
        return True

    def _handshake_failed(self, err):
        """A TLS handshake failed or timed out (handler thread)."""

    def _conn_opened(self, sock):
        with self._conn_lock:
            if self._stopping.is_set():
                return False
            self._conns.add(sock)
            return True

    def _conn_closed(self, sock):
        with self._conn_lock:
            self._conns.discard(sock)

    # ------------------------------------------------------------------ clock

    def _wall(self):
        return time.time() + self._offset

    def _time_advanced_locked(self):
        """advance_time() moved the clock (under _lock): expire what is due."""

    def advance_time(self, seconds):
        """Move the fake's clock forward: what the fake expires by its clock expires without sleeping."""
        s = float(seconds)
        if s < 0:
            raise ValueError("cannot go back in time")
        with self._lock:
            self._offset += s
            self._time_advanced_locked()
            return self._offset

    # ------------------------------------------------------------------ request log

    def _make_entry(self, handler, path, raw_query):
        raise NotImplementedError

    def _new_entry(self, handler, path, raw_query):
        entry = self._make_entry(handler, path, raw_query)
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._log.append(entry)
        return entry

    def _finish_entry(self, entry, status, t0, fault=None):
        """The request is answered (or given up): wakes wait_for_requests."""
        with self._cond:
            entry["status"] = status
            if fault:
                entry["fault"] = fault
            entry["duration_ms"] = (time.monotonic() - t0) * 1000.0
            entry["done"] = True
            self._cond.notify_all()

    def _entries(self, match):
        with self._lock:
            return [copy.deepcopy(e) for e in self._log if match(e)]

    def _count(self, match):
        with self._lock:
            return sum(1 for e in self._log if match(e))

    def _wait_done(self, n, match, timeout):
        """Wait (bounded) until at least n matching requests completed; bool."""
        deadline = time.monotonic() + float(timeout)
        with self._cond:
            while True:
                done = sum(1 for e in self._log if e["done"] and match(e))
                if done >= n:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.25))

    def clear_requests(self):
        with self._lock:
            self._log.clear()

    # ------------------------------------------------------------------ control endpoint and state

    def _control(self, name, query, body):
        if name in ("", "help"):
            return 200, {"methods": sorted(self.CONTROL_METHODS)}
        if name not in self.CONTROL_METHODS:
            return 404, {"error": "unknown control method %r" % name}
        try:
            if body.strip():
                kwargs = json.loads(body)
                if not isinstance(kwargs, dict):
                    raise ValueError("control body must be a JSON object of keyword arguments")
            else:
                kwargs = {k: v[-1] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
            result = getattr(self, name)(**kwargs)
            json.dumps(result)
        except (TypeError, ValueError, KeyError) as e:
            return 400, {"error": "%s: %s" % (type(e).__name__, e)}
        return 200, {"result": result}

    def _apply_calls(self, calls):
        """A state document's calls: [{"method": name, "args": {...}}, ...], limited to CONTROL_METHODS."""
        if not isinstance(calls, list):
            raise ValueError("state calls must be a list")
        results = []
        for c in calls:
            name = c.get("method")
            if name not in self.CONTROL_METHODS:
                raise ValueError("state: unknown method %r" % name)
            results.append(getattr(self, name)(**(c.get("args") or {})))
        return results



# --------------------------------------------------------------------------------------------------
# the bearer-token cloud fakes (azure_fake.py, gcp_fake.py): what their protocols have in common


class Resp:
    """An answer: `obj` as JSON, or `raw` bytes of `ctype`; `error` is the error code kept in the log. A fake
    subclasses it to set JSON_CT (its service's exact JSON content type)."""

    __slots__ = ("status", "obj", "raw", "ctype", "headers", "error")
    JSON_CT = "application/json"

    def __init__(self, status, obj=None, raw=None, ctype=None, headers=None, error=None):
        self.status = status
        self.obj = obj
        self.raw = raw
        self.ctype = ctype or self.JSON_CT
        self.headers = headers or []
        self.error = error            # the error code/status, for the log


class JsonHandler(FakeHandler):
    """A handler answering Resp objects: the body read (bounded), the delay fault, the fake's _process, the
    log entry completed before the answer is written. A fake's subclass sets Resp and the four answers it
    gives in its own service's shape: _too_large(fake), _bad_body(reason), _no_endpoint(path),
    _internal_error(exc)."""

    def _json_body(self, obj):
        return json.dumps(obj).encode()

    def _write(self, resp):
        if resp.raw is not None:
            body = resp.raw
        elif resp.obj is None:
            body = b""
        else:
            body = self._json_body(resp.obj)
        ctype = [("Content-Type", resp.ctype)] if body else []
        self._send(resp.status, resp.headers + ctype + [("Content-Length", str(len(body)))], body)

    def _too_large(self, fake):
        raise NotImplementedError

    def _bad_body(self, reason):
        raise NotImplementedError

    def _no_endpoint(self, path):
        raise NotImplementedError

    def _internal_error(self, exc):
        raise NotImplementedError

    def _serve(self, path, raw_query, entry, t0):
        fake = self.server.fake
        try:
            body, resp = self._read_body_or(fake.max_request_bytes, lambda: self._too_large(fake), self._bad_body)
            if resp is None:
                fake._entry_body(entry, body)
                resp = self._answer(fake, entry, path, raw_query, body)
            if resp is None:           # stopping while delayed: no answer at all
                self.close_connection = True
                return fake._finish_entry(entry, None, t0)
            if resp.error:
                entry["error"] = resp.error
            # The entry is complete before the client can see the answer: a test reading the log right
            # after its request returned finds it there, with its status.
            fake._finish_entry(entry, resp.status, t0)
            self._write(resp)
        except OSError:
            self.close_connection = True
            with fake._lock:
                entry["fault"] = entry.get("fault") or "client-io-error"
            if not entry["done"]:
                fake._finish_entry(entry, None, t0)

    def _answer(self, fake, entry, path, raw_query, body):
        endpoint = entry["endpoint"]
        if endpoint is None:
            return self._no_endpoint(path)
        delay = fake._take_fault("delay", endpoint, entry.get("secret"))
        if delay:
            entry["fault"] = "delay"
            entry["delay_s"] = delay["seconds"]
            if fake._stopping.wait(delay["seconds"]):
                entry["fault"] = "stopping"
                return None
        try:
            return fake._process(endpoint, self.command, path, raw_query, self.headers, body, entry)
        except Exception as e:   # a bug in the fake: say so loudly, answer 500
            traceback.print_exc(file=sys.stderr)
            return self._internal_error(e)


class CloudFake(FakeServer):
    """A FakeServer for a service reached with bearer tokens the fake itself issues, told apart by endpoint.

    A subclass sets ENDPOINTS (the names _classify gives paths), Handler (a JsonHandler), and implements
    _classify(path) -> endpoint or None, _entry_fields(path, endpoint) -> its own log fields (at least
    "secret"), _route(...) (a request no status fault took) and _default_fault_response(endpoint, status,
    headers). It keeps self._tokens {value: object with .identity, .forced_expired} and self.token_ttl.
    SECRET_CASEFOLD: secret names compare case-insensitively in fault rules (Key Vault's do)."""

    ENDPOINTS = ()
    MAX_DELAY_S = 60.0
    SECRET_CASEFOLD = False
    SENSITIVE_FORM = ()           # form fields blanked by requests(redact=True)
    REDACT_HEADERS = ("authorization",)

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._faults = []
        self._tokens = {}

    # ------------------------------------------------------------------ tokens

    def set_token_ttl(self, seconds):
        """Lifetime of the tokens issued next (same as assigning token_ttl)."""
        ttl = int_or_none(seconds, "seconds")
        if ttl is None or ttl < 1:
            raise ValueError("token ttl must be >= 1")
        self.token_ttl = ttl

    def expire_tokens(self, identity=None):
        """Make every token issued so far (or `identity`'s) expired now: the service then answers its 401 for
        an expired token. Returns how many."""
        with self._lock:
            n = 0
            for t in self._tokens.values():
                if identity is None or t.identity == identity:
                    t.forced_expired = True
                    n += 1
            return n

    # ------------------------------------------------------------------ state file

    def _apply_state_keys(self, state):
        """A state document's own keys besides "token_ttl" and "calls" (under no lock)."""

    def apply_state(self, state):
        """Apply {"token_ttl"?: int, "calls": [{"method", "args"}], ...the fake's own keys} (or a bare list of
        calls); methods are limited to CONTROL_METHODS (their results are returned in order)."""
        calls = state
        if isinstance(state, dict):
            self._apply_state_keys(state)
            if "token_ttl" in state:
                self.set_token_ttl(state["token_ttl"])
            calls = state.get("calls", [])
        return self._apply_calls(calls)

    # ------------------------------------------------------------------ faults

    @classmethod
    def _check_endpoint(cls, endpoint):
        if endpoint not in cls.ENDPOINTS:
            raise ValueError("endpoint must be one of %s" % ", ".join(cls.ENDPOINTS))

    def _secret_key(self, secret):
        if secret is None:
            return None
        return str(secret).lower() if self.SECRET_CASEFOLD else str(secret)

    def _add_fault(self, rule):
        if rule["remaining"] is not None and rule["remaining"] < 1:
            raise ValueError("count must be >= 1 or None")
        with self._lock:
            self._faults.append(rule)

    def fault_status(self, endpoint, status, retry_after=None, count=1, body=None, secret=None):
        """The next `count` requests to `endpoint` (None: until clear_faults; only those for `secret` if given)
        get `status` without being processed, with Retry-After if given. body: dict -> JSON, str -> text/plain;
        default: the endpoint's own error shape (_default_fault_response)."""
        self._check_endpoint(endpoint)
        status = int_or_none(status, "status")
        if status is None or not 100 <= status <= 599:
            raise ValueError("bad status")
        self._add_fault({"kind": "status", "endpoint": endpoint, "status": status,
                         "retry_after": None if retry_after is None else str(retry_after), "body": body,
                         "remaining": int_or_none(count, "count"), "secret": self._secret_key(secret)})

    def fault_delay(self, endpoint, seconds, count=None, secret=None):
        """Delay requests to `endpoint` by `seconds` (capped at MAX_DELAY_S) before handling them normally;
        `count` requests, or until clear_faults (None). Only the first matching rule applies."""
        self._check_endpoint(endpoint)
        s = float(seconds)
        if s < 0:
            raise ValueError("negative delay")
        self._add_fault({"kind": "delay", "endpoint": endpoint, "seconds": min(s, self.MAX_DELAY_S),
                         "remaining": int_or_none(count, "count"), "secret": self._secret_key(secret)})

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def faults(self):
        with self._lock:
            return copy.deepcopy(self._faults)

    def _take_fault(self, kind, endpoint, secret):
        """Consume one use of the first matching rule; returns a copy or None."""
        key = self._secret_key(secret or "")
        with self._lock:
            for r in self._faults:
                if r["kind"] != kind or r["endpoint"] != endpoint:
                    continue
                if r["secret"] is not None and r["secret"] != key:
                    continue
                if r["remaining"] is not None:
                    r["remaining"] -= 1
                    if r["remaining"] <= 0:
                        self._faults.remove(r)
                return dict(r)
            return None

    # ------------------------------------------------------------------ request log

    def requests(self, endpoint=None, redact=False):
        """Recorded requests (oldest first, control requests never), optionally of one endpoint (ENDPOINTS).
        Each: {"seq", "time" (epoch s), "mono", "method", "path", "query" (dict of lists), "raw_query",
        "endpoint", "headers" (lower-case names), "body", "form", "token" (the bearer token sent), "identity",
        "issued_token", "secret", "version", "status", "error", "fault", "delay_s", "duration_ms", "client"}
        plus the fake's own fields (_entry_fields). redact=True blanks tokens, bodies, SENSITIVE_FORM fields
        and REDACT_HEADERS (safe to print)."""
        if endpoint is not None:
            self._check_endpoint(endpoint)
        out = self._entries(lambda e: endpoint is None or e["endpoint"] == endpoint)
        return [self._redacted(e) for e in out] if redact else out

    def _redacted(self, e):
        if e["token"]:
            e["token"] = "<redacted>"
        if e["issued_token"]:
            e["issued_token"] = "<redacted>"
        if e["body"]:
            e["body"] = "<redacted %d bytes>" % len(e["body"])
        if e["form"]:
            e["form"] = {k: ("<redacted>" if k in self.SENSITIVE_FORM else v) for k, v in e["form"].items()}
        for h in self.REDACT_HEADERS:
            v = e["headers"].get(h)
            if v:
                e["headers"][h] = v.split(" ", 1)[0] + " <redacted>" if " " in v else "<redacted>"
        return e

    def count(self, endpoint=None, status=None):
        return self._count(lambda e: (endpoint is None or e["endpoint"] == endpoint)
                           and (status is None or e["status"] == int(status)))

    def wait_for_requests(self, n, endpoint=None, timeout=5.0):
        """Wait (bounded) until at least n matching requests completed; returns bool."""
        return self._wait_done(n, lambda e: endpoint is None or e["endpoint"] == endpoint, timeout)

    def _classify(self, path):
        raise NotImplementedError

    def _entry_fields(self, path, endpoint):
        raise NotImplementedError

    def _make_entry(self, handler, path, raw_query):
        hdrs = handler.headers
        auth = hdrs.get("Authorization") or ""
        endpoint = self._classify(path)
        entry = {
            "time": time.time(), "mono": time.monotonic(), "method": handler.command, "path": path,
            "query": urllib.parse.parse_qs(raw_query, keep_blank_values=True), "raw_query": raw_query,
            "endpoint": endpoint, "headers": {k.lower(): v for k, v in hdrs.items()}, "body": "", "form": None,
            "token": auth[7:].strip() or None if auth[:7].lower() == "bearer " else None,
            "identity": None, "issued_token": None, "secret": None, "version": None,
            "status": None, "error": None, "fault": None, "delay_s": 0, "duration_ms": None,
            "client": "%s:%s" % handler.client_address[:2], "done": False,
        }
        entry.update(self._entry_fields(path, endpoint))
        return entry

    def _entry_body(self, entry, body):
        with self._lock:
            entry["body"] = body.decode("utf-8", "replace")

    # ------------------------------------------------------------------ request processing

    def _process(self, endpoint, method, path, raw_query, headers, body, entry):
        rule = self._take_fault("status", endpoint, entry["secret"])
        if rule:
            entry["fault"] = "status"
            return self._fault_response(endpoint, rule)
        return self._route(endpoint, method, path, raw_query, headers, body, entry)

    def _route(self, endpoint, method, path, raw_query, headers, body, entry):
        raise NotImplementedError

    def _fault_response(self, endpoint, rule):
        status, body = rule["status"], rule["body"]
        hdrs = [("Retry-After", rule["retry_after"])] if rule["retry_after"] is not None else []
        Resp = self.Handler.Resp
        if isinstance(body, str):
            return Resp(status, raw=body.encode(), ctype="text/plain; charset=utf-8", headers=hdrs, error="fault")
        if body is not None:
            return Resp(status, body, headers=hdrs, error="fault")
        return self._default_fault_response(endpoint, status, hdrs)

    def _default_fault_response(self, endpoint, status, headers):
        raise NotImplementedError


# --------------------------------------------------------------------------------------------------
# script mode


def add_server_args(ap):
    """The options every fake's script mode has (a fake adds its own, --state among them, after these)."""
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls-dir", help="PKI directory (generated there if incomplete)")
    ap.add_argument("--plain-http", action="store_true", help="serve plain HTTP, no TLS")


def server_kwargs(args):
    """FakeServer keyword arguments from add_server_args' options."""
    return {"tls_dir": args.tls_dir, "tls": not args.plain_http, "host": args.host, "port": args.port}


def run_script(ap, argv, build):
    """Parse argv, build the fake (build(args)), apply --state, serve until SIGTERM/SIGINT; prints one JSON
    line (script_info) once listening. Returns the exit status, 0."""
    args = ap.parse_args(argv)
    if not args.plain_http and not args.tls_dir:
        ap.error("--tls-dir is required unless --plain-http")
    fake = build(args)
    if args.state:
        with open(args.state, encoding="utf-8") as f:
            fake.apply_state(json.load(f))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    fake.start()
    print(json.dumps(fake.script_info()), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0
