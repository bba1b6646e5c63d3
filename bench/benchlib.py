"""benchlib - what the benchmarks share: machine facts for the report, small file and mount
helpers, and the cold start against a fake (broker vs curl) of coldstart-vault.py,
coldstart-azure.py and coldstart-gcp.py. Standard library only."""

import argparse
import datetime
import errno
import json
import os
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

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cmd_out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(build):
    """CPU count and model, kernel, UTC date, Python, build type and commit."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    buildtype = ""
    try:
        opts = json.loads(cmd_out(["meson", "introspect", build, "--buildoptions"]) or "[]")
        buildtype = next((o["value"] for o in opts if o.get("name") == "buildtype"), "")
    except ValueError:
        pass
    commit = cmd_out(["git", "-C", SRC, "rev-parse", "--short", "HEAD"])
    dirty = cmd_out(["git", "-C", SRC, "status", "--porcelain", "--untracked-files=no"])
    return {
        "nproc": cmd_out(["nproc", "--all"]),
        "model": model,
        "kernel": os.uname().release,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": sys.version.split()[0],
        "build": "%s, buildtype=%s" % (build, buildtype or "?"),
        "commit": (commit + (" + uncommitted changes" if dirty else "")) or "?",
    }


def loadavg():
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def read_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        out = []
        while True:
            b = os.read(fd, 4096)
            if not b:
                return b"".join(out)
            out.append(b)
    finally:
        os.close(fd)


def is_mounted(path):
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and fields[4].replace("\\040", " ") == path:
                return True
    return False


def parse_log_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


# --------------------------------------------------------------------------------------------------
# What the cold-start benchmarks against a fake (coldstart-vault.py, coldstart-azure.py,
# coldstart-gcp.py) share: the private mount namespace, the fake's process, the broker's cold start
# with its readers, the curl baselines and the report's common tables; for the fakes with a token
# service (Azure, GCP), the requests by kind (token, read, ...), the round trips on the critical
# path and a --baseline build. What differs per backend (the fake's state and request log, the URL
# and body of a secret, the config) is in a FakeServer subclass and the script.

STOP_TIMEOUT = 10.0
FAKE_START_TIMEOUT = 60.0   # includes generating the PKI
CURL_TIMEOUT = 30           # per request, curl --max-time
ENV_NS = "RS_BENCH_UNSHARED"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class BenchError(Exception):
    pass


def logger(prog):
    """A log function that prefixes PROG and writes to stderr (the report goes to stdout)."""
    def log(msg):
        print("%s: %s" % (prog, msg), file=sys.stderr, flush=True)
    return log


def curl_version(curl):
    """`curl X.Y.Z OpenSSL/A.B.C` from the first line of `curl --version`."""
    return " ".join(w for i, w in enumerate((cmd_out([curl, "--version"]).splitlines() or [""])[0].split())
                    if i < 2 or w.startswith("OpenSSL/"))


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


def stop_process(proc, what, log):
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


def parse_backend_json(ap, args):
    """--backend-json into args.backend_extra: a JSON object merged into the backend's config."""
    try:
        args.backend_extra = json.loads(args.backend_json)
    except ValueError as e:
        ap.error("--backend-json: %s" % e)
    if not isinstance(args.backend_extra, dict):
        ap.error("--backend-json: expected a JSON object")


def add_coldstart_args(ap, latency_help):
    """The options coldstart-vault.py and coldstart-azure.py share, in three groups (this one, the
    tail, the final), so that a script's own options keep their place in --help between them."""
    ap.add_argument("build", nargs="?", default=os.path.join(SRC, "build"),
                    help="meson build dir holding runsecrets (default: SRC/build)")
    ap.add_argument("--runs", type=int, default=3, help="measurements per side (default 3)")
    ap.add_argument("--secrets", type=int, default=100, help="number of secrets (default 100)")
    ap.add_argument("--latency-ms", type=int, default=50, help=latency_help)


def add_coldstart_tail_args(ap, backend):
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
                    help="extra keys merged into the %s backend object, e.g. "
                         "'{\"max_parallel\": 64}' (default: none, the spec's config)" % backend)
    ap.add_argument("--ref-parallel", type=int, default=32, metavar="P",
                    help="also time one `curl --parallel --parallel-max P` over the same URLs, a "
                         "reference for what this fake allows (default 32, the broker's default "
                         "max_parallel; 0: skip)")


