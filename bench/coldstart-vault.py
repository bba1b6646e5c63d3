#!/usr/bin/env python3
"""coldstart-vault.py [BUILD_DIR] [options] - the Vault cold-start benchmark (docs/performance.md).

Question: how long after `runsecrets mount` is started are 100 Vault secrets readable under the
mount, when every Vault request takes 50 ms, compared with fetching the same 100 secrets one after
another with curl? Target: curl sequential / runsecrets >= 20 (ratio of the medians).

In one run:

1. starts the strict fake Vault (tests/fakes/vault.py) as a separate process (so this script's
   polling never competes with it for a GIL) with a fresh TLS PKI, one KV v2 mount `secret` holding
   secret/s000..s099 = {"value": <random>}, and 50 ms added to every request it answers (logins,
   token lookups, mount detection and reads alike);
2. writes a broker config with one `vault` backend (token auth from a 0600 token file) and one
   secret per KV entry (`vault:secret/sNNN#value`);
3. repeats --runs times, alternating which side goes first:
   - runsecrets: t0 just before spawning `runsecrets mount --config C --log-level L MNT`. Until
     the mount appears (the mountpoint's st_dev changes, checked every 1 ms) no file can be
     readable; from then on --readers threads (default 1: one loop over all files, in order) try,
     every --poll-ms, to open and read every file not yet read, until all 100 read their expected
     value (bounded by --timeout; fails at once if the broker exits or a file reads a wrong
     value). The time is that of the last good read. Then SIGTERM, bounded wait (exit status
     must be 0), unmount anything left. An open of a secret not fetched yet blocks in the
     broker until its first fetch settles, so one reader is "an application reading its
     secrets in order". Also reported: when the broker logged "cold start ..." (JSON log,
     --log-level info), and from the fake's request log the broker's requests, connections,
     peak concurrency, first request and last reply, and the lag from the fake's reply for a
     secret to our first good read of it (-v: the requests as a timeline);
   - curl: 100 x `curl -sS --cacert CA -H @HEADERS URL/v1/secret/data/sNNN`, one after another,
     each a new process and a new TLS connection; the token is in a 0600 header file, never in
     argv. Every response must be 200 with the expected value;
   - reference (not the target's baseline; --ref-parallel 0 skips it): one `curl --parallel
     --parallel-max 32` over the same 100 URLs, i.e. what any client with the broker's default
     parallelism can get from this fake, which does TLS handshakes and HTTP in Python;
4. prints per-run numbers, min/median per side, the ratio of the medians, the machine, and
   markdown tables for docs/performance.md.

Needs root and /dev/fuse; re-executes itself under `unshare --mount --propagation private`, so no
mount outlives it. The broker and the fake run under `setpriv --pdeathsig TERM`. Every process it
starts is stopped and its temp dir removed (unless --keep).

Exit status: 0 measured (whatever the ratio; --strict: 3 if the target is missed), 1 failure,
2 usage.
"""

import argparse
import json
import os
import re
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import fmt, write_private  # noqa: E402

SRC = benchlib.SRC
SELF = os.path.abspath(__file__)
FAKE = os.path.join(SRC, "tests", "fakes", "vault.py")

log = benchlib.logger("coldstart-vault")


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="coldstart-vault.py",
        description="Cold start of N Vault secrets through runsecrets vs a sequential curl loop.")
    benchlib.add_coldstart_args(ap, "latency the fake adds to every request (default 50)")
    benchlib.add_coldstart_tail_args(ap, "vault")
    benchlib.add_coldstart_final_args(ap, "keep the temp dir (logs, config)")
    args = ap.parse_args(argv)
    if benchlib.coldstart_args_bad(args):
        ap.error("bad --runs/--secrets/--latency-ms/--timeout/--poll-ms")
    benchlib.parse_backend_json(ap, args)
    return args


# --------------------------------------------------------------------------------------------------
# the fake Vault


def shape_of(e):
    """A request's path with the secret's name folded: secret/data/s* rather than one per secret."""
    return re.sub(r"/s\d+$", "/s*", e["rel"] or e["path"])


