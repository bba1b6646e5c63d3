#!/usr/bin/env python3
"""coldstart-azure.py [BUILD_DIR] [options] - the Azure Key Vault cold-start benchmark (docs/performance.md).

Question: how long after `runsecrets mount` is started are 100 Azure Key Vault secrets readable under
the mount, when every request (Key Vault and Entra ID alike) takes 50 ms, compared with fetching the
same 100 secrets one after another with curl? Target (issue 11, as for Vault): curl sequential /
runsecrets >= 20 (ratio of the medians).

In one run:

1. starts the strict fake Azure (tests/fakes/azure_fake.py: Key Vault, the Entra token endpoint and
   IMDS on one TLS port) as a separate process (so this script's polling never competes with it for
   a GIL) with a fresh TLS PKI, secrets s000..s099 = <random>, one app registration allowed to log in
   with a client secret, and 50 ms added to every request it answers (fault_delay on each of its
   endpoints: vault, token, imds; the control endpoint is never delayed; --auth-latency-ms sets the
   token endpoint's and IMDS's apart, e.g. 0 to see what a token already in hand would save);
2. writes a broker config with one `azure` backend (client_secret auth: tenant_id, client_id,
   client_secret_file (0600), authority_host = the fake; "challenge_resource": "https://vault.azure.net"
   because the fake is at 127.0.0.1, which is no parent domain of vault.azure.net) and one secret per
   Key Vault secret (`kv:sNNN`);
3. obtains, untimed, one access token from the fake's token endpoint for the curl side (as the Vault
   benchmark hands curl its token: the baseline counts only the 100 reads), and repeats --runs
   times, alternating which side goes first:
   - runsecrets: t0 just before spawning `runsecrets mount --config C --log-level L MNT`. Until
     the mount appears (the mountpoint's st_dev changes, checked every 1 ms) no file can be
     readable; from then on --readers threads (default 1: one loop over all files, in order) try,
     every --poll-ms, to open and read every file not yet read, until all 100 read their expected
     value (bounded by --timeout; fails at once if the broker exits or a file reads a wrong
     value). The time is that of the last good read. Then SIGTERM, bounded wait (exit status
     must be 0), unmount anything left. An open of a secret not fetched yet blocks in the
     broker until its first fetch settles, so one reader is "an application reading its
     secrets in order". Also reported: when the broker logged "cold start ..." (JSON log,
     --log-level info), and from the fake's request log: the challenge request (the GET without a
     token that Key Vault answers 401), the token request, the reads, connections, peak
     concurrency, the round trips on the critical path (the longest chain of requests each
     starting after the previous one was answered), when each phase started and ended, the lag
     from the fake's reply for a secret to our first good read of it, and the CPU time the broker
     and the fake spent until everything was readable (-v: the requests as a timeline, and which
     connection carried the challenge, the token request and the first read; --keep: each run's
     request log, without tokens or bodies, as requests-N.json in the kept directory);
   - curl: 100 x `curl -sS --cacert CA -H @HEADERS URL/secrets/sNNN?api-version=7.4`, one after
     another, each a new process and a new TLS connection; the bearer token is in a 0600 header
     file, never in argv. Every response must be 200 with the expected value;
   - reference (not the target's baseline; --ref-parallel 0 skips it): one `curl --parallel
     --parallel-max 32` over the same 100 URLs with the same token, i.e. what any client with the
     broker's default parallelism can get from this fake (which does TLS handshakes and HTTP in
     Python) once it holds a token;
   - with --baseline OTHER_BUILD, OTHER_BUILD's runsecrets too, the same way, in every run (before or
     after this build's, alternating): a before/after under the same conditions;
4. prints per-run numbers, min/median per side, the ratio of the medians, the machine, and
   markdown tables for docs/performance.md.

Needs root and /dev/fuse; re-executes itself under `unshare --mount --propagation private`, so no
mount outlives it. The broker and the fake run under `setpriv --pdeathsig TERM`. Every process it
starts is stopped and its temp dir removed (unless --keep). No token or secret is printed.

Exit status: 0 measured (whatever the ratio; --strict: 3 if the target is missed), 1 failure,
2 usage.
"""

import json
import os
import re
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import write_private  # noqa: E402

SRC = benchlib.SRC
SELF = os.path.abspath(__file__)
FAKE = os.path.join(SRC, "tests", "fakes", "azure_fake.py")
# The Azure SDKs' variables: the broker falls back to them for absent keys; none may leak in from here.
AZURE_VARS = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
              "AZURE_AUTHORITY_HOST")
FAKE_ENDPOINTS = ("vault", "token", "imds")   # azure_fake.ENDPOINTS: each gets the added latency
CLIENT_ID = "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
KV_API = "7.4"
SCOPE = "https://vault.azure.net/.default"

log = benchlib.logger("coldstart-azure")


def parse_args(argv):
    return benchlib.parse_phased_args(
        argv, "coldstart-azure.py",
        "Cold start of N Azure Key Vault secrets through runsecrets vs a sequential curl loop.", "azure",
        "latency the fake adds to every request: Key Vault, token endpoint, IMDS (default 50)",
        "latency added to the token endpoint and IMDS instead (default: --latency-ms); 0 shows what a "
        "token already in hand when the challenge returns would save")


# --------------------------------------------------------------------------------------------------
# the fake Azure


