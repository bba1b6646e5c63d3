#!/usr/bin/env python3
"""coldstart-gcp.py [BUILD_DIR] [options] - the GCP Secret Manager cold-start benchmark (docs/performance.md).

Question: how long after `runsecrets mount` is started are 100 Secret Manager secrets readable under
the mount, when every request (Secret Manager and the OAuth token endpoint alike) takes 50 ms, compared
with reading the same 100 secrets one after another with curl? Target (issue 12, as for Vault and
Azure): curl sequential / runsecrets >= 20 (ratio of the medians).

The method is coldstart-azure.py's (bench/benchlib.py runs both; its run_broker and run_curl say what
one run does); what is GCP's here:

- the fake is tests/fakes/gcp_fake.py (Secret Manager and the token endpoint on one TLS port), in its
  own process with a fresh TLS PKI, one version of each secret s000..s099 = <random>, one service
  account, and fault_delay on `secretmanager` (--latency-ms) and `token` (--auth-latency-ms, default
  the same);
- the broker's backend: `"type": "gcp"`, the fake's project, `credentials_file` = the service
  account's key file (0600; token_uri -> the fake), `endpoint` = the fake, `ca_file` = the test CA,
  every other setting default (max_parallel 128 since issue 16; 32 before); secrets `gcp:sNNN` (latest);
- curl gets, untimed, one access token from the token endpoint as the broker gets its own (an RS256
  JWT of the same account, grant_type jwt-bearer), in a 0600 header file (`Authorization: Bearer`,
  never in argv), and reads GET /v1/projects/P/secrets/sNNN/versions/latest:access;
- from the fake's request log: the token request and the reads (first start -> last reply), and the
  round trips on the broker's critical path (at the least: the token, then the reads in waves of
  max_parallel).

Needs root and /dev/fuse; re-executes itself under `unshare --mount --propagation private`. Every
process it starts is stopped and its temp dir removed (unless --keep). No token, key or secret is
printed.

Exit status: 0 measured (whatever the ratio; --strict: 3 if the target is missed), 1 failure,
2 usage.
"""

import base64
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import write_private  # noqa: E402

SRC = benchlib.SRC
SELF = os.path.abspath(__file__)
FAKE = os.path.join(SRC, "tests", "fakes", "gcp_fake.py")
sys.path.insert(0, os.path.dirname(FAKE))
import gcp_fake  # noqa: E402  (its protocol constants and the client's JWT signing; it runs apart)

# Application Default Credentials' variables: the backend reads them; none may leak in from here.
GCP_VARS = ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GCE_METADATA_HOST")

log = benchlib.logger("coldstart-gcp")


def parse_args(argv):
    return benchlib.parse_phased_args(
        argv, "coldstart-gcp.py",
        "Cold start of N GCP Secret Manager secrets through runsecrets vs a sequential curl loop.", "gcp",
        "latency the fake adds to every Secret Manager and token request (default 50)",
        "latency added to the token endpoint instead (default: --latency-ms); 0 shows what the token "
        "request costs the cold start")


# --------------------------------------------------------------------------------------------------
# the fake GCP


def kind(e):
    """A request of the fake's log: a read (Secret Manager), a token request, or another endpoint."""
    if e["endpoint"] == "secretmanager":
        return "read"
    return e["endpoint"] or "other"


def shape(e):
    return "%s %s" % (e["method"], re.sub(r"/secrets/[^/]+/", "/secrets/s*/", e["path"]))


class Fake(benchlib.FakeServer):
    """tests/fakes/gcp_fake.py: Secret Manager (secrets sNNN, one version each) and the token endpoint
    on one TLS port, one service account, a delay on both endpoints (the control endpoint is never
    delayed)."""

    what = "fake GCP"

    def __init__(self, tmp, env, names, values, latency_ms, auth_latency_ms):
        calls = [{"method": "add_version", "args": {"secret": n, "data": values[n]}} for n in names]
        delays = {"secretmanager": latency_ms, "token": auth_latency_ms}
        calls += benchlib.delay_calls(delays)
        super().__init__(FAKE, tmp, env, {"calls": calls}, log)
        self.project = self.info["project_id"]
        self.check_delays(delays)
        try:
            # The key file names the fake's port, so the account is made once it listens.
            self.account = self.control("add_service_account")
        except BaseException:
            self.stop()
            raise

    def token(self):
        """One access token for the curl side, as the broker gets its own: an RS256 assertion of the
        service account exchanged at its token_uri. Untimed."""
        sa, now = self.account, int(time.time())
        assertion = gcp_fake.sign_jwt(
            {"alg": "RS256", "typ": "JWT", "kid": sa["private_key_id"]},
            {"iss": sa["client_email"], "scope": gcp_fake.CLOUD_PLATFORM, "aud": sa["token_uri"],
             "iat": now, "exp": now + 3600},
            sa["private_key"])
        return self.oauth_token(sa["token_uri"], {"grant_type": gcp_fake.JWT_BEARER, "assertion": assertion})

    def secret_url(self, name):
        return "%s/v1/projects/%s/secrets/%s/versions/latest:access" % (self.url, self.project, name)

    def value_of(self, body):
        # payload.data; its CRC32C is the broker's to check, the bench compares the value itself
        return base64.b64decode(json.loads(body)["payload"]["data"], validate=True).decode()

    def secret_read(self, e):
        return e["secret"] if e["endpoint"] == "secretmanager" and e["status"] == 200 else None

    def summary(self, entries, t0):
        return benchlib.phased_summary(entries, t0, kind, shape)


def run_broker(ctx, i, tag):
    return benchlib.run_broker_phased(ctx, i, tag, kind)


def report(ctx, info, broker, curl, par, load, base):
    a = ctx["args"]
    return benchlib.report_phased(ctx, info, broker, curl, par, load, base, {
        "prog": "coldstart-gcp.py",
        "columns": [("token", "token"), ("reads", "read")],
        "fake_note": "" if a.auth_latency_ms == a.latency_ms else
                     " (token endpoint: +%d ms)" % a.auth_latency_ms,
        "fake_row": "tests/fakes/gcp_fake.py, +%d ms on Secret Manager, +%d ms on the token endpoint"
                    % (a.latency_ms, a.auth_latency_ms),
    })


# --------------------------------------------------------------------------------------------------


def setup(ctx):
    """The fake GCP; the broker logs in with the service account's key file (0600), curl gets a token
    beforehand (untimed: the baseline is the reads, as for Vault and Azure) in a 0600 header file."""
    tmp, args = ctx["tmp"], ctx["args"]
    fake = ctx["fake"] = Fake(tmp, ctx["env"], ctx["names"], ctx["values"], args.latency_ms,
                              args.auth_latency_ms)
    key_file = os.path.join(tmp, "sa.json")
    write_private(key_file, json.dumps(fake.account))
    ctx["headers"] = os.path.join(tmp, "curl-headers")
    write_private(ctx["headers"], "Authorization: Bearer %s\n" % fake.token())
    return ("gcp",
            {"type": "gcp", "project": fake.project, "credentials_file": key_file,
             "endpoint": fake.url, "ca_file": fake.ca},
            lambda n: "gcp:%s" % n)


def main():
    args = parse_args(sys.argv[1:])
    return benchlib.coldstart_main(args, SELF, log, "rs-coldstart-gcp.", setup, run_broker, report,
                                   drop_env=GCP_VARS)


if __name__ == "__main__":
    sys.exit(main())
