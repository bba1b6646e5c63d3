#!/usr/bin/env python3
"""exec-overhead - what `runsecrets exec -- /bin/true` adds to a start-to-exit,
as PID 1 in a container and under unshare, against the same command without
it, in one run (docs/performance.md, issue 10).

    python3 bench/exec-overhead.py BUILD/runsecrets [--runs 20] [--warmup 2]
        [--secrets 4] [--only host|containers] [--engines docker,podman]
        [--baseline OTHER/runsecrets [--baseline-label TEXT]]
        [--trace] [--breakdown N] [--keep]

Needs root, /dev/fuse, unshare (util-linux) and tini (`apt-get install -y
tini`; it is not in scripts/deps.sh). The container part also needs what the
container tests need (docker.io, podman, runc, busybox-static: scripts/deps.sh)
and uses tests/integration/containers.py: one private dockerd, podman with a
private store, one minimal image (the binary, its libraries, busybox).
--breakdown also needs perf (linux-perf) and uprobes.

Every round runs every variant once, in an order rotated by one each round,
so noise on the machine (the VM is shared) hits all of them alike. Variants:

  host (each under `unshare --mount --pid --fork --mount-proc`, so the command
  is PID 1 of a new pid namespace, as in a container):
    plain       /bin/true
    tini        tini -- /bin/true
    libs        BUILD/bench/lib_floor      (an empty main linked with the
                                            libraries runsecrets links: what
                                            loading them costs)
    version     runsecrets version         (loading the binary and its
                                            libraries, and exiting: the floor
                                            of any runsecrets command)
    exec-from   runsecrets exec --config C --mount-from DIR -- /bin/true
                                           (no FUSE, no backend)
    exec        runsecrets exec --config C -- /bin/true
                                           (file backend, N secrets, FUSE)
  containers, per engine (`run --rm --network none`; podman with --runtime
  runc and the ulimits of containers.py):
    true        IMAGE /bin/true
    true+fuse   the same with exec's flags (--device /dev/fuse --cap-add
                SYS_ADMIN --security-opt apparmor=unconfined, -v CFG:/cfg:ro)
    exec        exec's flags, IMAGE runsecrets exec --config /cfg/config.json
                -- /bin/true

--baseline OTHER/runsecrets: a second build (say main's, in build-old) measured
in the same rounds, for a before/after on a shared, noisy machine: the host
variants version, exec-from and exec again with it (base-ver, base-from,
base-exec), and per engine base-exec (the image holds it as
/usr/local/bin/runsecrets-base, with its libraries). The report adds the
differences of each to its baseline twin, and --breakdown runs for both.

Times are wall clock from spawning the command (unshare, or the engine's CLI)
to reaping it. For the host variants, the CPU time and minor page faults of
the whole tree (unshare's rusage, which includes its reaped children) are
printed too. Before the timed rounds, every exec variant is run once with
`cat` as the application and must print the secret's bytes.

--breakdown N: afterwards, N more `exec` runs under `perf record` with uprobes
on the broker's phases (added under a group of our own and deleted at the
end); prints the median time between marks. Probes slow the run down (the
process start most: the breakpoints are written into each new mapping), so
read the proportions, not the sum.

Standard library only. Exit status: 0 measured (whatever the goals), 1
failure, 2 usage.
"""

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import benchlib  # noqa: E402

UNSHARE = ["unshare", "--mount", "--pid", "--fork", "--mount-proc"]
BASE_IN_IMAGE = "/usr/local/bin/runsecrets-base"
GOAL_HOST_MS = 10.0
GOAL_CONTAINER_MS = 50.0
RUN_TIMEOUT = 60.0
ENV_NS = "RS_BENCH_EXEC_NS"


def die(msg):
    print("exec-overhead: %s" % msg, file=sys.stderr)
    sys.exit(1)


def p90(xs):
    xs = sorted(xs)
    return xs[max(0, math.ceil(0.9 * len(xs)) - 1)]


# --------------------------------------------------------------------------
# one timed run


class Variant:
    """One command measured every round. run() returns wall ms, for host
    commands the cpu ms and minor faults of the whole process tree (else
    None), and the run's window in CLOCK_MONOTONIC s. pid1: (basename of
    the program that becomes PID 1, prefix of the comm it is exec'd from,
    its full path or None), for --trace."""

    def __init__(self, group, label, run, pid1):
        self.group = group
        self.label = label
        self.run = run
        self.pid1_match = pid1
        self.wall = []
        self.cpu = []
        self.minflt = []
        self.windows = []      # (t0, t1) CLOCK_MONOTONIC s of each timed run
        self.pid1 = []         # --trace: PID 1's lifetime (ms) in each run


