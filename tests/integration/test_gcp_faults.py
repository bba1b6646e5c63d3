"""GCP backend under faults: a CRC32C mismatch (a wrong checksum, or data corrupted in transit) refused, the last
good value kept until max_stale, then EIO, and the new value once the answers are whole again; 429 and 503 with
Retry-After from Secret Manager and the token endpoint (no retry sooner); an outage (stale, then EIO at
max_stale, then recovery); FAILED_PRECONDITION of a destroyed version (not served, not retried as transient);
PERMISSION_DENIED naming the identity and the permission. Runs against tests/fakes/gcp_fake.py over TLS."""

import errno
import os
import time

import gcpenv
import rstest
from gcpenv import PROJECT_NUMBER, crc32c


def answered(e):
    """When the fake finished answering entry e (its monotonic clock, as the test's)."""
    return e["mono"] + e["duration_ms"] / 1000.0


class FaultBase(gcpenv.GcpTestCase):
    MAX_STALE = 3

    def setUp(self):
        super().setUp()
        self.pw = rstest.random_value(16, "pw-")
        self.add_version("app", self.pw)
        self.other = rstest.random_value(16, "other-")
        self.add_version("other", self.other)

    def assert_gap(self, first, nxt, floor, what):
        gap = nxt["mono"] - answered(first)
        self.assertGreaterEqual(gap, floor - 0.05, "%s retried %.2f s after a Retry-After of %d s"
                                % (what, gap, floor))
        self.assertLess(gap, floor + 3.0, "%s retried only %.2f s after a Retry-After of %d s" % (what, gap, floor))


class CrcTest(FaultBase):

    def test_crc_mismatch_refused_last_good_kept_until_max_stale(self):
        self.write_gcp_config({"pw": "gcp:app", "other": "gcp:other", "cold": "gcp:cold"},
                              defaults={"refresh": "500ms", "max_stale": "%ds" % self.MAX_STALE})
        cold = rstest.random_value(16, "cold-")
        self.add_version("cold", cold)
        self.gcp.fault_bad_crc("cold", count=None)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (2, 1), rec)
        # never served with a bad checksum
        f = b.wait_log("fetch failed", secret="cold")
        self.assertIn("checksum mismatch", f.get("error", ""), f)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("cold"))
        # a new version whose answers arrive corrupted (the data, not the checksum): refused, the old value kept
        mark = b.mark()
        new = rstest.random_value(16, "new-")
        self.gcp.fault_bad_crc("app", count=None, mode="data")
        self.add_version("app", new)
        last_ok = max(answered(e) for e in self.sm_gets("app") if e["status"] == 200 and e["version"] == 1)
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertIn("secret 'app' version 2: checksum mismatch", f.get("error", ""), f)
        self.assertFailsClosed("pw", self.pw.encode(), last_ok, self.MAX_STALE)
        self.assertEqual(self.read("other"), self.other.encode())
        # the checksums of the values never reach the log (a CRC of a short secret narrows a search)
        text = b.stderr()
        for v in (cold, new, self.pw):
            crc = crc32c(v.encode())
            self.assertNotIn(str(crc).encode(), text)
            self.assertNotIn(("%08x" % crc).encode(), text)
        # whole answers again: the new value
        self.gcp.clear_faults()
        self.wait_value(new, "pw", timeout=5)
        self.wait_value(cold, "cold", timeout=5)
        self.assertNoLog(b, "secret removed")


class ThrottleTest(FaultBase):

    def test_429_and_503_retry_after_from_secret_manager_and_token_endpoint(self):
        # cold start: the token endpoint answers 503 Retry-After 2, then Secret Manager 429 Retry-After 2
        self.gcp.fault_status("token", 503, retry_after=2, count=1)
        self.gcp.fault_status("secretmanager", 429, retry_after=2, count=1, secret="app")
        self.write_gcp_config({"pw": "gcp:app", "other": "gcp:other"})
        b = self.start_broker(wait=False)
        self.wait_value(self.pw, "pw", timeout=10)
        toks = self.token_requests()
        self.assertGreaterEqual(len(toks), 2, self.describe_requests())
        self.assertEqual((toks[0]["status"], toks[0]["fault"]), (503, "status"))
        self.assertEqual(toks[1]["status"], 200)
        self.assert_gap(toks[0], toks[1], 2, "the token endpoint")
        gets = self.sm_gets("app")
        self.assertEqual((gets[0]["status"], gets[0]["error"]), (429, "RESOURCE_EXHAUSTED"))
        self.assertEqual(gets[1]["status"], 200)
        self.assert_gap(gets[0], gets[1], 2, "Secret Manager")
        # on a refresh: 503 UNAVAILABLE with Retry-After 2; served all along, the other secret not held back
        self.cold_start(b)
        mark = b.mark()
        t0 = time.monotonic()
        self.gcp.fault_status("secretmanager", 503, retry_after=2, count=1, secret="app")
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertIn("HTTP 503 UNAVAILABLE", f.get("error", ""), f)
        while time.monotonic() < t0 + 1.5:
            self.assertEqual(self.read("pw"), self.pw.encode())
            time.sleep(0.1)
        b.wait_log("secret recovered", since=mark, secret="pw", timeout=6)
        reqs = [e for e in self.sm_gets("app") if e["mono"] > t0]
        self.assertEqual((reqs[0]["status"], reqs[0]["fault"]), (503, "status"))
        self.assertEqual(reqs[1]["status"], 200)
        self.assert_gap(reqs[0], reqs[1], 2, "Secret Manager")
        others = [e for e in self.sm_gets("other") if reqs[0]["mono"] < e["mono"] < reqs[1]["mono"]]
        self.assertGreaterEqual(len(others), 1, "the other secret was not refreshed meanwhile")