def add_coldstart_final_args(ap, keep_help):
    ap.add_argument("--strict", action="store_true", help="exit 3 if the target is missed")
    ap.add_argument("--keep", action="store_true", help=keep_help)
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print the broker's requests of every run as a timeline")


def coldstart_args_bad(args):
    return (args.runs < 1 or args.secrets < 1 or args.secrets > 1000 or args.latency_ms < 0
            or args.timeout <= 0 or args.poll_ms < 0 or args.ref_parallel < 0
            or not 1 <= args.readers <= 1000)


def reexec_unshared(self_path, log):
    """Re-run SELF_PATH with this process's argv in a private mount namespace, so no mount outlives
    it; ENV_NS tells the second run it is there. Does not return."""
    env = dict(os.environ)
    env[ENV_NS] = "1"
    cmd = ["unshare", "--mount", "--propagation", "private", sys.executable, self_path] + sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe("unshare", cmd, env)
    except OSError as e:
        log("cannot re-exec under unshare: %s" % e)
        sys.exit(1)


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def enter_private_namespace(self_path, log):
    """Root and /dev/fuse checked, then (once) re-exec under unshare; SIGTERM/SIGHUP raise
    SystemExit so the caller's finally stops what it started. False if the machine cannot run it."""
    if os.geteuid() != 0:
        log("needs root (mounts FUSE in a private mount namespace)")
        return False
    if not os.path.exists("/dev/fuse"):
        log("/dev/fuse is missing")
        return False
    if os.environ.get(ENV_NS) != "1":
        reexec_unshared(self_path, log)
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    return True


def runsecrets_binary(build, log):
    """BUILD/runsecrets if it is built, else None (said)."""
    binary = os.path.join(os.path.abspath(build), "runsecrets")
    if not os.access(binary, os.X_OK):
        log("%s: not built (ninja -C %s)" % (binary, os.path.abspath(build)))
        return None
    return binary