def timed_host(cmd, log_path):
    """Spawn cmd, reap it with wait4: (wall ms, cpu ms, minor faults, t0,
    t1), t0 and t1 in CLOCK_MONOTONIC seconds (perf record -k uses it)."""
    with open(log_path, "ab") as log:
        t0 = time.monotonic_ns()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=log)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            p.kill()
            p.wait()
            raise
        t1 = time.monotonic_ns()
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        die("%s exited %d; its stderr is in %s" % (shlex.join(cmd), p.returncode, log_path))
    return ((t1 - t0) / 1e6, (ru.ru_utime + ru.ru_stime) * 1000.0, ru.ru_minflt, t0 / 1e9,
            t1 / 1e9)


def timed_container(eng, cmd, fuse, volumes):
    t0 = time.monotonic_ns()
    rc, out, err = eng.run(cmd, fuse=fuse, volumes=volumes, timeout=RUN_TIMEOUT)
    t1 = time.monotonic_ns()
    if rc != 0:
        die("%s run %s exited %r:\n%s" % (eng.name, shlex.join(cmd), rc, err.strip()[-2000:]))
    return ((t1 - t0) / 1e6, None, None, t0 / 1e9, t1 / 1e9)


# --------------------------------------------------------------------------
# the fixture: secrets, two configs


def write_fixture(d, nsecrets):
    """Secrets k0..kN-1 (random bytes) in d/secrets; d/host.json mounts them
    at d/mnt, d/cfg/config.json (bind-mounted at /cfg in containers) at
    /run/secrets from /cfg/secrets. Returns {name: bytes}."""
    sec = os.path.join(d, "cfg", "secrets")
    os.makedirs(sec)
    os.chmod(os.path.join(d, "cfg"), 0o755)
    os.chmod(sec, 0o755)
    os.mkdir(os.path.join(d, "mnt"), 0o755)
    values = {}
    for i in range(nsecrets):
        name = "k%d" % i
        values[name] = os.urandom(16).hex().encode()
        path = os.path.join(sec, name)
        with open(path, "wb") as f:
            f.write(values[name])
        os.chmod(path, 0o644)

    def config(mount, path):
        return {"mount": mount,
                "defaults": {"refresh": "5m", "max_stale": "1h", "mode": "0444",
                             "uid": 0, "gid": 0},
                "backends": {"local": {"type": "file", "path": path}},
                "secrets": {n: {"from": "local:" + n} for n in values}}

    with open(os.path.join(d, "host.json"), "w") as f:
        json.dump(config(os.path.join(d, "mnt"), sec), f, indent=2)
    with open(os.path.join(d, "cfg", "config.json"), "w") as f:
        json.dump(config("/run/secrets", "/cfg/secrets"), f, indent=2)
    os.chmod(os.path.join(d, "cfg", "config.json"), 0o644)
    return values


# --------------------------------------------------------------------------
# variants


def host_variants(binary, tini, d, baseline=None):
    cfg = os.path.join(d, "host.json")
    sec = os.path.join(d, "cfg", "secrets")
    cmds = [
        ("plain", UNSHARE + ["/bin/true"]),
        ("tini", UNSHARE + [tini, "--", "/bin/true"]),
    ]
    runs = [("", binary)] + ([("base-", baseline)] if baseline else [])
    lib_floor = os.path.join(os.path.dirname(binary), "bench", "lib_floor")
    if os.access(lib_floor, os.X_OK):
        cmds.append(("libs", UNSHARE + [lib_floor]))
    else:
        print("exec-overhead: %s is not built: no 'libs' row" % lib_floor, file=sys.stderr)
    for prefix, b in runs:
        cmds += [
            (prefix + ("ver" if prefix else "version"), UNSHARE + [b, "version"]),
            (prefix + ("from" if prefix else "exec-from"),
             UNSHARE + [b, "exec", "--config", cfg, "--mount-from", sec, "--", "/bin/true"]),
            (prefix + "exec", UNSHARE + [b, "exec", "--config", cfg, "--", "/bin/true"]),
        ]
    out = []
    for label, cmd in cmds:
        log = os.path.join(d, "log-%s.txt" % label)
        prog = cmd[len(UNSHARE)]
        out.append(Variant("host", label, lambda cmd=cmd, log=log: timed_host(cmd, log),
                           (os.path.basename(prog), "unshare", prog)))
    return out


