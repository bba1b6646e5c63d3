"""AWS Secrets Manager backend against moto with IAM authentication on (through a recording proxy):
SecretString, SecretBinary, #field, ?version / ?stage, name / full ARN / partial ARN references,
batch cold start (BatchGetSecretValue 20 per call) and "batch": false, refresh by DescribeSecret
with GetSecretValue only after a change, rotation, deletion, endpoint environment variables,
`check --fetch` and `get`."""

import errno
import json
import os
import time

import awsenv
import rstest

BIN = b"\x00\x01\x02\xff\xfe\x00binary\r\n\x00\xff" + bytes(range(256))


class ContentsTest(awsenv.AwsTestCase):

    def test_string_binary_field_and_reference_forms(self):
        plain = rstest.random_value(16, "plain-")
        user, pw = rstest.random_value(8, "u-"), rstest.random_value(16, "p-")
        doc = {"user": user, "password": pw, "port": 5432}
        a = self.create_secret("plain", plain)
        self.create_secret("db", json.dumps(doc))
        self.sensitive(user)
        self.sensitive(pw)
        b = self.create_secret("bin", binary=BIN)
        arn_plain, arn_bin = a["ARN"], b["ARN"]
        partial = arn_plain[:-7]          # the ARN without "-xxxxxx"
        self.assertTrue(arn_plain[-7] == "-" and partial.endswith(self.n("plain")), arn_plain)
        self.write_aws_config({
            "plain": "aws:" + self.n("plain"),
            "db/all": "aws:" + self.n("db"),
            "db/user": "aws:" + self.n("db") + "#user",
            "db/password": "aws:" + self.n("db") + "#password",
            "bin": "aws:" + self.n("bin"),
            "by_arn": "aws:" + arn_plain,
            "by_partial_arn": "aws:" + partial,
            "bin_by_arn": "aws:" + arn_bin,
        })
        b_ = self.start_broker()
        rec = self.cold_start(b_)
        self.assertEqual((rec["ok"], rec["failed"]), (8, 0), "%r\n%s" % (rec, b_.describe()))
        self.assertEqual(self.read("plain"), plain.encode())
        self.assertEqual(self.read("db", "user"), user.encode())
        self.assertEqual(self.read("db", "password"), pw.encode())
        self.assertEqual(json.loads(self.read("db", "all")), doc)
        self.assertEqual(self.read("bin"), BIN)
        self.assertEqual(os.stat(self.mpath("bin")).st_size, len(BIN))
        self.assertEqual(self.read("by_arn"), plain.encode())
        self.assertEqual(self.read("by_partial_arn"), plain.encode())
        self.assertEqual(self.read("bin_by_arn"), BIN)
        # the broker named its credential source; every request was signed by the broker's user
        self.wait_cred_log(b_, "environment")
        reqs = self.sm_requests()
        self.assertTrue(reqs)
        self.assertEqual({e["akid"] for e in reqs}, {self.keys["AccessKeyId"]})
        self.assertEqual({e["status"] for e in reqs}, {200}, [(e["target"], e["status"]) for e in reqs])
        self.assertEqual({(e["region"], e["service"]) for e in reqs}, {("us-east-1", "secretsmanager")})
        for r in b_.find_logs("secret fetched"):
            self.assertEqual(r.get("backend"), "aws", r)

    def test_max_size(self):
        small = rstest.random_value(8, "s-")
        self.create_secret("small", small)
        self.create_secret("large", "L" * 300, sensitive=False)
        self.write_aws_config({"small": "aws:" + self.n("small"), "large": "aws:" + self.n("large")},
                              max_size=100)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (1, 1), "%r\n%s" % (rec, b.describe()))
        self.assertEqual(self.read("small"), small.encode())
        self.assertTrue(b.wait_log("fetch failed", secret="large").get("error"))
        self.assertEqual(os.listdir(self.mnt), ["small"])

    def test_version_and_stage(self):
        v1 = rstest.random_value(16, "v1-")
        v2 = rstest.random_value(16, "v2-")
        v3 = rstest.random_value(16, "v3-")
        first = self.create_secret("rot", v1)["VersionId"]
        self.put_value("rot", v2)
        name = self.n("rot")
        self.write_aws_config({"current": "aws:" + name,
                               "previous": "aws:%s?stage=AWSPREVIOUS" % name,
                               "pinned": "aws:%s?version=%s" % (name, first),
                               "stage_current": "aws:%s?stage=AWSCURRENT" % name})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual(rec["failed"], 0, b.describe())
        self.assertEqual(self.read("current"), v2.encode())
        self.assertEqual(self.read("previous"), v1.encode())
        self.assertEqual(self.read("pinned"), v1.encode())
        self.assertEqual(self.read("stage_current"), v2.encode())
        time.sleep(1.5)                     # a refresh round with nothing changed
        self.assertNoLog(b, "secret removed")
        self.assertNoLog(b, "fetch failed")
        self.assertEqual(self.read("current"), v2.encode())
        self.assertEqual(self.read("pinned"), v1.encode())
        gets = self.sm_requests("GetSecretValue")
        self.assertIn({"SecretId": name, "VersionStage": "AWSPREVIOUS"},
                      [e["json"] for e in gets], [e["json"] for e in gets])
        self.assertIn({"SecretId": name, "VersionId": first}, [e["json"] for e in gets])
        # a new version moves both stages; the pinned version stays
        mark = b.mark()
        self.put_value("rot", v3)
        self.wait_value(v3, "current")
        self.wait_value(v2, "previous")
        self.wait_value(v3, "stage_current")
        time.sleep(1.5)
        self.assertEqual(self.read("pinned"), v1.encode())
        b.wait_log("secret rotated", since=mark, secret="current")
        b.wait_log("secret rotated", since=mark, secret="previous")
        self.assertNoLog(b, "secret rotated", since=mark, secret="pinned")
        # a pinned version is only described at refresh, never read again
        pinned_gets = [e for e in self.sm_requests("GetSecretValue")
                       if (e["json"] or {}).get("VersionId") == first]
        self.assertEqual(len(pinned_gets), 1, [e["json"] for e in pinned_gets])