class FakeServer:
    """A strict fake (tests/fakes/) in its own process, so this script's polling never competes
    with it for a GIL. It reads its initial state from a 0600 file (secrets stay out of argv),
    prints one JSON line with its addresses once it listens, and answers control calls over TLS.
    Subclasses say what a secret's URL and body are and how to read the fake's request log."""

    what = "fake"

    def __init__(self, script, tmp, env, state, log):
        self._log_fn = log
        state_path = os.path.join(tmp, "fake-state.json")
        write_private(state_path, json.dumps(state))
        self.log_path = os.path.join(tmp, "fake.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["setpriv", "--pdeathsig", "TERM", "--", sys.executable, script, "--port", "0",
             "--tls-dir", os.path.join(tmp, "tls"), "--state", state_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, env=env)
        try:
            self.info = json.loads(self._first_line().decode())
        except BaseException:
            self.stop()   # the caller never gets hold of a fake that did not start
            raise
        self.url, self.ca, self.control_url = self.info["url"], self.info["ca"], self.info["control"]
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=self.ca)))
        os.unlink(state_path)

    def _first_line(self):
        deadline = time.monotonic() + FAKE_START_TIMEOUT
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError("the %s did not start within %.0f s" % (self.what, FAKE_START_TIMEOUT))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    raise BenchError("the %s exited before listening (status %s)"
                                     % (self.what, self.proc.wait()))
                line += chunk
        return line

    def control(self, method, **kwargs):
        req = urllib.request.Request(self.control_url + "/" + method,
                                     data=json.dumps(kwargs).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with self._opener.open(req, timeout=30) as r:
            return json.loads(r.read())["result"]

    def stop(self):
        rc = stop_process(self.proc, self.what, self._log_fn)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
        return rc

    def check_delays(self, delays):
        """That the fake holds exactly the delay rules DELAYS ({endpoint: ms}, zeros left out) the
        state file asked for; the fake is stopped and BenchError raised if not."""
        try:
            got = {f["endpoint"]: round(f["seconds"] * 1000) for f in self.control("faults")
                   if f["kind"] == "delay"}
            if got != {ep: ms for ep, ms in delays.items() if ms}:
                raise BenchError("the fake did not take the delay rules: %s" % json.dumps(got))
        except BaseException:
            self.stop()
            raise

    def oauth_token(self, url, fields):
        """An access token for the curl side from the fake's OAuth token endpoint URL (a form POST
        of FIELDS, as the broker logs in). Untimed: the curl baseline counts only the reads."""
        req = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        with self._opener.open(req, timeout=30) as r:
            tok = json.loads(r.read())
        if str(tok.get("token_type", "")).lower() != "bearer" or not tok.get("access_token"):
            raise BenchError("the %s's token endpoint answered without a bearer token" % self.what)
        return tok["access_token"]

    # what each backend says
    def secret_url(self, name):
        raise NotImplementedError

    def value_of(self, body):
        """The secret's value in a 200 answer's body; ValueError/KeyError/TypeError if none."""
        raise NotImplementedError

    def secret_read(self, entry):
        """The secret a request of the fake's log read successfully, or None."""
        raise NotImplementedError

    def summary(self, entries, t0):
        """What the fake saw, for the report; at least n, non200, connections, peak, shapes, timeline."""
        raise NotImplementedError


def request_summary(entries, t0, key):
    """What every fake's request log tells: requests, TCP connections, peak concurrency, first start
    and last reply (ms after t0), and the requests as a timeline grouped by KEY(entry)."""
    peak, first, last_end = request_events(entries)
    return {
        "n": len(entries),
        "connections": len({e["client"] for e in entries}),
        "peak": peak,
        "first_ms": (first - t0) * 1000.0,
        "last_end_ms": (last_end - t0) * 1000.0,
        "timeline": timeline(entries, t0, key),
    }


def timeline(entries, t0, key):
    """Requests grouped into waves: consecutive starts of one KEY(entry) within 5 ms of each other,
    as 'key xN: start +a..+b ms, replies +c..+d ms' (all after t0)."""
    rows = sorted(entries, key=lambda e: e["mono"])
    out, group = [], []

    def flush():
        if not group:
            return
        st = [(e["mono"] - t0) * 1000.0 for e in group]
        en = [(e["mono"] - t0) * 1000.0 + (e["duration_ms"] or 0) for e in group]
        out.append("%s x%d: start +%.0f..+%.0f, replies +%.0f..+%.0f"
                   % (key(group[0]), len(group), min(st), max(st), min(en), max(en)))

    for e in rows:
        if group and (key(e) != key(group[0]) or e["mono"] - group[-1]["mono"] > 0.005):
            flush()
            group = []
        group.append(e)
    flush()
    return out


def request_events(entries):
    """Peak concurrency, first start and last reply (monotonic s) of a fake's request log."""
    events = []
    for e in entries:
        start = e["mono"]
        events.append((start, 1))
        events.append((start + (e["duration_ms"] or 0) / 1000.0, -1))
    events.sort(key=lambda x: (x[0], x[1]))
    cur = peak = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    first = min(e["mono"] for e in entries)
    last_end = max(e["mono"] + (e["duration_ms"] or 0) / 1000.0 for e in entries)
    return peak, first, last_end


def chain_depth(entries):
    """Round trips on the critical path: the longest chain of requests each of which started after
    the one before it was answered (requests that overlap are one round trip)."""
    rows = sorted(((e["mono"], e["mono"] + (e["duration_ms"] or 0) / 1000.0) for e in entries))
    depth = []
    for k, (st, _) in enumerate(rows):
        depth.append(1 + max((depth[j] for j in range(k) if rows[j][1] <= st), default=0))
    return max(depth, default=0)


def phased_summary(entries, t0, kind, shape, expected_non200=()):
    """The summary of a fake whose requests fall into kinds (KIND(entry): "token", "read", ...):
    request_summary's counts, plus counts by kind and by path shape (SHAPE(entry)), the non-200
    answers (those of the kinds EXPECTED_NON200 excepted), the round trips on the critical path, the
    connection (numbered by first use) that carried each kind's first request, and per kind
    [first start, last start, first reply, last reply] in ms after t0."""
    if not entries:
        return {"n": 0}
    shapes, kinds, phases = {}, {}, {}
    bad = 0
    for e in entries:
        sh = shape(e)
        shapes[sh] = shapes.get(sh, 0) + 1
        k = kind(e)
        kinds[k] = kinds.get(k, 0) + 1
        start = e["mono"]
        end = start + (e["duration_ms"] or 0) / 1000.0
        ph = phases.setdefault(k, [start, start, end, end])
        phases[k] = [min(ph[0], start), max(ph[1], start), min(ph[2], end), max(ph[3], end)]
        if e["status"] != 200 and k not in expected_non200:
            bad += 1
    order, firsts = [], {}
    for e in sorted(entries, key=lambda e: e["mono"]):
        if e["client"] not in order:
            order.append(e["client"])
        firsts.setdefault(kind(e), order.index(e["client"]) + 1)
    res = request_summary(entries, t0, kind)
    res.update({
        "non200": bad,
        "round_trips": chain_depth(entries),
        "kinds": kinds,
        "conn_of_first": firsts,
        "phases": {k: [(x - t0) * 1000.0 for x in v] for k, v in phases.items()},
        "shapes": shapes,
    })
    return res


def parse_broker_log(log_path, w0):
    """From the broker's JSON log (w0: wall time at spawn): ms to "cold start ..." and "mounted",
    and the warnings and errors (no secret is ever in the log)."""
    res = {"cold_ms": None, "mounted_ms": None, "cold_msg": None, "warnings": []}
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
    return res


def run_broker(ctx, i, binary, tag=""):
    """One cold start of BINARY: t0 just before spawning `runsecrets mount`; until the mountpoint's
    st_dev changes (checked every 1 ms) nothing can be readable; then --readers threads poll every
    file not yet read until each reads its expected value. The time is that of the last good read.
    Then SIGTERM, bounded wait (exit status must be 0), unmount anything left.
    Returns (result, the fake's request log of the run, t0)."""
    a, fake, log = ctx["args"], ctx["fake"], ctx["log"]
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
            rc = stop_process(proc, "runsecrets", log)
            ctx["broker"] = None
            for t in threads:   # opens blocked in the broker fail once it has unmounted
                t.join(STOP_TIMEOUT)
            if is_mounted(mnt):
                subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL, check=False)
                raise BenchError("run %d: %s was still mounted after the broker exited" % (i, mnt))
    if rc != 0:
        raise BenchError("run %d: runsecrets exited with status %s after SIGTERM" % (i, rc))

    res = {"ready_ms": (t_ready - t0) * 1000.0, "mount_seen_ms": (mounted_at - t0) * 1000.0,
           "first_ms": (min(ready_at.values()) - t0) * 1000.0, "cpu": cpu}
    res.update(parse_broker_log(log_path, w0))
    entries = fake.control("requests")
    res["fake"] = fake.summary(entries, t0)
    # Visibility lag: from the fake finishing the (last) reply for a secret to our first good read.
    reply_end = {}
    for e in entries:
        n = fake.secret_read(e)
        if n is not None:
            reply_end[n] = max(reply_end.get(n, 0.0), e["mono"] + (e["duration_ms"] or 0) / 1000.0)
    lags = sorted((ready_at[n] - reply_end[n]) * 1000.0 for n in names if n in reply_end)
    res["lag"] = (statistics.median(lags), lags[-1]) if lags else None
    return res, entries, t0


