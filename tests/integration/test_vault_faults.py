"""Vault backend under faults: wrong CA, oversize bodies, Retry-After on 429,
single-flight of first fetches and of fields of one path, a sealed Vault
(stale, then fail closed, then recovery), dropped connections, truncated and
non-JSON bodies."""

import errno
import os
import threading
import time

import rstest
import vaultenv

MiB = 1024 * 1024


class FaultBase(vaultenv.VaultTestCase):

    def setUp(self):
        super().setUp()
        self.vault.add_kv_mount("secret", version=2)
        self.pw = rstest.random_value(16, "pw-")
        self.put_secret("secret", "app", {"password": self.pw})
        self.other = rstest.random_value(16, "other-")
        self.put_secret("secret", "other", {"v": self.other})

    def statuses(self, rel, since_mono=0.0):
        return [(e["status"], e["fault"]) for e in self.gets(rel) if e["mono"] >= since_mono]


class TLSTest(FaultBase):

    def test_wrong_ca(self):
        self.write_vault_config({"pw": "vault:secret/app#password"},
                                ca_file=self.pki["other-ca.pem"])
        r = rstest.run_cli("check", "--config", self.config_path, "--fetch")
        out, err = r.stdout.decode(), r.stderr.decode()
        self.assertEqual(r.returncode, 1, out + err)
        [row] = [ln for ln in out.splitlines() if ln.startswith("pw ")]
        self.assertIn("error: ", row)
        self.assertTrue("certificate" in row.lower() or "ssl" in row.lower(),
                        "TLS error does not name the certificate problem: %r" % row)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (0, 1), rec)
        f = b.wait_log("fetch failed", secret="pw")
        e = f.get("error", "").lower()
        self.assertTrue("certificate" in e or "ssl" in e, f)
        self.assertErrno(errno.ENOENT, os.open, self.mpath("pw"), os.O_RDONLY)
        self.assertEqual(os.listdir(self.mnt), [])
        # nothing crossed the failed handshakes: no request, no token sent
        self.assertEqual(self.vault_requests(), [])
        self.assertGreaterEqual(self.vault.stats().get("tls_handshake_failures", 0), 1)


    def test_tls_server_name(self):
        self.write_vault_config({"pw": "vault:secret/app#password"}, tls_server_name="localhost")
        r = rstest.run_cli("check", "--config", self.config_path, "--fetch")
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        self.vault.clear_requests()
        self.write_vault_config({"pw": "vault:secret/app#password"},
                                tls_server_name="vault.example.com")
        r = rstest.run_cli("check", "--config", self.config_path, "--fetch")
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 1, out + r.stderr.decode())
        [row] = [ln for ln in out.splitlines() if ln.startswith("pw ")]
        self.assertTrue("certificate" in row.lower() or "ssl" in row.lower(), row)
        self.assertEqual(self.vault_requests(), [],
                         "a request crossed a handshake with the wrong server name")


class MutualTLSTest(FaultBase):
    FAKE_KW = {"require_client_cert": True}

    def test_client_certificate(self):
        self.write_vault_config({"pw": "vault:secret/app#password"},
                                cert_file=self.pki["client.pem"], key_file=self.pki["client-key.pem"])
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("pw"), self.pw.encode())
        # without one (or with one from another CA) the handshake fails
        for kw in ({}, {"cert_file": self.pki["other-client.pem"],
                        "key_file": self.pki["other-client-key.pem"]}):
            cfg = self.write_vault_config({"pw": "vault:secret/app#password"},
                                          path=os.path.join(self.dir, "c2.json"), **kw)
            r = rstest.run_cli("check", "--config", cfg, "--fetch")
            self.assertEqual(r.returncode, 1, r.stdout.decode() + r.stderr.decode())


