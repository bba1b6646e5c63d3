"""adminenv - talking to a broker's admin endpoint (broker/admin.h) from tests.

Standard library only, but for ``parse_metrics``, which uses Prometheus's own
text-format parser (Debian's python3-prometheus-client, installed for
/usr/bin/python3: the tests that call it run under that interpreter).
"""

import http.client
import json
import socket


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX socket."""

    def __init__(self, path, timeout=10.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def connection(addr, timeout=10.0):
    """addr: "unix:/path" or "HOST:PORT" / "[::1]:PORT"."""
    if addr.startswith("unix:"):
        return UnixHTTPConnection(addr[5:], timeout=timeout)
    host, _, port = addr.rpartition(":")
    return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)


def request(addr, path, method="GET", headers=None, body=None, timeout=10.0):
    """(status, headers dict (lowercase names), body bytes)."""
    c = connection(addr, timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def get_json(addr, path, **kw):
    status, _, data = request(addr, path, **kw)
    return status, json.loads(data)


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} for every sample, and the
    families by name; raises on anything Prometheus's parser rejects."""
    from prometheus_client.parser import text_string_to_metric_families
    samples, families = {}, {}
    for fam in text_string_to_metric_families(text):
        families[fam.name] = fam
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            if key in samples:
                raise AssertionError("sample %s%r appears twice" % (s.name, s.labels))
            samples[key] = s.value
    return samples, families


def scrape(addr, **kw):
    status, headers, data = request(addr, "/metrics", **kw)
    if status != 200:
        raise AssertionError("/metrics answered %d: %r" % (status, data[:200]))
    if not headers.get("content-type", "").startswith("text/plain; version=0.0.4"):
        raise AssertionError("/metrics content type %r" % headers.get("content-type"))
    return parse_metrics(data.decode("utf-8"))


def value(samples, name, **labels):
    """One sample's value; None when the series is absent."""
    return samples.get((name, frozenset(labels.items())))