def run_broker_phased(ctx, i, tag, kind):
    """alternate_runs's broker_fn for the phased fakes: one cold start of ctx["binary"] (tag "base":
    of ctx["base_binary"]); with --keep, the fake's request log of the run too, as requests-N.json
    (redacted: no token, no body; each request's KIND, times after t0)."""
    binary = ctx["base_binary"] if tag == "base" else ctx["binary"]
    res, entries, t0 = run_broker(ctx, i, binary, tag)
    if ctx["args"].keep:
        with open(os.path.join(ctx["tmp"], "requests%s-%d.json" % (tag and "-" + tag, i)), "w",
                  encoding="utf-8") as f:
            json.dump([{"kind": kind(e), "path": e["path"], "client": e["client"], "status": e["status"],
                        "start_ms": (e["mono"] - t0) * 1000.0, "duration_ms": e["duration_ms"]}
                       for e in entries], f, indent=0)
    return res


def check_body(fake, i, what, n, body, expected):
    try:
        value = fake.value_of(body)
    except (ValueError, KeyError, TypeError):
        raise BenchError("run %d: %s %s: unexpected body" % (i, what, n)) from None
    if not isinstance(value, str) or value.encode() != expected:
        raise BenchError("run %d: %s %s: wrong value" % (i, what, n))


def run_curl(ctx, i):
    """The baseline: one `curl` process (a new TLS connection) per secret, one after another; the
    credential is in a 0600 header file, never in argv. Every answer must be 200 with the value."""
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
        check_body(fake, i, "curl", n, body, ctx["expected"][n])
    return {"total_ms": elapsed * 1000.0, "fake": fake.summary(fake.control("requests"), t0)}


