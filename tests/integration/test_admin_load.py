"""Scrapes never slow the readers (issue 14): 1,000 scrapes of /metrics, eight
at a time, while 32 reader threads open and read secrets; the readers' p99
latency while scrapes run stays within 1.2x of the same run's p99 without
(in one of two measurements: see the test).

The readers are paced (each an open+read+close every 4 ms, ~8,000/s in all,
about a third of what the machine serves): flat out they saturate both CPUs,
and then any CPU time a scrape takes shows in their p99 whoever spends it
(1.2-4.3x measured), which is the machine's capacity, not the broker making
readers wait. Paced, what the test sees is what scraping does to a reader:
a lock it waits for, a thread it queues behind, CPU the scrape takes at its
priority. Windows of 0.5 s alternate, without and with scrapes (50 per
window, 100/s), until 1,000 are done; each read counts in the window it
started in (edges left out), so both sides see the same machine in
alternation, and the ratio of their p99s, not a time, is what is checked.
The clients run at nice 19 and send raw requests (a real Prometheus runs
elsewhere); the broker builds the page at nice 19 on a thread of its own.

usage: RSTEST_READER=build/bench/reload_read test_admin_load.py RUNSECRETS
"""

import multiprocessing
import os
import signal
import socket
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
SCRAPERS = 8          # connections at a time: two processes of four threads
WINDOW = 0.5          # seconds per window: without, then with scrapes
PER_WINDOW = 50       # scrapes a window with scrapes asks for (100/s)
MAX_PAIRS = 40        # bounded: the 1,000 take 20 pairs when every scrape fits
INTERVAL_US = 4000    # each reader: an open+read+close every 4 ms (8,000/s in all)
MARGIN = 0.05         # seconds left out at each edge of a window
LIMIT = 1.2
ATTEMPTS = 2      # measurements before the check fails (see the test)

READER = os.environ.get("RSTEST_READER")


