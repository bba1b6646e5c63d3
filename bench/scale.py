#!/usr/bin/env python3
"""scale.py [BUILD_DIR] [options] - the scaling curve of issue 16 (docs/performance.md, "Scaling
curve (issue 16)"). Usually run through bench/scale.sh, which also draws the PNGs.

For each N (file backend: --sizes, default 100,1000,10000,100000; the fake Vault: --vault-sizes,
default 100,1000,10000), two starts of `runsecrets mount --no-pid-file --admin none`:

  A (refresh 1h, so no refresh happens): t0 just before spawning the broker; the mount seen (the
    mountpoint's st_dev changes); all N names listed (os.listdir of the mount root, polled every
    10 ms or 4x the last listing's time if longer, until every name is in it); all N files read with their expected
    value (one reader, in order). "start" is the time of the last good read. Then, from
    /proc/PID/status: VmRSS, VmLck, Threads. Then the idle CPU rate (utime+stime of
    /proc/PID/stat over --idle-s seconds).
  B (refresh I = max(--refresh-s, 5 S), S = A's start): the same start, then the CPU over a
    window that holds exactly --cycles refresh cycles of every secret. A secret fetched at f
    refreshes for the k-th time in [f + 0.9kI, f + 1.1kI] (each delay is I +-10%, uniform), and
    every first fetch is in [t0, served]; so the window [served, end] with
    served + 1.1*K*I + 0.02*I (a fetch's time) < end < t0 + 0.9*(K+1)*I holds exactly K refreshes of
    each secret (needs S < (0.88 - 0.2K) I; with K = 3, S < 0.28 I). A start slower than
    --refresh-s / 5 gets K = 1 at I = 2 S instead. The fetches in the window are also counted
    (file: inotify IN_OPEN on the source folder, each fetch opens its file once; Vault: the fake's
    request log), and one cycle's CPU = (window CPU - idle rate * window) / (fetches / N): a
    broker that falls behind its refreshes is charged for what it did, not for what was due.

Then (unless --refresh-cost-n 0) "Refresh cost at scale": N = --refresh-cost-n (10,000) file
secrets at refresh --refresh-cost-s (30 s), the same exact-cycles window (about 100 s), scaled to a
5-minute refresh: average CPU = idle rate + one cycle's CPU / 300 s, as a share of one core; target
<= 1%.

A start that does not serve all N within --start-timeout (120 s) is stopped and recorded as
skipped; larger N of the same backend are skipped too.

Writes OUT/scale.csv (one row per backend and N) and OUT/refresh-cost.txt, prints a markdown table.
Needs root and /dev/fuse; re-executes itself under `unshare --mount --propagation private`; the
broker and the fake run under `setpriv --pdeathsig TERM`, are stopped with a bounded wait, and the
temp dir is removed (unless --keep). Exit status: 0 measured, 1 failure, 2 usage.
"""

import argparse
import csv
import ctypes
import select
import struct
import threading
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

SRC = benchlib.SRC
SELF = os.path.abspath(__file__)
FAKE = os.path.join(SRC, "tests", "fakes", "vault.py")
log = benchlib.logger("scale")

FIELDS = ["backend", "n", "status", "mount_ms", "listed_ms", "start_ms", "start_b_ms", "cold_log_ms",
          "rss_kib", "vmlck_kib", "threads", "idle_cpu_ms_per_s", "refresh_s", "cycles",
          "window_s", "window_cpu_ms", "fetches", "cycle_cpu_ms", "cycle_cpu_us_per_secret", "rss_after_kib",
          "threads_after"]


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="scale.py", description="The scaling curve of issue 16.")
    ap.add_argument("build", nargs="?", default=os.path.join(SRC, "build"))
    ap.add_argument("--sizes", default="100,1000,10000,100000", help="file backend N (comma list)")
    ap.add_argument("--vault-sizes", default="100,1000,10000", help="fake Vault N ('' skips)")
    ap.add_argument("--value-bytes", type=int, default=40, help="bytes per value (default 40)")
    ap.add_argument("--refresh-s", type=float, default=10.0, help="shortest refresh of run B (10)")
    ap.add_argument("--cycles", type=int, default=3, help="refresh cycles per window (3)")
    ap.add_argument("--idle-s", type=float, default=10.0, help="idle CPU window of run A (10)")
    ap.add_argument("--start-timeout", type=float, default=120.0, help="bound on a start (120 s)")
    ap.add_argument("--refresh-cost-n", type=int, default=10000, help="0 skips the 5-minute test")
    ap.add_argument("--refresh-cost-s", type=float, default=30.0, help="its shortened refresh (30)")
    ap.add_argument("--out", default=None, help="output dir (default BUILD/bench-scale)")
    ap.add_argument("--log-level", default="info", choices=("error", "warn", "info", "debug"))
    ap.add_argument("--perf", type=int, default=0, metavar="N",
                    help="also record `perf record -g` of the broker's start at file N (0: no)")
    ap.add_argument("--perf-refresh", type=int, default=0, metavar="N",
                    help="then `perf record -g -p` the refresh window of file N, in a run of its own (0: no)")
    ap.add_argument("--no-refresh", action="store_true", help="run A only (no refresh window)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    a = ap.parse_args(argv)
    try:
        a.sizes = [int(x) for x in a.sizes.split(",") if x]
        a.vault_sizes = [int(x) for x in a.vault_sizes.split(",") if x]
    except ValueError:
        ap.error("--sizes/--vault-sizes: comma-separated integers")
    if a.cycles < 1 or a.cycles > 4 or a.refresh_s < 1 or a.value_bytes < 1:
        ap.error("bad --cycles (1..4), --refresh-s or --value-bytes")
    return a


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid, encoding="ascii") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmLck", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    return out