class BatchTest(awsenv.AwsTestCase):
    N = 50

    def test_partial_arn_does_not_match_a_longer_name(self):
        # "...:secret:x" (partial ARN) must not be served "x-admin"'s value,
        # whichever order the batch answer lists them in.
        vx, vadmin = rstest.random_value(16, "x-"), rstest.random_value(16, "xadmin-")
        ax = self.create_secret("x", vx)
        self.create_secret("x-admin", vadmin)
        partial = ax["ARN"][:-7]
        self.write_aws_config({"a_admin": "aws:" + self.n("x-admin"), "b_partial": "aws:" + partial,
                               "c_name": "aws:" + self.n("x")})
        self.start_broker()
        self.assertEqual(self.read("b_partial"), vx.encode())
        self.assertEqual(self.read("a_admin"), vadmin.encode())
        self.assertEqual(self.read("c_name"), vx.encode())

    def _make(self):
        self.values = {}
        for i in range(self.N):
            v = rstest.random_value(8, "b%02d-" % i)
            self.create_secret("s%02d" % i, v)
            self.values["s%02d" % i] = v
        return {k: "aws:" + self.n(k) for k in self.values}

    def _check_all(self):
        for k, v in self.values.items():
            self.assertEqual(self.read(k), v.encode(), k)

    def test_batch_cold_start_of_50(self):
        secrets = self._make()
        self.write_aws_config(secrets, defaults={"refresh": "1h", "max_stale": "2h"})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (self.N, 0), b.describe())
        self._check_all()
        batches = self.sm_requests("BatchGetSecretValue")
        self.assertEqual(len(batches), 3, "BatchGetSecretValue calls for 50 secrets: %d" % len(batches))
        sizes = sorted(len(e["json"]["SecretIdList"]) for e in batches)
        self.assertEqual(sizes, [10, 20, 20])
        asked = sorted(i for e in batches for i in e["json"]["SecretIdList"])
        self.assertEqual(asked, sorted(self.n(k) for k in self.values))
        self.assertEqual(self.count("GetSecretValue"), 0)
        for e in batches:
            self.assertNotIn("Filters", e["json"])

    def test_batch_false_one_call_per_secret(self):
        secrets = self._make()
        self.write_aws_config(secrets, defaults={"refresh": "1h", "max_stale": "2h"}, batch=False)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (self.N, 0), b.describe())
        self._check_all()
        self.assertEqual(self.count("BatchGetSecretValue"), 0)
        gets = self.sm_requests("GetSecretValue")
        self.assertEqual(len(gets), self.N)
        self.assertEqual(sorted(e["json"]["SecretId"] for e in gets),
                         sorted(self.n(k) for k in self.values))

    def test_batch_false_fetches_in_parallel(self):
        # one GetSecretValue per secret, but still many at once (max_parallel, default 128): with
        # 100 ms per answer, 50 secrets one chunk of 20 at a time would take > 2 s
        secrets = self._make()
        self.proxy.set_latency(100)
        self.write_aws_config(secrets, defaults={"refresh": "1h", "max_stale": "2h"}, batch=False)
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (self.N, 0), b.describe())
        gets = self.sm_requests("GetSecretValue")
        self.assertEqual(len(gets), self.N)
        ev = sorted([(e["mono"], 1) for e in gets] +
                    [(e["mono"] + e["duration_ms"] / 1000.0, -1) for e in gets])
        cur = peak = 0
        for _, d in ev:
            cur += d
            peak = max(peak, cur)
        span = max(e["mono"] + e["duration_ms"] / 1000.0 for e in gets) - min(e["mono"] for e in gets)
        self.assertGreaterEqual(peak, 10, "only %d GetSecretValue in flight at once (%d connections, "
                                "%.1fs for %d secrets)" % (peak, len({e["client"] for e in gets}),
                                                           span, self.N))

    def test_batch_partial_errors_fall_back(self):
        # one id of the batch is missing: the others come from the batch, the missing one is
        # asked again alone (GetSecretValue -> 404) and is absent from the mount
        a, c = rstest.random_value(8, "a-"), rstest.random_value(8, "c-")
        self.create_secret("a", a)
        self.create_secret("c", c)
        self.write_aws_config({"a": "aws:" + self.n("a"), "missing": "aws:" + self.n("missing"),
                               "c": "aws:" + self.n("c")},
                              defaults={"refresh": "1h", "max_stale": "2h"})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (2, 1), "%r\n%s" % (rec, b.describe()))
        self.assertEqual(self.read("a"), a.encode())
        self.assertEqual(self.read("c"), c.encode())
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("missing"))
        self.assertEqual(self.count("BatchGetSecretValue"), 1)
        gets = self.sm_requests("GetSecretValue")
        self.assertEqual([e["json"]["SecretId"] for e in gets], [self.n("missing")])

    def test_batch_access_denied_falls_back_for_good(self):
        # AWS's answer when the policy lacks secretsmanager:BatchGetSecretValue
        self.proxy.fail_next(None, 400, "AccessDeniedException",
                             "User: arn:aws:iam::123456789012:user/rs-broker is not authorized to "
                             "perform: secretsmanager:BatchGetSecretValue because no "
                             "identity-based policy allows the secretsmanager:BatchGetSecretValue "
                             "action", target="BatchGetSecretValue")
        vals = {}
        for i in range(5):
            vals["k%d" % i] = rstest.random_value(8, "k%d-" % i)
            self.create_secret("k%d" % i, vals["k%d" % i])
        self.write_aws_config({k: "aws:" + self.n(k) for k in vals},
                              defaults={"refresh": "1h", "max_stale": "2h"})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (5, 0), "%r\n%s" % (rec, b.describe()))
        for k, v in vals.items():
            self.assertEqual(self.read(k), v.encode())
        self.assertEqual(self.count("BatchGetSecretValue"), 1)
        self.assertEqual(self.count("GetSecretValue"), 5)
        # check --fetch (a new process) behaves the same
        self.proxy.clear_requests()
        r = self.cli("check", "--config", self.config_path, "--fetch")
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        self.assertLessEqual(self.count("BatchGetSecretValue"), 1)
        self.assertEqual(self.count("GetSecretValue"), 5)