class TimeoutTest(FaultBase):

    def test_timeout_is_retried_stale_kept(self):
        self.write_vault_config({"pw": "vault:secret/app#password"}, timeout="1s",
                                retry_base="1s", retry_max="2s")
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        mark = b.mark()
        self.vault.add_latency(2500, prefix="secret/data/app")
        t0 = time.monotonic()
        rec = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertLess(time.monotonic() - t0, 3.5, "the 1 s timeout did not cut the request")
        self.assertTrue(rec.get("error"), rec)
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.vault.clear_latency()
        b.wait_log("secret recovered", since=mark, secret="pw", timeout=6)
        self.assertEqual(self.read("pw"), self.pw.encode())


class OversizeTest(FaultBase):

    def test_max_size_value_cap(self):
        # max_size caps what the backend hands over (for KV, the data object,
        # before any #field), like the file backend's whole file
        small = rstest.random_value(8, "s-")          # 18 bytes
        self.put_secret("secret", "small", {"v": small})
        self.put_secret("secret", "large", {"v": "L" * 200})
        self.write_vault_config({"small": "vault:secret/small#v",
                                 "large": "vault:secret/large#v"}, max_size=100)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 1), rec)
        self.assertEqual(self.read("small"), small.encode())
        rec = b.wait_log("fetch failed", secret="large")
        self.assertTrue(rec.get("error"), rec)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("large"))
        self.assertEqual(os.listdir(self.mnt), ["small"])

    def test_default_cap_rejects_2mib_keeps_previous(self):
        self.write_vault_config({"pw": "vault:secret/app#password",
                                 "fresh": "vault:secret/other#v"})
        self.vault.oversize_responses("secret/data/other", size=2 * MiB)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 1), rec)
        f = b.wait_log("fetch failed", secret="fresh")
        self.assertIn("response larger than", f.get("error", ""), f)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("fresh"))
        # a secret that had a value keeps it
        mark = b.mark()
        self.vault.oversize_responses("secret/data/app", size=2 * MiB)
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertIn("response larger than", f.get("error", ""), f)
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.vault.clear_faults()
        b.wait_log("secret recovered", since=mark, secret="pw")
        self.wait_value(self.other, "fresh")

    def test_max_response_size(self):
        big = rstest.random_value(3000, "big-")        # ~6 KiB value, ~6.1 KiB body
        self.put_secret("secret", "big", {"v": big})
        self.write_vault_config({"pw": "vault:secret/app#password", "big": "vault:secret/big#v"},
                                max_response_size=4096)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 1), rec)
        f = b.wait_log("fetch failed", secret="big")
        self.assertIn("response larger than", f.get("error", ""), f)
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("big"))
        # a value that grows past the cap: the previous one is kept
        mark = b.mark()
        self.put_secret("secret", "app", {"password": self.pw, "pad": big})
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertIn("response larger than", f.get("error", ""), f)
        self.assertEqual(self.read("pw"), self.pw.encode())


class RetryAfterTest(FaultBase):

    def test_retry_after_honoured_at_cold_start(self):
        self.vault.fail_next_429(n=1, retry_after=2, prefix="secret/data/app")
        self.write_vault_config({"pw": "vault:secret/app#password"})
        b = self.start_broker()
        self.wait_value(self.pw, "pw", timeout=8)
        gets = self.gets("secret/data/app")
        self.assertGreaterEqual(len(gets), 2)
        self.assertEqual((gets[0]["status"], gets[0]["fault"]), (429, "rate_limit"))
        self.assertEqual(gets[1]["status"], 200)
        answered = gets[0]["mono"] + gets[0]["duration_ms"] / 1000.0
        gap = gets[1]["mono"] - answered
        self.assertGreaterEqual(gap, 1.95, "retried %.2fs after a 429 with Retry-After: 2" % gap)
        self.assertLess(gap, 5.0, "retried only %.2fs after a 429 with Retry-After: 2" % gap)
        self.assertTrue(b.running())