def container_variants(eng, d, baseline=False):
    vol = [(os.path.join(d, "cfg"), "/cfg", "ro")]
    exec_cmd = ["runsecrets", "exec", "--config", "/cfg/config.json", "--", "/bin/true"]
    base_cmd = [BASE_IN_IMAGE] + exec_cmd[1:]
    # The container's PID 1 is exec'd by runc's init process.
    extra = [Variant(eng.name, "base-exec",
                     lambda: timed_container(eng, base_cmd, True, vol),
                     (os.path.basename(BASE_IN_IMAGE), "runc", None))] if baseline else []
    return extra + [
        Variant(eng.name, "true",
                lambda: timed_container(eng, ["/bin/true"], False, None),
                ("true", "runc", None)),
        Variant(eng.name, "true+fuse",
                lambda: timed_container(eng, ["/bin/true"], True, vol),
                ("true", "runc", None)),
        Variant(eng.name, "exec",
                lambda: timed_container(eng, exec_cmd, True, vol),
                ("runsecrets", "runc", None)),
    ]


# Loaded with dlopen by builds from before the broker's own FUSE loop
# (libfuse's cancels its workers): a baseline may need it, and ldd cannot
# tell (docs/containers.md). The current build never loads it.
BASELINE_EXTRA_LIBS = ("libgcc_s.so.1",)


def with_baseline(containers, baseline):
    """Make containers.py's image hold the baseline build too, at
    BASE_IN_IMAGE, with whatever libraries it links that the other does
    not, and BASELINE_EXTRA_LIBS: one image, so both run in the same
    containers."""
    build_rootfs = containers.build_rootfs

    def build_both(binary, rootfs, *a, **kw):
        files = build_rootfs(binary, rootfs, *a, **kw)
        files.append(containers._copy_file(baseline, rootfs, BASE_IN_IMAGE))
        for lib in containers.ldd_paths(baseline):
            if lib not in files:
                files.append(containers._copy_file(lib, rootfs))
        for soname in BASELINE_EXTRA_LIBS:
            path = containers._ldconfig_lookup(soname)
            if path and path not in files:
                files.append(containers._copy_file(path, rootfs))
        return sorted(files)

    containers.build_rootfs = build_both


def verify(binary, d, values, engines, baseline=None):
    """Every exec variant serves the right bytes (cat as the application)."""
    cfg = os.path.join(d, "host.json")
    sec = os.path.join(d, "cfg", "secrets")
    name = sorted(values)[-1]
    checks = []
    for what, b in [("", binary)] + ([("baseline ", baseline)] if baseline else []):
        checks += [
            (what + "host exec", UNSHARE + [b, "exec", "--config", cfg, "--", "/bin/cat",
                                            os.path.join(d, "mnt", name)]),
            (what + "host exec-from", UNSHARE + [b, "exec", "--config", cfg, "--mount-from",
                                                 sec, "--", "/bin/cat", os.path.join(sec, name)]),
        ]
    for what, cmd in checks:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=RUN_TIMEOUT)
        if r.returncode != 0 or r.stdout != values[name]:
            die("%s: the application did not read %s (exit %d):\n%s"
                % (what, name, r.returncode, r.stderr.decode("utf-8", "replace")[-2000:]))
    for eng in engines:
        for prog in ["runsecrets"] + ([BASE_IN_IMAGE] if baseline else []):
            rc, out, err = eng.run([prog, "exec", "--config", "/cfg/config.json", "--",
                                    "cat", "/run/secrets/" + name], fuse=True,
                                   volumes=[(os.path.join(d, "cfg"), "/cfg", "ro")],
                                   timeout=RUN_TIMEOUT)
            if rc != 0 or out.encode() != values[name]:
                die("%s %s exec: the application did not read %s (exit %r):\n%s"
                    % (eng.name, prog, name, rc, err.strip()[-2000:]))


# --------------------------------------------------------------------------
# --trace: PID 1's own lifetime, from the scheduler's tracepoints