class RefreshTest(awsenv.AwsTestCase):

    def test_refresh_describes_and_reads_only_after_change(self):
        v1, v2 = rstest.random_value(16, "v1-"), rstest.random_value(16, "v2-")
        other = rstest.random_value(16, "o-")
        self.create_secret("app", v1)
        self.create_secret("other", other)
        self.write_aws_config({"app": "aws:" + self.n("app"), "other": "aws:" + self.n("other")})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0, b.describe())
        self.assertEqual(self.read("app"), v1.encode())
        ino = os.stat(self.mpath("app")).st_ino
        reads0 = self.count("GetSecretValue") + self.count("BatchGetSecretValue")
        # a few refresh rounds (refresh 1s): DescribeSecret each time, no value read
        t0 = time.monotonic()
        rstest.wait_until(lambda: len(self.sm_requests("DescribeSecret", secret_id=self.n("app"),
                                                       since=t0)) >= 3,
                          8, "three DescribeSecret refreshes of app")
        self.assertEqual(self.count("GetSecretValue") + self.count("BatchGetSecretValue"), reads0,
                         "the value was read again although its version did not change")
        self.assertNoLog(b, "secret removed")
        self.assertNoLog(b, "fetch failed")
        self.assertEqual(self.read("app"), v1.encode())
        self.assertEqual(self.read("other"), other.encode())
        for e in self.sm_requests("DescribeSecret"):
            self.assertEqual(set(e["json"]), {"SecretId"}, e["json"])
        mark = b.mark()
        self.assertNoLog(b, "secret rotated")
        # rotation: seen through the mount, one more GetSecretValue for that secret only
        self.put_value("app", v2)
        t1 = time.monotonic()
        self.wait_value(v2, "app", timeout=6)
        b.wait_log("secret rotated", since=mark, secret="app")
        self.assertEqual(os.stat(self.mpath("app")).st_ino, ino)
        time.sleep(2.5)
        app_gets = self.sm_requests("GetSecretValue", secret_id=self.n("app"), since=t1)
        self.assertEqual(len(app_gets), 1, "GetSecretValue after one rotation: %d" % len(app_gets))
        self.assertEqual(self.sm_requests("GetSecretValue", secret_id=self.n("other"), since=t1), [])
        self.assertEqual(self.read("other"), other.encode())
        self.assertNoLog(b, "secret rotated", since=mark, secret="other")

    def test_force_delete_removes_file(self):
        keep, gone = rstest.random_value(16, "k-"), rstest.random_value(16, "g-")
        self.create_secret("keep", keep)
        self.create_secret("gone", gone)
        self.write_aws_config({"keep": "aws:" + self.n("keep"), "gone": "aws:" + self.n("gone")})
        b = self.start_broker()
        self.assertEqual(self.cold_start(b)["failed"], 0, b.describe())
        self.assertEqual(self.read("gone"), gone.encode())
        mark = b.mark()
        self.delete_secret("gone", force=True)
        b.wait_log("secret removed", since=mark, secret="gone")
        self.wait_gone("gone")
        self.assertErrno(errno.ENOENT, os.open, self.mpath("gone"), os.O_RDONLY)
        self.assertEqual(sorted(os.listdir(self.mnt)), ["keep"])
        self.assertEqual(self.read("keep"), keep.encode())
        self.assertTrue(b.running())
        # it is looked for again: re-created, it comes back
        again = rstest.random_value(16, "a-")
        self.create_secret("gone", again)
        self.wait_value(again, "gone", timeout=8)

    def test_scheduled_deletion_removes_file(self):
        v = rstest.random_value(16, "d-")
        self.create_secret("sched", v)
        self.write_aws_config({"sched": "aws:" + self.n("sched")})
        b = self.start_broker()
        self.assertEqual(self.read("sched"), v.encode())
        mark = b.mark()
        self.delete_secret("sched", force=False)      # recovery window: "marked for deletion"
        b.wait_log("secret removed", since=mark, secret="sched")
        self.wait_gone("sched")
        self.assertNoLog(b, "secret expired, failing closed", since=mark)
        # restored: served again
        self.sm.restore_secret(SecretId=self.n("sched"))
        self.wait_value(v, "sched", timeout=8)

    def test_missing_at_start_appears_later(self):
        self.write_aws_config({"late": "aws:" + self.n("late")})
        b = self.start_broker()
        rec = self.cold_start(b)
        self.assertEqual((rec["ok"], rec["failed"]), (0, 1), rec)
        self.assertErrno(errno.ENOENT, os.stat, self.mpath("late"))
        statuses = {e["status"] for e in self.sm_requests()}
        self.assertEqual(statuses, {404}, statuses)
        v = rstest.random_value(16, "late-")
        self.create_secret("late", v)
        self.wait_value(v, "late", timeout=8)


