"""AWS backend under faults injected by the proxy in front of moto: throttling and 5xx (retried with
backoff, Retry-After honoured, stale value served until max_stale, then EIO, then recovery), dropped
connections, clock skew (one rejection, then requests signed with the server's time), a wrong secret
key, access denied and decryption failures naming the secret."""

import errno
import os
import time

import awsenv
import rstest


class FaultBase(awsenv.AwsTestCase):

    def setUp(self):
        super().setUp()
        self.pw = rstest.random_value(16, "pw-")
        self.create_secret("app", self.pw)
        self.app = self.n("app")

    def ops(self, since=None, secret_id=None):
        return [(e["target"].split(".")[-1], e["status"], e["fault"])
                for e in self.sm_requests(since=since, secret_id=secret_id)]


class ThrottleTest(FaultBase):

    def test_throttled_cold_start_backs_off(self):
        n = 4
        self.proxy.throttle_next(n, target="GetSecretValue")
        self.write_aws_config({"app": "aws:" + self.app}, batch=False,
                              defaults={"refresh": "5s", "max_stale": "1h"},
                              retry_base="1s", retry_max="4s")
        b = self.start_broker(wait=False)
        b.wait_mounted()
        self.wait_value(self.pw, "app", timeout=20)
        gets = self.sm_requests("GetSecretValue")
        self.assertEqual([(e["status"], e["fault"]) for e in gets[:n + 1]],
                         [(400, "ThrottlingException")] * n + [(200, None)], self.ops())
        self.assertEqual(len(gets), n + 1, "extra GetSecretValue calls: %r" % self.ops())
        span = gets[n]["mono"] - gets[0]["mono"]
        self.assertGreater(span, 0.5, "%d retries within %.2fs: no backoff" % (n, span))
        self.assertLess(span, 16.0, "retries far slower than retry_max 4s: %.1fs" % span)
        self.assertTrue(b.running())

    def test_retry_after_honoured(self):
        self.proxy.fail_next(1, 503, "ServiceUnavailable", "Service is busy", retry_after=2,
                             target="GetSecretValue")
        self.write_aws_config({"app": "aws:" + self.app}, batch=False, retry_base="1s",
                              retry_max="4s", defaults={"refresh": "10s", "max_stale": "1h"})
        self.start_broker(wait=False)
        self.wait_value(self.pw, "app", timeout=10)
        gets = self.sm_requests("GetSecretValue")
        self.assertEqual([e["status"] for e in gets[:2]], [503, 200], self.ops())
        gap = gets[1]["mono"] - (gets[0]["mono"] + gets[0]["duration_ms"] / 1000.0)
        self.assertGreaterEqual(gap, 1.95, "retried %.2fs after Retry-After: 2" % gap)
        self.assertLess(gap, 6.0)

    def test_throttled_refresh_keeps_value(self):
        self.write_aws_config({"app": "aws:" + self.app}, retry_base="1s", retry_max="2s")
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0, b.describe())
        mark = b.mark()
        t0 = time.monotonic()
        self.proxy.throttle_next(3, target="DescribeSecret")
        self.proxy.throttle_next(3, target="GetSecretValue")
        deadline = t0 + 15
        while time.monotonic() < deadline:
            self.assertEqual(self.read("app"), self.pw.encode())
            st = [(e["status"], e["fault"]) for e in self.sm_requests("DescribeSecret", since=t0)]
            if len([s for s in st if s[1]]) >= 3 and st[-1] == (200, None):
                break
            time.sleep(0.1)
        else:
            self.fail("no successful refresh after 3 throttled ones: %r" % self.ops(since=t0))
        self.assertNoLog(b, "secret removed", since=mark)
        self.assertNoLog(b, "secret rotated", since=mark)
        self.assertNoLog(b, "secret expired, failing closed", since=mark)
        self.assertEqual(self.read("app"), self.pw.encode())