def run_curl_parallel(ctx, i):
    """Reference, not the baseline: one curl process, all URLs, --parallel-max P connections, the
    credential already in hand."""
    a, fake = ctx["args"], ctx["fake"]
    fake.control("clear_requests")
    out = os.path.join(ctx["tmp"], "par-%d" % i)
    os.mkdir(out, 0o700)
    cmd = [a.curl, "-sS", "--max-time", str(CURL_TIMEOUT), "--cacert", fake.ca, "-H", "@" + ctx["headers"],
           "--parallel", "--parallel-max", str(a.ref_parallel), "--output-dir", out,
           "-w", "%{http_code} %{url_effective}\n"]
    name_of = {}
    for n in ctx["names"]:
        name_of[fake.secret_url(n)] = n
        cmd += ["-o", n, fake.secret_url(n)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=ctx["env"])
    elapsed = time.monotonic() - t0
    codes = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        code, _, url = line.partition(" ")
        if url in name_of:
            codes[name_of[url]] = code
    for n in ctx["names"]:
        if r.returncode != 0 or codes.get(n) != "200":
            raise BenchError("run %d: curl --parallel %s: exit %d, HTTP %s: %s"
                             % (i, n, r.returncode, codes.get(n, "-"),
                                r.stderr.decode(errors="replace").strip()[:200]))
        try:
            with open(os.path.join(out, n), "rb") as f:
                body = f.read()
        except OSError:
            raise BenchError("run %d: curl --parallel %s: unexpected body" % (i, n)) from None
        check_body(fake, i, "curl --parallel", n, body, ctx["expected"][n])
    shutil.rmtree(out, ignore_errors=True)
    return {"total_ms": elapsed * 1000.0, "fake": fake.summary(fake.control("requests"), t0)}


def new_context(args, binary, env, tmp_prefix, log):
    """The state of one benchmark: a 0700 temp dir, secrets s000.. with random values, the
    mountpoint; "fake", "config" and "headers" are the script's to fill."""
    tmp = tempfile.mkdtemp(prefix=tmp_prefix)
    os.chmod(tmp, 0o700)
    names = ["s%03d" % k for k in range(args.secrets)]
    values = {n: "v-%s-%s" % (n, secrets.token_hex(16)) for n in names}
    return {"args": args, "tmp": tmp, "env": env, "names": names, "values": values, "binary": binary,
            "base_binary": None, "expected": {n: v.encode() for n, v in values.items()},
            "mnt": os.path.join(tmp, "mnt"), "broker": None, "fake": None, "log": log}


def warm_up(ctx):
    """Untimed: the config is accepted, the binaries are in the page cache, curl works."""
    r = subprocess.run([ctx["binary"], "check", "--config", ctx["config"]], capture_output=True,
                       text=True, env=ctx["env"], timeout=60)
    if r.returncode != 0:
        raise BenchError("runsecrets check rejects the config (status %d): %s"
                         % (r.returncode, (r.stderr or r.stdout).strip()[:300]))
    saved = ctx["names"]
    ctx["names"] = saved[:1]
    try:
        run_curl(ctx, 0)
    finally:
        ctx["names"] = saved


def alternate_runs(ctx, broker_fn):
    """--runs rounds, alternating whether the broker or curl goes first; with a baseline build its
    broker runs between the two (so before this build's every other round), the reference last.
    broker_fn(ctx, i, tag) runs one cold start (tag "base": of ctx["base_binary"]).
    Returns the results: broker, curl, curl --parallel, baseline broker."""
    a, log = ctx["args"], ctx["log"]

    def run_this(c, i):
        return broker_fn(c, i, "")

    def run_base(c, i):
        return broker_fn(c, i, "base")

    broker, curl, par, base = [], [], [], []
    for i in range(a.runs):
        order = [run_this, run_curl] if i % 2 == 0 else [run_curl, run_this]
        if ctx["base_binary"]:
            order.insert(1, run_base)
        if a.ref_parallel:
            order.append(run_curl_parallel)
        for fn in order:
            res = fn(ctx, i + 1)
            if fn is run_base:
                base.append(res)
                log("run %d: baseline runsecrets %.0f ms" % (i + 1, res["ready_ms"]))
            elif fn is run_this:
                broker.append(res)
                log("run %d: runsecrets %.0f ms (cold start log %s ms)"
                    % (i + 1, res["ready_ms"], fmt(res["cold_ms"])))
            elif fn is run_curl:
                curl.append(res)
                log("run %d: curl sequential %.0f ms" % (i + 1, res["total_ms"]))
            else:
                par.append(res)
                log("run %d: curl --parallel-max %d %.0f ms" % (i + 1, a.ref_parallel, res["total_ms"]))
    return broker, curl, par, base