class EndpointEnvTest(awsenv.AwsTestCase):

    def _served_via_env(self, var):
        v = rstest.random_value(16, "e-")
        self.create_secret("e", v)
        self.write_aws_config({"e": "aws:" + self.n("e")}, endpoint=None, sts_endpoint=None)
        b = self.start_broker(env={var: self.proxy.url})
        self.assertEqual(self.cold_start(b)["failed"], 0, b.describe())
        self.assertEqual(self.read("e"), v.encode())
        self.assertGreaterEqual(len(self.sm_requests()), 1)

    def test_endpoint_url_secrets_manager(self):
        self._served_via_env("AWS_ENDPOINT_URL_SECRETS_MANAGER")

    def test_endpoint_url_generic(self):
        self._served_via_env("AWS_ENDPOINT_URL")


class CliTest(awsenv.AwsTestCase):

    def test_check_fetch_and_get(self):
        v = rstest.random_value(16, "c-")
        self.create_secret("c", json.dumps({"k": v}))
        self.sensitive(v)
        self.write_aws_config({"c": "aws:" + self.n("c") + "#k", "nope": "aws:" + self.n("nope")})
        r = self.cli("check", "--config", self.config_path, "--fetch")
        out, err = r.stdout.decode(), r.stderr.decode()
        self.assertEqual(r.returncode, 1, out + err)
        rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
        self.assertIn("c", rows, out)
        self.assertIn("ok", rows["c"].split(), out)
        self.assertIn("aws", rows["c"].split(), out)
        self.assertIn("error: ", rows["nope"], out)
        self.assertNotIn(v, out + err)
        r = self.cli("get", "--config", self.config_path, "c")
        self.assertEqual((r.returncode, r.stdout), (0, v.encode()), r.stderr.decode())
        r = self.cli("get", "--config", self.config_path, "aws:%s#k" % self.n("c"))
        self.assertEqual((r.returncode, r.stdout), (0, v.encode()), r.stderr.decode())
        self.create_secret("bin", binary=BIN)
        r = self.cli("get", "--config", self.config_path, "aws:" + self.n("bin"))
        self.assertEqual((r.returncode, r.stdout), (0, BIN), r.stderr.decode())
        r = self.cli("get", "--config", self.config_path, "nope")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, b"")


if __name__ == "__main__":
    rstest.main()
