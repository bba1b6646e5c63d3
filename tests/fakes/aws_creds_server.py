#!/usr/bin/env python3
"""aws_creds_server.py - a strict fake of the EC2 instance metadata service (IMDSv2 only) and of the
ECS/EKS container credentials endpoint, for runsecrets' AWS integration tests.

    srv = FakeCredsServer(creds_fn=lambda: moto.assume_role(), region="eu-west-1").start()
    env AWS_EC2_METADATA_SERVICE_ENDPOINT=srv.url
    env AWS_CONTAINER_CREDENTIALS_FULL_URI=srv.url + srv.ecs_path, AWS_CONTAINER_AUTHORIZATION_TOKEN=srv.ecs_token

creds_fn() returns {"AccessKeyId", "SecretAccessKey", "SessionToken"} - in the tests real temporary
credentials from moto's AssumeRole, so that what the broker signs with them is checked by moto. It is
called for every credentials answer (each one carries fresh keys).

IMDSv2, as EC2 answers (strict):
- PUT /latest/api/token needs X-aws-ec2-metadata-token-ttl-seconds (1..21600) -> a token (text/plain);
  missing/invalid TTL -> 400; X-Forwarded-For present -> 403; GET of it -> 405.
- every GET under /latest/ needs a live X-aws-ec2-metadata-token: none or unknown or expired -> 401
  (IMDSv1 is refused).
- GET /latest/meta-data/iam/security-credentials/ -> the role name;
  GET /latest/meta-data/iam/security-credentials/<role> -> {"Code":"Success","LastUpdated","Type":"AWS-HMAC",
  "AccessKeyId","SecretAccessKey","Token","Expiration"}; another role -> 404.
- GET /latest/meta-data/placement/region -> the region;
  GET /latest/dynamic/instance-identity/document -> {"region", "accountId", ...}.

Container endpoint: GET <ecs_path> (default /v2/credentials/<uuid>) -> {"AccessKeyId","SecretAccessKey",
"Token","Expiration","RoleArn"}; when ecs_token is set the Authorization header must equal it exactly
(otherwise 401 {"Code":"AccessDenied"}). Other paths 404.

expiration_s sets each answer's Expiration (now + expiration_s), short values test refreshing.
Every request is recorded (requests()); fail_next(n, status) injects errors on matching paths.
Standard library only.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading

from loopback import ServedFake
import time
import uuid

ROLE_ARN = "arn:aws:iam::123456789012:role/reader"


def iso8601(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))




class FakeCredsServer(ServedFake):
    def __init__(self, creds_fn, region="us-east-1", role_name="rs-instance-role",
                 ecs_path=None, ecs_token=None, expiration_s=3600, host="127.0.0.1", port=0):
        self.creds_fn = creds_fn
        self.region = region
        self.role_name = role_name
        self.ecs_path = ecs_path or "/v2/credentials/%s" % uuid.uuid4()
        self.ecs_token = ecs_token
        self.expiration_s = expiration_s
        self.host = host
        self.port = port
        self.url = None
        self._lock = threading.Lock()
        self._tokens = {}            # token -> expiry (monotonic)
        self._log = []
        self._faults = []            # [prefix, n, status]
        self._issued = []            # credentials handed out (for sensitive registration)
        self._server = None
        self._thread = None

    # -- controls

    def set_expiration(self, seconds):
        with self._lock:
            self.expiration_s = seconds

    def fail_next(self, n=1, status=500, prefix="/"):
        with self._lock:
            self._faults.append([prefix, n, status])

    def clear_faults(self):
        with self._lock:
            self._faults = []

    def expire_tokens(self):
        """Forget every IMDS session token (as if their TTL had passed)."""
        with self._lock:
            self._tokens.clear()

    def requests(self, kind=None, since=None):
        with self._lock:
            log = list(self._log)
        return [e for e in log if (kind is None or e["kind"] == kind)
                and (since is None or e["mono"] >= since)]

    def count(self, kind=None, **kw):
        return len(self.requests(kind, **kw))

    def issued(self):
        """Every credentials dict handed out, oldest first (with "Expiration", "mono")."""
        with self._lock:
            return list(self._issued)

    def clear_requests(self):
        with self._lock:
            self._log = []

    # -- internals

    def _record(self, e):
        with self._lock:
            self._log.append(e)

    def _take_fault(self, path):
        with self._lock:
            for f in self._faults:
                if path.startswith(f[0]):
                    f[1] -= 1
                    if f[1] <= 0:
                        self._faults.remove(f)
                    return f[2]
        return None

    def _new_token(self, ttl):
        t = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[t] = time.monotonic() + ttl
        return t

    def _token_ok(self, t):
        with self._lock:
            exp = self._tokens.get(t)
            return exp is not None and time.monotonic() < exp

    def _creds(self):
        c = self.creds_fn()
        now = time.time()
        exp = now + self.expiration_s
        rec = dict(c, Expiration=iso8601(exp), expires_wall=exp, mono=time.monotonic(), wall=now)
        with self._lock:
            self._issued.append(rec)
        return c, now, exp


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeCredsServer = None
    timeout = 30

    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _entry(self, kind):
        return {"method": self.command, "path": self.path, "kind": kind, "mono": time.monotonic(),
                "wall": time.time(), "status": None, "token_header": None,
                "authorization": self.headers.get("Authorization"),
                "ttl_header": self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")}

    def _finish(self, e, status, body, ctype="text/plain"):
        e["status"] = status
        self.fake._record(e)
        self._send(status, body, ctype)

    def do_PUT(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        e = self._entry("imds-token")
        fake = self.fake
        if self.path != "/latest/api/token":
            return self._finish(e, 404 if self.path.startswith("/latest/") else 404, "Not Found")
        st = fake._take_fault(self.path)
        if st:
            return self._finish(e, st, "injected fault")
        if self.headers.get("X-Forwarded-For") is not None:
            return self._finish(e, 403, "Forbidden")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        try:
            ttl_i = int(ttl)
        except (TypeError, ValueError):
            return self._finish(e, 400, "Bad Request")
        if not 1 <= ttl_i <= 21600:
            return self._finish(e, 400, "Bad Request")
        tok = fake._new_token(ttl_i)
        e["token_issued"] = tok
        e["status"] = 200
        fake._record(e)
        self.send_response(200)
        body = tok.encode()
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-aws-ec2-metadata-token-ttl-seconds", str(ttl_i))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        e = self._entry("other")
        self._finish(e, 405, "Method Not Allowed")

    def do_GET(self):
        fake = self.fake
        path = self.path.split("?", 1)[0]
        if path == fake.ecs_path or path.startswith("/v2/credentials/"):
            e = self._entry("ecs")
            if path != fake.ecs_path:
                return self._finish(e, 404, json.dumps({"Code": "NotFound"}), "application/json")
            st = fake._take_fault(path)
            if st:
                return self._finish(e, st, json.dumps({"Code": "InternalError"}), "application/json")
            if fake.ecs_token is not None and self.headers.get("Authorization") != fake.ecs_token:
                return self._finish(e, 401, json.dumps({"Code": "AccessDenied",
                                                        "Message": "Unauthorized"}),
                                    "application/json")
            c, now, exp = fake._creds()
            e["issued_akid"] = c["AccessKeyId"]
            body = {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                    "Token": c["SessionToken"], "Expiration": iso8601(exp), "RoleArn": ROLE_ARN}
            return self._finish(e, 200, json.dumps(body), "application/json")
        if not path.startswith("/latest/"):
            return self._finish(self._entry("other"), 404, "Not Found")
        if path == "/latest/api/token":
            return self._finish(self._entry("imds-token"), 405, "Method Not Allowed")
        creds_dir = "/latest/meta-data/iam/security-credentials/"
        if path == creds_dir:
            kind = "imds-role"
        elif path.startswith(creds_dir):
            kind = "imds-creds"
        elif path == "/latest/meta-data/placement/region":
            kind = "imds-region"
        elif path == "/latest/dynamic/instance-identity/document":
            kind = "imds-document"
        else:
            kind = "imds-other"
        e = self._entry(kind)
        tok = self.headers.get("X-aws-ec2-metadata-token")
        e["token_header"] = tok
        if not tok or not fake._token_ok(tok):
            return self._finish(e, 401, "Unauthorized")
        st = fake._take_fault(path)
        if st:
            return self._finish(e, st, "injected fault")
        if kind == "imds-role":
            return self._finish(e, 200, fake.role_name)
        if kind == "imds-creds":
            if path[len(creds_dir):] != fake.role_name:
                return self._finish(e, 404, "Not Found")
            c, now, exp = fake._creds()
            e["issued_akid"] = c["AccessKeyId"]
            body = {"Code": "Success", "LastUpdated": iso8601(now), "Type": "AWS-HMAC",
                    "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                    "Token": c["SessionToken"], "Expiration": iso8601(exp)}
            return self._finish(e, 200, json.dumps(body, indent=2))
        if kind == "imds-region":
            return self._finish(e, 200, fake.region)
        if kind == "imds-document":
            doc = {"accountId": "123456789012", "architecture": "x86_64",
                   "availabilityZone": fake.region + "a", "instanceId": "i-0123456789abcdef0",
                   "instanceType": "t3.micro", "region": fake.region}
            return self._finish(e, 200, json.dumps(doc, indent=2))
        return self._finish(e, 404, "Not Found")


FakeCredsServer.HANDLER = _Handler
FakeCredsServer.OWNER = "fake"
FakeCredsServer.THREAD_NAME = "aws-creds-fake"