class Fake(benchlib.FakeServer):
    """tests/fakes/vault.py: one KV v2 mount `secret` holding sNNN = {"value": ...}, LATENCY_MS added
    to every request it answers; the broker and curl log in with its root token."""

    what = "fake Vault"

    def __init__(self, tmp, env, names, values, latency_ms):
        self.token = "hvs." + secrets.token_urlsafe(24)
        calls = [{"method": "add_kv_mount", "args": {"path": "secret", "version": 2}}]
        calls += [{"method": "put_kv", "args": {"mount": "secret", "path": n, "data": {"value": values[n]}}}
                  for n in names]
        if latency_ms:
            calls.append({"method": "add_latency", "args": {"ms": latency_ms}})
        super().__init__(FAKE, tmp, env, {"root_token": self.token, "calls": calls}, log)

    def secret_url(self, name):
        return self.url + "/v1/secret/data/" + name

    def value_of(self, body):
        return json.loads(body)["data"]["data"]["value"]

    def secret_read(self, e):
        m = re.fullmatch(r"secret/data/(s\d+)", e["rel"] or "")
        return m.group(1) if m and e["status"] == 200 else None

    def summary(self, entries, t0):
        """What the fake saw: counts by path shape, statuses, connections, peak concurrency, span."""
        if not entries:
            return {"n": 0}
        res = benchlib.request_summary(entries, t0, shape_of)
        res["shapes"] = {}
        for e in entries:
            sh = "%s %s" % (e["method"], shape_of(e))
            res["shapes"][sh] = res["shapes"].get(sh, 0) + 1
        res["non200"] = sum(1 for e in entries if e["status"] != 200)
        return res


def run_broker(ctx, i, tag):
    res, _, _ = benchlib.run_broker(ctx, i, ctx["binary"], tag)
    return res


# --------------------------------------------------------------------------------------------------
# report


def report(ctx, info, broker, curl, par, load, _base):
    a = ctx["args"]
    benchlib.print_header("coldstart-vault.py", a, info, load)
    print("Per run (ms after spawning; first readable: earliest good read (with one reader, that of "
          "s000); `reqs/conns/peak` = requests, TCP connections and peak concurrent requests the fake "
          "saw from the broker; first req/last reply as seen by the fake; reply→readable: from the "
          "fake's reply for a secret to our first good read of it):")
    print()
    benchlib.print_runs(a, broker, curl, par, ["first req (fake)", "last reply (fake)"],
                        lambda f: [fmt(f.get("first_ms")), fmt(f.get("last_end_ms"))])
    bm, cm, ratio = benchlib.print_summary(a, broker, curl, par)
    benchlib.print_machine(info)
    if a.verbose:
        for i, b in enumerate(broker):
            print("Run %d, the broker's requests (ms after spawn): %s"
                  % (i + 1, "; ".join(b["fake"].get("timeline", []))))
    benchlib.print_requests(broker)
    return benchlib.print_verdict(a, broker, bm, cm, ratio)


# --------------------------------------------------------------------------------------------------


def setup(ctx):
    """The fake Vault; the broker reads its token from a 0600 file, curl from a 0600 header file."""
    tmp = ctx["tmp"]
    fake = ctx["fake"] = Fake(tmp, ctx["env"], ctx["names"], ctx["values"], ctx["args"].latency_ms)
    token_file = os.path.join(tmp, "token")
    write_private(token_file, fake.token + "\n")
    ctx["headers"] = os.path.join(tmp, "curl-headers")
    write_private(ctx["headers"], "X-Vault-Token: %s\nX-Vault-Request: true\n" % fake.token)
    return ("vault",
            {"type": "vault", "address": fake.url, "ca_file": fake.ca,
             "auth": {"method": "token", "token_file": token_file}},
            lambda n: "vault:secret/%s#value" % n)


def main():
    args = parse_args(sys.argv[1:])
    return benchlib.coldstart_main(args, SELF, log, "rs-coldstart.", setup, run_broker, report)


if __name__ == "__main__":
    sys.exit(main())
