#!/usr/bin/env python3
"""coldstart-aws.py [BUILD_DIR] [options] - the AWS Secrets Manager cold-start benchmark.

Question: how long after `runsecrets mount` is started are N (default 100) AWS secrets readable
under the mount with BatchGetSecretValue (20 per call, the default) compared with `"batch": false`
(one GetSecretValue per secret)?

In one run of this script:

1. starts moto (`python3 -m moto.server`, its own process) with IAM authentication ON (every
   request the broker signs is checked), an IAM user for the broker, and N secrets b000..bNNN of
   32 random bytes each (hex);
2. starts the recording proxy of tests/fakes/aws_proxy.py in this process (no faults; optionally
   --latency-ms added to every answer, a simulated network round trip) unless --direct, where the
   broker talks to moto itself and no request counts are reported;
3. repeats --runs times, alternating which mode goes first: t0 just before spawning
   `runsecrets mount`; until the mount appears (st_dev of the mountpoint changes, checked every
   1 ms) nothing is readable; then one reader loops over all files in order (an open of a secret
   whose first fetch is still running blocks in the broker) until each reads its expected value.
   The time is that of the last good read. Also: when "cold start done" was logged, and the
   proxy's request counts per operation. Then SIGTERM (exit status must be 0);
4. prints per-run numbers, min/median per mode, the ratio of the medians (batch false / batch),
   the machine, as markdown tables.

Needs root and /dev/fuse; re-executes itself under `unshare --mount --propagation private`, so no
mount outlives it. Not part of the test suite. Exit status: 0 measured, 1 failure, 2 usage.
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import BenchError, fmt, is_mounted, loadavg, read_file  # noqa: E402

SRC = benchlib.SRC
SELF = os.path.abspath(__file__)
sys.path.insert(0, os.path.join(SRC, "tests", "fakes"))

log = benchlib.logger("coldstart-aws")


def machine_info(build):
    import moto
    info = benchlib.machine_info(build)
    info["moto"] = getattr(moto, "__version__", "?")
    return info


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="coldstart-aws.py",
                                 description="Cold start of N AWS secrets: batch vs \"batch\": false.")
    ap.add_argument("build", nargs="?", default=os.path.join(SRC, "build"),
                    help="meson build dir holding runsecrets (default: SRC/build)")
    ap.add_argument("--runs", type=int, default=5, help="measurements per mode (default 5)")
    ap.add_argument("--secrets", type=int, default=100, help="number of secrets (default 100)")
    ap.add_argument("--latency-ms", type=int, default=0,
                    help="latency the proxy adds to every answer (default 0)")
    ap.add_argument("--direct", action="store_true",
                    help="broker talks to moto directly (no proxy, no request counts)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds until every file must be readable (default 60)")
    ap.add_argument("--backend-json", default="{}", metavar="JSON",
                    help="extra keys merged into the aws backend object (both modes)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, config)")
    args = ap.parse_args(argv)
    if args.runs < 1 or not 1 <= args.secrets <= 1000 or args.latency_ms < 0 or args.timeout <= 0:
        ap.error("bad --runs/--secrets/--latency-ms/--timeout")
    benchlib.parse_backend_json(ap, args)
    return args


def one_run(ctx, mode, i):
    a = ctx["args"]
    mnt, names, expected = ctx["mnt"], ctx["names"], ctx["expected"]
    if is_mounted(mnt):
        raise BenchError("%s still mounted before run %d" % (mnt, i))
    proxy = ctx["proxy"]
    if proxy:
        proxy.clear_requests()
    log_path = os.path.join(ctx["tmp"], "broker-%s-%d.log" % (mode, i))
    dev0 = os.stat(mnt).st_dev
    with open(log_path, "wb") as err:
        t0 = time.monotonic()
        wall0 = time.time()
        proc = subprocess.Popen([ctx["binary"], "mount", "--config", ctx["configs"][mode],
                                 "--log-level", "info", mnt],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env=ctx["env"])
    try:
        deadline = t0 + a.timeout
        while os.stat(mnt).st_dev == dev0:
            if proc.poll() is not None:
                raise BenchError("broker exited (%s) before mounting; see %s" % (proc.returncode, log_path))
            if time.monotonic() > deadline:
                raise BenchError("not mounted within %.0fs" % a.timeout)
            time.sleep(0.001)
        t_mount = time.monotonic()
        pending = list(names)
        last = None
        while pending:
            still = []
            for n in pending:
                try:
                    data = read_file(os.path.join(mnt, n))
                except OSError:
                    still.append(n)
                    continue
                if data != expected[n]:
                    raise BenchError("%s read a wrong value (%d bytes)" % (n, len(data)))
                last = time.monotonic()
            pending = still
            if pending:
                if proc.poll() is not None:
                    raise BenchError("broker exited (%s); see %s" % (proc.returncode, log_path))
                if time.monotonic() > deadline:
                    raise BenchError("%d files unreadable after %.0fs" % (len(pending), a.timeout))
                time.sleep(0.002)
    finally:
        rc = benchlib.stop_process(proc, "runsecrets", log)
        if is_mounted(mnt):
            subprocess.run(["umount", "-l", mnt], check=False)
    if rc != 0:
        raise BenchError("broker exit status %s (see %s)" % (rc, log_path))
    cold = benchlib.parse_broker_log(log_path, wall0)["cold_ms"]   # "cold start done"
    counts = {}
    peak = conns = None
    if proxy:
        reqs = [e for e in proxy.requests() if e["target"] and e["duration_ms"] is not None]
        for e in reqs:
            op = e["target"].split(".")[-1]
            counts[op] = counts.get(op, 0) + 1
        peak = benchlib.request_events(reqs)[0] if reqs else 0
        conns = len({e["client"] for e in reqs})
    return {"mode": mode, "run": i, "all_ms": (last - t0) * 1000.0, "mount_ms": (t_mount - t0) * 1000.0,
            "cold_ms": cold, "counts": counts, "peak": peak, "conns": conns}


def report(ctx, info, results, load):
    a = ctx["args"]
    print()
    print("# coldstart-aws.py: %s, %s, %s CPUs, %s" % (info["date"], info["kernel"], info["nproc"],
                                                        info["model"]))
    print("# %d secrets from moto %s (IAM auth on), %s, +%d ms per request, %d runs per mode "
          "(alternating); build %s; commit %s; Python %s"
          % (a.secrets, info["moto"], "direct" if a.direct else "through the recording proxy",
             a.latency_ms, a.runs, info["build"], info["commit"], info["python"]))
    print("# load average before/after: %s / %s" % load)
    print()
    print("| run | mode | all readable (ms) | mount seen (ms) | `cold start done` (ms) | requests "
          "| connections | peak in flight |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        req = ", ".join("%s %d" % kv for kv in sorted(r["counts"].items())) or "-"
        print("| %d | %s | %s | %s | %s | %s | %s | %s |"
              % (r["run"], r["mode"], fmt(r["all_ms"]), fmt(r["mount_ms"]), fmt(r["cold_ms"]), req,
                 fmt(r["conns"]), fmt(r["peak"])))
    print()
    med = {}
    print("| mode | min (ms) | median (ms) | median `cold start done` (ms) |")
    print("|---|---|---|---|")
    for mode in ("batch", "single"):
        xs = [r["all_ms"] for r in results if r["mode"] == mode]
        cs = [r["cold_ms"] for r in results if r["mode"] == mode and r["cold_ms"] is not None]
        med[mode] = statistics.median(xs)
        print("| %s | %s | %s | %s |" % ("batch (default)" if mode == "batch" else "`\"batch\": false`",
                                         fmt(min(xs)), fmt(med[mode]),
                                         fmt(statistics.median(cs)) if cs else "-"))
    print()
    print("Ratio of medians (batch false / batch): %.2f" % (med["single"] / med["batch"]))


def main():
    args = parse_args(sys.argv[1:])
    if not benchlib.enter_private_namespace(SELF, log):
        return 1
    binary = benchlib.runsecrets_binary(args.build, log)
    if binary is None:
        return 2
    import aws_proxy
    tmp = tempfile.mkdtemp(prefix="coldstart-aws-")
    moto_srv = proxy = None
    try:
        info = machine_info(os.path.abspath(args.build))
        load_before = loadavg()
        log("starting moto")
        moto_srv = aws_proxy.Moto(log_path=os.path.join(tmp, "moto.log")).start()
        keys = moto_srv.create_user("bench")
        sm = moto_srv.sm()
        names = ["b%03d" % k for k in range(args.secrets)]
        expected = {}
        for n in names:
            v = secrets.token_hex(16)
            sm.create_secret(Name="bench/" + n, SecretString=v)
            expected[n] = v.encode()
        endpoint = moto_srv.url
        if not args.direct:
            proxy = aws_proxy.AwsProxy(moto_srv).start()
            proxy.set_latency(args.latency_ms)
            endpoint = proxy.url
        elif args.latency_ms:
            log("--latency-ms needs the proxy; ignored with --direct")
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        configs = {}
        for mode, batch in (("batch", True), ("single", False)):
            backend = {"type": "aws", "region": "us-east-1", "endpoint": endpoint,
                       "sts_endpoint": endpoint, "batch": batch}
            backend.update(args.backend_extra)
            cfg = {"mount": mnt, "defaults": {"refresh": "1h", "max_stale": "2h"},
                   "backends": {"aws": backend},
                   "secrets": {n: "aws:bench/" + n for n in names}}
            configs[mode] = os.path.join(tmp, "config-%s.json" % mode)
            with open(configs[mode], "w") as f:
                json.dump(cfg, f)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
                    "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"],
                    "AWS_EC2_METADATA_DISABLED": "true", "HOME": tmp})
        ctx = {"args": args, "tmp": tmp, "mnt": mnt, "names": names, "expected": expected,
               "proxy": proxy, "configs": configs, "env": env, "binary": binary}
        results = []
        for i in range(args.runs):
            order = ("batch", "single") if i % 2 == 0 else ("single", "batch")
            for mode in order:
                r = one_run(ctx, mode, i + 1)
                log("run %d %-6s all readable %.0f ms, requests %r" % (i + 1, mode, r["all_ms"],
                                                                      r["counts"]))
                results.append(r)
        report(ctx, info, results, (load_before, loadavg()))
        return 0
    except BenchError as e:
        log("failed: %s" % e)
        return 1
    finally:
        if proxy:
            proxy.stop()
        if moto_srv:
            moto_srv.stop()
        if args.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
