"""Secret hygiene with AWS: after reading a profile's keys from the shared
files, assuming a role through STS, fetching string and binary secrets in a
batch and after a rotation, a gcore of the broker holds no value, no secret
access key, no session token and no cache key. The credentials came through
files, XML and libcurl/OpenSSL buffers; the values through JSON: all of
them must have been wiped. (Credentials are taken from a profile, not the
environment: an environment variable is in the process's memory by the
user's choice.)"""

import base64
import os
import shutil
import time

import awsenv
import rstest


class AwsCoreDumpTest(awsenv.AwsTestCase):

    def test_gcore_holds_no_value_credential_or_key(self):
        if not shutil.which("gdb"):
            self.fail("gdb is required for the core-dump check (scripts/deps.sh installs it)")
        if rstest.is_asan_build():
            self.skipTest("gcore check runs on the non-sanitizer build only (see test_hygiene)")
        plain = rstest.random_value(32, "aws-plain-")
        field = rstest.random_value(24, "aws-field-")
        unused = rstest.random_value(24, "aws-unused-")
        binary = os.urandom(24) + b"\x00binary-tail"
        rot_old = rstest.random_value(32, "aws-rotated-away-")
        rot_new = rstest.random_value(32, "aws-rotated-in-")
        self.sensitive(rot_new)
        self.create_secret("plain", plain)
        self.create_secret("doc", '{"pw": "%s", "unused": "%s"}' % (field, unused))
        self.create_secret("bin", binary=binary)
        self.create_secret("rot", rot_old)
        self.sensitive(field)
        self.sensitive(unused)
        marker = "marker-" + os.urandom(8).hex()
        creds = self.write_private("credentials", "[base]\naws_access_key_id = %s\n"
                                   "aws_secret_access_key = %s\n"
                                   % (self.keys["AccessKeyId"], self.keys["SecretAccessKey"]))
        config = self.write_private("config", "[profile app]\nrole_arn = %s\nsource_profile = base\n"
                                    % awsenv.ROLE_ARN)
        self.write_aws_config({"plain": "aws:" + self.n("plain"), "pw": "aws:" + self.n("doc") + "#pw",
                               "bin": "aws:" + self.n("bin"), "rot": "aws:" + self.n("rot"),
                               marker: "aws:" + self.n("plain")},
                              defaults={"refresh": "1s", "max_stale": "1h"}, profile="app")
        b = self.start_broker(keys=False, env={"AWS_SHARED_CREDENTIALS_FILE": creds,
                                               "AWS_CONFIG_FILE": config}, log_level="debug")
        self.wait_cred_log(b, "profile app")
        expected = {"plain": plain.encode(), "pw": field.encode(), "bin": binary,
                    "rot": rot_old.encode()}
        for _ in range(3):
            for name, v in expected.items():
                self.assertEqual(self.read(name), v)
        mark = b.mark()
        self.put_value("rot", rot_new)
        b.wait_log("secret rotated", since=mark, secret="rot")
        self.assertEqual(self.read("rot"), rot_new.encode())
        time.sleep(1.5)             # one more refresh round: DescribeSecret over kept-alive paths
        self.assertTrue(b.running())
        assumed = [e for e in self.sts_requests("AssumeRole") if e["status"] == 200]
        self.assertTrue(assumed, "the broker never assumed the role")
        tokens = {e["security_token"] for e in self.proxy.requests() if e.get("security_token")}
        self.assertTrue(tokens, "no session token was used: not the assumed-role path")

        key, hashkey, core = rstest.dump_serving(self, b, "plain", plain.encode())
        needles = dict(expected)
        needles["rot (new)"] = rot_new.encode()
        needles["unused field"] = unused.encode()
        needles["binary as base64"] = base64.b64encode(binary)
        needles["source profile secret key"] = self.keys["SecretAccessKey"].encode()
        for i, t in enumerate(sorted(tokens)):
            needles["session token %d" % i] = t.encode()
        found = rstest.core_findings(self, core, marker, needles,
                                     {"cache key": key, "hash key": hashkey})
        self.assertEqual(found, [], "found in the gcore of the serving broker")


if __name__ == "__main__":
    rstest.main()