class Tracer:
    """perf record -a of process exec/exit/fork with CLOCK_MONOTONIC
    timestamps, so each run's window finds its PID 1: what the engine (or
    unshare) costs is left out, and so is most of the noise of the engine's
    daemons. Other sessions' processes are told apart by the window, the
    program and the comm of the process that exec'd it."""

    def __init__(self, d):
        self.perf = shutil.which("perf")
        if not self.perf:
            die("--trace needs perf (apt-get install linux-perf)")
        self.data = os.path.join(d, "trace.data")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.perf, "record", "-q", "-a", "-k", "CLOCK_MONOTONIC", "-o", self.data,
             "-e", "sched:sched_process_exec", "-e", "sched:sched_process_exit",
             "-e", "sched:sched_process_fork"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)     # perf opens its events before the first run
        if self.proc.poll() is not None:
            die("perf record -a failed: %s" % self.proc.stderr.read().decode()[-1000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def assign(self, variants):
        """Fill each variant's pid1 list from the recorded events."""
        r = subprocess.run([self.perf, "script", "-i", self.data, "-F",
                            "comm,pid,tid,time,event,trace"],
                           capture_output=True, text=True, timeout=600)
        execs, exits = parse_sched(r.stdout)
        for v in variants:
            prog, parent, path = v.pid1_match
            for t0, t1 in v.windows:
                life = None
                for t, pid, prev, filename in execs:
                    if t < t0 or t > t1 or os.path.basename(filename) != prog:
                        continue
                    if not (prev or "").startswith(parent) or (path and filename != path):
                        continue
                    ends = [x for x in exits.get(pid, ()) if x >= t]
                    if ends:
                        life = (min(ends) - t) * 1000
                    break
                if life is not None:
                    v.pid1.append(life)


SCHED_LINE = re.compile(r"^\s*(.*?)\s+(\d+)/(\d+)\s+([\d.]+):\s+sched:(\w+):\s*(.*)$")


def parse_sched(text):
    """([(t, pid, comm before the exec, filename)], {pid: [exit times of
    its main thread]}) from perf script output."""
    last_comm, execs, exits = {}, [], {}
    for line in text.splitlines():
        m = SCHED_LINE.match(line)
        if not m:
            continue
        comm, pid, tid, t, ev, rest = m.groups()
        t = float(t)
        fields = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
        if ev == "sched_process_fork":
            if "child_pid" in fields:
                last_comm[fields["child_pid"]] = fields.get("child_comm", comm)
            continue
        if ev == "sched_process_exec":
            execs.append((t, pid, last_comm.get(pid), fields.get("filename", "")))
        elif ev == "sched_process_exit" and pid == tid:
            exits.setdefault(pid, []).append(t)
        last_comm[pid] = comm
    return execs, exits


# --------------------------------------------------------------------------
# the report


def row(v, traced):
    w = v.wall
    s = "%-10s %-10s %8.1f %8.1f %8.1f" % (v.group, v.label, statistics.median(w), min(w), p90(w))
    s += (" %8.1f %8d" % (statistics.median(v.cpu), int(statistics.median(v.minflt)))
          if v.cpu else " %8s %8s" % ("", ""))
    if traced:
        s += (" %8.1f %8.1f %4d/%d" % (statistics.median(v.pid1), p90(v.pid1), len(v.pid1),
                                       len(v.wall)) if v.pid1 else "  (PID 1 not found)")
    return s


def pid1_line(a, b, goal=None):
    """PID 1 lifetimes, a minus b: the difference of the medians."""
    if not a.pid1 or not b.pid1:
        return "%-10s %-10s - %-10s PID 1 not found" % (a.group, a.label, b.label)
    dm = statistics.median(a.pid1) - statistics.median(b.pid1)
    s = "%-10s %-10s - %-10s %+8.1f ms   (PID 1 lifetime: %.1f vs %.1f ms)" % (
        a.group, a.label, b.label, dm, statistics.median(a.pid1), statistics.median(b.pid1))
    if goal is not None:
        s += "   goal <= %.0f ms: %s" % (goal, "met" if dm <= goal else "MISSED by %.1f ms"
                                        % (dm - goal))
    return s


def diff_line(a, b, goal=None):
    """a minus b: difference of the medians, and the median of the
    per-round differences (same round, same noise)."""
    dm = statistics.median(a.wall) - statistics.median(b.wall)
    paired = statistics.median([x - y for x, y in zip(a.wall, b.wall)])
    dmin = min(a.wall) - min(b.wall)
    s = "%-10s %-10s - %-10s %+8.1f ms   paired %+8.1f ms   min-min %+8.1f ms   ratio %.2f" % (
        a.group, a.label, b.label, dm, paired, dmin,
        statistics.median(a.wall) / statistics.median(b.wall))
    if goal is not None:
        s += "   goal <= %.0f ms: %s" % (goal, "met" if dm <= goal else "MISSED by %.1f ms"
                                        % (dm - goal))
    return s


# (variant, its baseline twin): after - before, in one run.
BASE_PAIRS = [("exec", "base-exec"), ("exec-from", "base-from"), ("version", "base-ver")]


def report(variants, info, args, versions):
    print("# exec-overhead: %s, %s CPUs (%s), kernel %s, load %s" % (
        info["date"], info["nproc"], info["model"], info["kernel"], benchlib.loadavg()))
    print("# build %s, commit %s; %d rounds (+%d warm-up), %d secrets (file backend)%s" % (
        info["build"], info["commit"], args.runs, args.warmup, args.secrets,
        "; " + ", ".join(versions) if versions else ""))
    if args.baseline:
        print("# baseline (base-* rows): %s%s" % (
            args.baseline, " (%s)" % args.baseline_label if args.baseline_label else ""))
    traced = any(v.pid1 for v in variants)
    print("# wall ms from spawn to reap; host rows: CPU ms and minor faults of the whole tree%s"
          % ("; pid1: PID 1's own lifetime, exec to exit (--trace), median, p90, runs found"
             if traced else ""))
    print("%-10s %-10s %8s %8s %8s %8s %8s%s" % ("group", "variant", "median", "min", "p90",
                                                 "cpu", "minflt",
                                                 " %8s %8s" % ("pid1", "pid1 p90")
                                                 if traced else ""))
    for v in variants:
        print(row(v, traced))
    by = {(v.group, v.label): v for v in variants}
    print("# differences (a - b): of the medians; median of the per-round differences; "
          "of the minima")
    if ("host", "exec") in by:
        h = lambda label: by[("host", label)]  # noqa: E731
        print(diff_line(h("exec"), h("tini"), GOAL_HOST_MS))
        print(diff_line(h("exec"), h("plain"), GOAL_HOST_MS))
        print(diff_line(h("exec-from"), h("tini"), GOAL_HOST_MS))
        print(diff_line(h("tini"), h("plain")))
        if ("host", "libs") in by:
            print(diff_line(h("libs"), h("plain")))
            print(diff_line(h("version"), h("libs")))
        else:
            print(diff_line(h("version"), h("plain")))
        print(diff_line(h("exec-from"), h("version")))
        print(diff_line(h("exec"), h("exec-from")))
        if ("host", "base-exec") in by:
            print(diff_line(h("base-exec"), h("tini"), GOAL_HOST_MS))
            for new, base in BASE_PAIRS:
                print(diff_line(h(new), h(base)))
    groups = sorted({v.group for v in variants} - {"host"})
    for g in groups:
        print(diff_line(by[(g, "exec")], by[(g, "true")], GOAL_CONTAINER_MS))
        print(diff_line(by[(g, "exec")], by[(g, "true+fuse")]))
        print(diff_line(by[(g, "true+fuse")], by[(g, "true")]))
        if (g, "base-exec") in by:
            print(diff_line(by[(g, "base-exec")], by[(g, "true")], GOAL_CONTAINER_MS))
            print(diff_line(by[(g, "exec")], by[(g, "base-exec")]))
    if not traced:
        return
    print("# PID 1 lifetimes (--trace), a - b: what exec itself adds, without the engine")
    if ("host", "exec") in by:
        print(pid1_line(by[("host", "exec")], by[("host", "tini")], GOAL_HOST_MS))
        print(pid1_line(by[("host", "exec")], by[("host", "plain")], GOAL_HOST_MS))
        print(pid1_line(by[("host", "exec-from")], by[("host", "tini")], GOAL_HOST_MS))
        if ("host", "libs") in by:
            print(pid1_line(by[("host", "libs")], by[("host", "plain")]))
        print(pid1_line(by[("host", "version")], by[("host", "plain")]))
        if ("host", "base-exec") in by:
            print(pid1_line(by[("host", "base-exec")], by[("host", "tini")], GOAL_HOST_MS))
            for new, base in BASE_PAIRS:
                print(pid1_line(by[("host", new)], by[("host", base)]))
    for g in groups:
        print(pid1_line(by[(g, "exec")], by[(g, "true")], GOAL_CONTAINER_MS))
        print(pid1_line(by[(g, "exec")], by[(g, "true+fuse")]))
        if (g, "base-exec") in by:
            print(pid1_line(by[(g, "base-exec")], by[(g, "true")], GOAL_CONTAINER_MS))
            print(pid1_line(by[(g, "exec")], by[(g, "base-exec")]))


# --------------------------------------------------------------------------
# --breakdown: uprobes on the broker's phases


# (mark, the probes that give it, the first one the binary has): marks are
# "func" (entry) or "func%return". A renamed function keeps its mark, so a
# baseline build and this one share one timeline.
PROBES = [("main", ["main"]),
          ("hardening_init", ["hardening_init_process", "hardening_init"]),
          ("hardening_init%return", ["hardening_init_process%return", "hardening_init%return"]),
          ("broker_open", ["broker_open"]), ("broker_open%return", ["broker_open%return"]),
          ("broker_mount", ["broker_mount"]), ("broker_mount%return", ["broker_mount%return"]),
          ("broker_start", ["broker_start"]), ("broker_start%return", ["broker_start%return"]),
          ("wait_required%return", ["wait_required%return"]),
          ("supervise_start", ["supervise_start"]),
          ("supervise_start%return", ["supervise_start%return"]),
          ("broker_stop", ["broker_stop"]), ("scheduler_stop%return", ["scheduler_stop%return"]),
          ("broker_stop%return", ["broker_stop%return"]),
          ("broker_close%return", ["broker_close%return"])]

# The timeline, in order: (mark, label of the phase that ends at it).
TIMELINE = [
    ("exec", None),
    ("main", "execve -> main: loader, 36 libraries' relocations and constructors"),
    ("hardening_init%return", "main -> hardening_init done: sodium, hooks (+ curl/OpenSSL init)"),
    ("broker_open%return", "broker_open: config, (HTTP: curl init), backends, store, pool"),
    ("sys_enter_mount", "-> mount(2): /dev/fuse, mountpoint checks"),
    ("broker_mount%return", "mount(2) -> mounted, signals installed"),
    ("broker_start%return", "broker_start: scheduler threads, fetches, FUSE loop thread"),
    ("wait_required%return", "wait for the required secrets"),
    ("fork", "-> fork(): env, snapshot, cap_last, pipe"),
    ("child_execve", "fork -> child's execve (child_run: setsid, signals, caps)"),
    ("app_exec", "child's execve -> /bin/true running"),
    ("app_exit", "/bin/true runs and exits"),
    ("broker_stop", "app exit -> broker_stop: reap, log"),
    ("scheduler_stop%return", "scheduler_stop: join the fetch workers"),
    ("sys_enter_umount", "-> umount2: cancel, join the FUSE loop thread"),
    ("broker_stop%return", "umount2 -> broker_stop done: fs_free, backends"),
    ("broker_close%return", "-> broker_close done: frees (wiping)"),
    ("sys_enter_exit_group", "-> exit_group: atexit, library destructors (or _exit)"),
    ("exit", "exit_group -> process gone"),
]


def add_probes(perf, binary, group, tag):
    """PROBES into binary under group, each event named with tag (perf
    wants event names unique across groups); returns {perf event: mark}."""
    names = {}
    for i, (mark, specs) in enumerate(PROBES):
        err = ""
        for spec in specs:
            func, _, ret = spec.partition("%")
            ev = "%s:%sp%d=%s%s" % (group, tag, i, func, "%return" if ret else "")
            r = subprocess.run([perf, "probe", "-q", "-x", binary, "-a", ev],
                               capture_output=True, text=True, timeout=60)
            if r.returncode == 0:
                # perf names a return probe's event NAME__return.
                names["%s:%sp%d%s" % (group, tag, i, "__return" if ret else "")] = mark
                break
            err = r.stderr.strip()
        else:
            die("perf probe %s in %s: %s" % (" or ".join(specs), binary, err))
    return names


def breakdown(binaries, d, n):
    """binaries: [(title, path)]. N runs of each, interleaved, under one
    perf record; a table of the phases' medians, one column per binary."""
    perf = shutil.which("perf")
    if not perf:
        die("--breakdown needs perf (apt-get install linux-perf)")
    groups = ["rsbench%db%d" % (os.getpid(), k) for k in range(len(binaries))]
    names, added = {}, []
    try:
        for k, (_, binary) in enumerate(binaries):
            added.append(groups[k])
            for ev, mark in add_probes(perf, binary, groups[k], "b%d" % k).items():
                names[ev] = (k, mark)
        cfg = os.path.join(d, "host.json")
        log = shlex.quote(os.path.join(d, "log-breakdown.txt"))
        ones = [shlex.join(UNSHARE + [b, "exec", "--config", cfg, "--", "/bin/true"])
                for _, b in binaries]
        script = "for i in $(seq %d); do %s; done" % (
            n, "; ".join("%s >/dev/null 2>>%s || exit 1" % (one, log) for one in ones))
        data = os.path.join(d, "perf.data")
        events = []
        for g in groups:
            events += ["-e", "%s:*" % g]
        for tp in ("sched:sched_process_exec", "sched:sched_process_exit",
                   "sched:sched_process_fork", "syscalls:sys_enter_mount",
                   "syscalls:sys_enter_umount", "syscalls:sys_enter_execve",
                   "syscalls:sys_enter_exit_group"):
            events += ["-e", tp]
        r = subprocess.run([perf, "record", "-q", "-o", data] + events + ["--", "sh", "-c", script],
                           capture_output=True, text=True,
                           timeout=60 + 10 * n * len(binaries))
        if r.returncode != 0:
            die("perf record: %s" % r.stderr.strip()[-2000:])
        r = subprocess.run([perf, "script", "-i", data, "-F", "comm,pid,tid,time,event"],
                           capture_output=True, text=True, timeout=120)
        progs = {os.path.basename(b)[:15] for _, b in binaries}
        runs = parse_perf(r.stdout, names, progs)
    finally:
        for g in added:
            subprocess.run([perf, "probe", "-q", "-d", "%s:*" % g],
                           capture_output=True, timeout=60)
    per = [[x for x in runs if x.get("binary") == k] for k in range(len(binaries))]
    print("# breakdown under uprobes, %d interleaved runs each (medians, ms; probes inflate "
          "the process start): %s" % (n, "; ".join(
              "%s = %s (%d runs)" % (t, b, len(per[k])) for k, (t, b) in enumerate(binaries))))
    head = "%-72s" % "phase"
    for t, _ in binaries:
        head += " %10s" % t[:10]
    if len(binaries) == 2:
        head += " %10s" % "diff"
    print(head)

    def cell(rs, a, b):
        ds = [(x[b] - x[a]) * 1000 for x in rs if a in x and b in x]
        return statistics.median(ds) if ds else None

    phases = [(a, b, label) for (a, _), (b, label) in zip(TIMELINE, TIMELINE[1:])]
    phases.append(("exec", "exit", "runsecrets execve -> gone, whole"))
    for a, b, label in phases:
        vals = [cell(rs, a, b) for rs in per]
        line = "%-72s" % label
        for v in vals:
            line += " %10s" % ("-" if v is None else "%.2f" % v)
        if len(vals) == 2:
            line += " %10s" % ("-" if None in vals else "%+.2f" % (vals[0] - vals[1]))
        print(line)


def parse_perf(text, probe_names, progs):
    """Per runsecrets process (progs: the comms it may have): {mark: first
    time seen (s)}, and "binary": the index of the binary whose probes
    fired (probe_names: {event: (binary index, mark)})."""
    runs, cur = [], None
    for line in text.splitlines():
        f = line.split()
        if len(f) < 4 or "/" not in f[1]:
            continue
        comm, (pid, tid) = f[0], f[1].split("/", 1)
        t, ev = float(f[2].rstrip(":")), f[3].rstrip(":")
        if comm in progs and ev == "sched:sched_process_exec":
            cur = {"pid": pid, "exec": t}
            runs.append(cur)
            continue
        if cur is None:
            continue
        if ev in probe_names and pid == cur["pid"]:
            k, mark = probe_names[ev]
            cur.setdefault("binary", k)
            cur.setdefault(mark, t)
        elif pid == cur["pid"] and tid == pid:
            name = ev.split(":", 1)[1]
            if name == "sched_process_fork":
                if "supervise_start" in cur and "fork" not in cur:
                    cur["fork"] = t
            elif name == "sched_process_exit":
                cur.setdefault("exit", t)
            else:
                cur.setdefault(name, t)
        elif pid != cur["pid"] and "fork" in cur:
            if ev == "syscalls:sys_enter_execve":
                cur.setdefault("child_execve", t)
            elif ev == "sched:sched_process_exec":
                cur.setdefault("app_exec", t)
            elif ev == "sched:sched_process_exit" and "app_exec" in cur:
                cur.setdefault("app_exit", t)
    return [{k: v for k, v in r.items() if k != "pid"} for r in runs]


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(
        prog="exec-overhead.py",
        usage="python3 bench/exec-overhead.py BUILD/runsecrets [--runs 20] [--warmup 2] "
              "[--secrets 4] [--only host|containers] [--engines docker,podman] "
              "[--baseline OTHER/runsecrets [--baseline-label TEXT]] "
              "[--trace] [--breakdown N] [--keep]   (root, /dev/fuse, tini: apt-get install -y tini)")
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--secrets", type=int, default=4)
    ap.add_argument("--only", choices=("host", "containers"))
    ap.add_argument("--engines", default="docker,podman")
    ap.add_argument("--breakdown", type=int, default=0, metavar="N")
    ap.add_argument("--trace", action="store_true",
                    help="also time each run's PID 1 from sched tracepoints (perf record -a)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    ap.add_argument("--baseline", metavar="OTHER/runsecrets",
                    help="a second build measured in the same rounds (before/after)")
    ap.add_argument("--baseline-label", default="", metavar="TEXT",
                    help="what the baseline is, for the report (e.g. main@47833f1)")
    args = ap.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.secrets < 1 or args.breakdown < 0:
        ap.error("--runs and --secrets must be >= 1, --warmup and --breakdown >= 0")
    binary = os.path.abspath(args.binary)
    if os.path.isdir(binary):
        binary = os.path.join(binary, "runsecrets")
    if not os.access(binary, os.X_OK):
        ap.error("not an executable: %s" % binary)
    baseline = None
    if args.baseline:
        baseline = os.path.abspath(args.baseline)
        if os.path.isdir(baseline):
            baseline = os.path.join(baseline, "runsecrets")
        if not os.access(baseline, os.X_OK):
            ap.error("not an executable: %s" % baseline)
        args.baseline = baseline
    if os.geteuid() != 0:
        die("needs root (FUSE mounts, pid namespaces, the container engines)")
    if not os.path.exists("/dev/fuse"):
        die("/dev/fuse is missing")
    tini = shutil.which("tini")
    if args.only != "containers" and not tini:
        die("tini is not installed: apt-get install -y tini")

    # A private mount namespace: containers.py's engines mount overlays,
    # and nothing of ours may reach the host's mount table.
    if os.environ.get(ENV_NS) != "1":
        env = dict(os.environ, **{ENV_NS: "1"})
        sys.stdout.flush()
        os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private",
                               sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)

    build = os.path.dirname(binary)
    d = tempfile.mkdtemp(prefix="rs-exec-bench-")
    os.chmod(d, 0o755)
    containers = None
    tracer = None
    left = []
    try:
        values = write_fixture(d, args.secrets)
        variants, engines, versions = [], [], []
        if args.only != "containers":
            variants += host_variants(binary, tini, d, baseline)
        if args.only != "host":
            import containers as containers_mod  # tests/integration/containers.py
            containers = containers_mod
            if baseline:
                with_baseline(containers, baseline)
            t0 = time.monotonic()
            env = containers.setup(binary)
            wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
            engines = [e for e in env.engines if e.name in wanted]
            for e in engines:
                variants += container_variants(e, d, baseline is not None)
                versions.append("%s %s" % (e.name, getattr(e, "version", "?")))
            print("# containers ready in %.1f s (image %s, %d files)" % (
                time.monotonic() - t0, env.tag, len(env.image_files)), file=sys.stderr)
        verify(binary, d, values, engines, baseline)

        if args.trace:
            tracer = Tracer(d)
            tracer.start()
        n = len(variants)
        for r in range(args.warmup + args.runs):
            for k in range(n):
                v = variants[(r + k) % n]
                wall, cpu, flt, t0, t1 = v.run()
                if r >= args.warmup:
                    v.wall.append(wall)
                    v.windows.append((t0, t1))
                    if cpu is not None:
                        v.cpu.append(cpu)
                        v.minflt.append(flt)
            print("# round %d/%d done" % (r + 1, args.warmup + args.runs), file=sys.stderr)
        if tracer:
            tracer.stop()
            tracer.assign(variants)
        report(variants, benchlib.machine_info(build), args, versions)
        if args.breakdown:
            breakdown([("this", binary)] + ([("baseline", baseline)] if baseline else []),
                      d, args.breakdown)
    finally:
        if tracer:
            tracer.stop()
        if containers is not None:
            left = containers.teardown()
        if args.keep:
            print("# kept %s" % d, file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)
    # A host path (/run/runc...) that another run's engines use at the same
    # time is theirs, not a leftover of ours: containers.py only removes it
    # when empty. Everything else (our processes, mounts, directory,
    # cgroup) is ours.
    shared = [x for x in left if x.startswith("host path ")]
    for x in shared:
        print("exec-overhead: note: %s is still there (in use by another run?)" % x,
              file=sys.stderr)
    ours = [x for x in left if x not in shared]
    if ours:
        die("left behind: %s" % "; ".join(ours))


if __name__ == "__main__":
    main()