class OutageTest(FaultBase):
    MAX_STALE = 3.0

    def test_5xx_stale_then_eio_then_recovery(self):
        self.write_aws_config({"app": "aws:" + self.app},
                              defaults={"refresh": "1s", "max_stale": "3s"},
                              retry_base="1s", retry_max="2s")
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0, b.describe())
        ino = os.stat(self.mpath("app")).st_ino
        mark = b.mark()
        t_fail = time.monotonic()
        self.proxy.fail_next(None, 500, "InternalServiceError", "internal failure")
        rec = b.wait_log("refresh failed, serving stale value", since=mark, secret="app")
        self.assertIn("InternalServiceError", rec.get("error", ""), rec)
        self.assertFailsClosed("app", self.pw.encode(), t_fail, self.MAX_STALE)
        b.wait_log("secret expired, failing closed", since=mark, secret="app")
        self.assertTrue(b.running())
        time.sleep(1.0)
        # retries were spaced: no more than a few per second during the outage
        t_end = time.monotonic()
        failed = [e for e in self.sm_requests(since=t_fail) if e["fault"]]
        window = t_end - t_fail
        self.assertGreaterEqual(len(failed), 2, self.ops(since=t_fail))
        self.assertLessEqual(len(failed), 3 * window + 2,
                             "%d failing requests in %.1fs: hammering" % (len(failed), window))
        # recovery
        mark = b.mark()
        t_ok = time.monotonic()
        self.proxy.clear_faults()
        self.wait_value(self.pw, "app", timeout=6)
        self.assertLess(time.monotonic() - t_ok, 4.0, "slow recovery (retry_max 2s)")
        b.wait_log("secret recovered", since=mark, secret="app", timeout=2)
        self.assertEqual(os.stat(self.mpath("app")).st_ino, ino)

    def test_dropped_connections_at_cold_start(self):
        other = rstest.random_value(16, "o-")
        self.create_secret("other", other)
        self.proxy.drop_next(1, target="GetSecretValue", secret_id=self.app)
        self.proxy.server_error_next(1, 502, target="GetSecretValue", secret_id=self.n("other"))
        self.write_aws_config({"app": "aws:" + self.app, "other": "aws:" + self.n("other")},
                              batch=False, retry_base="1s", retry_max="2s")
        b = self.start_broker()
        self.wait_value(self.pw, "app", timeout=8)
        self.wait_value(other, "other", timeout=8)
        self.assertTrue(b.running())
        self.assertEqual([e["fault"] for e in self.sm_requests("GetSecretValue",
                                                               secret_id=self.app)][:2],
                         ["drop", None])