class SingleFlightTest(FaultBase):

    def test_concurrent_opens_during_first_fetch_share_one_request(self):
        self.vault.add_latency(1500, prefix="secret/data/app")
        self.write_vault_config({"pw": "vault:secret/app#password"},
                                defaults={"refresh": "1m", "max_stale": "1h"})
        b = self.start_broker(wait=False)
        b.wait_mounted()
        b.wait_log("mounted")
        self.assertEqual(b.find_logs("cold start done"), [],
                         "precondition: the first fetch should still be in flight")
        n = 64
        barrier = threading.Barrier(n)
        results = [None] * n

        def reader(i):
            try:
                barrier.wait(timeout=10)
                results[i] = rstest.read_all(self.mpath("pw"))
            except OSError as e:
                results[i] = "errno %s" % errno.errorcode.get(e.errno, e.errno)
            except threading.BrokenBarrierError:
                results[i] = "barrier broken"

        t0 = time.monotonic()
        threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=15)
        self.assertFalse(any(t.is_alive() for t in threads), "a reader hung")
        bad = [r for r in results if r != self.pw.encode()]
        self.assertEqual(bad, [], "%d of %d readers got something else, e.g. %r"
                         % (len(bad), n, bad[:1]))
        self.assertGreater(time.monotonic() - t0, 0.5, "readers did not wait for the fetch?")
        self.cold_start(b)
        self.assertEqual(self.vault.count(method="GET", prefix="secret/data/app"), 1,
                         "GETs: %r" % [(e["mono"], e["status"]) for e in self.gets("secret/data/app")])

    def test_waiting_readers_do_not_block_cached_files(self):
        # 48 readers wait on a slow first fetch (more than the loop's 16
        # threads); meanwhile a secret already fetched must read at once:
        # waiting requests are parked, not holding loop threads.
        self.put_secret("secret", "fast", {"v": rstest.random_value(16, "fast-")})
        self.vault.add_latency(3000, prefix="secret/data/app")
        self.write_vault_config({"pw": "vault:secret/app#password", "fast": "vault:secret/fast#v"},
                                defaults={"refresh": "1m", "max_stale": "1h"})
        b = self.start_broker(wait=False)
        b.wait_mounted()
        rstest.wait_until(lambda: os.path.exists(self.mpath("fast")) and
                          b.find_logs("secret fetched", secret="fast"), 10, "the fast secret")
        n = 48
        results = [None] * n

        def reader(i):
            try:
                results[i] = rstest.read_all(self.mpath("pw"))
            except OSError as e:
                results[i] = "errno %s" % errno.errorcode.get(e.errno, e.errno)

        threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        time.sleep(0.5)                  # they are all waiting now
        self.assertEqual(b.find_logs("cold start done"), [], "precondition: still fetching")
        t0 = time.monotonic()
        for _ in range(20):
            self.assertEqual(rstest.read_all(self.mpath("fast")).decode(),
                             self.read("fast").decode())
            os.stat(self.mpath("fast"))
            os.listdir(self.mnt)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 1.0, "cached reads took %.2fs behind the waiting readers" % elapsed)
        for t in threads:
            t.join(timeout=15)
        self.assertFalse(any(t.is_alive() for t in threads), "a reader hung")
        bad = [r for r in results if r != self.pw.encode()]
        self.assertEqual(bad, [], "%d of %d readers got something else, e.g. %r" % (len(bad), n, bad[:1]))
        self.assertEqual(self.vault.count(method="GET", prefix="secret/data/app"), 1)

    def test_fields_of_one_path_share_the_request(self):
        self.put_secret("secret", "db", {"user": rstest.random_value(8, "u-"),
                                         "password": rstest.random_value(16, "p-"),
                                         "host": "db.internal"})
        self.write_vault_config({"db/user": "vault:secret/db#user",
                                 "db/pass": "vault:secret/db#password",
                                 "db/host": "vault:secret/db#host",
                                 "db/all": "vault:secret/db"},
                                defaults={"refresh": "1m", "max_stale": "1h"})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        self.assertEqual(self.read("db", "host"), b"db.internal")
        self.assertEqual(self.vault.count(method="GET", prefix="secret/data/db"), 1)


