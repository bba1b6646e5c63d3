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
import datetime
import errno
import json
import os
import re
import secrets
import select
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import cmd_out, is_mounted, loadavg, parse_log_time, read_file  # noqa: E402,F401
import urllib.request

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SELF = os.path.abspath(__file__)
FAKE = os.path.join(SRC, "tests", "fakes", "vault.py")
ENV_NS = "RS_BENCH_UNSHARED"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
FAKE_START_TIMEOUT = 60.0   # includes generating the PKI
STOP_TIMEOUT = 10.0
CURL_TIMEOUT = 30           # per request, curl --max-time


class BenchError(Exception):
    pass



def machine_info(build, curl):
    info = benchlib.machine_info(build)
    info["curl"] = " ".join(w for i, w in enumerate((cmd_out([curl, "--version"]).splitlines()
                                                      or [""])[0].split())
                            if i < 2 or w.startswith("OpenSSL/"))
    return info

def log(msg):
    print("coldstart-vault: %s" % msg, file=sys.stderr, flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="coldstart-vault.py",
        description="Cold start of N Vault secrets through runsecrets vs a sequential curl loop.")
    ap.add_argument("build", nargs="?", default=os.path.join(SRC, "build"),
                    help="meson build dir holding runsecrets (default: SRC/build)")
    ap.add_argument("--runs", type=int, default=3, help="measurements per side (default 3)")
    ap.add_argument("--secrets", type=int, default=100, help="number of secrets (default 100)")
    ap.add_argument("--latency-ms", type=int, default=50,
                    help="latency the fake adds to every request (default 50)")
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds until every file must be readable (default 60)")
    ap.add_argument("--poll-ms", type=float, default=2.0,
                    help="pause between polling rounds (default 2)")
    ap.add_argument("--readers", type=int, default=1, metavar="N",
                    help="reader threads sharing the files (default 1: one loop over all files)")
    ap.add_argument("--log-level", default="info", choices=("error", "warn", "info", "debug"),
                    help="broker --log-level (default info: needed for the cold start/mounted times)")
    ap.add_argument("--target", type=float, default=20.0, help="target ratio (default 20)")
    ap.add_argument("--curl", default=shutil.which("curl") or "curl", help="curl binary")
    ap.add_argument("--backend-json", default="{}", metavar="JSON",
                    help="extra keys merged into the vault backend object, e.g. "
                         "'{\"max_parallel\": 64}' (default: none, the spec's config)")
    ap.add_argument("--ref-parallel", type=int, default=32, metavar="P",
                    help="also time one `curl --parallel --parallel-max P` over the same URLs, a "
                         "reference for what this fake allows (default 32, the broker's default "
                         "max_parallel; 0: skip)")
    ap.add_argument("--strict", action="store_true", help="exit 3 if the target is missed")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, config)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print the broker's requests of every run as a timeline")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.secrets < 1 or args.secrets > 1000 or args.latency_ms < 0 \
            or args.timeout <= 0 or args.poll_ms < 0 or args.ref_parallel < 0 \
            or not 1 <= args.readers <= 1000:
        ap.error("bad --runs/--secrets/--latency-ms/--timeout/--poll-ms")
    try:
        args.backend_extra = json.loads(args.backend_json)
    except ValueError as e:
        ap.error("--backend-json: %s" % e)
    if not isinstance(args.backend_extra, dict):
        ap.error("--backend-json: expected a JSON object")
    return args


def reexec_unshared():
    env = dict(os.environ)
    env[ENV_NS] = "1"
    cmd = ["unshare", "--mount", "--propagation", "private", sys.executable, SELF] + sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe("unshare", cmd, env)
    except OSError as e:
        log("cannot re-exec under unshare: %s" % e)
        sys.exit(1)


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------------------------------
# small helpers


def write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)