def run_guarded(ctx, body):
    """body() under the benchmark's exit rules: its rc (0 measured, 3 target missed with
    --strict), 1 on BenchError, 130 on ^C; whatever happens, the broker and the fake are stopped,
    the mount is gone, and the temp dir removed (unless --keep; the logs' tails shown on failure)."""
    a, log, tmp = ctx["args"], ctx["log"], ctx["tmp"]
    rc = 1
    try:
        rc = body()
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
            stop_process(ctx["broker"], "runsecrets", log)
        if is_mounted(ctx["mnt"]):
            subprocess.run(["umount", "-l", ctx["mnt"]], stderr=subprocess.DEVNULL, check=False)
        if ctx["fake"] is not None:
            frc = ctx["fake"].stop()
            if frc not in (0, None) and rc == 0:
                log("the %s exited with status %s" % (ctx["fake"].what, frc))
                rc = 1
        if rc not in (0, 3):
            for p in sorted(os.listdir(tmp)):
                if p.endswith(".log") and os.path.getsize(os.path.join(tmp, p)):
                    with open(os.path.join(tmp, p), encoding="utf-8", errors="replace") as f:
                        tail = f.read().splitlines()[-5:]
                    log("last lines of %s:\n  %s" % (p, "\n  ".join(tail)))
        if a.keep:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


def coldstart_main(args, self_path, log, tmp_prefix, setup, broker_fn, report, drop_env=()):
    """The whole benchmark around what a backend says. SETUP(ctx) starts ctx["fake"], writes the
    curl side's header file into ctx["headers"] and returns (backend name, backend config, the
    secret reference of a name); BROKER_FN is alternate_runs's; REPORT(ctx, info, broker, curl,
    par, load, base) prints and returns whether the target was met. DROP_ENV: variables the broker
    must not inherit (besides proxies). Returns the exit status."""
    sys.stdout.reconfigure(line_buffering=True)
    if not enter_private_namespace(self_path, log):
        return 1
    build = os.path.abspath(args.build)
    binary = runsecrets_binary(build, log)
    if binary is None:
        return 1
    base_binary = None
    if getattr(args, "baseline", None):
        base_binary = os.path.join(os.path.abspath(args.baseline), "runsecrets")
        if not os.access(base_binary, os.X_OK):
            log("%s: not built" % base_binary)
            return 1
    if not shutil.which(args.curl):
        log("curl not found: %s" % args.curl)
        return 1

    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and k not in drop_env and k != ENV_NS}
    ctx = new_context(args, binary, env, tmp_prefix, log)
    ctx["base_binary"] = base_binary

    def body():
        os.mkdir(ctx["mnt"])
        name, backend, ref = setup(ctx)
        ctx["config"] = os.path.join(ctx["tmp"], "config.json")
        write_private(ctx["config"], json.dumps({
            "mount": ctx["mnt"],
            "defaults": {"refresh": "1h", "max_stale": "2h", "mode": "0400", "uid": 0, "gid": 0},
            "backends": {name: dict(backend, **args.backend_extra)},
            "secrets": {n: {"from": ref(n)} for n in ctx["names"]},
        }, indent=1))
        warm_up(ctx)

        info = machine_info(build)
        info["curl"] = curl_version(args.curl)
        load_before = loadavg()
        broker, curl, par, base = alternate_runs(ctx, broker_fn)
        met = report(ctx, info, broker, curl, par, (load_before, loadavg()), base)
        return 3 if args.strict and not met else 0

    return run_guarded(ctx, body)


# --------------------------------------------------------------------------------------------------
# the report's common parts (markdown for docs/performance.md)


def fmt(x, nd=0):
    return "-" if x is None else ("%.*f" % (nd, x))


