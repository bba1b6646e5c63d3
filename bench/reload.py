#!/usr/bin/env python3
"""bench/reload.py - a live reload of a 1,000-secret configuration that changes 10
secrets (issue 13), under read load; results for docs/performance.md.

    unshare --mount --propagation private python3 bench/reload.py BUILD [--reloads N]

(root, /dev/fuse; run it under unshare so no mount can leak.) What runs:
- a broker (`runsecrets mount`, file backend, --log-level warn: no audit line
  per open) serving 1,000 secrets of 100 bytes each;
- BUILD/bench/reload_read: 4 threads opening, reading and closing all 1,000
  files round robin, recording every operation (start, duration, errno);
- N reloads, 1 s apart: each rewrites the configuration so that 10 secrets
  name another file (new values), triggers the reload, and polls those 10
  files until all of them read their new values.

Measured per reload: trigger -> all 10 new values served (a poller reading
the 10 files every 0.5 ms: ~1 ms resolution), the broker's own apply time (its
"debug reload" line), and the backend calls (inotify IN_OPEN on the file
backend's folder: each fetch opens the file). Reads: errors, p50/p99/max
latency during reloads (operations that started between a trigger and the
moment the new values were served, + 50 ms) against the steady state
(operations more than 300 ms away from any reload).

The trigger is SIGHUP (what `runsecrets reload` and systemd's ExecReload send):
the reload thread loads the file (cfg_load, fragments included) and applies it.
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

N_SECRETS = 1000
N_CHANGED = 10
IN_OPEN = 0x20


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def inotify(folder):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(0o4000 | 0o2000000)
    if fd < 0 or libc.inotify_add_watch(fd, folder.encode(), IN_OPEN) < 0:
        raise OSError(ctypes.get_errno(), "inotify")
    return fd


def drain_opens(fd):
    names = []
    while True:
        try:
            buf = os.read(fd, 65536)
        except BlockingIOError:
            return names
        off = 0
        while off < len(buf):
            _wd, mask, _c, n = struct.unpack_from("iIII", buf, off)
            name = buf[off + 16:off + 16 + n].rstrip(b"\0").decode()
            off += 16 + n
            if mask & IN_OPEN and name:
                names.append(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--reloads", type=int, default=20)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    binary = os.path.join(build, "runsecrets")
    reader = os.path.join(build, "bench", "reload_read")
    d = tempfile.mkdtemp(prefix="rsbench-reload-")
    sdir, mnt = os.path.join(d, "secrets"), os.path.join(d, "mnt")
    os.mkdir(sdir, 0o700)
    os.mkdir(mnt)
    cfg_path = os.path.join(d, "config.json")
    broker = None
    try:
        for i in range(N_SECRETS):
            for gen in ("a", "b"):
                with open(os.path.join(sdir, "s%04d.%s" % (i, gen)), "w") as f:
                    f.write(("%s-%04d-" % (gen, i)).ljust(100, "x"))

        def config(r):
            # reload r moves secrets 10r..10r+9 (mod 1000) to the other file
            src = {}
            for i in range(N_SECRETS):
                block, nblocks = i // N_CHANGED, N_SECRETS // N_CHANGED
                flips = (r - block - 1) // nblocks + 1 if r > block else 0
                src["s%04d" % i] = {"from": "local:s%04d.%s" % (i, "ab"[flips % 2])}
            return {"mount": mnt, "defaults": {"refresh": "1h", "max_stale": "2h"},
                    "backends": {"local": {"type": "file", "path": sdir}}, "secrets": src}

        with open(cfg_path, "w") as f:
            json.dump(config(0), f)
        env = dict(os.environ)
        errlog = open(os.path.join(d, "broker.stderr"), "wb+")
        # warn: no audit line per open; the outcome of each reload is read from the status file
        # the broker writes beside its pid file (what `runsecrets reload` waits on)
        pid_file = os.path.join(d, "broker.pid")
        broker = subprocess.Popen([binary, "mount", "--config", cfg_path, "--log-level", "warn",
                                   "--pid-file", pid_file, mnt],
                                  env=env, stdin=subprocess.DEVNULL, stderr=errlog)
        paths = [os.path.join(mnt, "s%04d" % i) for i in range(N_SECRETS)]
        deadline = time.monotonic() + 30
        while not all(os.path.exists(p) for p in paths[::50] + paths[-1:]):
            if time.monotonic() > deadline or broker.poll() is not None:
                raise SystemExit("broker did not serve the secrets")
            time.sleep(0.05)
        time.sleep(0.5)
        print("# serving", file=sys.stderr, flush=True)
        ino = inotify(sdir)
        rec_file = os.path.join(d, "reads.bin")
        duration_ms = int((3 + args.reloads * 1.0 + 3) * 1000)
        rd = subprocess.Popen([reader, str(args.threads), str(duration_ms), rec_file] + paths)
        time.sleep(3)
        reloads = []
        for r in range(1, args.reloads + 1):
            cfg, prev = config(r), config(r - 1)
            changed = [n for n, s in cfg["secrets"].items() if s != prev["secrets"][n]]
            assert len(changed) == N_CHANGED, changed
            tmp = cfg_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(cfg, f)
            os.replace(tmp, cfg_path)
            want = {n: ("%s-%s-" % (cfg["secrets"][n]["from"][-1], n[1:])).encode() for n in changed}
            drain_opens(ino)
            t0 = time.monotonic()
            os.kill(broker.pid, signal.SIGHUP)
            pending = set(changed)
            while pending:
                for n in list(pending):
                    try:
                        with open(os.path.join(mnt, n), "rb") as f:
                            if f.read().startswith(want[n]):
                                pending.discard(n)
                    except OSError:
                        pass
                if time.monotonic() - t0 > 10:
                    raise SystemExit("new values not served within 10 s")
                time.sleep(0.0005)   # the poller must not be the load it measures
            t_served = time.monotonic()
            rec = None
            while rec is None:
                try:
                    with open(pid_file + ".reload") as f:
                        st = json.load(f)
                    if st.get("attempt") == r:
                        rec = {"ms": (st["finished_usec"] - st["started_usec"]) / 1000.0,
                               "msg": "config reloaded" if st["ok"] else "reload failed"}
                except (OSError, ValueError):
                    pass
                if rec is None:
                    if time.monotonic() - t0 > 10:
                        raise SystemExit("no reload outcome within 10 s")
                    time.sleep(0.001)
            time.sleep(0.2)
            calls = drain_opens(ino)
            reloads.append({"t0": t0, "served": t_served, "ms_served": (t_served - t0) * 1000,
                            "apply_ms": rec.get("ms"),
                            "ok": "ok" if rec.get("msg") == "config reloaded" else "failed",
                            "calls": len(calls), "unchanged_calls": len(set(calls) - {
                                cfg["secrets"][n]["from"].split(":")[1] for n in changed})})
            print("# reload %d: %.1f ms to serve, %s" % (r, reloads[-1]["ms_served"], reloads[-1]["ok"]),
                  file=sys.stderr, flush=True)
            time.sleep(0.8)
        rd.wait(timeout=duration_ms / 1000 + 60)
        recs = []
        with open(rec_file, "rb") as f:
            data = f.read()
        for start, dur, err in struct.iter_unpack("qqq", data):
            recs.append((start / 1e9, dur / 1e3, err))
        during, steady = [], []
        for start, dur_us, err in recs:
            near = min(abs(start - r["t0"]) if start < r["t0"] else
                       (0 if start <= r["served"] + 0.05 else start - r["served"])
                       for r in reloads)
            if near == 0:
                during.append((dur_us, err))
            elif near > 0.3:
                steady.append((dur_us, err))
        info = benchlib.machine_info(build)
        print("# bench/reload.py: %d secrets, %d changed per reload, %d reloads, %d reader "
              "threads" % (N_SECRETS, N_CHANGED, args.reloads, args.threads))
        for k in ("date", "model", "nproc", "kernel", "build", "commit"):
            print("# %s: %s" % (k, info[k]))
        print("# load average at the end: %s" % benchlib.loadavg())
        served = [r["ms_served"] for r in reloads]
        applied = [r["apply_ms"] for r in reloads]
        print("reloads ok: %d/%d" % (sum(r["ok"] == "ok" for r in reloads), len(reloads)))
        print("trigger -> 10 new values served, ms: median %.1f  p90 %.1f  max %.1f"
              % (pct(served, 50), pct(served, 90), max(served)))
        print("reload (SIGHUP -> outcome written: load + apply), ms: median %s  max %s" % (pct(applied, 50),
                                                                       max(applied)))
        print("backend calls per reload: %s (of unchanged secrets: %d in all)"
              % (sorted({r["calls"] for r in reloads}), sum(r["unchanged_calls"] for r in reloads)))
        for label, xs in (("steady", steady), ("during reloads", during)):
            lat = [x for x, _ in xs]
            errs = sum(1 for _, e in xs if e)
            print("reads %-15s n=%7d errors=%d  p50 %.1f us  p99 %.1f us  max %.1f us"
                  % (label, len(xs), errs, pct(lat, 50), pct(lat, 99), max(lat) if lat else 0))
        total_errs = sum(1 for r in recs if r[2])
        print("reads in all: %d, errors %d" % (len(recs), total_errs))
    finally:
        if broker and broker.poll() is None:
            broker.send_signal(signal.SIGTERM)
            try:
                broker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                broker.kill()
        subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