def raw_get(sock, path):
    """One GET over a Unix socket: the body of a 200."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(sock)
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        chunks = []
        while True:
            c = s.recv(1 << 16)
            if not c:
                break
            chunks.append(c)
    finally:
        s.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise AssertionError("answer %r" % head[:40])
    return body


class Scrapers:
    """SCRAPERS connections taking scrapes from a shared quota, which the test
    refills at the start of each window with scrapes; idle otherwise."""

    def __init__(self, addr):
        ctx = multiprocessing.get_context("fork")
        self.stop = ctx.Event()
        self.quota, self.done, self.errors = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Value("i", 0)
        self.lock = ctx.Lock()
        self.sock = addr[len("unix:"):]
        self.procs = [ctx.Process(target=self._run) for _ in range(2)]
        for p in self.procs:
            p.start()

    def _loop(self):
        n = 0
        while not self.stop.is_set():
            with self.lock:
                take = self.quota.value > 0
                if take:
                    self.quota.value -= 1
            if not take:
                time.sleep(0.002)
                continue
            try:
                body = raw_get(self.sock, "/metrics")
                # Prometheus's parser on every 50th (it costs more than the scrape):
                # the pages stay valid under load; the rest only need to be whole.
                if n % 50 == 0:
                    adminenv.parse_metrics(body.decode())
                elif not body.rstrip().endswith(b"process_start_time_seconds " +
                                                body.rstrip().rpartition(b" ")[2]):
                    raise AssertionError("a truncated page")
                n += 1
                with self.lock:
                    self.done.value += 1
            except Exception as e:   # noqa: BLE001 - every failure is reported
                with self.lock:
                    self.errors.value += 1
                print("scrape failed: %r" % e, file=sys.stderr)

    def _run(self):
        # The clients should not be what the readers feel (a real Prometheus runs
        # elsewhere): nice 19, and a raw request rather than http.client.
        os.nice(19)
        ts = [threading.Thread(target=self._loop) for _ in range(SCRAPERS // 2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def refill(self, n):
        """Set the quota; returns what was left of the last one."""
        with self.lock:
            left = self.quota.value
            self.quota.value = n
        return left

    def pending(self):
        with self.lock:
            return self.quota.value

    def close(self):
        self.stop.set()
        for p in self.procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class ScrapeLoadTest(rstest.BrokerTestCase):

    def measure(self, scrapers, paths, attempt):
        """One measurement: readers for MAX_PAIRS pairs of windows at most,
        N_SCRAPES scrapes in the windows with scrapes. Returns (the ratio of
        the pooled p99s, with / without; the reads done; a summary line)."""
        out = os.path.join(self.dir, "reads%d.bin" % attempt)
        env = dict(os.environ, RR_INTERVAL_US=str(INTERVAL_US))
        total_ms = int((MAX_PAIRS * 2 * WINDOW + 5) * 1000)
        readers = subprocess.Popen([READER, str(N_READERS), str(total_ms), out] + paths, env=env)
        self.addCleanup(lambda: readers.poll() is None and readers.kill())
        time.sleep(0.3)   # the readers at full speed first
        target = scrapers.done.value + N_SCRAPES
        windows = []
        cancelled = pairs = 0
        while scrapers.done.value < target and pairs < MAX_PAIRS:
            pairs += 1
            for on in (False, True):
                start = time.monotonic()
                if on:
                    scrapers.refill(min(PER_WINDOW, target - scrapers.done.value))
                time.sleep(max(0.0, start + WINDOW - time.monotonic()))
                if on:
                    cancelled += scrapers.refill(0)   # what did not fit waits for the next
                windows.append((start, time.monotonic(), on))
        readers.send_signal(signal.SIGINT)
        self.assertEqual(readers.wait(timeout=60), 0)
        self.assertGreaterEqual(scrapers.done.value, target,
                                "%d scrapes short in %d pairs of windows"
                                % (target - scrapers.done.value, pairs))

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
        line = ("measurement %d: %d scrapes in %d pairs of %.1f s windows (%d carried over); reads: "
                "%d without scrapes, p99 %.1f us; %d with, p99 %.1f us; ratio %.2f"
                % (attempt + 1, N_SCRAPES, pairs, WINDOW, cancelled, len(lat[False]), off / 1000,
                   len(lat[True]), on / 1000, on / off))
        return on / off, len(data) // 24, line

    def test_scrapes_do_not_slow_readers(self):
        for i in range(N_SECRETS):
            self.write_secret("s%02d" % i, os.urandom(32).hex(), sensitive=False)
        sock = os.path.join(self.dir, "admin.sock")
        addr = "unix:" + sock
        self.write_config({"s%02d" % i: {"from": "local:s%02d" % i} for i in range(N_SECRETS)},
                          defaults={"refresh": "1h", "max_stale": "2h", "mode": "0444"})
        # warn: no audit line per open (32 readers write a great many)
        broker = self.start_broker(wait=False, log_level="warn", args=["--admin", addr])
        broker.wait_mounted()
        rstest.wait_until(lambda: os.path.exists(sock), 10, "the admin socket")
        rstest.wait_until(lambda: adminenv.request(addr, "/health")[0] == 200, 10,
                          "every secret served")
        paths = [self.mpath("s%02d" % i) for i in range(N_SECRETS)]
        scrapers = Scrapers(addr)
        self.addCleanup(scrapers.close)
        # Up to ATTEMPTS measurements, each its own readers and 1,000 scrapes:
        # the check fails when every one is over the limit. Scrapes that slow
        # readers do so in each; what else runs on the machine (CI runs the
        # container tests beside this one) lands on a few windows of one:
        # under one busy CPU the code before and after issue 16's loop change
        # both read 0.9-1.05 on most measurements and 1.28 / 1.40 on one.
        reads = 0
        results = []
        for attempt in range(ATTEMPTS):
            ratio, n, line = self.measure(scrapers, paths, attempt)
            reads += n
            results.append(ratio)
            print(line)
            if ratio <= LIMIT:
                break
        scrapers.close()
        self.assertEqual(scrapers.errors.value, 0, "scrapes failed")
        self.assertLessEqual(min(results), LIMIT, "scrapes slowed the readers' p99 by %s in %d "
                             "measurements" % (", ".join("%.2fx" % r for r in results), len(results)))
        s, _ = adminenv.scrape(addr)
        self.assertEqual(adminenv.value(s, "runsecrets_opens_total"), reads)
        broker.stop()


if __name__ == "__main__":
    if not READER or not os.access(READER, os.X_OK):
        print("RSTEST_READER must name bench/reload_read", file=sys.stderr)
        sys.exit(2)
    rstest.main()