class OutageTest(FaultBase):

    def test_outage_stale_then_eio_then_recovery(self):
        self.write_gcp_config({"pw": "gcp:app", "other": "gcp:other"},
                              defaults={"refresh": "500ms", "max_stale": "%ds" % self.MAX_STALE})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0)
        mark = b.mark()
        self.gcp.fault_status("secretmanager", 503, count=None)
        t_out = time.monotonic()
        last_ok = max(answered(e) for e in self.sm_gets("app") if e["status"] == 200)
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="pw")
        self.assertIn("secret 'app': HTTP 503 UNAVAILABLE", f.get("error", ""), f)
        self.assertFailsClosed("pw", self.pw.encode(), last_ok, self.MAX_STALE)
        b.wait_log("secret expired, failing closed", since=mark, secret="pw")
        self.assertEqual(self.try_read("other"), errno.EIO)
        # bounded retrying: not a tight loop against a failing service
        during = [e for e in self.sm_gets() if e["mono"] > t_out]
        self.assertLess(len(during), 40, "%d requests in a %d s outage" % (len(during), self.MAX_STALE))
        # one token all along: a 503 is not a token problem
        self.assertEqual(len(self.token_requests()), 1)
        self.gcp.clear_faults()
        b.wait_log("secret recovered", since=mark, secret="pw", timeout=6)
        self.assertEqual(self.read("pw"), self.pw.encode())
        self.wait_value(self.other, "other", timeout=5)
        self.assertNoLog(b, "secret removed")


class RefusalTest(FaultBase):

    def test_destroyed_version_failed_precondition_not_retried_as_transient(self):
        n = self.add_version("gone-data", rstest.random_value(16, "destroyed-"))
        self.gcp.destroy_version("gone-data", n)
        self.write_gcp_config({"pw": "gcp:app", "destroyed": "gcp:gone-data?version=%d" % n,
                               "latest-destroyed": "gcp:gone-data"},
                              defaults={"refresh": "500ms", "max_stale": "1h"})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 2), rec)
        for name, what in (("destroyed", "secret 'gone-data' version %d" % n),
                           ("latest-destroyed", "secret 'gone-data'")):
            f = b.wait_log("fetch failed", secret=name)
            self.assertIn("%s is not accessible (HTTP 400 FAILED_PRECONDITION: Secret Version "
                          "[projects/%d/secrets/gone-data/versions/%d] is in DESTROYED state.)"
                          % (what, PROJECT_NUMBER, n), f.get("error", ""), f)
            self.assertErrno(errno.ENOENT, os.stat, self.mpath(name))
        # a permanent refusal: asked again at the refresh pace, not in a retry burst
        t0 = time.monotonic()
        time.sleep(2)
        asked = [e for e in self.sm_gets("gone-data") if e["mono"] > t0]
        self.assertLessEqual(len(asked), 2 * 6, self.describe_requests(t0))
        self.assertEqual(self.read("pw"), self.pw.encode())

    def test_permission_denied_names_the_identity_and_the_permission(self):
        self.gcp.deny(self.email, "app")
        ext, ext_path, _, _ = self.external_account()
        self.gcp.deny(ext["audience"].replace("//iam.googleapis.com/", "principal://iam.googleapis.com/")
                      .replace("/providers/provider-1", "/subject/subject-1"), "app")
        self.write_gcp_config({"pw": "gcp:app", "other": "gcp:other", "ext": "gext:app"},
                              extra_backends={"gext": self.gcp_backend(credentials_file=ext_path)})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 2), rec)
        self.assertEqual(self.read("other"), self.other.encode())
        f = b.wait_log("fetch failed", secret="pw")
        err = f.get("error", "")
        self.assertIn("secret 'app': access denied to service account %s (HTTP 403 PERMISSION_DENIED" % self.email,
                      err, f)
        self.assertIn("secretmanager.versions.access", err)
        self.assertNotIn("\n", err)
        f = b.wait_log("fetch failed", secret="ext")
        self.assertIn("access denied to workload identity %s" % ext["audience"], f.get("error", ""), f)
        denied = self.gcp.requests("secretmanager")
        self.assertTrue([e for e in denied if (e["status"], e["error"]) == (403, "PERMISSION_DENIED")])
        # a 403 is not a token problem: no new logins for it
        self.assertEqual(len(self.token_requests()), 1)
        self.assertEqual(len(self.token_requests("sts")), 1)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("pw"))


if __name__ == "__main__":
    rstest.main()
