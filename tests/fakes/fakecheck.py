"""fakecheck.py - what the fakes' self-tests (test_vault_fake.py, test_azure_fake.py, ...) share.

A plain HTTP(S) client and a control-endpoint client, and the checks of fakeserver.py's machinery that every fake
built on it must pass the same way: the control endpoint, script mode, stop() cutting a request in flight, the
temporary PKI of a with-statement. A fake's own protocol is checked in its own self-test. Standard library only.
"""

import collections
import contextlib
import http.client
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

Resp = collections.namedtuple("Resp", "status headers body json")
CONN_ERRORS = (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError)
SCRIPT_KEYS = {"url", "port", "control", "ca", "tls", "pid"}


def http_call(fake, method, path, body=None, headers=None, ctx=None, host="127.0.0.1", timeout=10):
    """One request on a fresh connection to `fake` (anything with .tls and .port; ctx is required for TLS).
    body: bytes, an iterable of chunks, or None. Returns Resp; json is None unless the body parses."""
    if fake.tls:
        conn = http.client.HTTPSConnection(host, fake.port, context=ctx, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host, fake.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        payload = r.read()
        try:
            js = json.loads(payload) if payload else None
        except ValueError:
            js = None
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, payload, js)
    finally:
        conn.close()


def control_call(url, args=None, method="POST", ctx=None, timeout=10):
    """A control request to `url` (control_url + "/" + method name): (HTTP status, JSON answer)."""
    data = json.dumps(args).encode() if args is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def in_threads(n, fn, timeout=10):
    """fn(i) for i in range(n), all at once, each in its own thread; their results, in completion order."""
    results, lock = [], threading.Lock()

    def run(i):
        r = fn(i)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results


def check_control_basics(tc, fake, ctx=None):
    """The control endpoint every fake shares: the method list (/, /help), 404 for an unknown method, 400 for a
    body that is not an object of keyword arguments, and never a log entry for any of them."""
    before = fake.count()
    base = fake.control_url
    for url in (base, base + "/", base + "/help"):
        tc.assertEqual(control_call(url, method="GET", ctx=ctx), (200, {"methods": sorted(fake.CONTROL_METHODS)}))
    st, body = control_call(base + "/nope", {}, ctx=ctx)
    tc.assertEqual((st, body), (404, {"error": "unknown control method 'nope'"}))
    st, body = control_call(base + "/count", [1], ctx=ctx)
    tc.assertEqual((st, body), (400, {"error": "ValueError: control body must be a JSON object of keyword "
                                                "arguments"}))
    tc.assertEqual(control_call(base + "/count", {"no_such_argument": 1}, ctx=ctx)[0], 400)
    tc.assertEqual(control_call(base + "/count", method="GET", ctx=ctx), (200, {"result": before}))
    tc.assertEqual(fake.count(), before)


@contextlib.contextmanager
def script_fake(tc, script, *args):
    """Run the fake `script` in script mode (--port 0 and `args`); yields (ready line, its JSON). After the
    with-body, SIGTERM must make it exit 0 without printing anything more. The process is always reaped."""
    proc = subprocess.Popen([sys.executable, script, "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        tc.assertTrue(ready, "no ready line")
        line = proc.stdout.readline().decode()
        info = json.loads(line)
        tc.assertLessEqual(SCRIPT_KEYS, set(info))
        tc.assertEqual(info["pid"], proc.pid)
        tc.assertEqual(info["url"], "%s://127.0.0.1:%d" % ("https" if info["tls"] else "http", info["port"]))
        tc.assertEqual(info["control"], info["url"] + "/__control")
        yield line, info
        proc.send_signal(signal.SIGTERM)
        tc.assertEqual(proc.wait(timeout=10), 0)
        tc.assertEqual(proc.stdout.read(), b"")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def check_stop_cuts_a_delayed_request(tc, fake, slow_request, max_stop_s=3.0):
    """`fake` is started and delays what slow_request() sends far longer than max_stop_s. stop() must return
    within max_stop_s: the delayed request gets no answer and is logged with fault "stopping", an idle
    connection is cut, every server thread is joined, the port is closed, and stop() may be called again."""
    port = fake.port
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    errors = []

    def slow():
        try:
            slow_request()
        except CONN_ERRORS as e:
            errors.append(e)

    t = threading.Thread(target=slow)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while fake.count() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        tc.assertEqual(fake.count(), 1)
        srv, serve_thread = fake._server, fake._thread
        t0 = time.monotonic()
        fake.stop()
        tc.assertLess(time.monotonic() - t0, max_stop_s)
        t.join(10)
        tc.assertFalse(t.is_alive())
        tc.assertEqual(len(errors), 1)          # the delayed request got no answer
        tc.assertEqual(fake.requests()[0]["fault"], "stopping")
        tc.assertFalse(serve_thread.is_alive())
        tc.assertEqual([x for x in srv.handler_threads if x.is_alive()], [])
        idle.settimeout(1)
        tc.assertEqual(idle.recv(1), b"")       # cut by the server: EOF, not a timeout
        with tc.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        tc.assertIsNone(fake.url)
        fake.stop()   # idempotent
    finally:
        idle.close()
        fake.stop()
        t.join(10)


def check_temp_pki(tc, make_fake, path, status):
    """A fake made without tls_dir generates its PKI in a temporary folder, serves with it (GET `path` answers
    `status`) and removes the folder when the with-statement ends."""
    with make_fake() as fake:
        d = os.path.dirname(fake.ca_file)
        tc.assertTrue(os.path.isdir(d))
        tc.assertEqual(http_call(fake, "GET", path, ctx=fake.ssl_context()).status, status)
    tc.assertFalse(os.path.exists(d))
    tc.assertIsNone(fake.url)
