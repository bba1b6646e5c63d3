#!/usr/bin/env python3
"""bench/admin-scrape.py - what one scrape of the admin endpoint costs with N secrets
(issue 14); results for docs/performance.md.

    python3 bench/admin-scrape.py BUILD [--secrets 1000] [--scrapes 300]

(root, /dev/fuse; it re-executes itself under unshare so no mount can leak.)
A broker (`runsecrets mount`, file backend, --log-level warn) serves N secrets
of 40 bytes and listens on a Unix socket. Once every secret is served, each page
(/metrics, /status, /health) is fetched --scrapes times, one connection each,
one at a time; reported per page: bytes, the client's wall time per request
(median, p90, p99, in microseconds) and the broker's CPU per request (its
/proc/PID/stat user+system over the whole series, divided by the count).
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

log = benchlib.logger("admin-scrape")


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path_ = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(self.path_)
        self.sock = s


def get(sock, path):
    c = UnixConn(sock)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--secrets", type=int, default=1000)
    ap.add_argument("--scrapes", type=int, default=300)
    args = ap.parse_args()
    if not benchlib.enter_private_namespace(os.path.abspath(__file__), log):
        return 1
    binary = benchlib.runsecrets_binary(args.build, log)
    if not binary:
        return 1
    tmp = tempfile.mkdtemp(prefix="rs-admin-bench-")
    src, mnt = os.path.join(tmp, "src"), os.path.join(tmp, "mnt")
    os.mkdir(src)
    os.mkdir(mnt)
    for i in range(args.secrets):
        with open(os.path.join(src, "s%05d" % i), "w") as f:
            f.write(os.urandom(20).hex())
    sock = os.path.join(tmp, "admin.sock")
    cfg = {"mount": mnt, "defaults": {"refresh": "1h", "max_stale": "2h"},
           "backends": {"local": {"type": "file", "path": src}},
           "secrets": {"s%05d" % i: {"from": "local:s%05d" % i} for i in range(args.secrets)},
           "admin": {"listen": "unix:" + sock}}
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(cfg, f)
    proc = None
    try:
        with open(os.path.join(tmp, "broker.log"), "w") as errf:
            proc = subprocess.Popen([binary, "mount", "--config", os.path.join(tmp, "config.json"),
                                     "--log-level", "warn", "--no-pid-file", mnt],
                                    stdout=subprocess.DEVNULL, stderr=errf)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log("the broker exited: see %s/broker.log" % tmp)
                return 1
            try:
                if get(sock, "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log("the broker never became healthy")
                return 1
            time.sleep(0.05)
        rows = []
        for page in ("/metrics", "/status", "/health"):
            for _ in range(10):
                get(sock, page)   # warm
            times = []
            c0 = benchlib.cpu_ms(proc.pid)
            size = 0
            for _ in range(args.scrapes):
                t0 = time.perf_counter()
                status, body = get(sock, page)
                times.append((time.perf_counter() - t0) * 1e6)
                if status != 200:
                    log("%s answered %d" % (page, status))
                    return 1
                size = len(body)
            cpu = (benchlib.cpu_ms(proc.pid) - c0) * 1000 / args.scrapes
            rows.append((page, size, statistics.median(times), pct(times, 0.9), pct(times, 0.99),
                         cpu))
        info = benchlib.machine_info(args.build)
        print("machine: %s x %s, kernel %s, %s; build %s; commit %s; load %s"
              % (info["nproc"], info["model"], info["kernel"], info["date"], info["build"],
                 info["commit"], benchlib.loadavg()))
        print("%d secrets, %d scrapes per page, one connection each, sequential\n"
              % (args.secrets, args.scrapes))
        print("| page | bytes | wall median (us) | p90 | p99 | broker CPU per scrape (us) |")
        print("|---|---|---|---|---|---|")
        for page, size, med, p90, p99, cpu in rows:
            print("| %s | %d | %.0f | %.0f | %.0f | %.0f |" % (page, size, med, p90, p99, cpu))
        return 0
    finally:
        benchlib.stop_process(proc, "the broker", log)
        subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