def names_for(n):
    width = max(3, len(str(n - 1)))
    return ["s%0*d" % (width, k) for k in range(n)]


def value_for(name, size):
    v = "v-%s-" % name
    return (v + secrets.token_hex(size))[:size] if size > len(v) else secrets.token_hex(size)[:size]


class Fake(benchlib.FakeServer):
    what = "fake Vault"

    def __init__(self, tmp, env, values):
        self.token = "hvs." + secrets.token_urlsafe(24)
        calls = [{"method": "add_kv_mount", "args": {"path": "secret", "version": 2}}]
        calls += [{"method": "put_kv", "args": {"mount": "secret", "path": n, "data": {"value": v}}}
                  for n, v in values.items()]
        super().__init__(FAKE, tmp, env, {"root_token": self.token, "calls": calls}, log)


class Skip(Exception):
    pass


IN_OPEN, IN_Q_OVERFLOW = 0x20, 0x4000


class OpenCounter:
    """The file backend's fetches, counted: inotify IN_OPEN on the source folder (each fetch opens
    its file once), drained by a thread so the kernel's queue (16,384 events) never overflows
    unnoticed. Only opens while counting is on count."""

    def __init__(self, folder):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(0o4000 | 0o2000000)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, folder.encode(), IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), "inotify")
        self.count, self.overflow, self.on = 0, False, False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if not r:
                continue
            try:
                buf = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            off = 0
            while off < len(buf):
                _wd, mask, _c, n = struct.unpack_from("iIII", buf, off)
                off += 16 + n
                if mask & IN_Q_OVERFLOW:
                    self.overflow = True
                elif mask & IN_OPEN and n and self.on:
                    self.count += 1

    def close(self):
        self.done.set()
        self.thread.join(1.0)
        os.close(self.fd)


