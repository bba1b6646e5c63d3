"""Scrapes never slow the readers (issue 14): 1,000 scrapes of /metrics, eight
at a time, while 32 reader threads open and read secrets; the readers' p99
latency while scrapes run stays within 1.2x of the same run's p99 without.

One reader run (bench/reload_read: a record per open+read+close, CLOCK_MONOTONIC)
spans alternating windows, scrapes off then on, three of each; every record is
put in the window it started in (a margin at each edge left out), so both
sides see the same machine at the same moments, and the ratio, not a time, is
what is checked. The scraping clients run at nice 19, as a monitoring agent
would be placed: what is measured is the broker's own cost.

usage: RSTEST_READER=build/bench/reload_read test_admin_load.py RUNSECRETS
"""

import multiprocessing
import os
import struct
import subprocess
import sys
import threading
import time

import adminenv
import rstest

N_SECRETS = 50
N_READERS = 32
N_SCRAPES = 1000
SCRAPERS = 8
WINDOW = 2.0          # seconds per window
WINDOWS = 6           # off, on, off, on, off, on
MARGIN = 0.15         # seconds left out at each window's edges
LIMIT = 1.2

READER = os.environ.get("RSTEST_READER")


def scraper(addr, jobs, done, lock, errors):
    """Take jobs (a shared counter) until none are left."""
    while True:
        with lock:
            if jobs.value <= 0:
                return
            jobs.value -= 1
        try:
            adminenv.scrape(addr, timeout=30)
            with lock:
                done.value += 1
        except Exception as e:   # noqa: BLE001 - every failure is reported
            with lock:
                errors.value += 1
            print("scrape failed: %r" % e, file=sys.stderr)


def scrape_window(addr, n, deadline):
    """n scrapes from SCRAPERS processes at nice 19, done by deadline."""
    ctx = multiprocessing.get_context("fork")
    jobs, done, errors = ctx.Value("i", n), ctx.Value("i", 0), ctx.Value("i", 0)
    lock = ctx.Lock()

    def run():
        os.nice(19)
        ts = [threading.Thread(target=scraper, args=(addr, jobs, done, lock, errors))
              for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    procs = [ctx.Process(target=run) for _ in range(SCRAPERS // 4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=max(1.0, deadline - time.monotonic()) + 30)
    return done.value, errors.value


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class ScrapeLoadTest(rstest.BrokerTestCase):

    def test_scrapes_do_not_slow_readers(self):
        for i in range(N_SECRETS):
            self.write_secret("s%02d" % i, os.urandom(32).hex(), sensitive=False)
        sock = os.path.join(self.dir, "admin.sock")
        addr = "unix:" + sock
        self.write_config({"s%02d" % i: {"from": "local:s%02d" % i} for i in range(N_SECRETS)},
                          defaults={"refresh": "1h", "max_stale": "2h", "mode": "0444"})
        # warn: no audit line per open (32 readers write a great many)
        broker = self.start_broker(log_level="warn", args=["--admin", addr])
        rstest.wait_until(lambda: os.path.exists(sock), 10, "the admin socket")
        # 1,000 scrapes in three windows: the scrapes of a window must fit in it, or they
        # would spill into the next "off" window. Scale to what this build manages.
        t0 = time.monotonic()
        for _ in range(20):
            adminenv.scrape(addr)
        per_scrape = (time.monotonic() - t0) / 20
        per_window = N_SCRAPES // (WINDOWS // 2) + 1
        window = max(WINDOW, per_scrape * per_window / 2 * 1.5)

        paths = [self.mpath("s%02d" % i) for i in range(N_SECRETS)]
        out = os.path.join(self.dir, "reads.bin")
        total_ms = int((window * WINDOWS + 1.0) * 1000)
        readers = subprocess.Popen([READER, str(N_READERS), str(total_ms), out] + paths)
        self.addCleanup(lambda: readers.poll() is None and readers.kill())
        time.sleep(0.5)   # the readers at full speed first
        windows = []
        scraped = failed = 0
        for w in range(WINDOWS):
            start = time.monotonic()
            end = start + window
            if w % 2:
                n = min(per_window, N_SCRAPES - scraped - failed)
                done, errs = scrape_window(addr, n, end)
                scraped += done
                failed += errs
                self.assertLess(time.monotonic(), end + window,
                                "the scrapes of window %d overran it" % w)
            now = time.monotonic()
            if now < end:
                time.sleep(end - now)
            windows.append((start, max(end, time.monotonic()), bool(w % 2)))
        self.assertEqual(readers.wait(timeout=total_ms / 1000 + 60), 0)
        self.assertEqual((scraped, failed), (N_SCRAPES, 0))

        lat = {False: [], True: []}
        errors = 0
        with open(out, "rb") as f:
            data = f.read()
        for start_ns, dur_ns, err in struct.iter_unpack("qqq", data):
            t = start_ns / 1e9
            errors += err != 0
            for a, b, on in windows:
                if a + MARGIN <= t < b - MARGIN:
                    lat[on].append(dur_ns)
                    break
        self.assertEqual(errors, 0, "reads failed")
        self.assertGreater(len(lat[False]), 1000)
        self.assertGreater(len(lat[True]), 1000)
        off, on = p99(lat[False]), p99(lat[True])
        ratio = on / off
        print("reads: %d without scrapes, p99 %.1f us; %d with, p99 %.1f us; ratio %.2f "
              "(scrape %.1f ms)" % (len(lat[False]), off / 1000, len(lat[True]), on / 1000, ratio,
                                    per_scrape * 1000))
        self.assertLessEqual(ratio, LIMIT, "scrapes slowed the readers' p99 by %.2fx" % ratio)
        s, _ = adminenv.scrape(addr)
        self.assertEqual(adminenv.value(s, "runsecrets_opens_total"),
                         len(data) // 24)
        broker.stop()


if __name__ == "__main__":
    if not READER or not os.access(READER, os.X_OK):
        print("RSTEST_READER must name bench/reload_read", file=sys.stderr)
        sys.exit(2)
    rstest.main()
