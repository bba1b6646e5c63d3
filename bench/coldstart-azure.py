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

import argparse
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
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import cmd_out, is_mounted, loadavg, parse_log_time, read_file  # noqa: E402,F401

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SELF = os.path.abspath(__file__)
FAKE = os.path.join(SRC, "tests", "fakes", "azure_fake.py")
ENV_NS = "RS_BENCH_UNSHARED"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
# The Azure SDKs' variables: the broker falls back to them for absent keys; none may leak in from here.
AZURE_VARS = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
              "AZURE_AUTHORITY_HOST")
FAKE_ENDPOINTS = ("vault", "token", "imds")   # azure_fake.ENDPOINTS: each gets the added latency
CLIENT_ID = "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
KV_API = "7.4"
SCOPE = "https://vault.azure.net/.default"
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
    print("coldstart-azure: %s" % msg, file=sys.stderr, flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="coldstart-azure.py",
        description="Cold start of N Azure Key Vault secrets through runsecrets vs a sequential curl loop.")
    ap.add_argument("build", nargs="?", default=os.path.join(SRC, "build"),
                    help="meson build dir holding runsecrets (default: SRC/build)")
    ap.add_argument("--runs", type=int, default=3, help="measurements per side (default 3)")
    ap.add_argument("--secrets", type=int, default=100, help="number of secrets (default 100)")
    ap.add_argument("--latency-ms", type=int, default=50,
                    help="latency the fake adds to every request: Key Vault, token endpoint, IMDS (default 50)")
    ap.add_argument("--auth-latency-ms", type=int, default=None, metavar="MS",
                    help="latency added to the token endpoint and IMDS instead (default: --latency-ms); "
                         "0 shows what a token already in hand when the challenge returns would save")
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
                    help="extra keys merged into the azure backend object, e.g. "
                         "'{\"max_parallel\": 64}' (default: none, the spec's config)")
    ap.add_argument("--ref-parallel", type=int, default=32, metavar="P",
                    help="also time one `curl --parallel --parallel-max P` over the same URLs, a "
                         "reference for what this fake allows (default 32, the broker's default "
                         "max_parallel; 0: skip)")
    ap.add_argument("--baseline", metavar="BUILD_DIR",
                    help="another build whose runsecrets also runs in every run (order alternating), "
                         "for a before/after under the same conditions; reported beside the first")
    ap.add_argument("--strict", action="store_true", help="exit 3 if the target is missed")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, config, the fake's request log of each run)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print the broker's requests of every run as a timeline")
    args = ap.parse_args(argv)
    if args.auth_latency_ms is None:
        args.auth_latency_ms = args.latency_ms
    if args.runs < 1 or args.secrets < 1 or args.secrets > 1000 or args.latency_ms < 0 \
            or args.auth_latency_ms < 0 \
            or args.timeout <= 0 or args.poll_ms < 0 or args.ref_parallel < 0 \
            or not 1 <= args.readers <= 1000:
        ap.error("bad --runs/--secrets/--latency-ms/--auth-latency-ms/--timeout/--poll-ms/--readers")
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




