"""cloudenv - what the cloud providers' integration setups (awsenv, azureenv, gcpenv) share.

Each provider's tests run the real broker against a fake of the provider, with the broker's environment under
the test's control: the provider's variables of the test process are dropped (ENV_PREFIXES), the setup adds
its defaults (base_env) and a test adds or removes what it means (env={...}; a value None removes a variable).
CloudTestCase holds that, the broker start that waits for the cold start, the CLI run in the same environment,
the configuration with the provider's backend under one name (BACKEND), and the broker-log lines a provider
writes about where its credentials came from (prefixed_logs / wait_prefixed_log).

Standard library only.
"""

import contextlib
import json
import os
import time

import rstest


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def overlay(base, changes):
    """base updated by changes (a dict or None), where a value None removes the key; returns base."""
    for k, v in (changes or {}).items():
        if v is None:
            base.pop(k, None)
        else:
            base[k] = v
    return base


@contextlib.contextmanager
def patched_environ(env):
    """os.environ replaced by env (a complete dict) while the block runs (Popen inherits it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def overlap(entries):
    """The most requests of entries (a fake's log: "mono", "duration_ms") in flight at once."""
    events = []
    for e in entries:
        if e["duration_ms"] is None:
            continue
        events.append((e["mono"], 1))
        events.append((e["mono"] + e["duration_ms"] / 1000.0, -1))
    # an end sorts before a start at the same instant: touching is not overlapping
    events.sort(key=lambda x: (x[0], x[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def replace_file(path, content, mode=0o600):
    """Atomically replace path (as Kubernetes swaps a projected token)."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class CloudTestCase(rstest.BrokerTestCase):
    """A BrokerTestCase whose brokers and CLI runs get a controlled environment.

    ENV_PREFIXES  the test process's variables starting with these never reach the broker
    BACKEND       the provider backend's name in every test configuration
    """

    ENV_PREFIXES = ()
    BACKEND = None

    def base_env(self):
        """Variables every broker of the test gets (before a test's env)."""
        return {}

    def broker_env(self, env=None):
        """The broker's whole environment: ours minus ENV_PREFIXES, then base_env(), then env."""
        out = {k: v for k, v in os.environ.items() if not k.startswith(self.ENV_PREFIXES)}
        out.update(self.base_env())
        return overlay(out, env)

    def start_broker(self, config=None, mountpoint=None, wait=True, env=None, **kw):
        return self.start_broker_in(self.broker_env(env), config=config, mountpoint=mountpoint, wait=wait, **kw)

    def start_broker_in(self, environ, config=None, mountpoint=None, wait=True, **kw):
        """A broker started with exactly `environ`; wait: until mounted and its cold start is done."""
        with patched_environ(environ):
            b = super().start_broker(config=config, mountpoint=mountpoint, wait=False, **kw)
        if wait:
            b.wait_mounted()
            b.wait_log("mounted")
            b.wait_log("cold start done")
        return b

    def cli(self, *args, env=None, timeout=rstest.CLI_TIMEOUT):
        return rstest.run_cli(*args, env=self.broker_env(env), timeout=timeout)

    def write_backend_config(self, secrets, backend, defaults=None, extra_backends=None, path=None):
        """A configuration with `backend` as BACKEND (and extra_backends beside it)."""
        backends = {self.BACKEND: backend}
        backends.update(extra_backends or {})
        return self.write_config(secrets, defaults=defaults, backends=backends, path=path)

    # -- the broker's log

    @staticmethod
    def prefixed_logs(broker, prefix, since=0):
        """The broker's log records (from index since) whose message starts with prefix."""
        return [r for r in broker.logs()[since:]
                if isinstance(r.get("msg"), str) and r["msg"].startswith(prefix)]

    def wait_prefixed_log(self, broker, prefix, needle, since=0, count=1, timeout=rstest.LOG_TIMEOUT):
        """Wait for `count` log lines starting with prefix and holding needle; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.prefixed_logs(broker, prefix, since) if needle in r["msg"]]
            if len(found) >= count:
                return found
            if not broker.running() or time.monotonic() >= deadline:
                self.fail("expected %d %r log line(s) naming %r; got %r\n%s"
                          % (count, prefix, needle, [r["msg"] for r in self.prefixed_logs(broker, prefix)],
                             broker.describe()))
            time.sleep(rstest.POLL)

    def assertParallelColdStart(self, add, delay, write_config, ref, gets, n=40, seconds=0.25,
                                max_parallel=16):
        """A cold start of n secrets with `seconds` added to each read runs in parallel under one token:
        add(name, value) creates a secret at the fake; delay(seconds) slows its reads (delay(None) clears);
        write_config(secrets, **kw) writes the broker's config; ref(name) is a secret's reference; gets()
        lists the fake's authenticated reads ("secret", "status", "token", "mono", "duration_ms")."""
        values = {}
        for i in range(n):
            name = "s%02d" % i
            values[name] = rstest.random_value(12, name + "-")
            add(name, values[name])
        delay(seconds)
        write_config({name: ref(name) for name in values},
                     defaults={"refresh": "1h", "max_stale": "2h"}, max_parallel=max_parallel)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (n, 0), rec)
        delay(None)
        # one at a time would take n x seconds (10 s) plus the token; max_parallel at a time 0.75 s plus
        # as many TLS handshakes with a Python fake. Half of one-at-a-time is a bound an ASan build on a
        # loaded machine keeps (CI saw 2.7 s at load 8); the overlap below is what proves parallelism.
        self.assertLess(rec["ms"], n * seconds * 1000 / 2, rec)
        for name, v in values.items():
            self.assertEqual(self.read(name), v.encode())
        got = gets()
        self.assertEqual(sorted(e["secret"] for e in got), sorted(values))
        self.assertTrue(all(e["status"] == 200 for e in got))
        conc = overlap(got)
        self.assertGreater(conc, 4, "reads were not in parallel (at most %d at once)" % conc)
        self.assertLessEqual(conc, max_parallel, "more requests in flight than max_parallel")
        self.assertEqual(len({e["token"] for e in got}), 1, "one token for the whole cold start")
        return b