def print_header(prog, a, info, load, fake_note=""):
    print()
    print("# %s: %s, %s, %s CPUs, %s" % (prog, info["date"], info["kernel"], info["nproc"], info["model"]))
    print("# %d secrets, +%d ms per request at the fake%s, %d runs per side (alternating), "
          "broker --log-level %s, %d reader thread(s) polling every %g ms%s"
          % (a.secrets, a.latency_ms, fake_note, a.runs, a.log_level, a.readers, a.poll_ms,
             ", backend extra %s" % json.dumps(a.backend_extra) if a.backend_extra else ""))
    print("# load average before/after: %s / %s" % load)
    print()


def print_runs(a, broker, curl, par, heads, cells):
    """One row a run: this build's times, the backend's columns (HEADS, CELLS(fake summary)), the
    lag, the fake's counts, then curl's times."""
    n = a.secrets
    print("| run | runsecrets: all %d readable | first readable | mount seen | `cold start` log | %s "
          "| reply→readable med/max | reqs/conns/peak "
          "| curl × %d sequential | per curl "
          "| curl --parallel-max %d |" % (n, " | ".join(heads), n, a.ref_parallel))
    print("|" + "---|" * (10 + len(heads)))
    for i, (b, c) in enumerate(zip(broker, curl)):
        f = b["fake"]
        row = ([str(i + 1) + (" (curl first)" if i % 2 else ""), fmt(b["ready_ms"]), fmt(b["first_ms"]),
                fmt(b["mount_seen_ms"]), fmt(b["cold_ms"])] + list(cells(f)) +
               ["%s/%s" % (fmt(b["lag"][0], 1), fmt(b["lag"][1], 1)) if b.get("lag") else "-",
                "%d/%d/%d" % (f["n"], f.get("connections", 0), f.get("peak", 0)), fmt(c["total_ms"]),
                fmt(c["total_ms"] / n, 1), fmt(par[i]["total_ms"]) if par else "-"])
        print("| " + " | ".join(row) + " |")


def print_summary(a, broker, curl, par):
    """Min/median/max per side and the ratio of the medians; returns (broker median, curl median,
    ratio). The table stays open: a caller may add rows."""
    n = a.secrets
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
    return bm, cm, ratio


def print_machine(info, extra=()):
    """The machine and build; EXTRA rows (name, value) go before the build's."""
    print()
    print("| | |")
    print("|---|---|")
    print("| `nproc` | %s |" % info["nproc"])
    print("| model name | %s |" % info["model"])
    print("| kernel | %s |" % info["kernel"])
    print("| date (UTC) | %s |" % info["date"])
    print("| curl | %s |" % info["curl"])
    print("| Python (fake, driver) | %s |" % info["python"])
    for k, v in extra:
        print("| %s | %s |" % (k, v))
    print("| build | %s, commit %s |" % (info["build"], info["commit"]))
    print()


def print_requests(broker, non200_note=""):
    shapes = broker[-1]["fake"].get("shapes", {})
    if shapes:
        print("Requests the broker made (last run): " +
              ", ".join("%s × %d" % (k, v) for k, v in sorted(shapes.items(), key=lambda kv: -kv[1])))
    non200 = sum(b["fake"].get("non200", 0) for b in broker)
    if non200:
        print("Non-200 answers to the broker over all runs%s: %d" % (non200_note, non200))


def print_verdict(a, broker, bm, cm, ratio):
    """The broker's warnings of the last run, then target met or missed; returns met."""
    warns = broker[-1]["warnings"]
    if warns:
        print("Broker warnings/errors (last run, %d): %s" % (len(warns), "; ".join(warns[:5])))
    print()
    met = ratio >= a.target
    print("target curl/runsecrets >= %g: %s (%.1f×; runsecrets median %.0f ms, curl median %.0f ms)"
          % (a.target, "met" if met else "MISSED", ratio, bm, cm))
    return met


def phase_cell(f, k):
    """'first start→last reply' of kind K's requests in a phased summary F, or '-'."""
    ph = f.get("phases", {}).get(k)
    return "%.0f→%.0f" % (ph[0], ph[3]) if ph else "-"