def stop_process(proc, what):
    """SIGTERM, bounded wait, SIGKILL as a last resort. Returns the exit status (None if none)."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log("%s (pid %d) ignored SIGTERM for %.0f s; killing it" % (what, proc.pid, STOP_TIMEOUT))
            proc.kill()
            proc.wait()
    return proc.returncode








class Fake:
    def __init__(self, tmp, env, names, values, latency_ms):
        self.token = "hvs." + secrets.token_urlsafe(24)
        calls = [{"method": "add_kv_mount", "args": {"path": "secret", "version": 2}}]
        calls += [{"method": "put_kv", "args": {"mount": "secret", "path": n, "data": {"value": values[n]}}}
                  for n in names]
        if latency_ms:
            calls.append({"method": "add_latency", "args": {"ms": latency_ms}})
        state = os.path.join(tmp, "fake-state.json")
        write_private(state, json.dumps({"root_token": self.token, "calls": calls}))
        self.log_path = os.path.join(tmp, "fake.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["setpriv", "--pdeathsig", "TERM", "--", sys.executable, FAKE, "--port", "0",
             "--tls-dir", os.path.join(tmp, "tls"), "--state", state],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, env=env)
        deadline = time.monotonic() + FAKE_START_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("the fake Vault did not start within %.0f s" % FAKE_START_TIMEOUT)
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise BenchError("the fake Vault exited before listening (status %s)"
                                     % self.proc.wait())
                line += chunk
        info = json.loads(line.decode())
        self.url, self.ca, self.control_url = info["url"], info["ca"], info["control"]
        self._ctx = ssl.create_default_context(cafile=self.ca)
        os.unlink(state)

    def control(self, method, **kwargs):
        req = urllib.request.Request(self.control_url + "/" + method,
                                     data=json.dumps(kwargs).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=self._ctx))
        with opener.open(req, timeout=30) as r:
            return json.loads(r.read())["result"]

    def stop(self):
        rc = stop_process(self.proc, "fake Vault")
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
        return rc


def request_summary(entries, t0):
    """What the fake saw: counts by path shape, statuses, connections, peak concurrency, span."""
    if not entries:
        return {"n": 0}
    shapes = {}
    bad = 0
    events = []
    for e in entries:
        shape = "%s %s" % (e["method"], re.sub(r"/s\d+$", "/s*", e["rel"] or e["path"]))
        shapes[shape] = shapes.get(shape, 0) + 1
        if e["status"] != 200:
            bad += 1
        start = e["mono"]
        end = start + (e["duration_ms"] or 0) / 1000.0
        events.append((start, 1))
        events.append((end, -1))
    events.sort(key=lambda x: (x[0], x[1]))
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    first = min(e["mono"] for e in entries)
    last_end = max(e["mono"] + (e["duration_ms"] or 0) / 1000.0 for e in entries)
    return {
        "n": len(entries),
        "non200": bad,
        "connections": len({e["client"] for e in entries}),
        "peak": peak,
        "first_ms": (first - t0) * 1000.0,
        "last_end_ms": (last_end - t0) * 1000.0,
        "shapes": shapes,
        "timeline": timeline(entries, t0),
    }


def timeline(entries, t0):
    """Requests grouped into waves: consecutive starts of one path shape within 5 ms of each other,
    as 'shape xN: start +a..+b ms, replies +c..+d ms' (all after t0)."""
    rows = sorted(entries, key=lambda e: e["mono"])
    out, group = [], []

    def flush():
        if not group:
            return
        shape = re.sub(r"/s\d+$", "/s*", group[0]["rel"] or group[0]["path"])
        st = [(e["mono"] - t0) * 1000.0 for e in group]
        en = [(e["mono"] - t0) * 1000.0 + (e["duration_ms"] or 0) for e in group]
        out.append("%s x%d: start +%.0f..+%.0f, replies +%.0f..+%.0f"
                   % (shape, len(group), min(st), max(st), min(en), max(en)))

    for e in rows:
        shape = re.sub(r"/s\d+$", "/s*", e["rel"] or e["path"])
        if group and (shape != re.sub(r"/s\d+$", "/s*", group[0]["rel"] or group[0]["path"])
                      or e["mono"] - group[-1]["mono"] > 0.005):
            flush()
            group = []
        group.append(e)
    flush()
    return out


# --------------------------------------------------------------------------------------------------
# the two sides


def run_broker(ctx, i):
    a, fake = ctx["args"], ctx["fake"]
    mnt, names = ctx["mnt"], ctx["names"]
    expected = ctx["expected"]
    paths = {n: os.path.join(mnt, n) for n in names}
    if is_mounted(mnt):
        raise BenchError("%s is still mounted before run %d" % (mnt, i))
    fake.control("clear_requests")
    log_path = os.path.join(ctx["tmp"], "broker-%d.log" % i)
    poll = a.poll_ms / 1000.0
    errs, ready_at, wrong = {}, {}, []
    stop = threading.Event()
    mounted = threading.Event()
    # Readers: --readers threads, each polling its share of the files (round-robin). An open
    # blocks in the broker until that secret's first fetch settles, so one reader is "an
    # application reading its secrets in order"; --readers N reads N files at a time.
    shares = [names[k::a.readers] for k in range(a.readers)]

    def reader(share):
        mounted.wait()
        pending = list(share)
        while pending and not stop.is_set():
            still = []
            for n in pending:
                try:
                    data = read_file(paths[n])
                except OSError as e:
                    errs[n] = e.errno
                    still.append(n)
                    continue
                now = time.monotonic()
                if data != expected[n]:
                    wrong.append((n, len(data)))
                    stop.set()
                    return
                ready_at[n] = now
            pending = still
            if pending and poll:
                time.sleep(poll)

    threads = [threading.Thread(target=reader, args=(sh,), daemon=True) for sh in shares if sh]
    for t in threads:
        t.start()
    dev0 = os.stat(mnt).st_dev
    with open(log_path, "wb") as logf:
        w0 = time.time()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            ["setpriv", "--pdeathsig", "TERM", "--", ctx["binary"], "mount", "--config", ctx["config"],
             "--log-level", a.log_level, mnt],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf, env=ctx["env"])
        ctx["broker"] = proc
        deadline = t0 + a.timeout
        mounted_at = None
        try:
            # Until the mount appears no file can be readable: watch the mountpoint's device
            # (cheap) instead of failing opens on the bare directory.
            while mounted_at is None:
                try:
                    if os.stat(mnt).st_dev != dev0:
                        mounted_at = time.monotonic()
                        mounted.set()
                        break
                except OSError:
                    pass
                if proc.poll() is not None:
                    raise BenchError("run %d: the broker exited with status %d before mounting"
                                     % (i, proc.returncode))
                if time.monotonic() > deadline:
                    raise BenchError("run %d: %s not mounted after %g s" % (i, mnt, a.timeout))
                time.sleep(0.001)
            while True:
                alive = [t for t in threads if t.is_alive()]
                if not alive:
                    break
                alive[0].join(0.005)
                if wrong:
                    raise BenchError("run %d: %s read %d bytes that are not its value" % ((i,) + wrong[0]))
                if proc.poll() is not None:
                    raise BenchError("run %d: the broker exited with status %d with %d of %d files "
                                     "not readable" % (i, proc.returncode, len(names) - len(ready_at),
                                                       len(names)))
                if time.monotonic() > deadline:
                    pending = [n for n in names if n not in ready_at]
                    seen = sorted({errno.errorcode.get(errs[n], str(errs[n])) for n in pending if n in errs})
                    raise BenchError("run %d: %d of %d files still not readable after %g s (%s)"
                                     % (i, len(pending), len(names), a.timeout,
                                        ", ".join(seen) or "opens still blocked"))
            if wrong:
                raise BenchError("run %d: %s read %d bytes that are not its value" % ((i,) + wrong[0]))
            t_ready = max(ready_at.values())
        finally:
            stop.set()
            mounted.set()
            rc = stop_process(proc, "runsecrets")
            ctx["broker"] = None
            for t in threads:   # opens blocked in the broker fail once it has unmounted
                t.join(STOP_TIMEOUT)
            if is_mounted(mnt):
                subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL, check=False)
                raise BenchError("run %d: %s was still mounted after the broker exited" % (i, mnt))
    if rc != 0:
        raise BenchError("run %d: runsecrets exited with status %s after SIGTERM" % (i, rc))

    res = {"ready_ms": (t_ready - t0) * 1000.0, "mount_seen_ms": (mounted_at - t0) * 1000.0,
           "first_ms": (min(ready_at.values()) - t0) * 1000.0,
           "cold_ms": None, "mounted_ms": None, "cold_msg": None, "warnings": []}
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                j = json.loads(line)
            except ValueError:
                res["warnings"].append(line.strip()[:200])
                continue
            msg = j.get("msg", "")
            if j.get("level") in ("warn", "error"):
                res["warnings"].append("%s: %s%s" % (j.get("level"), msg,
                                                     " (%s)" % j["error"] if j.get("error") else ""))
            if msg.startswith("cold start") and res["cold_ms"] is None:
                res["cold_ms"] = (parse_log_time(j["time"]) - w0) * 1000.0
                res["cold_msg"] = msg
            elif msg == "mounted" and res["mounted_ms"] is None:
                res["mounted_ms"] = (parse_log_time(j["time"]) - w0) * 1000.0
    entries = fake.control("requests")
    res["fake"] = request_summary(entries, t0)
    # Visibility lag: from the fake finishing the (last) reply for a secret to our first good read.
    reply_end = {}
    for e in entries:
        m = re.fullmatch(r"secret/data/(s\d+)", e["rel"] or "")
        if m and e["status"] == 200:
            reply_end[m.group(1)] = max(reply_end.get(m.group(1), 0.0),
                                        e["mono"] + (e["duration_ms"] or 0) / 1000.0)
    lags = sorted((ready_at[n] - reply_end[n]) * 1000.0 for n in names if n in reply_end)
    res["lag"] = (statistics.median(lags), lags[-1]) if lags else None
    return res


def run_curl(ctx, i):
    a, fake = ctx["args"], ctx["fake"]
    fake.control("clear_requests")
    base = [a.curl, "-sS", "--max-time", str(CURL_TIMEOUT), "--cacert", fake.ca,
            "-H", "@" + ctx["headers"], "-w", "\n%{http_code}"]
    outs = []
    t0 = time.monotonic()
    for n in ctx["names"]:
        outs.append(subprocess.run(base + [fake.url + "/v1/secret/data/" + n],
                                   stdin=subprocess.DEVNULL, capture_output=True, env=ctx["env"]))
    elapsed = time.monotonic() - t0
    for n, r in zip(ctx["names"], outs):
        body, _, code = r.stdout.rpartition(b"\n")
        if r.returncode != 0 or code != b"200":
            raise BenchError("run %d: curl %s: exit %d, HTTP %s: %s"
                             % (i, n, r.returncode, code.decode(errors="replace") or "-",
                                r.stderr.decode(errors="replace").strip()[:200]))
        try:
            value = json.loads(body)["data"]["data"]["value"]
        except (ValueError, KeyError, TypeError):
            raise BenchError("run %d: curl %s: unexpected body" % (i, n)) from None
        if value.encode() != ctx["expected"][n]:
            raise BenchError("run %d: curl %s: wrong value" % (i, n))
    return {"total_ms": elapsed * 1000.0, "fake": request_summary(fake.control("requests"), t0)}


def run_curl_parallel(ctx, i):
    """Reference, not the baseline: one curl process, all URLs, --parallel-max P connections."""
    a, fake = ctx["args"], ctx["fake"]
    fake.control("clear_requests")
    out = os.path.join(ctx["tmp"], "par-%d" % i)
    os.mkdir(out, 0o700)
    cmd = [a.curl, "-sS", "--max-time", str(CURL_TIMEOUT), "--cacert", fake.ca, "-H", "@" + ctx["headers"],
           "--parallel", "--parallel-max", str(a.ref_parallel), "--output-dir", out, "--remote-name-all",
           "-w", "%{http_code} %{url_effective}\n"] + [fake.url + "/v1/secret/data/" + n for n in ctx["names"]]
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=ctx["env"])
    elapsed = time.monotonic() - t0
    codes = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        code, _, url = line.partition(" ")
        codes[url.rsplit("/", 1)[-1]] = code
    for n in ctx["names"]:
        if r.returncode != 0 or codes.get(n) != "200":
            raise BenchError("run %d: curl --parallel %s: exit %d, HTTP %s: %s"
                             % (i, n, r.returncode, codes.get(n, "-"),
                                r.stderr.decode(errors="replace").strip()[:200]))
        try:
            with open(os.path.join(out, n), "rb") as f:
                value = json.load(f)["data"]["data"]["value"]
        except (OSError, ValueError, KeyError, TypeError):
            raise BenchError("run %d: curl --parallel %s: unexpected body" % (i, n)) from None
        if value.encode() != ctx["expected"][n]:
            raise BenchError("run %d: curl --parallel %s: wrong value" % (i, n))
    shutil.rmtree(out, ignore_errors=True)
    return {"total_ms": elapsed * 1000.0, "fake": request_summary(fake.control("requests"), t0)}


# --------------------------------------------------------------------------------------------------
# report


def fmt(x, nd=0):
    return "-" if x is None else ("%.*f" % (nd, x))


def report(ctx, info, broker, curl, par, load):
    a = ctx["args"]
    n = a.secrets
    print()
    print("# coldstart-vault.py: %s, %s, %s CPUs, %s" % (info["date"], info["kernel"], info["nproc"],
                                                         info["model"]))
    print("# %d secrets, +%d ms per request at the fake, %d runs per side (alternating), "
          "broker --log-level %s, %d reader thread(s) polling every %g ms%s"
          % (n, a.latency_ms, a.runs, a.log_level, a.readers, a.poll_ms,
             ", backend extra %s" % json.dumps(a.backend_extra) if a.backend_extra else ""))
    print("# load average before/after: %s / %s" % load)
    print()
    print("Per run (ms after spawning; first readable: earliest good read (with one reader, that of "
          "s000); `reqs/conns/peak` = requests, TCP connections and peak concurrent requests the fake "
          "saw from the broker; first req/last reply as seen by the fake; reply→readable: from the "
          "fake's reply for a secret to our first good read of it):")
    print()
    print("| run | runsecrets: all %d readable | first readable | mount seen | `cold start` log "
          "| first req (fake) | last reply (fake) | reply→readable med/max | reqs/conns/peak "
          "| curl × %d sequential | per curl "
          "| curl --parallel-max %d |" % (n, n, a.ref_parallel))
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, (b, c) in enumerate(zip(broker, curl)):
        f = b["fake"]
        print("| %d%s | %s | %s | %s | %s | %s | %s | %s | %d/%d/%d | %s | %s | %s |" % (
            i + 1, " (curl first)" if i % 2 else "", fmt(b["ready_ms"]), fmt(b["first_ms"]),
            fmt(b["mount_seen_ms"]), fmt(b["cold_ms"]), fmt(f.get("first_ms")), fmt(f.get("last_end_ms")),
            "%s/%s" % (fmt(b["lag"][0], 1), fmt(b["lag"][1], 1)) if b.get("lag") else "-",
            f["n"], f.get("connections", 0), f.get("peak", 0), fmt(c["total_ms"]),
            fmt(c["total_ms"] / n, 1), fmt(par[i]["total_ms"]) if par else "-"))
    br = [b["ready_ms"] for b in broker]
    cr = [c["total_ms"] for c in curl]
    bm, cm = statistics.median(br), statistics.median(cr)
    ratio = cm / bm
    print()
    print("| | runs | min | median | max |")
    print("|---|---|---|---|---|")
    print("| runsecrets: spawn → all %d files read their value | %d | %s ms | **%s ms** | %s ms |"
          % (n, len(br), fmt(min(br)), fmt(bm), fmt(max(br))))
    cold = [b["cold_ms"] for b in broker if b["cold_ms"] is not None]
    if cold:
        print("| runsecrets: spawn → `cold start` log line | %d | %s ms | %s ms | %s ms |"
              % (len(cold), fmt(min(cold)), fmt(statistics.median(cold)), fmt(max(cold))))
    print("| curl: %d sequential requests | %d | %s ms | **%s ms** | %s ms |"
          % (n, len(cr), fmt(min(cr)), fmt(cm), fmt(max(cr))))
    if par:
        pr = [p["total_ms"] for p in par]
        print("| reference: one `curl --parallel --parallel-max %d`, same %d URLs | %d | %s ms | %s ms | %s ms |"
              % (a.ref_parallel, n, len(pr), fmt(min(pr)), fmt(statistics.median(pr)), fmt(max(pr))))
    print("| **ratio of medians curl / runsecrets** | | | **%.1f×** | |" % ratio)
    print()
    print("| | |")
    print("|---|---|")
    print("| `nproc` | %s |" % info["nproc"])
    print("| model name | %s |" % info["model"])
    print("| kernel | %s |" % info["kernel"])
    print("| date (UTC) | %s |" % info["date"])
    print("| curl | %s |" % info["curl"])
    print("| Python (fake, driver) | %s |" % info["python"])
    print("| build | %s, commit %s |" % (info["build"], info["commit"]))
    print()
    if a.verbose:
        for i, b in enumerate(broker):
            print("Run %d, the broker's requests (ms after spawn): %s"
                  % (i + 1, "; ".join(b["fake"].get("timeline", []))))
    shapes = broker[-1]["fake"].get("shapes", {})
    if shapes:
        print("Requests the broker made (last run): " +
              ", ".join("%s × %d" % (k, v) for k, v in sorted(shapes.items(), key=lambda kv: -kv[1])))
    non200 = sum(b["fake"].get("non200", 0) for b in broker)
    if non200:
        print("Non-200 answers to the broker over all runs: %d" % non200)
    warns = broker[-1]["warnings"]
    if warns:
        print("Broker warnings/errors (last run, %d): %s" % (len(warns), "; ".join(warns[:5])))
    print()
    met = ratio >= a.target
    print("target curl/runsecrets >= %g: %s (%.1f×; runsecrets median %.0f ms, curl median %.0f ms)"
          % (a.target, "met" if met else "MISSED", ratio, bm, cm))
    return met


# --------------------------------------------------------------------------------------------------


def main():
    args = parse_args(sys.argv[1:])
    sys.stdout.reconfigure(line_buffering=True)
    if os.geteuid() != 0:
        log("needs root (mounts FUSE in a private mount namespace)")
        return 1
    if not os.path.exists("/dev/fuse"):
        log("/dev/fuse is missing")
        return 1
    if os.environ.get(ENV_NS) != "1":
        reexec_unshared()
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)

    build = os.path.abspath(args.build)
    binary = os.path.join(build, "runsecrets")
    if not os.access(binary, os.X_OK):
        log("%s: not built (ninja -C %s)" % (binary, build))
        return 1
    if not shutil.which(args.curl):
        log("curl not found: %s" % args.curl)
        return 1

    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and k != ENV_NS}
    tmp = tempfile.mkdtemp(prefix="rs-coldstart.")
    os.chmod(tmp, 0o700)
    names = ["s%03d" % k for k in range(args.secrets)]
    values = {n: "v-%s-%s" % (n, secrets.token_hex(16)) for n in names}
    ctx = {"args": args, "tmp": tmp, "env": env, "names": names, "binary": binary,
           "expected": {n: v.encode() for n, v in values.items()},
           "mnt": os.path.join(tmp, "mnt"), "broker": None, "fake": None}
    rc = 1
    try:
        os.mkdir(ctx["mnt"])
        fake = ctx["fake"] = Fake(tmp, env, names, values, args.latency_ms)
        token_file = os.path.join(tmp, "token")
        write_private(token_file, fake.token + "\n")
        ctx["headers"] = os.path.join(tmp, "curl-headers")
        write_private(ctx["headers"], "X-Vault-Token: %s\nX-Vault-Request: true\n" % fake.token)
        ctx["config"] = os.path.join(tmp, "config.json")
        write_private(ctx["config"], json.dumps({
            "mount": ctx["mnt"],
            "defaults": {"refresh": "1h", "max_stale": "2h", "mode": "0400", "uid": 0, "gid": 0},
            "backends": {"vault": dict({"type": "vault", "address": fake.url, "ca_file": fake.ca,
                                        "auth": {"method": "token", "token_file": token_file}},
                                       **args.backend_extra)},
            "secrets": {n: {"from": "vault:secret/%s#value" % n} for n in names},
        }, indent=1))

        # Untimed: the config is accepted, the binaries are in the page cache, curl works.
        r = subprocess.run([binary, "check", "--config", ctx["config"]], capture_output=True,
                           text=True, env=env, timeout=60)
        if r.returncode != 0:
            raise BenchError("runsecrets check rejects the config (status %d): %s"
                             % (r.returncode, (r.stderr or r.stdout).strip()[:300]))
        saved = ctx["names"]
        ctx["names"] = saved[:1]
        run_curl(ctx, 0)
        ctx["names"] = saved

        info = machine_info(build, args.curl)
        load_before = loadavg()
        broker, curl, par = [], [], []
        for i in range(args.runs):
            order = [run_broker, run_curl] if i % 2 == 0 else [run_curl, run_broker]
            if args.ref_parallel:
                order.append(run_curl_parallel)
            for fn in order:
                res = fn(ctx, i + 1)
                if fn is run_broker:
                    broker.append(res)
                    log("run %d: runsecrets %.0f ms (cold start log %s ms)"
                        % (i + 1, res["ready_ms"], fmt(res["cold_ms"])))
                elif fn is run_curl:
                    curl.append(res)
                    log("run %d: curl sequential %.0f ms" % (i + 1, res["total_ms"]))
                else:
                    par.append(res)
                    log("run %d: curl --parallel-max %d %.0f ms" % (i + 1, args.ref_parallel, res["total_ms"]))
        met = report(ctx, info, broker, curl, par, (load_before, loadavg()))
        rc = 3 if args.strict and not met else 0
    except BenchError as e:
        log(str(e))
        rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    except SystemExit as e:
        log("terminated")
        rc = e.code if isinstance(e.code, int) else 1
    finally:
        if ctx["broker"] is not None:
            stop_process(ctx["broker"], "runsecrets")
        if is_mounted(ctx["mnt"]):
            subprocess.run(["umount", "-l", ctx["mnt"]], stderr=subprocess.DEVNULL, check=False)
        if ctx["fake"] is not None:
            frc = ctx["fake"].stop()
            if frc not in (0, None) and rc == 0:
                log("the fake Vault exited with status %s" % frc)
                rc = 1
        if rc not in (0, 3):
            for p in sorted(os.listdir(tmp)):
                if p.endswith(".log") and os.path.getsize(os.path.join(tmp, p)):
                    with open(os.path.join(tmp, p), encoding="utf-8", errors="replace") as f:
                        tail = f.read().splitlines()[-5:]
                    log("last lines of %s:\n  %s" % (p, "\n  ".join(tail)))
        if args.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
