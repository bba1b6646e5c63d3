#!/usr/bin/env python3
"""kill9-recovery - how long readers are without their secrets when a broker
is killed with SIGKILL and started again at once (a supervisor's restart).

Each round: a broker serves N files from the file backend; it is killed with
SIGKILL (its mount is left behind, answering ENOTCONN); a new broker is
started on the same mountpoint at once. Measured from the kill to the first
moment every file reads its value again, and from the new broker's exec to
that moment. The stale mount is detached by the new broker (mountpoint.c).

    python3 bench/kill9-recovery.py BUILD_DIR [ROUNDS] [FILES]

Runs in a private mount namespace (unshare), so nothing leaks to the host.
Standard library only. Record results in docs/reliability.md.
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

DEADLINE = 20.0


def all_served(mnt, values):
    for name, v in values.items():
        try:
            if benchlib.read_file(os.path.join(mnt, name)) != v:
                return False
        except OSError:
            return False
    return True


def main():
    if os.environ.get("RS_BENCH_NS") != "1":
        env = dict(os.environ, RS_BENCH_NS="1")
        os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private",
                               sys.executable] + sys.argv, env)
    build = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    nfiles = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    binary = os.path.join(build, "runsecrets")
    d = tempfile.mkdtemp(prefix="rs-kill9-")
    try:
        sec, mnt = os.path.join(d, "s"), os.path.join(d, "m")
        os.mkdir(sec, 0o700)
        values = {}
        for i in range(nfiles):
            v = os.urandom(16).hex().encode()
            with open(os.path.join(sec, "k%d" % i), "wb") as f:
                f.write(v)
            values["k%d" % i] = v
        cfg = os.path.join(d, "c.json")
        with open(cfg, "w") as f:
            json.dump({"mount": mnt, "defaults": {"refresh": "5m", "max_stale": "1h"},
                       "backends": {"local": {"type": "file", "path": sec}},
                       "secrets": {n: {"from": "local:" + n} for n in values}}, f)

        def start():
            return subprocess.Popen([binary, "mount", "--config", cfg, "--log-level", "warn"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)

        def wait_served(t_from):
            while time.monotonic() - t_from < DEADLINE:
                if all_served(mnt, values):
                    return time.monotonic()
                time.sleep(0.001)
            raise SystemExit("not served again within %.0f s" % DEADLINE)

        b = start()
        wait_served(time.monotonic())
        from_kill, from_start = [], []
        for _ in range(rounds):
            t_kill = time.monotonic()
            b.send_signal(signal.SIGKILL)
            b.wait()
            t_start = time.monotonic()
            b = start()
            t_ok = wait_served(t_start)
            from_kill.append((t_ok - t_kill) * 1000)
            from_start.append((t_ok - t_start) * 1000)
        b.send_signal(signal.SIGTERM)
        b.wait(timeout=10)

        def summary(xs):
            xs = sorted(xs)
            return "median %.1f ms, p95 %.1f ms, max %.1f ms" % (
                statistics.median(xs), xs[int(0.95 * (len(xs) - 1))], xs[-1])
        info = benchlib.machine_info(build)
        print("kill -9 recovery, %d rounds, %d files (file backend)" % (rounds, nfiles))
        print("machine: %s x %s, kernel %s, %s, load %s" % (info["nproc"], info["model"],
                                                             info["kernel"], info["date"],
                                                             benchlib.loadavg()))
        print("build: %s, commit %s" % (info["build"], info["commit"]))
        print("kill -> every file served again: %s" % summary(from_kill))
        print("restart -> every file served again: %s" % summary(from_start))
    finally:
        subprocess.run(["umount", "-l", os.path.join(d, "m")], stderr=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