def report_phased(ctx, info, broker, curl, par, load, base, spec):
    """The whole report of a phased fake (phased_summary), with a --baseline build's broker if any.
    SPEC: "prog"; "columns", [(heading, kind)] of the phases shown per run; "fake_note" (for the
    header) and "fake_row" (the machine table's fake row); optional "non200_note" and "after"
    (a function of the broker results, printing the backend's last lines). Returns whether the
    target was met."""
    a = ctx["args"]
    print_header(spec["prog"], a, info, load, spec.get("fake_note", ""))
    heads = [h for h, _ in spec["columns"]]
    print("Per run (ms after spawning; first readable: earliest good read (with one reader, that of "
          "s000); %s: when the fake saw the broker's requests of that kind start and when it answered "
          "them (first start → last reply); RTs: round trips on the critical path (the longest chain of "
          "requests each starting after the previous one was answered); `reqs/conns/peak` = requests, "
          "TCP connections and peak concurrent requests the fake saw from the broker; reply→readable: "
          "from the fake's reply for a secret to our first good read of it):" % " / ".join(heads))
    print()
    print_runs(a, broker, curl, par, heads + ["RTs"],
               lambda f: [phase_cell(f, k) for _, k in spec["columns"]] + [str(f.get("round_trips", "-"))])
    bm, cm, ratio = print_summary(a, broker, curl, par)
    if base:
        xr = [b["ready_ms"] for b in base]
        xm = statistics.median(xr)
        print("| baseline runsecrets (%s): spawn → all %d files read their value | %d | %s ms | %s ms | %s ms |"
              % (a.baseline, a.secrets, len(xr), fmt(min(xr)), fmt(xm), fmt(max(xr))))
        print("| ratio of medians curl / baseline runsecrets | | | %.1f× | |" % (cm / xm))
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
    rts = [b["fake"].get("round_trips", 0) for b in broker]
    print("Round trips on the broker's critical path (fake's log): min %d, median %g, max %d; "
          "the median runsecrets time is %.1f × the added %d ms."
          % (min(rts), statistics.median(rts), max(rts), bm / a.latency_ms if a.latency_ms else 0,
             a.latency_ms))
    print_machine(info, [("fake", spec["fake_row"])])
    if a.verbose:
        for i, b in enumerate(broker):
            print("Run %d, the broker's requests (ms after spawn): %s"
                  % (i + 1, "; ".join(b["fake"].get("timeline", []))))
            print("Run %d, the connection (numbered by first use) of each kind's first request: %s; CPU until "
                  "all readable: broker %s ms, fake %s ms"
                  % (i + 1, ", ".join("%s #%d" % kv for kv in b["fake"].get("conn_of_first", {}).items()),
                     fmt(b["cpu"].get("broker")), fmt(b["cpu"].get("fake"))))
            if par:
                f = par[i]["fake"]
                print("Run %d, the reference's requests (ms after spawning curl; %d connections, peak %d): %s"
                      % (i + 1, f.get("connections", 0), f.get("peak", 0), "; ".join(f.get("timeline", []))))
    print_requests(broker, spec.get("non200_note", ""))
    if spec.get("after"):
        spec["after"](broker)
    return print_verdict(a, broker, bm, cm, ratio)


def parse_phased_args(argv, prog, description, backend, latency_help, auth_help):
    """The options of a benchmark whose fake has a token service (coldstart-azure.py,
    coldstart-gcp.py): the shared ones, --auth-latency-ms (its help AUTH_HELP; default
    --latency-ms) and --baseline BUILD_DIR."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    add_coldstart_args(ap, latency_help)
    ap.add_argument("--auth-latency-ms", type=int, default=None, metavar="MS", help=auth_help)
    add_coldstart_tail_args(ap, backend)
    ap.add_argument("--baseline", metavar="BUILD_DIR",
                    help="another build whose runsecrets also runs in every run (order alternating), "
                         "for a before/after under the same conditions; reported beside the first")
    add_coldstart_final_args(ap, "keep the temp dir (logs, config, the fake's request log of each run)")
    args = ap.parse_args(argv)
    if args.auth_latency_ms is None:
        args.auth_latency_ms = args.latency_ms
    if coldstart_args_bad(args) or args.auth_latency_ms < 0:
        ap.error("bad --runs/--secrets/--latency-ms/--auth-latency-ms/--timeout/--poll-ms/--readers")
    parse_backend_json(ap, args)
    return args


def delay_calls(delays):
    """The fake's state calls that add DELAYS ({endpoint: ms}; 0: none) to every request of each
    endpoint (the fakes' fault_delay)."""
    return [{"method": "fault_delay", "args": {"endpoint": ep, "seconds": ms / 1000.0, "count": None}}
            for ep, ms in delays.items() if ms]