def kind(e):
    """What a request of the fake's log was: the challenge (a Key Vault GET without a token, answered
    401), a read (a Key Vault GET with a token), a token request (Entra), an IMDS request."""
    if e["endpoint"] == "vault":
        return "read" if e["token"] else "challenge"
    return e["endpoint"] or "other"


def shape(e):
    path = re.sub(r"^/secrets/[^/]+", "/secrets/s*", e["path"])
    path = re.sub(r"^/[^/]+/oauth2/", "/TENANT/oauth2/", path)
    return "%s %s%s" % (e["method"], path, " (no token)" if kind(e) == "challenge" else "")


class Fake(benchlib.FakeServer):
    """tests/fakes/azure_fake.py: Key Vault, the Entra token endpoint and IMDS on one TLS port,
    secrets sNNN, one app registration allowed to log in with a client secret, and a delay on every
    endpoint (the control endpoint is never delayed)."""

    what = "fake Azure"

    def __init__(self, tmp, env, names, values, latency_ms, auth_latency_ms):
        # The broker's client secret; the fake must know it, so it goes into the state file (0600,
        # removed once the fake has read it), never into argv.
        self.client_secret = secrets.token_urlsafe(24)
        calls = [{"method": "set_secret", "args": {"name": n, "value": values[n]}} for n in names]
        calls.append({"method": "add_client_secret_app",
                      "args": {"tenant": None, "client_id": CLIENT_ID, "secret": self.client_secret}})
        delays = {ep: (latency_ms if ep == "vault" else auth_latency_ms) for ep in FAKE_ENDPOINTS}
        calls += benchlib.delay_calls(delays)
        super().__init__(FAKE, tmp, env, {"calls": calls}, log)
        self.tenant, self.vault_url = self.info["tenant"], self.info["vault_url"]
        self.authority_host = self.info["authority_host"]
        self.check_delays(delays)

    def token(self):
        """One access token for the curl side, as the broker gets its own (client credentials, the Key
        Vault scope). Untimed."""
        return self.oauth_token("%s/%s/oauth2/v2.0/token" % (self.authority_host, self.tenant),
                                {"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                 "scope": SCOPE, "client_secret": self.client_secret})

    def secret_url(self, name):
        return "%s/secrets/%s?api-version=%s" % (self.vault_url, name, KV_API)

    def value_of(self, body):
        return json.loads(body)["value"]

    def secret_read(self, e):
        m = re.fullmatch(r"/secrets/(s\d+)", e["path"])
        return m.group(1) if m and e["status"] == 200 and kind(e) == "read" else None

    def summary(self, entries, t0):
        """What the fake saw (benchlib.phased_summary, the challenge's 401 expected), and the
        challenges' statuses."""
        res = benchlib.phased_summary(entries, t0, kind, shape, expected_non200=("challenge",))
        if entries:
            res["challenge_statuses"] = sorted({e["status"] for e in entries if kind(e) == "challenge"})
        return res


def run_broker(ctx, i, tag):
    return benchlib.run_broker_phased(ctx, i, tag, kind)


# --------------------------------------------------------------------------------------------------
# report


def report(ctx, info, broker, curl, par, load, base):
    a = ctx["args"]

    def challenges(runs):
        ch = sorted({s for b in runs for s in b["fake"].get("challenge_statuses", [])})
        print("Challenge answers (HTTP status): %s" % (", ".join(str(x) for x in ch) or "none"))

    return benchlib.report_phased(ctx, info, broker, curl, par, load, base, {
        "prog": "coldstart-azure.py",
        "columns": [("challenge", "challenge"), ("token", "token"), ("reads", "read")],
        "fake_note": "" if a.auth_latency_ms == a.latency_ms else
                     " (token endpoint and IMDS: +%d ms)" % a.auth_latency_ms,
        "fake_row": "tests/fakes/azure_fake.py, +%d ms on Key Vault, +%d ms on the token endpoint and IMDS"
                    % (a.latency_ms, a.auth_latency_ms),
        "non200_note": " (challenges excepted)",
        "after": challenges,
    })


# --------------------------------------------------------------------------------------------------


def setup(ctx):
    """The fake Azure; the broker logs in with a client secret from a 0600 file, curl gets a token
    beforehand (untimed: the baseline is the reads, as for Vault) in a 0600 header file."""
    tmp, args = ctx["tmp"], ctx["args"]
    fake = ctx["fake"] = Fake(tmp, ctx["env"], ctx["names"], ctx["values"], args.latency_ms,
                              args.auth_latency_ms)
    secret_file = os.path.join(tmp, "client-secret")
    write_private(secret_file, fake.client_secret + "\n")
    ctx["headers"] = os.path.join(tmp, "curl-headers")
    write_private(ctx["headers"], "Authorization: Bearer %s\n" % fake.token())
    return ("kv",
            {"type": "azure", "vault_url": fake.vault_url, "ca_file": fake.ca,
             # the fake is at 127.0.0.1, no parent domain of vault.azure.net
             "challenge_resource": "https://vault.azure.net",
             "auth": {"method": "client_secret", "tenant_id": fake.tenant,
                      "client_id": CLIENT_ID, "client_secret_file": secret_file,
                      "authority_host": fake.authority_host}},
            lambda n: "kv:%s" % n)


def main():
    args = parse_args(sys.argv[1:])
    return benchlib.coldstart_main(args, SELF, log, "rs-coldstart-azure.", setup, run_broker, report,
                                   drop_env=AZURE_VARS)


if __name__ == "__main__":
    sys.exit(main())