def cpu_ms(pid):
    """User + system CPU time of a process (all its threads) so far, in ms; None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


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
    def __init__(self, tmp, env, names, values, latency_ms, auth_latency_ms):
        # The broker's client secret; the fake must know it, so it goes into the state file (0600,
        # removed once the fake has read it), never into argv.
        self.client_secret = secrets.token_urlsafe(24)
        calls = [{"method": "set_secret", "args": {"name": n, "value": values[n]}} for n in names]
        calls.append({"method": "add_client_secret_app",
                      "args": {"tenant": None, "client_id": CLIENT_ID, "secret": self.client_secret}})
        delays = {ep: (latency_ms if ep == "vault" else auth_latency_ms) for ep in FAKE_ENDPOINTS}
        calls += [{"method": "fault_delay", "args": {"endpoint": ep, "seconds": ms / 1000.0, "count": None}}
                  for ep, ms in delays.items() if ms]
        state = os.path.join(tmp, "fake-state.json")
        write_private(state, json.dumps({"calls": calls}))
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
                raise BenchError("the fake Azure did not start within %.0f s" % FAKE_START_TIMEOUT)
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise BenchError("the fake Azure exited before listening (status %s)"
                                     % self.proc.wait())
                line += chunk
        info = json.loads(line.decode())
        self.url, self.ca, self.control_url = info["url"], info["ca"], info["control"]
        self.tenant, self.vault_url = info["tenant"], info["vault_url"]
        self.authority_host = info["authority_host"]
        self._ctx = ssl.create_default_context(cafile=self.ca)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                   urllib.request.HTTPSHandler(context=self._ctx))
        os.unlink(state)
        got = {f["endpoint"]: round(f["seconds"] * 1000) for f in self.control("faults") if f["kind"] == "delay"}
        if got != {ep: ms for ep, ms in delays.items() if ms}:
            raise BenchError("the fake did not take the delay rules: %s" % json.dumps(got))

    def control(self, method, **kwargs):
        req = urllib.request.Request(self.control_url + "/" + method,
                                     data=json.dumps(kwargs).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with self._opener.open(req, timeout=30) as r:
            return json.loads(r.read())["result"]

    def token(self):
        """One access token for the curl side, from the token endpoint as the broker gets its own
        (client credentials, the Key Vault scope). Untimed."""
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                       "scope": SCOPE, "client_secret": self.client_secret}).encode()
        req = urllib.request.Request("%s/%s/oauth2/v2.0/token" % (self.authority_host, self.tenant),
                                     data=form, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        with self._opener.open(req, timeout=30) as r:
            tok = json.loads(r.read())
        if tok.get("token_type") != "Bearer" or not tok.get("access_token"):
            raise BenchError("the fake's token endpoint answered without a bearer token")
        return tok["access_token"]

    def secret_url(self, name):
        return "%s/secrets/%s?api-version=%s" % (self.vault_url, name, KV_API)

    def stop(self):
        rc = stop_process(self.proc, "fake Azure")
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
        return rc


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


def chain_depth(entries):
    """Round trips on the critical path: the longest chain of requests each of which started after
    the one before it was answered (requests that overlap are one round trip)."""
    rows = sorted(((e["mono"], e["mono"] + (e["duration_ms"] or 0) / 1000.0) for e in entries))
    depth = []
    for k, (st, _) in enumerate(rows):
        depth.append(1 + max((depth[j] for j in range(k) if rows[j][1] <= st), default=0))
    return max(depth, default=0)


def request_summary(entries, t0):
    """What the fake saw: counts by kind and path shape, statuses, connections, peak concurrency,
    round trips on the critical path, and when each kind started and was answered."""
    if not entries:
        return {"n": 0}
    shapes, kinds, phases = {}, {}, {}
    bad = 0
    events = []
    for e in entries:
        sh = shape(e)
        shapes[sh] = shapes.get(sh, 0) + 1
        k = kind(e)
        kinds[k] = kinds.get(k, 0) + 1
        start = e["mono"]
        end = start + (e["duration_ms"] or 0) / 1000.0
        ph = phases.setdefault(k, [start, start, end, end])
        phases[k] = [min(ph[0], start), max(ph[1], start), min(ph[2], end), max(ph[3], end)]
        if e["status"] != 200 and k != "challenge":
            bad += 1
        events.append((start, 1))
        events.append((end, -1))
    events.sort(key=lambda x: (x[0], x[1]))
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    first = min(e["mono"] for e in entries)
    last_end = max(e["mono"] + (e["duration_ms"] or 0) / 1000.0 for e in entries)
    # Connection reuse in front of the reads: which connection (in order of first use) carried the
    # challenge, the token request and the first read.
    order = []
    for e in sorted(entries, key=lambda e: e["mono"]):
        if e["client"] not in order:
            order.append(e["client"])
    firsts = {}
    for e in sorted(entries, key=lambda e: e["mono"]):
        firsts.setdefault(kind(e), order.index(e["client"]) + 1)
    return {
        "n": len(entries),
        "non200": bad,
        "challenge_statuses": sorted({e["status"] for e in entries if kind(e) == "challenge"}),
        "connections": len({e["client"] for e in entries}),
        "peak": peak,
        "round_trips": chain_depth(entries),
        "first_ms": (first - t0) * 1000.0,
        "last_end_ms": (last_end - t0) * 1000.0,
        "kinds": kinds,
        "conn_of_first": firsts,
        # kind -> [first start, last start, first reply, last reply], ms after t0
        "phases": {k: [(x - t0) * 1000.0 for x in v] for k, v in phases.items()},
        "shapes": shapes,
        "timeline": timeline(entries, t0),
    }


def timeline(entries, t0):
    """Requests grouped into waves: consecutive starts of one kind within 5 ms of each other,
    as 'kind xN: start +a..+b ms, replies +c..+d ms' (all after t0)."""
    rows = sorted(entries, key=lambda e: e["mono"])
    out, group = [], []

    def flush():
        if not group:
            return
        st = [(e["mono"] - t0) * 1000.0 for e in group]
        en = [(e["mono"] - t0) * 1000.0 + (e["duration_ms"] or 0) for e in group]
        out.append("%s x%d: start +%.0f..+%.0f, replies +%.0f..+%.0f"
                   % (kind(group[0]), len(group), min(st), max(st), min(en), max(en)))

    for e in rows:
        if group and (kind(e) != kind(group[0]) or e["mono"] - group[-1]["mono"] > 0.005):
            flush()
            group = []
        group.append(e)
    flush()
    return out


# --------------------------------------------------------------------------------------------------
# the two sides


def run_broker(ctx, i, tag=""):
    """One cold start of ctx["binary"] (tag "base": of ctx["base_binary"]), as described above."""
    a, fake = ctx["args"], ctx["fake"]
    binary = ctx["base_binary"] if tag == "base" else ctx["binary"]
    mnt, names = ctx["mnt"], ctx["names"]
    expected = ctx["expected"]
    paths = {n: os.path.join(mnt, n) for n in names}
    if is_mounted(mnt):
        raise BenchError("%s is still mounted before run %d" % (mnt, i))
    fake.control("clear_requests")
    fake_cpu0 = cpu_ms(fake.proc.pid)
    cpu = {}
    log_path = os.path.join(ctx["tmp"], "broker%s-%d.log" % (tag and "-" + tag, i))
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
            ["setpriv", "--pdeathsig", "TERM", "--", binary, "mount", "--config", ctx["config"],
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
            # CPU spent until everything was readable (the broker is idle from then on).
            cpu["broker"] = cpu_ms(proc.pid)
            f1 = cpu_ms(fake.proc.pid)
            cpu["fake"] = None if f1 is None or fake_cpu0 is None else f1 - fake_cpu0
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
           "cold_ms": None, "mounted_ms": None, "cold_msg": None, "warnings": [], "cpu": cpu}
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
    if a.keep:   # for a closer look: the request log (redacted: no token, no body) with times after t0
        with open(os.path.join(ctx["tmp"], "requests%s-%d.json" % (tag and "-" + tag, i)), "w",
                  encoding="utf-8") as f:
            json.dump([{"kind": kind(e), "path": e["path"], "client": e["client"], "status": e["status"],
                        "start_ms": (e["mono"] - t0) * 1000.0, "duration_ms": e["duration_ms"]}
                       for e in entries], f, indent=0)
    # Visibility lag: from the fake finishing the (last) reply for a secret to our first good read.
    reply_end = {}
    for e in entries:
        m = re.fullmatch(r"/secrets/(s\d+)", e["path"])
        if m and e["status"] == 200 and kind(e) == "read":
            reply_end[m.group(1)] = max(reply_end.get(m.group(1), 0.0),
                                        e["mono"] + (e["duration_ms"] or 0) / 1000.0)
    lags = sorted((ready_at[n] - reply_end[n]) * 1000.0 for n in names if n in reply_end)
    res["lag"] = (statistics.median(lags), lags[-1]) if lags else None
    return res


def check_body(i, what, n, body, expected):
    try:
        value = json.loads(body)["value"]
    except (ValueError, KeyError, TypeError):
        raise BenchError("run %d: %s %s: unexpected body" % (i, what, n)) from None
    if not isinstance(value, str) or value.encode() != expected:
        raise BenchError("run %d: %s %s: wrong value" % (i, what, n))


def run_curl(ctx, i):
    a, fake = ctx["args"], ctx["fake"]
    fake.control("clear_requests")
    base = [a.curl, "-sS", "--max-time", str(CURL_TIMEOUT), "--cacert", fake.ca,
            "-H", "@" + ctx["headers"], "-w", "\n%{http_code}"]
    outs = []
    t0 = time.monotonic()
    for n in ctx["names"]:
        outs.append(subprocess.run(base + [fake.secret_url(n)],
                                   stdin=subprocess.DEVNULL, capture_output=True, env=ctx["env"]))
    elapsed = time.monotonic() - t0
    for n, r in zip(ctx["names"], outs):
        body, _, code = r.stdout.rpartition(b"\n")
        if r.returncode != 0 or code != b"200":
            raise BenchError("run %d: curl %s: exit %d, HTTP %s: %s"
                             % (i, n, r.returncode, code.decode(errors="replace") or "-",
                                r.stderr.decode(errors="replace").strip()[:200]))
        check_body(i, "curl", n, body, ctx["expected"][n])
    return {"total_ms": elapsed * 1000.0, "fake": request_summary(fake.control("requests"), t0)}


def run_curl_parallel(ctx, i):
    """Reference, not the baseline: one curl process, all URLs, --parallel-max P connections, the
    token already in hand."""
    a, fake = ctx["args"], ctx["fake"]
    fake.control("clear_requests")
    out = os.path.join(ctx["tmp"], "par-%d" % i)
    os.mkdir(out, 0o700)
    cmd = [a.curl, "-sS", "--max-time", str(CURL_TIMEOUT), "--cacert", fake.ca, "-H", "@" + ctx["headers"],
           "--parallel", "--parallel-max", str(a.ref_parallel), "--output-dir", out,
           "-w", "%{http_code} %{url_effective}\n"]
    for n in ctx["names"]:
        cmd += ["-o", n, fake.secret_url(n)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=ctx["env"])
    elapsed = time.monotonic() - t0
    codes = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        code, _, url = line.partition(" ")
        m = re.search(r"/secrets/([^/?]+)\?", url)
        if m:
            codes[m.group(1)] = code
    for n in ctx["names"]:
        if r.returncode != 0 or codes.get(n) != "200":
            raise BenchError("run %d: curl --parallel %s: exit %d, HTTP %s: %s"
                             % (i, n, r.returncode, codes.get(n, "-"),
                                r.stderr.decode(errors="replace").strip()[:200]))
        with open(os.path.join(out, n), "rb") as f:
            check_body(i, "curl --parallel", n, f.read(), ctx["expected"][n])
    shutil.rmtree(out, ignore_errors=True)
    return {"total_ms": elapsed * 1000.0, "fake": request_summary(fake.control("requests"), t0)}


# --------------------------------------------------------------------------------------------------
# report


def fmt(x, nd=0):
    return "-" if x is None else ("%.*f" % (nd, x))


def report(ctx, info, broker, curl, par, load, base=None):
    a = ctx["args"]
    n = a.secrets
    print()
    print("# coldstart-azure.py: %s, %s, %s CPUs, %s" % (info["date"], info["kernel"], info["nproc"],
                                                         info["model"]))
    print("# %d secrets, +%d ms per request at the fake%s, %d runs per side (alternating), "
          "broker --log-level %s, %d reader thread(s) polling every %g ms%s"
          % (n, a.latency_ms, "" if a.auth_latency_ms == a.latency_ms else
             " (token endpoint and IMDS: +%d ms)" % a.auth_latency_ms, a.runs, a.log_level, a.readers, a.poll_ms,
             ", backend extra %s" % json.dumps(a.backend_extra) if a.backend_extra else ""))
    print("# load average before/after: %s / %s" % load)
    print()
    print("Per run (ms after spawning; first readable: earliest good read (with one reader, that of "
          "s000); challenge / token / reads: when the fake saw the broker's requests of that kind start "
          "and when it answered them (first start → last reply); RTs: round trips on the critical path "
          "(the longest chain of requests each starting after the previous one was answered); "
          "`reqs/conns/peak` = requests, TCP connections and peak concurrent requests the fake saw from "
          "the broker; reply→readable: from the fake's reply for a secret to our first good read of it):")
    print()
    print("| run | runsecrets: all %d readable | first readable | mount seen | `cold start` log "
          "| challenge | token | reads | RTs | reply→readable med/max | reqs/conns/peak "
          "| curl × %d sequential | per curl "
          "| curl --parallel-max %d |" % (n, n, a.ref_parallel))
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    def phase(f, k):
        ph = f.get("phases", {}).get(k)
        return "%.0f→%.0f" % (ph[0], ph[3]) if ph else "-"

    for i, (b, c) in enumerate(zip(broker, curl)):
        f = b["fake"]
        print("| %d%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d/%d | %s | %s | %s |" % (
            i + 1, " (curl first)" if i % 2 else "", fmt(b["ready_ms"]), fmt(b["first_ms"]),
            fmt(b["mount_seen_ms"]), fmt(b["cold_ms"]), phase(f, "challenge"), phase(f, "token"),
            phase(f, "read"), f.get("round_trips", "-"),
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
    if base:
        xr = [b["ready_ms"] for b in base]
        xm = statistics.median(xr)
        print("| baseline runsecrets (%s): spawn → all %d files read their value | %d | %s ms | %s ms | %s ms |"
              % (a.baseline, n, len(xr), fmt(min(xr)), fmt(xm), fmt(max(xr))))
        print("| ratio of medians curl / baseline runsecrets | | | %.1f× | |" % (cm / xm))
    rts = [b["fake"].get("round_trips", 0) for b in broker]
    print()
    bc = [b["cpu"].get("broker") for b in broker if b["cpu"].get("broker") is not None]
    fc = [b["cpu"].get("fake") for b in broker if b["cpu"].get("fake") is not None]
    if bc and fc:
        print("CPU time from spawn until all readable (median): broker %.0f ms, fake %.0f ms, on %s CPUs "
              "shared with whatever else runs (load above)." % (statistics.median(bc), statistics.median(fc),
                                                               info["nproc"]))
    if base:
        xc = [b["cpu"].get("broker") for b in base if b["cpu"].get("broker") is not None]
        xrt = [b["fake"].get("round_trips", 0) for b in base]
        print("Baseline: CPU until all readable (median) broker %s ms; round trips min %d, median %g, max %d."
              % (fmt(statistics.median(xc)) if xc else "-", min(xrt), statistics.median(xrt), max(xrt)))
    print("Round trips on the broker's critical path (fake's log): min %d, median %g, max %d; "
          "the median runsecrets time is %.1f × the added %d ms."
          % (min(rts), statistics.median(rts), max(rts), bm / a.latency_ms if a.latency_ms else 0,
             a.latency_ms))
    print()
    print("| | |")
    print("|---|---|")
    print("| `nproc` | %s |" % info["nproc"])
    print("| model name | %s |" % info["model"])
    print("| kernel | %s |" % info["kernel"])
    print("| date (UTC) | %s |" % info["date"])
    print("| curl | %s |" % info["curl"])
    print("| Python (fake, driver) | %s |" % info["python"])
    print("| fake | tests/fakes/azure_fake.py, +%d ms on Key Vault, +%d ms on the token endpoint and IMDS |"
          % (a.latency_ms, a.auth_latency_ms))
    print("| build | %s, commit %s |" % (info["build"], info["commit"]))
    print()
    if a.verbose:
        for i, b in enumerate(broker):
            print("Run %d, the broker's requests (ms after spawn): %s"
                  % (i + 1, "; ".join(b["fake"].get("timeline", []))))
            print("Run %d, connection (numbered by first use) of the challenge, the token request and "
                  "the first read: %s; CPU until all readable: broker %s ms, fake %s ms"
                  % (i + 1, ", ".join("%s #%d" % (k, v) for k, v in b["fake"].get("conn_of_first", {}).items()),
                     fmt(b["cpu"].get("broker")), fmt(b["cpu"].get("fake"))))
            if par:
                f = par[i]["fake"]
                print("Run %d, the reference's requests (ms after spawning curl; %d connections, peak %d): %s"
                      % (i + 1, f.get("connections", 0), f.get("peak", 0), "; ".join(f.get("timeline", []))))
    shapes = broker[-1]["fake"].get("shapes", {})
    if shapes:
        print("Requests the broker made (last run): " +
              ", ".join("%s × %d" % (k, v) for k, v in sorted(shapes.items(), key=lambda kv: -kv[1])))
    non200 = sum(b["fake"].get("non200", 0) for b in broker)
    if non200:
        print("Non-200 answers to the broker over all runs (challenges excepted): %d" % non200)
    ch = sorted({s for b in broker for s in b["fake"].get("challenge_statuses", [])})
    print("Challenge answers (HTTP status): %s" % (", ".join(str(x) for x in ch) or "none"))
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
    if args.baseline:
        base_binary = os.path.join(os.path.abspath(args.baseline), "runsecrets")
        if not os.access(base_binary, os.X_OK):
            log("%s: not built" % base_binary)
            return 1
    if not shutil.which(args.curl):
        log("curl not found: %s" % args.curl)
        return 1

    env = {k: v for k, v in os.environ.items()
           if k not in PROXY_VARS and k not in AZURE_VARS and k != ENV_NS}
    tmp = tempfile.mkdtemp(prefix="rs-coldstart-azure.")
    os.chmod(tmp, 0o700)
    names = ["s%03d" % k for k in range(args.secrets)]
    values = {n: "v-%s-%s" % (n, secrets.token_hex(16)) for n in names}
    ctx = {"args": args, "tmp": tmp, "env": env, "names": names, "binary": binary, "base_binary": None,
           "expected": {n: v.encode() for n, v in values.items()},
           "mnt": os.path.join(tmp, "mnt"), "broker": None, "fake": None}
    rc = 1
    try:
        os.mkdir(ctx["mnt"])
        if args.baseline:
            ctx["base_binary"] = base_binary
        fake = ctx["fake"] = Fake(tmp, env, names, values, args.latency_ms, args.auth_latency_ms)
        secret_file = os.path.join(tmp, "client-secret")
        write_private(secret_file, fake.client_secret + "\n")
        # curl's token, fetched before any timing (the baseline is the 100 reads, as for Vault).
        ctx["headers"] = os.path.join(tmp, "curl-headers")
        write_private(ctx["headers"], "Authorization: Bearer %s\n" % fake.token())
        ctx["config"] = os.path.join(tmp, "config.json")
        write_private(ctx["config"], json.dumps({
            "mount": ctx["mnt"],
            "defaults": {"refresh": "1h", "max_stale": "2h", "mode": "0400", "uid": 0, "gid": 0},
            "backends": {"kv": dict({"type": "azure", "vault_url": fake.vault_url, "ca_file": fake.ca,
                                     # the fake is at 127.0.0.1, no parent domain of vault.azure.net
                                     "challenge_resource": "https://vault.azure.net",
                                     "auth": {"method": "client_secret", "tenant_id": fake.tenant,
                                              "client_id": CLIENT_ID, "client_secret_file": secret_file,
                                              "authority_host": fake.authority_host}},
                                    **args.backend_extra)},
            "secrets": {n: {"from": "kv:%s" % n} for n in names},
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
        broker, curl, par, base = [], [], [], []

        def run_base(c, i):
            return run_broker(c, i, "base")

        for i in range(args.runs):
            order = [run_broker, run_curl] if i % 2 == 0 else [run_curl, run_broker]
            if args.baseline:
                order.insert(1, run_base)   # between the two: before the broker every other run
            if args.ref_parallel:
                order.append(run_curl_parallel)
            for fn in order:
                res = fn(ctx, i + 1)
                if fn is run_base:
                    base.append(res)
                    log("run %d: baseline runsecrets %.0f ms" % (i + 1, res["ready_ms"]))
                elif fn is run_broker:
                    broker.append(res)
                    log("run %d: runsecrets %.0f ms (cold start log %s ms)"
                        % (i + 1, res["ready_ms"], fmt(res["cold_ms"])))
                elif fn is run_curl:
                    curl.append(res)
                    log("run %d: curl sequential %.0f ms" % (i + 1, res["total_ms"]))
                else:
                    par.append(res)
                    log("run %d: curl --parallel-max %d %.0f ms" % (i + 1, args.ref_parallel, res["total_ms"]))
        met = report(ctx, info, broker, curl, par, (load_before, loadavg()), base)
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
                log("the fake Azure exited with status %s" % frc)
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