class Bench:
    def __init__(self, a, tmp, env, binary):
        self.a, self.tmp, self.env, self.binary = a, tmp, env, binary
        self.mnt = os.path.join(tmp, "mnt")
        os.mkdir(self.mnt, 0o700)
        self.proc = None
        self.fake = None
        self.perf_child = False

    # the sources -----------------------------------------------------------------------------
    def file_source(self, n):
        src = os.path.join(self.tmp, "src-%d" % n)
        os.mkdir(src, 0o700)
        values = {}
        for name in names_for(n):
            v = value_for(name, self.a.value_bytes)
            fd = os.open(os.path.join(src, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, v.encode())
            os.close(fd)
            values[name] = v
        backend = {"type": "file", "path": src}
        return values, backend, lambda name: "local:" + name

    def vault_source(self, n):
        if self.fake:
            self.fake.stop()
            self.fake = None
        values = {name: value_for(name, self.a.value_bytes) for name in names_for(n)}
        fdir = os.path.join(self.tmp, "fake-%d" % n)
        os.mkdir(fdir, 0o700)
        self.fake = Fake(fdir, self.env, values)
        token_file = os.path.join(fdir, "token")
        benchlib.write_private(token_file, self.fake.token + "\n")
        backend = {"type": "vault", "address": self.fake.url, "ca_file": self.fake.ca,
                   "auth": {"method": "token", "token_file": token_file}}
        return values, backend, lambda name: "vault:secret/%s#value" % name

    def config(self, tag, values, backend, ref, refresh, max_stale):
        path = os.path.join(self.tmp, "config-%s.json" % tag)
        if os.path.exists(path):   # the same N and refresh again (--perf-refresh)
            os.unlink(path)
        bname = "local" if backend["type"] == "file" else "vault"
        cfg = {"mount": self.mnt,
               "defaults": {"refresh": refresh, "max_stale": max_stale, "mode": "0400", "uid": 0, "gid": 0},
               "backends": {bname: backend},
               "secrets": {name: {"from": ref(name)} for name in values}}
        benchlib.write_private(path, json.dumps(cfg))
        return path

    # one start -------------------------------------------------------------------------------
    def start(self, tag, config, values, perf_out=None):
        """Spawn the broker; return timings once all N are listed and read (Skip past the bound)."""
        a = self.a
        if benchlib.is_mounted(self.mnt):
            raise benchlib.BenchError("%s still mounted before %s" % (self.mnt, tag))
        names = list(values)
        expected = {k: v.encode() for k, v in values.items()}
        dev0 = os.stat(self.mnt).st_dev
        self.log_path = os.path.join(self.tmp, "broker-%s.log" % tag)
        logf = open(self.log_path, "wb")
        cmd = [self.binary, "mount", "--config", config, "--no-pid-file", "--admin", "none",
               "--log-level", a.log_level, self.mnt]
        if perf_out:
            cmd = ["perf", "record", "-g", "-o", perf_out, "--"] + cmd
        w0 = time.time()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(["setpriv", "--pdeathsig", "TERM", "--"] + cmd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=logf, env=self.env)
        logf.close()
        self.pid = self.proc.pid
        if perf_out:
            self.pid = None   # the broker is perf's child: found once it has mounted
        deadline = t0 + a.start_timeout

        def check():
            if self.proc.poll() is not None:
                raise benchlib.BenchError("%s: the broker exited with status %d"
                                          % (tag, self.proc.returncode))
            if time.monotonic() > deadline:
                raise Skip("not all %d served within %.0f s" % (len(names), a.start_timeout))

        while True:
            try:
                if os.stat(self.mnt).st_dev != dev0:
                    break
            except OSError:
                pass
            check()
            time.sleep(0.002)
        t_mount = time.monotonic()
        want = set(names)
        while True:
            tl = time.monotonic()
            try:
                got = os.listdir(self.mnt)
            except OSError:
                got = []
            if len(got) >= len(names) and want.issubset(got):
                break
            check()
            # A listing of N names costs the broker O(N): poll no more than a fifth of the time.
            time.sleep(max(0.01, 4 * (time.monotonic() - tl)))
        t_listed = time.monotonic()
        for k, name in enumerate(names):
            data = benchlib.read_file(os.path.join(self.mnt, name))
            if data != expected[name]:
                raise benchlib.BenchError("%s: %s read %d bytes that are not its value" % (tag, name, len(data)))
            if k % 1000 == 999:
                check()
        t_served = time.monotonic()
        if self.pid is None:
            self.pid = self.broker_pid_under_perf()
            self.perf_child = True
        cold = benchlib.parse_broker_log(self.log_path, w0)
        return {"t0": t0, "t_served": t_served, "mount_ms": (t_mount - t0) * 1e3,
                "listed_ms": (t_listed - t0) * 1e3, "start_ms": (t_served - t0) * 1e3,
                "cold_log_ms": cold["cold_ms"], "cold_msg": cold["cold_msg"],
                "warnings": cold["warnings"]}

    def broker_pid_under_perf(self):
        out = benchlib.cmd_out(["pgrep", "-P", str(self.proc.pid)])
        # setpriv execs perf; perf forks the broker
        for p in out.split():
            return int(p)
        raise benchlib.BenchError("no broker under perf")

    def stop(self):
        if self.proc is None:
            return
        if self.perf_child:
            # perf record writes its data once its workload exits: stop the broker, not perf
            self.perf_child = False
            try:
                os.kill(self.pid, 15)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=benchlib.STOP_TIMEOUT * 3)
            except subprocess.TimeoutExpired:
                pass
        rc = benchlib.stop_process(self.proc, "runsecrets", log)
        self.proc = None
        if benchlib.is_mounted(self.mnt):
            subprocess.run(["umount", "-l", self.mnt], stderr=subprocess.DEVNULL, check=False)
            raise benchlib.BenchError("%s was still mounted after the broker exited" % self.mnt)
        if rc not in (0, None):
            raise benchlib.BenchError("runsecrets exited with status %s after SIGTERM" % rc)

    def cpu_over(self, seconds):
        c0 = benchlib.cpu_ms(self.pid)
        time.sleep(seconds)
        c1 = benchlib.cpu_ms(self.pid)
        if c0 is None or c1 is None:
            raise benchlib.BenchError("the broker is gone")
        return c1 - c0

    def cycles_window(self, r, interval, k, perf_out=None, counter=None):
        """CPU over the window holding exactly K refresh cycles after a start R (see the top), and
        the fetches counted in it (None where not counted)."""
        lo = r["t_served"] + 1.1 * k * interval + 0.02 * interval   # + a fetch's time
        hi = r["t0"] + 0.9 * (k + 1) * interval
        if lo >= hi:
            # This start was slower than run A's: no exact window, the counted fetches say
            # how many cycles the window held.
            log("start %.1f s too slow for %d exact cycles at %.0f s: the window ends at %.1f s, "
                "cycles as counted" % (r["start_ms"] / 1e3, k, interval, lo - r["t0"]))
            hi = lo
        time.sleep(0.2)   # the last reads' FUSE replies
        if counter:
            counter.on = True
        ws = time.monotonic()
        c0 = benchlib.cpu_ms(self.pid)
        we = (lo + hi) / 2
        perf = None
        if perf_out:   # its own CPU is not the broker's: /proc/PID/stat counts the broker only
            perf = subprocess.Popen(["perf", "record", "-g", "-o", perf_out, "-p", str(self.pid), "--",
                                     "sleep", "%.1f" % (we - ws)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while time.monotonic() < we:
            if self.proc.poll() is not None:
                raise benchlib.BenchError("the broker exited during the refresh window")
            time.sleep(min(1.0, max(0.0, we - time.monotonic())))
        c1 = benchlib.cpu_ms(self.pid)
        t_end = time.monotonic()
        fetches = None
        if counter:
            time.sleep(0.2)   # events already queued
            counter.on = False
            fetches = None if counter.overflow else counter.count
        elif self.fake:
            fetches = sum(1 for e in self.fake.control("requests")
                          if ws <= e["mono"] <= t_end and e["status"] == 200
                          and (e.get("rel") or "").startswith("secret/data/"))
        if perf:
            try:
                perf.wait(timeout=30)
            except subprocess.TimeoutExpired:
                perf.kill()
                perf.wait()
        return c1 - c0, t_end - ws, fetches

    # one N -----------------------------------------------------------------------------------
    def measure(self, backend_kind, n):
        a = self.a
        row = {"backend": backend_kind, "n": n, "status": "ok"}
        t = time.monotonic()
        values, backend, ref = (self.file_source if backend_kind == "file" else self.vault_source)(n)
        log("%s N=%d: source ready in %.1f s" % (backend_kind, n, time.monotonic() - t))
        try:
            cfg = self.config("%s-%d-a" % (backend_kind, n), values, backend, ref, "1h", "2h")
            r = self.start("%s-%d-a" % (backend_kind, n), cfg, values)
            st = proc_status(self.pid)
            row.update({"mount_ms": r["mount_ms"], "listed_ms": r["listed_ms"], "start_ms": r["start_ms"],
                        "cold_log_ms": r["cold_log_ms"], "rss_kib": st["VmRSS"], "vmlck_kib": st["VmLck"],
                        "threads": st["Threads"]})
            if r["warnings"]:
                log("%s N=%d: broker warnings: %s" % (backend_kind, n, "; ".join(r["warnings"][:3])))
            idle = self.cpu_over(a.idle_s)
            row["idle_cpu_ms_per_s"] = idle / a.idle_s
            self.stop()
            log("%s N=%d: A: start %.0f ms (listed %.0f, cold start logged %s), RSS %d KiB, VmLck %d KiB, "
                "%d threads, idle %.2f ms/s" % (backend_kind, n, r["start_ms"], r["listed_ms"],
                                                benchlib.fmt(r["cold_log_ms"]), st["VmRSS"], st["VmLck"],
                                                st["Threads"], row["idle_cpu_ms_per_s"]))
            if a.no_refresh:
                return row
            # K cycles need S < (0.88 - 0.2K) I; a slow start gets one cycle at I = 2 S instead
            # of three at 5 S (a 100,000-secret window would otherwise take many minutes).
            start_s = r["start_ms"] / 1e3
            k = a.cycles
            if start_s / 0.2 > a.refresh_s and k > 1:
                k, interval = 1, max(a.refresh_s, start_s * 2)
            else:
                interval = max(a.refresh_s, start_s / 0.2)
            interval = float(int(interval + 0.999))
            row.update(self.refresh_run(backend_kind, n, values, backend, ref, interval, k,
                                        row["idle_cpu_ms_per_s"]))
        except Skip as e:
            log("%s N=%d: skipped: %s" % (backend_kind, n, e))
            row["status"] = "skipped: " + str(e)
        finally:
            self.stop()
            if backend_kind == "file":
                shutil.rmtree(os.path.join(self.tmp, "src-%d" % n), ignore_errors=True)
        return row

    def refresh_run(self, backend_kind, n, values, backend, ref, interval, k, idle_rate, perf_out=None):
        tag = "%s-%d-b%d" % (backend_kind, n, interval)
        cfg = self.config(tag, values, backend, ref, "%ds" % interval, "2h")
        counter = OpenCounter(backend["path"]) if backend_kind == "file" else None
        try:
            r = self.start(tag, cfg, values)
            if self.fake:
                self.fake.control("clear_requests")
            cpu, window, fetches = self.cycles_window(r, interval, k, perf_out, counter)
        finally:
            if counter:
                counter.close()
        st = proc_status(self.pid)
        self.stop()
        # Cycles as counted (fetches / N) where counted; the window's design (K) otherwise.
        cycles = fetches / n if fetches else k
        cycle = (cpu - idle_rate * window) / cycles
        log("%s N=%d: B: start %.0f ms; refresh %.0f s, window %.1f s (designed for %d cycles, fetched %s = "
            "%.3f cycles): %.0f ms CPU, %.1f ms per cycle (%.2f us per secret); RSS after %d KiB"
            % (backend_kind, n, r["start_ms"], interval, window, k, fetches, cycles, cpu, cycle,
               cycle * 1e3 / n, st["VmRSS"]))
        return {"start_b_ms": r["start_ms"], "refresh_s": interval, "cycles": cycles, "window_s": window,
                "window_cpu_ms": cpu, "cycle_cpu_ms": cycle, "cycle_cpu_us_per_secret": cycle * 1e3 / n,
                "fetches": fetches, "rss_after_kib": st["VmRSS"], "threads_after": st["Threads"]}

    def perf_start(self, n, out):
        values, backend, ref = self.file_source(n)
        try:
            cfg = self.config("perf-%d" % n, values, backend, ref, "1h", "2h")
            r = self.start("perf-%d" % n, cfg, values, perf_out=out)
            log("perf N=%d: start %.0f ms under perf (%s)" % (n, r["start_ms"], out))
        finally:
            # perf writes its data when the broker exits; SIGTERM to perf forwards it
            self.stop()
            shutil.rmtree(os.path.join(self.tmp, "src-%d" % n), ignore_errors=True)


def fmtn(x, nd=0):
    return "-" if x is None or x == "" else ("%.*f" % (nd, x))


def table(rows):
    out = ["| backend | N | start (ms) | listed (ms) | cold start logged (ms) | RSS (MiB) | VmLck (MiB) | "
           "threads | idle CPU (ms/s) | refresh (s) | one cycle CPU (ms) | per secret (µs) | RSS after (MiB) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["status"] != "ok":
            out.append("| %s | %d | %s |%s" % (r["backend"], r["n"], r["status"], " |" * 10))
            continue
        out.append("| %s | %d | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s | %s |" % (
            r["backend"], r["n"], fmtn(r["start_ms"]), fmtn(r["listed_ms"]), fmtn(r.get("cold_log_ms")),
            fmtn(r["rss_kib"] / 1024.0, 1), fmtn(r["vmlck_kib"] / 1024.0, 1), r["threads"],
            fmtn(r["idle_cpu_ms_per_s"], 2), fmtn(r.get("refresh_s")), fmtn(r.get("cycle_cpu_ms"), 1),
            fmtn(r.get("cycle_cpu_us_per_secret"), 2),
            fmtn(r["rss_after_kib"] / 1024.0, 1) if r.get("rss_after_kib") else "-"))
    return "\n".join(out)


def main():
    a = parse_args(sys.argv[1:])
    if not benchlib.enter_private_namespace(SELF, log):
        return 1
    binary = benchlib.runsecrets_binary(a.build, log)
    if not binary:
        return 1
    out = os.path.abspath(a.out or os.path.join(a.build, "bench-scale"))
    os.makedirs(out, exist_ok=True)
    info = benchlib.machine_info(a.build)
    env = {k: v for k, v in os.environ.items() if k not in benchlib.PROXY_VARS}
    tmp = tempfile.mkdtemp(prefix="rs-scale.")
    os.chmod(tmp, 0o700)
    b = Bench(a, tmp, env, binary)
    rows = []
    rc = 0
    try:
        header = ("# scale: %s, %s CPUs (%s), kernel %s, load %s; %s, commit %s; values %d bytes"
                  % (info["date"], info["nproc"], info["model"], info["kernel"], benchlib.loadavg(),
                     info["build"], info["commit"], a.value_bytes))
        print(header, flush=True)
        with open(os.path.join(out, "scale.header"), "w", encoding="utf-8") as f:
            f.write(header + "\n")
        for kind, sizes in (("file", a.sizes), ("vault", a.vault_sizes)):
            skipping = None
            for n in sizes:
                if skipping:
                    rows.append({"backend": kind, "n": n, "status": "skipped: " + skipping})
                    continue
                row = b.measure(kind, n)
                rows.append(row)
                write_csv(out, rows)   # a later failure keeps what was measured
                if row["status"] != "ok":
                    skipping = "a smaller N took > %.0f s" % a.start_timeout
            if b.fake:
                b.fake.stop()
                b.fake = None
        write_csv(out, rows)
        print()
        print(table(rows))
        print(flush=True)
        if a.refresh_cost_n:
            rc_text = refresh_cost(b, a, rows)
            print(rc_text, flush=True)
            with open(os.path.join(out, "refresh-cost.txt"), "w", encoding="utf-8") as f:
                f.write(header + "\n" + rc_text + "\n")
        if a.perf:
            b.perf_start(a.perf, os.path.join(out, "perf-start-%d.data" % a.perf))
        if a.perf_refresh:   # a run of its own: perf's sampling is not in the figures above
            n = a.perf_refresh
            values, backend, ref = b.file_source(n)
            interval = next((r["refresh_s"] for r in rows if r["backend"] == "file" and r["n"] == n
                             and r.get("refresh_s")), a.refresh_s)
            b.refresh_run("file", n, values, backend, ref, interval, a.cycles, 0.0,
                          os.path.join(out, "perf-refresh-%d.data" % n))
            b.stop()
        log("wrote %s" % out)
    except benchlib.BenchError as e:
        log(str(e))
        rc = 1
    finally:
        try:
            b.stop()
        except benchlib.BenchError as e:
            log(str(e))
            rc = 1
        if b.fake:
            b.fake.stop()
        if a.keep or rc:
            log("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


def write_csv(out, rows):
    with open(os.path.join(out, "scale.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("%.3f" % v if isinstance(v, float) else v) for k, v in r.items()})


def refresh_cost(b, a, rows):
    """N file secrets at a shortened refresh, exact cycles, scaled to 5 minutes."""
    n, interval = a.refresh_cost_n, a.refresh_cost_s
    idle = next((r.get("idle_cpu_ms_per_s") for r in rows
                 if r["backend"] == "file" and r["n"] == n and r["status"] == "ok"), None)
    values, backend, ref = b.file_source(n)
    try:
        if idle is None:
            cfg = b.config("rc-idle", values, backend, ref, "1h", "2h")
            b.start("rc-idle", cfg, values)
            idle = b.cpu_over(a.idle_s) / a.idle_s
            b.stop()
        res = b.refresh_run("file", n, values, backend, ref, interval, 3, idle)
    finally:
        b.stop()
        shutil.rmtree(os.path.join(b.tmp, "src-%d" % n), ignore_errors=True)
    per_cycle = res["cycle_cpu_ms"]
    share = (idle / 1000.0 + per_cycle / 300000.0) * 100.0
    refresh_only = per_cycle / 300000.0 * 100.0
    return ("Refresh cost at scale: %d file secrets, refresh %.0f s, %.2f cycles in a %.1f s window (%s fetches): "
            "%.0f ms CPU, idle %.2f ms/s, one cycle %.1f ms (%.2f us per secret). "
            "At refresh 5m: %.4f%% of one core for the refreshes, %.4f%% with idle; target <= 1%%: %s"
            % (n, interval, res["cycles"], res["window_s"], res["fetches"], res["window_cpu_ms"], idle, per_cycle,
               res["cycle_cpu_us_per_secret"], refresh_only, share, "met" if share <= 1.0 else "MISSED"))


if __name__ == "__main__":
    sys.exit(main())
