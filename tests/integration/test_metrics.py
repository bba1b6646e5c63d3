"""The admin endpoint's content (issue 14): /metrics parsed by Prometheus's own
text-format parser after reads, refused opens, a failed fetch, a rotation and
reloads, each counter checked against what the test did; /health turning 503
when a secret goes stale and back; /status and `runsecrets status`.

Runs under /usr/bin/python3 (Debian's python3-prometheus-client).
"""

import json
import os
import signal
import time

import adminenv
import rstest
from adminenv import value

# "fast": the backend whose secret rotates and fails (refresh 300ms,
# max_stale 1500ms, values up to 64 bytes); "local": every other secret,
# refreshed hourly, so its fetch counts are exactly the cold start's.
FAST = {"refresh": "300ms", "max_stale": "1500ms"}


class MetricsTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.fast_dir = os.path.join(self.dir, "fast")
        os.mkdir(self.fast_dir, 0o700)
        self.sock = os.path.join(self.dir, "admin.sock")
        self.addr = "unix:" + self.sock

    def config(self, secrets, admin=True):
        cfg = {
            "mount": self.mnt,
            "defaults": {"refresh": "1h", "max_stale": "2h", "mode": "0400", "uid": 0, "gid": 0},
            "backends": {"local": {"type": "file", "path": self.secrets_dir},
                         "fast": {"type": "file", "path": self.fast_dir, "max_size": 64}},
            "secrets": secrets,
        }
        if admin:
            cfg["admin"] = {"listen": self.addr}
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(cfg, f, indent=2)
        os.replace(tmp, self.config_path)

    def write_fast(self, name, data):
        path = os.path.join(self.fast_dir, name)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        if len(data) >= 12:
            self.sensitive(data)

    def open_read(self, name, times=1):
        """Open, read once, close: one open each (direct_io: one read)."""
        last = None
        for _ in range(times):
            fd = os.open(self.mpath(name), os.O_RDONLY)
            try:
                last = os.read(fd, 4096)
            finally:
                os.close(fd)
        return last

    def status(self, name):
        st, j = adminenv.get_json(self.addr, "/status")
        self.assertEqual(st, 200)
        for s in j["secrets"]:
            if s["name"] == name:
                return s
        return None

    def test_counters_follow_what_happened(self):
        values = {n: self.sensitive(rstest.random_value()) for n in ("a", "b", "c")}
        for n, v in values.items():
            self.write_secret(n, v)
        r1 = self.sensitive(rstest.random_value(prefix="rot1-"))
        self.write_fast("r", r1)
        f1 = self.sensitive(rstest.random_value(prefix="f1-"))
        self.write_fast("f", f1)
        secrets = {
            "a": {"from": "local:a"},
            "b": {"from": "local:b"},
            "opt": {"from": "local:missing", "required": False},
            "r": dict({"from": "fast:r"}, **FAST),
            "f": dict({"from": "fast:f"}, **FAST),
        }
        self.config(secrets)
        pid_file = os.path.join(self.dir, "broker.pid")
        broker = self.start_broker(args=["--pid-file", pid_file])
        broker.wait_log("admin endpoint listening")

        s0, fam = adminenv.scrape(self.addr)
        # Cold start: two values and one missing object from "local", fetched once each.
        self.assertEqual(value(s0, "runsecrets_fetches_total", backend="local", result="ok"), 2)
        self.assertEqual(value(s0, "runsecrets_fetches_total", backend="local",
                               result="not_found"), 1)
        self.assertEqual(value(s0, "runsecrets_fetches_total", backend="local", result="error"),
                         0)
        self.assertEqual(value(s0, "runsecrets_fetch_duration_seconds_count", backend="local"),
                         3)
        self.assertEqual(value(s0, "runsecrets_backend_up", backend="local"), 1)
        self.assertEqual(value(s0, "runsecrets_secret_present", secret="opt"), 0)
        self.assertEqual(value(s0, "runsecrets_secret_present", secret="a"), 1)
        self.assertIsNone(value(s0, "runsecrets_secret_age_seconds", secret="opt"))
        self.assertLess(value(s0, "runsecrets_secret_age_seconds", secret="a"), 60)
        self.assertEqual(value(s0, "runsecrets_opens_total"), 0)
        self.assertEqual(value(s0, "runsecrets_build_info",
                               version=broker_version()), 1)
        self.assertEqual(fam["runsecrets_fetch_duration_seconds"].type, "histogram")
        self.assertGreater(value(s0, "process_resident_memory_bytes"), 1 << 20)
        # Locked memory: none in a sanitizer build, whose allocations are plain (RS_PLAIN_ALLOC).
        if not rstest.is_asan_build():
            self.assertGreater(value(s0, "runsecrets_secure_memory_bytes"), 0)
        self.assertIsNotNone(value(s0, "runsecrets_secure_memory_bytes"))
        self.assertGreaterEqual(value(s0, "runsecrets_cache_bytes"), 4 * 40)
        self.assertGreater(value(s0, "process_open_fds"), 3)
        self.assertAlmostEqual(value(s0, "process_start_time_seconds"), time.time(), delta=60)
        # Optional and missing: not a health problem.
        st, j = adminenv.get_json(self.addr, "/health")
        self.assertEqual((st, j), (200, {"status": "ok"}))

        # Reads: 5 of a, 3 of b. Refused opens (another uid; a write) are the kernel's:
        # default_permissions and the read-only mount stop them before the daemon.
        self.assertEqual(self.open_read("a", 5), values["a"])
        self.open_read("b", 3)
        res = rstest.run_as(65534, 65534, lambda: os.open(self.mpath("a"), os.O_RDONLY))
        self.assertEqual(res[:2], ("err", 13))
        self.assertErrno(30, os.open, self.mpath("a"), os.O_WRONLY)
        s1, _ = adminenv.scrape(self.addr)
        self.assertEqual(value(s1, "runsecrets_reads_total", secret="a", result="allow"), 5)
        self.assertEqual(value(s1, "runsecrets_reads_total", secret="b", result="allow"), 3)
        for n in ("a", "b"):
            for res_ in ("deny", "error"):
                self.assertEqual(value(s1, "runsecrets_reads_total", secret=n, result=res_), 0)
        self.assertEqual(value(s1, "runsecrets_opens_total"), 8)

        # Rotation of r: read until the new value shows, counting the opens.
        opens_r = 0
        r2 = self.sensitive(rstest.random_value(prefix="rot2-"))
        self.write_fast("r", r2)
        deadline = time.monotonic() + 10
        while True:
            opens_r += 1
            if self.open_read("r") == r2:
                break
            self.assertLess(time.monotonic(), deadline, "r never rotated")
            time.sleep(0.05)
        s2, _ = adminenv.scrape(self.addr)
        self.assertEqual(value(s2, "runsecrets_reads_total", secret="r", result="allow"), opens_r)
        self.assertLess(value(s2, "runsecrets_secret_age_seconds", secret="r"), 2)
        fast_ok = value(s2, "runsecrets_fetches_total", backend="fast", result="ok")
        self.assertGreaterEqual(fast_ok, 3)   # r and f at the cold start, r's new value
        self.assertEqual(sum(value(s2, "runsecrets_fetches_total", backend="fast", result=k)
                             for k in ("ok", "unchanged", "not_found", "error")),
                         value(s2, "runsecrets_fetch_duration_seconds_count", backend="fast"))
        # "local" is refreshed hourly: still the cold start's three.
        self.assertEqual(value(s2, "runsecrets_fetch_duration_seconds_count", backend="local"), 3)

        # A failed fetch: f grows past max_size. Stale, then past max_stale: EIO.
        big = self.sensitive(b"x" * 65 + os.urandom(8).hex().encode())
        self.write_fast("f", big)
        rstest.wait_until(lambda: self.status("f")["state"] == "stale", 10, "f stale")
        st, j = adminenv.get_json(self.addr, "/health")
        self.assertEqual(st, 503)
        self.assertEqual(j["status"], "degraded")
        self.assertEqual(list(j["secrets"]), ["f"])
        self.assertRegex(j["secrets"]["f"], r"^stale \d+(ms|s): .*max_size|^stale \d+(ms|s): .*large")
        self.assertEqual(self.open_read("f"), f1)   # the last good value, still served
        s3, _ = adminenv.scrape(self.addr)
        self.assertGreaterEqual(value(s3, "runsecrets_fetches_total", backend="fast",
                                      result="error"), 1)
        self.assertEqual(value(s3, "runsecrets_secret_stale", secret="f"), 1)
        r = rstest.run_cli("status", "--admin", self.addr)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout.decode(), r"(?m)^f\s+fast\s+stale\s")
        rstest.wait_until(lambda: self.status("f")["state"] == "failing", 10, "f failing")
        self.assertErrno(5, self.open_read, "f")
        s4, _ = adminenv.scrape(self.addr)
        self.assertEqual(value(s4, "runsecrets_reads_total", secret="f", result="error"), 1)
        self.assertEqual(value(s4, "runsecrets_reads_total", secret="f", result="allow"), 1)
        self.assertEqual(value(s4, "runsecrets_secret_present", secret="f"), 0)
        # Fixed: healthy again.
        f2 = self.sensitive(rstest.random_value(prefix="f2-"))
        self.write_fast("f", f2)
        rstest.wait_until(lambda: adminenv.get_json(self.addr, "/health")[0] == 200, 10,
                          "/health back to 200")
        self.assertEqual(rstest.run_cli("health", "--admin", self.addr).returncode, 0)
        r = rstest.run_cli("status", "--admin", self.addr)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # A reload drops b and adds c: b's series go, c's come, a's counters carry on.
        opens_before = value(adminenv.scrape(self.addr)[0], "runsecrets_opens_total")
        del secrets["b"]
        secrets["c"] = {"from": "local:c"}
        self.config(secrets)
        r = rstest.run_cli("reload", "--pid-file", pid_file, "--timeout", "20s")
        self.assertEqual(r.returncode, 0, r.stderr)
        rstest.wait_until(lambda: self.status("c") and self.status("c")["state"] == "ok", 10,
                          "c fetched")
        s5, _ = adminenv.scrape(self.addr)
        self.assertEqual(value(s5, "runsecrets_reload_total", result="ok"), 1)
        self.assertEqual(value(s5, "runsecrets_reload_total", result="failed"), 0)
        self.assertIsNone(value(s5, "runsecrets_reads_total", secret="b", result="allow"))
        self.assertEqual(value(s5, "runsecrets_reads_total", secret="c", result="allow"), 0)
        self.assertEqual(value(s5, "runsecrets_reads_total", secret="a", result="allow"), 5)
        self.assertEqual(value(s5, "runsecrets_opens_total"), opens_before)   # b's count too
        self.assertEqual(value(s5, "runsecrets_fetches_total", backend="local", result="ok"), 3)
        # A reload that fails is counted too, and changes nothing else.
        with open(self.config_path, "w") as f:
            f.write("{ not json")
        r = rstest.run_cli("reload", "--pid-file", pid_file, "--timeout", "20s")
        self.assertEqual(r.returncode, 1)
        s6, _ = adminenv.scrape(self.addr)
        self.assertEqual(value(s6, "runsecrets_reload_total", result="failed"), 1)
        self.assertEqual(value(s6, "runsecrets_reads_total", secret="a", result="allow"), 5)

        # No value ever shows on any page.
        pages = b"".join(adminenv.request(self.addr, p)[2]
                         for p in ("/metrics", "/status", "/health", "/health/live"))
        for v in self.sensitive_values:
            self.assertNotIn(v, pages)
        broker.stop()

    def test_status_reports_each_secret(self):
        v = self.sensitive(rstest.random_value())
        self.write_secret("a", v)
        self.config({"a": {"from": "local:a"}, "gone": {"from": "local:nothing-here"}})
        self.start_broker()
        st, j = adminenv.get_json(self.addr, "/status")
        self.assertEqual(st, 200)
        self.assertFalse(j["healthy"])
        self.assertEqual(j["pid"] > 1, True)
        byname = {s["name"]: s for s in j["secrets"]}
        self.assertEqual(list(byname), ["a", "gone"])
        a = byname["a"]
        self.assertEqual((a["backend"], a["state"], a["size"], a["error"]), ("local", "ok", len(v),
                                                                            None))
        self.assertIsNotNone(a["last_success"])
        self.assertGreater(a["next_fetch_in_seconds"], 3000)   # hourly, with jitter
        self.assertEqual(byname["gone"]["state"], "missing")
        self.assertRegex(byname["gone"]["error"], "nothing-here: (not found|No such file)")
        self.assertEqual([(b["name"], b["type"], b["up"], b["auth"]) for b in j["backends"]],
                         [("local", "file", True, "none"), ("fast", "file", None, "none")])
        st, j = adminenv.get_json(self.addr, "/health")
        self.assertEqual(st, 503)
        self.assertRegex(j["secrets"]["gone"], "^missing: nothing-here: (not found|No such file)")
        r = rstest.run_cli("status", "--admin", self.addr)
        self.assertEqual(r.returncode, 1)
        out = r.stdout.decode()
        self.assertRegex(out, r"(?m)^NAME\s+BACKEND\s+STATE\s+AGE\s+NEXT\s+ERROR")
        self.assertRegex(out, r"(?m)^a\s+local\s+ok\s+\d+(ms|s)\s+\d+[hm]")
        self.assertRegex(out, r"(?m)^gone\s+local\s+missing\s+-\s+")
        self.assertEqual(rstest.run_cli("health", "--admin", self.addr).returncode, 1)
        # Degraded, but alive: a liveness probe must not restart it.
        self.assertEqual(rstest.run_cli("health", "--live", "--admin", self.addr).returncode, 0)
        r = rstest.run_cli("status", "--admin", self.addr, "--json")
        self.assertEqual(json.loads(r.stdout)["secrets"][0]["name"], "a")
        # SIGHUP-less broker gone: status can no longer reach it.
        self.brokers[-1].stop(signal.SIGTERM)
        r = rstest.run_cli("status", "--admin", self.addr)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(rstest.run_cli("health", "--admin", self.addr).returncode, 1)
        self.assertEqual(rstest.run_cli("health", "--live", "--admin", self.addr).returncode, 1)


def broker_version():
    out = rstest.run_cli("version").stdout.decode().splitlines()[0]
    return out.split()[1]


if __name__ == "__main__":
    rstest.main()
