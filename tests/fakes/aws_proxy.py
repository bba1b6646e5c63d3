#!/usr/bin/env python3
"""aws_proxy.py - moto (with IAM authentication on) behind a fault-injecting reverse proxy, for
runsecrets' AWS integration tests.

Two pieces, both usable in-process (like tests/fakes/vault.py's FakeVault):

    moto = Moto().start()          # `python3 -m moto.server` on a free loopback port, an admin IAM user
                                   # (policy "*"), a role "reader"; authentication switched on
    proxy = AwsProxy(moto).start() # http://127.0.0.1:PORT - what the broker is configured with
    ...
    proxy.stop(); moto.stop()

Moto checks every SigV4 signature once authentication is on (a wrong key gets 403
SignatureDoesNotMatch), so a request the broker signs wrongly fails even through the proxy: the proxy
forwards the request byte for byte, Host header included (it is part of the signature).

The proxy records every request (time, X-Amz-Target or STS Action, the access key id and region of the
signature, the SecretId(s) of the body, status, fault) and injects faults:

- fail_next(n, status, type, message, target=..., secret_id=...): the next n matching requests get an
  AWS JSON error (STS requests: the XML ErrorResponse shape) instead of reaching moto; n=None fails
  every matching request until clear_faults(). throttle_next / server_error_next are shorthands.
- drop_next(n, ...): close the connection without an answer.
- set_clock_offset(seconds): the proxy's clock runs that far ahead (or behind); a signed request whose
  X-Amz-Date is more than 5 minutes off that clock gets 403 InvalidSignatureException "Signature
  expired: ..." (as Secrets Manager answers), every answer's Date header carries the shifted clock.
- AssumeRoleWithWebIdentity is answered by the proxy itself (moto 5.2 cannot with authentication on):
  the WebIdentityToken must equal set_web_identity(token=...), then real temporary credentials are
  obtained from moto with AssumeRole and returned in STS's XML shape.

Standard library only, except `boto3` (which moto itself needs) for the set-up calls.
"""

from __future__ import annotations

import base64
import ctypes
import datetime
import email.utils
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading

from loopback import ServedFake
import time
import urllib.parse
import urllib.request
import uuid
from xml.sax.saxutils import escape as xml_escape

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE_NAME = "reader"
ROLE_ARN = "arn:aws:iam::%s:role/%s" % (ACCOUNT, ROLE_NAME)
ADMIN_USER = "rs-admin"
SKEW_LIMIT = 300                 # seconds: what Secrets Manager tolerates
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "content-length", "date", "server"}
ALL_POLICY = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def amz_date(ts):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