class SkewTest(FaultBase):

    def test_clock_skew_corrected_once(self):
        self.proxy.set_clock_offset(2 * 3600)
        self.write_aws_config({"app": "aws:" + self.app})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0, b.describe())
        self.assertEqual(self.read("app"), self.pw.encode())
        reqs = self.sm_requests()
        self.assertEqual((reqs[0]["status"], reqs[0]["fault"]), (403, "skew"), self.ops())
        self.assertEqual(reqs[1]["status"], 200, self.ops())
        t1 = awsenv.aws_proxy.parse_amz_date(reqs[1]["amz_date"])
        self.assertLess(abs(t1 - (reqs[1]["wall"] + 2 * 3600)), 300,
                        "retry not signed with the server's time: %s" % reqs[1]["amz_date"])
        warn = [r for r in b.logs()
                if str(r.get("msg", "")).startswith("aws rejected our clock")]
        self.assertEqual(len(warn), 1, warn)
        self.assertEqual(warn[0].get("level"), "warn", warn[0])
        # later refreshes are signed with the corrected clock from the start
        t0 = time.monotonic()
        rstest.wait_until(lambda: len(self.sm_requests("DescribeSecret", since=t0)) >= 2, 6,
                          "two refreshes")
        self.assertEqual([e for e in self.sm_requests() if e["fault"] == "skew"], [reqs[0]],
                         self.ops())
        self.assertEqual(self.read("app"), self.pw.encode())
        self.assertNoLog(b, "refresh failed, serving stale value")

    def test_clock_skew_at_check_fetch(self):
        self.proxy.set_clock_offset(2 * 3600)
        self.write_aws_config({"app": "aws:" + self.app})
        r = self.cli("check", "--config", self.config_path, "--fetch")
        out = r.stdout.decode() + r.stderr.decode()
        st = [(e["status"], e["fault"]) for e in self.sm_requests()]
        self.assertEqual(r.returncode, 0, "%s\n%r" % (out, st))
        self.assertEqual(st, [(403, "skew"), (200, None)])

    def test_clock_ahead_corrected(self):
        # our clock is ahead of AWS's: "Signature not yet current: ..." (same 403 type)
        self.proxy.set_clock_offset(-3 * 3600)
        self.write_aws_config({"app": "aws:" + self.app})
        r = self.cli("check", "--config", self.config_path, "--fetch")
        out = r.stdout.decode() + r.stderr.decode()
        st = [(e["status"], e["fault"]) for e in self.sm_requests()]
        self.assertEqual(r.returncode, 0, "%s\n%r" % (out, st))
        self.assertEqual(st, [(403, "skew"), (200, None)])

    def test_clock_skew_on_assume_role(self):
        # STS (role_arn + source_profile) answers skew in XML; the broker corrects it there too
        self.proxy.set_clock_offset(2 * 3600)
        cf = self.write_private("creds", "[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                                % (self.keys["AccessKeyId"], self.keys["SecretAccessKey"]))
        cfg = self.write_private("config", "[profile app]\nrole_arn = %s\nsource_profile = base\n"
                                 % awsenv.ROLE_ARN)
        self.write_aws_config({"app": "aws:" + self.app}, profile="app")
        b = self.start_broker(keys=False, env={"AWS_SHARED_CREDENTIALS_FILE": cf,
                                               "AWS_CONFIG_FILE": cfg})
        rec = self.cold_start(b)
        sts = [(e["action"], e["status"], e["fault"]) for e in self.sts_requests()]
        self.assertEqual(rec["failed"], 0, "STS: %r\nSM: %r\n%s" % (sts, self.ops(), b.describe()))
        self.assertEqual(self.read("app"), self.pw.encode())


class AuthErrorTest(FaultBase):

    def test_wrong_secret_key(self):
        good = self.keys["SecretAccessKey"]
        tail = "YYYY" if good.endswith("XXXX") else "XXXX"   # never the key itself
        wrong = dict(self.keys, SecretAccessKey=good[:-4] + tail)
        self.sensitive(wrong["SecretAccessKey"])
        self.write_aws_config({"app": "aws:" + self.app})
        b = self.start_broker(keys=False, env=self.key_env(wrong))
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (0, 1), rec)
        f = b.wait_log("fetch failed", secret="app")
        err = f.get("error", "")
        self.assertIn("SignatureDoesNotMatch", err, f)
        self.assertIn(self.app, err, "the error does not name the secret: %r" % err)
        self.assertEqual(os.listdir(self.mnt), [])
        self.assertErrno(errno.ENOENT, os.open, self.mpath("app"), os.O_RDONLY)
        self.assertTrue(all(e["status"] == 403 for e in self.sm_requests()), self.ops())
        # permanent: retried at the refresh interval, not hammered
        t0 = time.monotonic()
        time.sleep(3)
        n = len(self.sm_requests(since=t0))
        self.assertLessEqual(n, 6, "%d requests in 3s with a wrong key" % n)
        r = self.cli("check", "--config", self.config_path, "--fetch", keys=False,
                     env=self.key_env(wrong))
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 1, out + r.stderr.decode())
        [row] = [ln for ln in out.splitlines() if ln.startswith("app ")]
        self.assertIn("SignatureDoesNotMatch", row)

    def test_access_denied_and_decryption_failure_name_the_secret(self):
        dec = rstest.random_value(16, "d-")
        self.create_secret("dec", dec)
        self.create_secret("denied", rstest.random_value(16, "x-"))
        denied_msg = ("User: arn:aws:iam::123456789012:user/rs-broker is not authorized to perform: "
                      "secretsmanager:GetSecretValue on resource: %s because no resource-based "
                      "policy allows the secretsmanager:GetSecretValue action" % self.n("denied"))
        self.proxy.fail_next(None, 400, "AccessDeniedException", denied_msg,
                             target="GetSecretValue", secret_id=self.n("denied"))
        self.proxy.fail_next(None, 400, "DecryptionFailure",
                             "Secrets Manager can't decrypt the protected secret text using the "
                             "provided KMS key.", target="GetSecretValue", secret_id=self.n("dec"))
        self.write_aws_config({"app": "aws:" + self.app, "denied": "aws:" + self.n("denied"),
                               "dec": "aws:" + self.n("dec")}, batch=False)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 2), "%r\n%s" % (rec, b.describe()))
        self.assertEqual(self.read("app"), self.pw.encode())
        self.assertEqual(sorted(os.listdir(self.mnt)), ["app"])
        f = b.wait_log("fetch failed", secret="denied")
        self.assertIn(self.n("denied"), f.get("error", ""), f)
        self.assertIn("is not authorized to perform", f.get("error", ""), f)
        f = b.wait_log("fetch failed", secret="dec")
        self.assertIn(self.n("dec"), f.get("error", ""), f)
        self.assertIn("DecryptionFailure", f.get("error", ""), f)
        self.assertIn("can't decrypt", f.get("error", ""), f)

    def test_access_denied_at_refresh_serves_stale(self):
        self.write_aws_config({"app": "aws:" + self.app})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0, b.describe())
        mark = b.mark()
        self.proxy.fail_next(None, 400, "AccessDeniedException", "User is not authorized to "
                             "perform: secretsmanager:DescribeSecret", target="DescribeSecret")
        self.proxy.fail_next(None, 400, "AccessDeniedException", "User is not authorized to "
                             "perform: secretsmanager:GetSecretValue", target="GetSecretValue")
        f = b.wait_log("refresh failed, serving stale value", since=mark, secret="app")
        self.assertIn("not authorized", f.get("error", ""), f)
        self.assertEqual(self.read("app"), self.pw.encode())
        self.assertNoLog(b, "secret removed", since=mark)
        self.proxy.clear_faults()
        t0 = time.monotonic()
        rstest.wait_until(lambda: [e["status"] for e in self.sm_requests(since=t0)][-1:] == [200],
                          6, "a successful refresh")
        b.wait_log("secret recovered", since=mark, secret="app", timeout=3)


if __name__ == "__main__":
    rstest.main()
