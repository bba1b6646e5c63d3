"""The admin endpoint's HTTP surface (broker/admin.c): the four paths and
nothing else, methods, bodies, the bearer token, the unix socket's mode,
group and folder rules, a stale socket, a socket in use, refused addresses,
slow clients cut at the total deadline, and the `status` and `health`
commands' exit codes. The pages' contents are test_metrics' (stats.c)."""

import grp
import json
import os
import select
import signal
import socket
import stat
import threading
import time

import rstest

ADMIN_REQUEST_S = 5.0      # ADMIN_REQUEST_MS
HTTP_TIMEOUT = 5.0
JSON = "application/json"


def connect(addr, timeout=HTTP_TIMEOUT):
    """A connected socket to "unix:/path" or "host:port" / "[v6]:port"."""
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(addr[5:])
        return s
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


def http(addr, method="GET", path="/health", headers=(), body=None, raw_body=None,
         timeout=HTTP_TIMEOUT):
    """One request; returns (status, {lower-case header: value}, body bytes)."""
    req = "%s %s HTTP/1.1\r\nHost: localhost\r\n" % (method, path)
    req += "".join("%s: %s\r\n" % h for h in headers)
    if body is not None:
        req += "Content-Length: %d\r\n" % len(body)
    data = (req + "\r\n").encode() + (body or b"") + (raw_body or b"")
    s = connect(addr, timeout)
    chunks = []
    try:
        s.sendall(data)
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break   # a server that did not read a body may reset after its answer
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/1."):
        raise AssertionError("not an HTTP answer: %r" % raw[:200])
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


class FakeAdmin:
    """A unix socket answering every request with one canned answer per
    path, so the client commands can be checked against any /status."""

    def __init__(self, path, answers):
        self.answers = answers   # path -> (status, body bytes)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopping:
            try:
                c, _ = self.srv.accept()
            except OSError:
                continue
            with c:
                c.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    b = c.recv(4096)
                    if not b:
                        break
                    data += b
                path = data.split(b" ")[1].decode() if data.count(b" ") >= 2 else "/"
                status, body = self.answers.get(path, (404, b"{}"))
                c.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                          % (status, len(body)) + body)

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.srv.close()


class AdminHttpTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.write_secret("a", rstest.random_value())
        self.sock_dir = os.path.join(self.dir, "run")   # created by the broker (last level)
        self.sock = os.path.join(self.sock_dir, "admin.sock")
        self.token = "t0k-" + rstest.random_value(16, "")
        self.sensitive(self.token)
        self.token_path = self.write_private("token", self.token + "\n")

    def config(self, admin=None, name="config.json"):
        cfg = {"mount": self.mnt,
               "defaults": {"refresh": "1s", "max_stale": "1h"},
               "backends": {"local": {"type": "file", "path": self.secrets_dir}},
               "secrets": {"a": {"from": "local:a"}}}
        if admin is not None:
            cfg["admin"] = admin
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def start(self, admin_arg=None, config=None, mountpoint=None):
        args = ["--admin", admin_arg] if admin_arg else []
        b = self.start_broker(config=config or self.config(), mountpoint=mountpoint, args=args)
        rec = b.wait_log("admin endpoint listening")
        return b, rec["address"]

    def run_mount(self, *args, mountpoint=None):
        """A broker expected to exit by itself; its CompletedProcess."""
        return rstest.run_cli("mount", *args, mountpoint or self.mnt, timeout=20)

    def assertPage(self, addr, path, ctype, headers=()):
        st, h, body = http(addr, path=path, headers=headers)
        self.assertEqual(st, 200, "%s: %r" % (path, body[:200]))
        self.assertTrue(h.get("content-type", "").startswith(ctype), h)
        self.assertEqual(h.get("cache-control"), "no-store")
        self.assertEqual(int(h["content-length"]), len(body))
        if ctype == JSON:
            json.loads(body)
        return body

    # -- the unix socket, the paths, methods and bodies

    def test_unix_endpoint(self):
        b, addr = self.start("unix:" + self.sock)
        self.assertEqual(addr, "unix:" + self.sock)
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.sock_dir).st_mode), 0o755)

        self.assertPage(addr, "/health", JSON)
        live = self.assertPage(addr, "/health/live", JSON)
        self.assertEqual(json.loads(live), {"status": "ok"})
        self.assertPage(addr, "/metrics", "text/plain; version=0.0.4")
        self.assertPage(addr, "/status", JSON)
        self.assertPage(addr, "/status?verbose=1&x", JSON)   # a query string is ignored

        for path in ("/", "/nope", "/health/", "/metrics/x", "/Health", "/status.json"):
            st, h, body = http(addr, path=path)
            self.assertEqual(st, 404, path)
            json.loads(body)
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            st, h, _ = http(addr, method=method, path="/health")
            self.assertEqual(st, 405, method)
            self.assertEqual(h.get("allow"), "GET, HEAD")
        st, h, body = http(addr, method="HEAD", path="/metrics")
        self.assertEqual((st, body), (200, b""))
        self.assertGreater(int(h["content-length"]), 0)

        st, _, _ = http(addr, path="/health", body=b"x=1")
        self.assertEqual(st, 400)
        st, _, _ = http(addr, path="/health", headers=[("Transfer-Encoding", "chunked")],
                        raw_body=b"3\r\nabc\r\n0\r\n\r\n")
        self.assertEqual(st, 400)
        st, _, _ = http(addr, path="/health", body=b"")   # Content-Length: 0 is no body
        self.assertEqual(st, 200)

        # The commands: 0 with a healthy broker; 2 / 1 when nobody listens.
        r = rstest.run_cli("status", "--admin", addr)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"NAME", r.stdout)
        self.assertIn(b"ERROR", r.stdout)
        r = rstest.run_cli("status", "--admin", addr, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("healthy", json.loads(r.stdout))
        r = rstest.run_cli("health", "--admin", addr)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"", b""))
        nobody = os.path.join(self.dir, "nobody.sock")
        r = rstest.run_cli("status", "--admin", "unix:" + nobody)
        self.assertEqual(r.returncode, 2)
        self.assertIn(nobody.encode(), r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = rstest.run_cli("health", "--admin", "unix:" + nobody)
        self.assertEqual((r.returncode, r.stdout), (1, b""))

        self.slow_clients(addr)

        b.stop()
        self.assertFalse(os.path.exists(self.sock), "the socket outlived the broker")

    def slow_clients(self, addr):
        """Three clients sending one byte a second: a normal request is
        answered at once meanwhile, and each is cut within the deadline."""
        request = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"y" * 64
        socks, started, cut = [], {}, {}
        try:
            for _ in range(3):
                s = connect(addr)
                s.setblocking(False)
                started[s] = time.monotonic()
                socks.append(s)
            sent = 0
            normal_done = False
            deadline = time.monotonic() + ADMIN_REQUEST_S + 3
            next_send = time.monotonic()
            while len(cut) < len(socks) and time.monotonic() < deadline:
                now = time.monotonic()
                if now >= next_send:
                    for s in socks:
                        if s not in cut:
                            try:
                                s.send(request[sent:sent + 1])
                            except OSError:
                                cut[s] = time.monotonic() - started[s]
                    sent += 1
                    next_send += 1.0
                if not normal_done and sent >= 2:
                    t0 = time.monotonic()
                    self.assertPage(addr, "/health/live", JSON)
                    took = time.monotonic() - t0
                    self.assertLess(took, 1.0, "a normal request waited %.2fs behind slow "
                                    "clients" % took)
                    normal_done = True
                live = [s for s in socks if s not in cut]
                r, _, _ = select.select(live, [], [], max(0.0, min(0.1, next_send - now)))
                for s in r:
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        cut[s] = time.monotonic() - started[s]
            self.assertTrue(normal_done)
            self.assertEqual(len(cut), 3, "slow clients still connected after %.1fs"
                             % (ADMIN_REQUEST_S + 3))
            for s, t in cut.items():
                self.assertLessEqual(t, ADMIN_REQUEST_S + 2.0)
                # Not the idle timeout: each client sent a byte every second.
                self.assertGreaterEqual(t, ADMIN_REQUEST_S - 0.5)
        finally:
            for s in socks:
                s.close()

    # -- mode, group, token

    def test_mode_group_token(self):
        group = next((g for g in grp.getgrall() if g.gr_gid != 0), None)
        self.assertIsNotNone(group, "no group other than root on this machine")
        cfg = self.config({"listen": "unix:" + self.sock, "mode": "0660",
                           "group": group.gr_name, "token_file": self.token_path})
        b, addr = self.start(config=cfg)
        st = os.stat(self.sock)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, group.gr_gid)

        st, h, _ = http(addr, path="/health")
        self.assertEqual(st, 401)
        self.assertEqual(h.get("www-authenticate"), "Bearer")
        for bad in ("Bearer wrong", "Bearer " + self.token + "x", "Bearer " + self.token[:-1],
                    "Basic " + self.token, self.token, "Bearer"):
            st, _, _ = http(addr, path="/status", headers=[("Authorization", bad)])
            self.assertEqual(st, 401, bad[:12])
        auth = [("Authorization", "Bearer " + self.token)]
        for path, ctype in (("/health", JSON), ("/health/live", JSON),
                            ("/metrics", "text/plain"), ("/status", JSON)):
            self.assertPage(addr, path, ctype, headers=auth)
        st, _, _ = http(addr, path="/nope", headers=auth)
        self.assertEqual(st, 404)

        r = rstest.run_cli("status", "--admin", addr, "--token-file", self.token_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = rstest.run_cli("status", "-c", cfg)   # address and token from the configuration
        self.assertEqual(r.returncode, 0, r.stderr)
        r = rstest.run_cli("status", "--admin", addr)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"401", r.stderr)
        r = rstest.run_cli("health", "--admin", addr)
        self.assertEqual(r.returncode, 1)
        r = rstest.run_cli("health", "-c", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)

        # The same configuration's token on TCP, port 0 (the log says which).
        mnt2 = os.path.join(self.dir, "mnt2")
        os.mkdir(mnt2)
        b2, addr2 = self.start("127.0.0.1:0", config=cfg, mountpoint=mnt2)
        self.assertRegex(addr2, r"^127\.0\.0\.1:[1-9][0-9]*$")
        self.assertEqual(http(addr2, path="/metrics")[0], 401)
        self.assertPage(addr2, "/metrics", "text/plain", headers=auth)
        r = rstest.run_cli("health", "--admin", addr2, "--token-file", self.token_path)
        self.assertEqual(r.returncode, 0, r.stderr)

    # -- the socket's folder and file

    def test_world_writable_folder_refused(self):
        ww = os.path.join(self.dir, "ww")
        os.mkdir(ww)
        os.chmod(ww, 0o777)
        r = self.run_mount("--config", self.config(), "--admin", "unix:" + ww + "/admin.sock")
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = [l for l in r.stderr.decode().splitlines() if not l.startswith("{")]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(ww, lines[0])
        self.assertIn("writable by every user", lines[0])
        self.assertFalse(os.path.exists(os.path.join(ww, "admin.sock")))
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [])

    def test_stale_socket_replaced_live_one_kept(self):
        os.mkdir(self.sock_dir, 0o755)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.sock)
        stale.close()   # the file stays, nobody listens: a crashed broker's
        b, addr = self.start("unix:" + self.sock)
        b.wait_log("stale admin socket removed")
        self.assertPage(addr, "/health", JSON)

        # A second broker on the same (explicit) socket: exit 1, one line.
        mnt2 = os.path.join(self.dir, "mnt2")
        os.mkdir(mnt2)
        r = self.run_mount("--config", self.config(), "--admin", "unix:" + self.sock,
                           mountpoint=mnt2)
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = [l for l in r.stderr.decode().splitlines() if not l.startswith("{")]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("in use", lines[0])
        self.assertEqual(rstest.runsecrets_mounts_at(mnt2), [])
        self.assertPage(addr, "/health", JSON)   # the first one still serves

        # Something else than a socket at the path is not ours to remove.
        plain = os.path.join(self.sock_dir, "plain")
        with open(plain, "w") as f:
            f.write("x")
        r = self.run_mount("--config", self.config(), "--admin", "unix:" + plain,
                           mountpoint=mnt2)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertTrue(os.path.isfile(plain))

    # -- a reload keeps the endpoint as started

    def test_reload_keeps_the_endpoint(self):
        cfg = self.config({"listen": "unix:" + self.sock})
        b, addr = self.start(config=cfg)
        mark = b.mark()
        self.config({"listen": "unix:" + self.sock, "mode": "0660"})   # same file
        b.send(signal.SIGHUP)
        b.wait_log("config reloaded", since=mark)
        rec = b.wait_log('"admin" changed: the admin endpoint keeps its settings until the '
                         'broker restarts', since=mark)
        self.assertEqual(rec["level"], "warn")
        self.assertEqual(stat.S_IMODE(os.stat(self.sock).st_mode), 0o600)
        self.assertPage(addr, "/health", JSON)
        mark = b.mark()
        b.send(signal.SIGHUP)   # unchanged: no warning
        b.wait_log("config reloaded", since=mark)
        self.assertNoLog(b, '"admin" changed: the admin endpoint keeps its settings until the '
                         'broker restarts', since=mark)

    # -- the client commands against canned answers

    def test_status_table_and_exit_codes(self):
        path = os.path.join(self.dir, "fake.sock")
        status = {
            "healthy": False,
            "secrets": [
                {"name": "db/password", "backend": "vault", "state": "stale",
                 "age_seconds": 312.4, "next_fetch_in_seconds": 7260, "error": "503 from Vault"},
                {"name": "tls.key", "backend": "files", "state": "ok", "age_seconds": 3.2,
                 "next_fetch_in_seconds": -1.5, "error": None},
                {"name": "never", "backend": "vault", "state": "missing", "age_seconds": None,
                 "next_fetch_in_seconds": None, "error": "denied\n\x1b[31m"},
            ],
            "backends": [{"name": "vault", "type": "vault", "up": False, "auth": "failing",
                          "token_expiry": None}],
        }
        body = json.dumps(status).encode()
        fake = FakeAdmin(path, {"/status": (503, body), "/health": (503, b"{}")})
        self.addCleanup(fake.stop)
        addr = "unix:" + path
        r = rstest.run_cli("status", "--admin", addr)
        self.assertEqual(r.returncode, 1, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "BACKEND", "STATE", "AGE", "NEXT", "ERROR"])
        self.assertEqual(lines[1].split(None, 5),
                         ["db/password", "vault", "stale", "5m12s", "2h1m", "503 from Vault"])
        self.assertEqual(lines[2].split(), ["tls.key", "files", "ok", "3s", "due", "-"])
        self.assertEqual(lines[3].split()[:5], ["never", "vault", "missing", "-", "-"])
        self.assertNotIn("\x1b", r.stdout.decode())   # a server's text is escaped
        self.assertEqual(lines[0].index("BACKEND"), lines[1].index("vault"))   # fitted widths
        self.assertIn("TOKEN-EXPIRY", r.stdout.decode())
        r = rstest.run_cli("status", "--admin", addr, "--json")
        self.assertEqual((r.returncode, json.loads(r.stdout)), (1, status))
        r = rstest.run_cli("health", "--admin", addr)
        self.assertEqual((r.returncode, r.stdout), (1, b""))

        fake.answers = {"/status": (200, b"<html>not json</html>"), "/health": (200, b"")}
        r = rstest.run_cli("status", "--admin", addr)
        self.assertEqual(r.returncode, 2)
        self.assertIn(path.encode(), r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = rstest.run_cli("health", "--admin", addr)
        self.assertEqual(r.returncode, 0)

    # -- addresses refused before anything is mounted

    def test_refused_addresses(self):
        cfg = self.config()
        r = self.run_mount("--config", cfg, "--admin", "10.0.0.1:9464")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"not a loopback address", r.stderr)
        for bad in ("localhost:9464", "127.0.0.1:99999", "unix:relative.sock", "[::1]"):
            r = self.run_mount("--config", cfg, "--admin", bad)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn(b"--admin", r.stderr)
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [])
        r = rstest.run_cli("check", "--admin", "unix:/x.sock", "--config", cfg)
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    rstest.main()