def iso8601(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_amz_date(s):
    try:
        return datetime.datetime.strptime(s, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def _die_with_parent():
    """preexec_fn: SIGKILL the child when the test process dies (no orphaned moto)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)          # PR_SET_PDEATHSIG
    except OSError:
        pass


# --------------------------------------------------------------------------------------------------
# moto


class Moto:
    """A moto server subprocess with an admin IAM user, a role and authentication on."""

    def __init__(self, host="127.0.0.1", port=0, log_path=None):
        self.host = host
        self.port = port or free_port(host)
        self.url = "http://%s:%d" % (host, self.port)
        self.log_path = log_path
        self.proc = None
        self.admin = None            # {"AccessKeyId", "SecretAccessKey"}
        self._log = None
        self._lock = threading.Lock()

    def start(self, timeout=20):
        import boto3  # noqa: F401 - fail early if missing
        self._log = open(self.log_path or os.devnull, "ab")
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("AWS_"):
                del env[k]
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", self.host,
                                      "-p", str(self.port)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=2) as r:
                    r.read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto did not start on %s" % self.url)
                time.sleep(0.1)
        self._setup()
        return self

    def _setup(self):
        kw = dict(aws_access_key_id="AKIABOOTSTRAP0000000", aws_secret_access_key="bootstrap")
        iam = self.client("iam", **kw)
        iam.create_user(UserName=ADMIN_USER)
        iam.put_user_policy(UserName=ADMIN_USER, PolicyName="all",
                            PolicyDocument=json.dumps(ALL_POLICY))
        ak = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        self.admin = {"AccessKeyId": ak["AccessKeyId"], "SecretAccessKey": ak["SecretAccessKey"]}
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"},
             "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::%s:oidc-provider/example.com"
                                              % ACCOUNT},
             "Action": "sts:AssumeRoleWithWebIdentity"}]}
        iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="all",
                            PolicyDocument=json.dumps(ALL_POLICY))
        self.enable_auth()

    def enable_auth(self):
        req = urllib.request.Request(self.url + "/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- clients (direct to moto, never through a proxy: they are not counted)

    def client(self, service, region=REGION, **kw):
        import boto3
        import botocore.config
        if "aws_access_key_id" not in kw:
            kw["aws_access_key_id"] = self.admin["AccessKeyId"]
            kw["aws_secret_access_key"] = self.admin["SecretAccessKey"]
        cfg = botocore.config.Config(retries={"total_max_attempts": 1}, connect_timeout=5,
                                     read_timeout=30)
        return boto3.client(service, endpoint_url=self.url, region_name=region, config=cfg, **kw)

    def sm(self, region=REGION):
        return self.client("secretsmanager", region=region)

    def create_user(self, name, policy=None):
        """An IAM user with an access key and an inline policy (default: everything)."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="p",
                            PolicyDocument=json.dumps(policy or ALL_POLICY))
        ak = iam.create_access_key(UserName=name)["AccessKey"]
        return {"AccessKeyId": ak["AccessKeyId"], "SecretAccessKey": ak["SecretAccessKey"]}

    def assume_role(self, role_arn=ROLE_ARN, session_name="rstest"):
        """Real temporary credentials from moto's STS (moto accepts them with auth on)."""
        sts = self.client("sts")
        c = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        return {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                "SessionToken": c["SessionToken"]}


# --------------------------------------------------------------------------------------------------
# the proxy


class _Fault:
    def __init__(self, kind, n, target=None, action=None, secret_id=None, status=400,
                 err_type=None, message=None, retry_after=None):
        self.kind = kind               # "error" | "drop"
        self.n = n                     # None: until cleared
        self.target = target
        self.action = action
        self.secret_id = secret_id
        self.status = status
        self.err_type = err_type
        self.message = message
        self.retry_after = retry_after

    def matches(self, e):
        if self.target is not None and e["target"] != self.target:
            return False
        if self.action is not None and e["action"] != self.action:
            return False
        if self.secret_id is not None and self.secret_id not in e["secret_ids"]:
            return False
        return True




def _qualified_target(target):
    if target and "." not in target:
        return "secretsmanager." + target
    return target


class AwsProxy(ServedFake):
    """Threaded reverse proxy in front of moto; see the module docstring."""

    def __init__(self, moto, host="127.0.0.1", port=0):
        self.moto = moto
        self.upstream = (moto.host, moto.port) if isinstance(moto, Moto) else moto
        self.host = host
        self.port = port
        self.url = None
        self._lock = threading.Lock()
        self._log = []
        self._seq = 0
        self._faults = []
        self.clock_offset = None          # None: skew checks off
        self.web_identity_token = None    # expected WebIdentityToken
        self.web_identity_role = None     # expected RoleArn (None: any)
        self.web_identity_duration = 3600
        self.latency_ms = 0               # added before every answer (simulated network)
        self._server = None
        self._thread = None

    # -- faults

    def fail_next(self, n=1, status=400, err_type="ThrottlingException", message="Rate exceeded",
                  target=None, action=None, secret_id=None, retry_after=None):
        """The next n matching requests (n=None: all until clear_faults) get this error."""
        with self._lock:
            self._faults.append(_Fault("error", n, _qualified_target(target), action, secret_id,
                                       status, err_type, message, retry_after))

    def throttle_next(self, n=1, target=None, secret_id=None):
        self.fail_next(n, 400, "ThrottlingException", "Rate exceeded", target=target,
                       secret_id=secret_id)

    def server_error_next(self, n=1, status=500, target=None, secret_id=None):
        self.fail_next(n, status, "InternalServiceError" if status == 500 else "ServiceUnavailable",
                       "An error occurred (%d) when calling the operation" % status,
                       target=target, secret_id=secret_id)

    def drop_next(self, n=1, target=None, action=None, secret_id=None):
        with self._lock:
            self._faults.append(_Fault("drop", n, _qualified_target(target), action, secret_id))

    def clear_faults(self):
        with self._lock:
            self._faults = []

    def set_latency(self, ms):
        """Delay every answer by ms milliseconds (a simulated round trip); 0 turns it off."""
        with self._lock:
            self.latency_ms = ms

    def set_clock_offset(self, seconds):
        """Shift the proxy's clock; None turns the skew check off."""
        with self._lock:
            self.clock_offset = seconds

    def now(self):
        return time.time() + (self.clock_offset or 0)

    def set_web_identity(self, token, role_arn=ROLE_ARN, duration=3600):
        with self._lock:
            self.web_identity_token = token
            self.web_identity_role = role_arn
            self.web_identity_duration = duration

    def _take_fault(self, e):
        with self._lock:
            for f in self._faults:
                if f.matches(e):
                    if f.n is not None:
                        f.n -= 1
                        if f.n <= 0:
                            self._faults.remove(f)
                    return f
        return None

    # -- the log

    def _record(self, e):
        with self._lock:
            self._seq += 1
            e["seq"] = self._seq
            self._log.append(e)

    def requests(self, target=None, action=None, secret_id=None, since=None, status=None):
        """Recorded requests (dicts), oldest first; target may omit "secretsmanager."."""
        target = _qualified_target(target)
        with self._lock:
            log = list(self._log)
        out = []
        for e in log:
            if target is not None and e["target"] != target:
                continue
            if action is not None and e["action"] != action:
                continue
            if secret_id is not None and secret_id not in e["secret_ids"]:
                continue
            if since is not None and e["mono"] < since:
                continue
            if status is not None and e["status"] != status:
                continue
            out.append(e)
        return out

    def count(self, target=None, **kw):
        return len(self.requests(target, **kw))

    def clear_requests(self):
        with self._lock:
            self._log = []

    def wait_for(self, pred, timeout=10.0, interval=0.05):
        deadline = time.monotonic() + timeout
        while True:
            v = pred()
            if v or time.monotonic() >= deadline:
                return v
            time.sleep(interval)


def _xml_error(code, message, sender=True):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
            '<Type>%s</Type><Code>%s</Code><Message>%s</Message></Error>'
            '<RequestId>%s</RequestId></ErrorResponse>'
            % ("Sender" if sender else "Receiver", xml_escape(code), xml_escape(message),
               uuid.uuid4())).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: AwsProxy = None
    timeout = 60
    _cur = None

    def log_message(self, *args):   # quiet
        pass

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(self.proxy.now() if timestamp is None else timestamp,
                                      usegmt=True)

    # -- plumbing

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(out)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, ctype, extra=()):
        self._answered()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, e, status, err_type, message, extra=()):
        if e["action"]:
            self._send(status, _xml_error(err_type, message, status < 500), "text/xml", extra)
        else:
            body = json.dumps({"__type": err_type, "message": message}).encode()
            self._send(status, body, "application/x-amz-json-1.1", extra)

    # -- requests

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def _handle(self):
        t0 = time.monotonic()
        body = self._read_body()
        e = self._describe(body)
        e["mono"] = t0
        e["wall"] = time.time()
        e["duration_ms"] = None
        self._cur = e
        # recorded before any answer leaves, so a client that got its answer finds it in the log
        # (status/fault/duration_ms are filled in just before the answer is written)
        self.proxy._record(e)
        try:
            self._dispatch(e, body)
        finally:
            self._answered()

    def _answered(self):
        e = self._cur
        if e is not None and e["duration_ms"] is None:
            e["duration_ms"] = (time.monotonic() - e["mono"]) * 1000.0

    def _describe(self, body):
        h = self.headers
        target = h.get("X-Amz-Target")
        action = None
        form = {}
        ctype = (h.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded" or (not target and body):
            try:
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8"),
                                                                  keep_blank_values=True).items()}
            except (UnicodeDecodeError, ValueError):
                form = {}
            action = form.get("Action")
        if not action and "Action=" in self.path:
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            action = (q.get("Action") or [None])[0]
            form = {k: v[0] for k, v in q.items()}
        js = None
        secret_ids = []
        if target:
            try:
                js = json.loads(body) if body else None
            except ValueError:
                js = None
            if isinstance(js, dict):
                if isinstance(js.get("SecretId"), str):
                    secret_ids.append(js["SecretId"])
                if isinstance(js.get("SecretIdList"), list):
                    secret_ids.extend(x for x in js["SecretIdList"] if isinstance(x, str))
        auth = h.get("Authorization") or ""
        akid = region = service = None
        signed_headers = None
        if "Credential=" in auth:
            cred = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
            parts = cred.split("/")
            akid = parts[0]
            if len(parts) >= 5:
                region, service = parts[2], parts[3]
        if "SignedHeaders=" in auth:
            signed_headers = auth.split("SignedHeaders=", 1)[1].split(",", 1)[0].strip().split(";")
        return {"method": self.command, "path": self.path, "target": target, "action": action,
                "form": form, "json": js, "secret_ids": secret_ids, "akid": akid, "region": region,
                "service": service, "signed_headers": signed_headers,
                "amz_date": h.get("X-Amz-Date"), "security_token": h.get("X-Amz-Security-Token"),
                "signed": bool(auth), "client": "%s:%d" % self.client_address[:2],
                "status": None, "fault": None, "body": body}

    def _dispatch(self, e, body):
        proxy = self.proxy
        if proxy.latency_ms:
            time.sleep(proxy.latency_ms / 1000.0)
        f = proxy._take_fault(e)
        if f is not None and f.kind == "drop":
            e["fault"] = "drop"
            self._answered()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if f is not None:
            e["fault"] = f.err_type
            e["status"] = f.status
            extra = [("Retry-After", str(f.retry_after))] if f.retry_after is not None else []
            self._error(e, f.status, f.err_type, f.message, extra)
            return
        offset = proxy.clock_offset
        if offset is not None and e["signed"]:
            t = parse_amz_date(e["amz_date"])
            now = proxy.now()
            if t is None or abs(t - now) > SKEW_LIMIT:
                e["fault"] = "skew"
                e["status"] = 403
                if t is not None and t < now:
                    msg = ("Signature expired: %s is now earlier than %s (%s - 5 min.)"
                           % (e["amz_date"], amz_date(now - SKEW_LIMIT), amz_date(now)))
                else:
                    msg = ("Signature not yet current: %s is still later than %s (%s + 5 min.)"
                           % (e["amz_date"], amz_date(now + SKEW_LIMIT), amz_date(now)))
                if e["action"]:
                    self._error(e, 403, "SignatureDoesNotMatch", msg)
                else:
                    self._error(e, 403, "InvalidSignatureException", msg)
                return
        if e["action"] == "AssumeRoleWithWebIdentity":
            self._web_identity(e)
            return
        self._forward(e, body)

    def _web_identity(self, e):
        proxy = self.proxy
        form = e["form"]
        e["fault"] = "web_identity"
        tok = form.get("WebIdentityToken")
        e["web_identity_token"] = tok
        if e["signed"]:
            # the SDKs send this call unsigned; a signature is harmless but worth noting
            e["web_identity_signed"] = True
        if not form.get("RoleArn") or not form.get("RoleSessionName"):
            e["status"] = 400
            self._error(e, 400, "ValidationError", "RoleArn and RoleSessionName are required")
            return
        if proxy.web_identity_token is None or tok != proxy.web_identity_token:
            e["status"] = 400
            self._error(e, 400, "InvalidIdentityToken",
                        "The web identity token that was passed could not be validated by AWS. "
                        "Get a new identity token from the identity provider and then retry the "
                        "request.")
            return
        if proxy.web_identity_role is not None and form["RoleArn"] != proxy.web_identity_role:
            e["status"] = 403
            self._error(e, 403, "AccessDenied", "Not authorized to perform "
                        "sts:AssumeRoleWithWebIdentity")
            return
        try:
            c = proxy.moto.assume_role(form["RoleArn"], form["RoleSessionName"])
        except Exception as ex:  # noqa: BLE001
            e["status"] = 500
            self._error(e, 500, "InternalFailure", "moto AssumeRole failed: %s" % ex)
            return
        e["issued_akid"] = c["AccessKeyId"]
        exp = iso8601(time.time() + proxy.web_identity_duration)
        role_name = form["RoleArn"].rsplit("/", 1)[-1]
        xml = ('<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
               '<AssumeRoleWithWebIdentityResult>'
               '<SubjectFromWebIdentityToken>system:serviceaccount:rs:app</SubjectFromWebIdentityToken>'
               '<Audience>sts.amazonaws.com</Audience>'
               '<AssumedRoleUser><Arn>arn:aws:sts::%s:assumed-role/%s/%s</Arn>'
               '<AssumedRoleId>AROA0000000000000000:%s</AssumedRoleId></AssumedRoleUser>'
               '<Credentials><SessionToken>%s</SessionToken><SecretAccessKey>%s</SecretAccessKey>'
               '<Expiration>%s</Expiration><AccessKeyId>%s</AccessKeyId></Credentials>'
               '<Provider>example.com</Provider></AssumeRoleWithWebIdentityResult>'
               '<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>'
               '</AssumeRoleWithWebIdentityResponse>'
               % (ACCOUNT, xml_escape(role_name), xml_escape(form["RoleSessionName"]),
                  xml_escape(form["RoleSessionName"]), xml_escape(c["SessionToken"]),
                  xml_escape(c["SecretAccessKey"]), exp, c["AccessKeyId"], uuid.uuid4()))
        e["status"] = 200
        self._send(200, xml.encode(), "text/xml")

    def _forward(self, e, body):
        host, port = self.proxy.upstream
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() in HOP_BY_HOP:
                    continue
                conn.putheader(k, v)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            data = r.read()
            headers = [(k, v) for k, v in r.getheaders() if k.lower() not in HOP_BY_HOP]
            status = r.status
        except (OSError, http.client.HTTPException) as ex:
            e["status"] = 502
            e["fault"] = "upstream"
            self._error(e, 502, "BadGateway", "proxy: moto did not answer: %s" % ex)
            return
        finally:
            conn.close()
        e["status"] = status
        e["response"] = data
        self._answered()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def b64(data):
    return base64.b64encode(data).decode()


AwsProxy.HANDLER = _Handler
AwsProxy.OWNER = "proxy"
AwsProxy.THREAD_NAME = "aws-proxy"


if __name__ == "__main__":
    # Manual use: python3 aws_proxy.py  -> starts moto + proxy, prints URLs and admin keys, runs
    # until SIGINT/SIGTERM.
    m = Moto().start()
    p = AwsProxy(m).start()
    print(json.dumps({"moto": m.url, "proxy": p.url, "admin": m.admin}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    p.stop()
    m.stop()