class OutageTest(FaultBase):
    MAX_STALE = 3.0

    def test_sealed_stale_then_eio_then_recovery(self):
        self.write_vault_config({"pw": "vault:secret/app#password", "other": "vault:secret/other#v"},
                                defaults={"refresh": "1s", "max_stale": "3s"},
                                retry_base="1s", retry_max="2s")
        b = self.start_broker()
        path = self.mpath("pw")
        ino = os.stat(path).st_ino
        mark = b.mark()
        t_seal = time.monotonic()
        self.vault.set_sealed(True)
        rec = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertTrue(rec.get("error"), rec)
        self.assertFailsClosed("pw", self.pw.encode(), t_seal, self.MAX_STALE)
        b.wait_log("secret expired, failing closed", since=mark, secret="pw")
        self.assertTrue(b.running())
        # recovery after unseal
        mark = b.mark()
        t_unseal = time.monotonic()
        self.vault.set_sealed(False)
        b.wait_log("secret recovered", since=mark, secret="pw", timeout=6)
        self.assertLess(time.monotonic() - t_unseal, 4.0, "slow recovery (retry_max 2s)")
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.assertEqual(os.stat(path).st_ino, ino)
        self.wait_value(self.other, "other", timeout=4)


class BrokenResponsesTest(FaultBase):

    def _survives(self, inject, fault, n=3):
        self.write_vault_config({"pw": "vault:secret/app#password"},
                                retry_base="1s", retry_max="2s")
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        mark = b.mark()
        t0 = time.monotonic()
        inject(n)
        # until the faults are used up and a read succeeds again, the value is
        # served unchanged (never the broken body)
        deadline = t0 + 15
        while time.monotonic() < deadline:
            self.assertEqual(self.read("pw"), self.pw.encode())
            st = self.statuses("secret/data/app", t0)
            faults = [s for s in st if s[1] == fault]
            if len(faults) >= n and st and st[-1] == (200, None):
                break
            time.sleep(0.1)
        else:
            self.fail("no successful read after %d %s faults: %r"
                      % (n, fault, self.statuses("secret/data/app", t0)))
        self.assertTrue(b.running(), b.describe())
        self.assertNoLog(b, "secret removed", since=mark)
        self.assertNoLog(b, "secret rotated", since=mark)
        self.assertNoLog(b, "secret expired, failing closed", since=mark)
        self.assertEqual(self.read("pw"), self.pw.encode())
        return b, mark

    def test_dropped_connections(self):
        self._survives(lambda n: self.vault.drop_next_connections(n, prefix="secret/data/app"),
                       "drop")

    def test_truncated_bodies(self):
        self._survives(lambda n: self.vault.truncate_next_responses(n, prefix="secret/data/app"),
                       "truncate")

    def test_non_json_bodies(self):
        b, mark = self._survives(
            lambda n: self.vault.non_json_next_responses(n, prefix="secret/data/app", status=502),
            "non_json")
        # also with status 200: an HTML page is not a secret
        mark = b.mark()
        t0 = time.monotonic()
        self.vault.non_json_next_responses(2, prefix="secret/data/app", status=200)
        rstest.wait_until(lambda: self.statuses("secret/data/app", t0)[-1:] == [(200, None)], 8,
                          "a good read after the HTML pages")
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.assertNoLog(b, "secret rotated", since=mark)

    def test_faults_at_cold_start_are_retried(self):
        self.vault.drop_next_connections(1, prefix="secret/data/app")
        self.vault.non_json_next_responses(1, prefix="secret/data/other", status=503)
        self.write_vault_config({"pw": "vault:secret/app#password",
                                 "other": "vault:secret/other#v"},
                                retry_base="1s", retry_max="2s")
        b = self.start_broker()
        self.wait_value(self.pw, "pw", timeout=6)
        self.wait_value(self.other, "other", timeout=6)
        self.assertTrue(b.running())


if __name__ == "__main__":
    rstest.main()
