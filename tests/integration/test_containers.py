"""runsecrets in real containers, Docker and Podman (issue 10).

One private dockerd and one minimal image per run (containers.py): the
binary, the libraries ldd lists, a static busybox, /etc/passwd and
/etc/group. Each case runs in both engines:
- the image is complete: `runsecrets version` runs, and the image holds
  exactly the files the harness put there;
- `runsecrets mount` with the file backend inside the container (FUSE:
  --device /dev/fuse --cap-add SYS_ADMIN) serves the right bytes and stops
  cleanly on TERM: exit 0, the mount gone, no "libgcc_s" on stderr;
- the image holds no library ldd does not list (no libgcc_s.so.1: nothing
  cancels a thread), and so every stop in these cases runs without one;
- examples/container/config.json serves examples/secrets the same way;
- without /dev/fuse, `runsecrets mount` exits 1 with a clear message;
- a host `runsecrets mount` bind-mounted read-only into an unprivileged
  container (--cap-drop ALL --read-only --user 1000): uid 1000 reads a 0444
  file and is refused a 0400 root file.
- the access policy's containers (issue 15): a host mount whose policy
  allows c to any container of the runtime (docker:*, libpod:*) and p to
  one container's id, bound into --network none containers: that container
  reads both, the host neither (EACCES), another container c only.
- `runsecrets exec --user app` as the entrypoint (test_exec_*): the app
  runs as uid 1000 with right bytes, modes and owners, a 0400 root file
  refused, DB_PASSWORD_FILE a path and no value in its environ, PID 1's or
  `inspect`; the exit status is the app's; `stop` is quick for an app that
  handles TERM and SIGKILLs one that ignores it after exec.stop_grace
  (137); a required secret that never comes is exit 1 and the app never
  ran; no device / no capability / neither: exit 1 naming what is missing
  and --mount-from; --mount-from a host mount, unprivileged, as uid 1000;
  1,000 orphans reaped; a rotation is the next open's and one SIGHUP;
  a burst of five changes within exec.debounce is one restart (on_change
  "restart"), and the restarted app reads the last value; the Vault fake
  on the host's 127.0.0.1 over TLS, reached from a --network host
  container with a token file (the token in no environ, `inspect`, log or
  file of the container); an exited container's `export` holds no value
  (and the image's `save` none either); examples/container's exec
  entrypoint and app.sh; `run -it` with the CLI on a terminal of the
  test's (test_exec_tty_*): the app gets the terminal (controlling, in the
  foreground; PID 1 keeps none), no HUP or CONT from the hand-over, one
  SIGINT per ^C typed, which it traps and runs on, and its exit status is
  the container's.
At the end nothing is left: no daemon, container, mount or directory.
"""

import contextlib
import errno
import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
import unittest

import composecases
import containers
import rstest
import vaultenv

# The in-container mount, started in the background by a shell script,
# read once, then stopped with TERM; markers delimit what the script says.
MOUNT_SCRIPT = r"""
set -u
CONFIG=${CONFIG:-/cfg/config.json}
FILE=${FILE:-x}
runsecrets check --config "$CONFIG" || exit 3
runsecrets mount --config "$CONFIG" --log-format text /run/secrets &
pid=$!
i=0
while [ ! -e "/run/secrets/$FILE" ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done
echo "<<value"
cat "/run/secrets/$FILE"
echo ">>value"
echo "mode=$(stat -c %a:%u:%g "/run/secrets/$FILE")"
kill -TERM $pid
wait $pid
echo "rc=$?"
echo "mounts=$(grep -c ' fuse.runsecrets ' /proc/mounts)"
"""


EXAMPLES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "..", "examples"))

# The end of an app script that runs until the test says so: it waits (at
# most 30 s) for /tmp/done, which finish() creates.
UNTIL_DONE = "i=0; while [ ! -e /tmp/done ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done"


def between(text, start, end):
    a = text.find(start)
    b = text.find(end, a + len(start))
    if a < 0 or b < 0:
        return None
    return text[a + len(start):b].strip("\n")


def field(text, key):
    for line in text.splitlines():
        if line.startswith(key + "="):
            return line[len(key) + 1:]
    return None


def stat_fields(text):
    """/proc/PID/stat as a dict of the fields the terminal case looks at."""
    pid = int(text.split()[0])
    f = text.rsplit(")", 1)[1].split()
    return {"pid": pid, "pgrp": int(f[2]), "session": int(f[3]), "tty_nr": int(f[4]),
            "tpgid": int(f[5])}


class Terminal:
    """An engine's CLI on a pseudo-terminal of the test's own, as a user's
    shell runs `docker run -it`: the slave is its stdin, stdout, stderr and
    controlling terminal (setsid, then TIOCSCTTY), so -t sees a terminal and
    the CLI puts it in raw mode. The master is read without blocking in
    every wait, so the CLI never blocks on a full terminal buffer."""

    def __init__(self, argv, env):
        self.master, slave = pty.openpty()
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.set_blocking(self.master, False)
        self.buf = bytearray()
        self.eof = False
        try:
            self.p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                      start_new_session=True,
                                      preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        finally:
            os.close(slave)

    def drain(self, wait=0.0):
        """Read what the terminal holds, waiting up to wait seconds for it."""
        if self.eof:
            time.sleep(wait)
            return
        ready, _, _ = select.select([self.master], [], [], wait)
        while ready:
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                return
            except OSError:          # EIO: no slave is open any more
                data = b""
            if not data:
                self.eof = True
                return
            self.buf += data

    def output(self):
        return bytes(self.buf).decode("utf-8", "replace").replace("\r\n", "\n")

    def until(self, pred, timeout, what, running=True):
        """Wait for pred, reading the terminal; running: the CLI must not
        exit meanwhile (no use waiting for the app once it has)."""
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() >= deadline or (running and self.p.poll() is not None):
                raise AssertionError("%s: not within %.0fs (CLI exit status %s)\nterminal:\n%s"
                                     % (what, timeout, self.p.poll(), self.output()))
            self.drain(0.05)

    def raw(self):
        """Whether the CLI has put the terminal in raw mode: no ISIG, so a
        ^C is a byte for the container's terminal, not a SIGINT for the CLI
        (TCGETS on a master reads its slave's settings)."""
        return not termios.tcgetattr(self.master)[3] & termios.ISIG

    def type(self, data):
        os.write(self.master, data)

    def finish(self, timeout):
        """The CLI's exit status once it has exited, and the rest of the output."""
        self.until(lambda: self.p.poll() is not None, timeout, "the CLI's exit", running=False)
        deadline = time.monotonic() + 5
        while not self.eof and time.monotonic() < deadline:
            self.drain(0.05)
        return self.p.returncode

    def stop(self):
        """Kill the CLI if it still runs (the container may outlive it)."""
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=30)

    def close(self):
        self.stop()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


# (seconds, engine, test) of every case, printed at the end: the file's
# share of CI's 20 minutes, case by case.
CASE_TIMES = []


def setUpModule():
    t0 = time.monotonic()
    try:
        containers.setup(rstest.BINARY)
    except containers.ContainersUnavailable as e:
        raise RuntimeError("%s\n(the container tests need docker.io, podman, runc and "
                           "busybox-static: run scripts/deps.sh)" % e) from None
    env = containers.current()
    print("\ncontainers: ready in %.1fs (%s); image %s: %d files"
          % (time.monotonic() - t0,
             ", ".join("%s %.1fs" % kv for kv in env.timings.items()),
             env.tag, len(env.image_files)), file=sys.stderr)


def tearDownModule():
    env = containers.current()
    d = env.dir if env else None
    t0 = time.monotonic()
    left = containers.teardown()
    print("containers: torn down in %.1fs" % (time.monotonic() - t0), file=sys.stderr)
    if CASE_TIMES:
        print("containers: %d cases in %.1fs, slowest first:\n%s" % (
            len(CASE_TIMES), sum(t for t, _, _ in CASE_TIMES),
            "\n".join("  %5.1fs  %-6s %s" % c for c in sorted(CASE_TIMES, reverse=True))),
            file=sys.stderr)
    if d:
        left += ["fuse mount %s" % m["mountpoint"] for m in rstest.mountinfo()
                 if m["fstype"].startswith("fuse") and m["mountpoint"].startswith("/tmp/rs")]
    if left:
        raise AssertionError("left behind: %s" % "; ".join(left))


class EngineCase(rstest.BrokerTestCase):
    """self.eng, this case's engine; the case's time in CASE_TIMES."""
    ENGINE = None

    def setUp(self):
        super().setUp()
        env = containers.current()
        self.eng = next(e for e in env.engines if e.name == self.ENGINE)
        self.value = rstest.random_value()
        self.t_start = time.monotonic()

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            CASE_TIMES.append((time.monotonic() - self.t_start, self.ENGINE,
                               self._testMethodName))


class ContainerCase(EngineCase):

    def in_container_config(self, mode="0444"):
        """Secret x from the file backend, config and secrets at /cfg."""
        self.write_secret("x", self.value)
        self.write_config({"x": {"from": "local:x", "mode": mode, "uid": 0, "gid": 0}},
                          backends={"local": {"type": "file", "path": "/cfg/secrets"}},
                          mount="/run/secrets")
        with open(os.path.join(self.dir, "run.sh"), "w") as f:
            f.write(MOUNT_SCRIPT)

    def cfg_volume(self):
        return [(self.dir, "/cfg", "ro")]

    def run_mount_script(self, env=None, volumes=None):
        return self.eng.run(["sh", "/cfg/run.sh"], fuse=True,
                            volumes=self.cfg_volume() + list(volumes or ()), env=env, timeout=60)

    def assertClean(self, rc, out, err):
        self.assertNotIn(self.value, err, "the value reached stderr")
        for marker in rstest.SANITIZER_MARKERS:
            self.assertNotIn(marker, err)

    # ---- the cases

    def test_version_runs_in_minimal_image(self):
        rc, out, err = self.eng.run(["runsecrets", "version"])
        self.assertEqual(rc, 0, "version failed in the minimal image:\n%s" % err)
        self.assertIn("runsecrets", out)
        self.assertIn("libfuse", out)

    def test_image_holds_only_the_listed_files(self):
        rc, out, err = self.eng.run(["find", "/", "-xdev", "-type", "f"])
        self.assertEqual(rc, 0, err)
        # What the engines add to every container (markers, and the files
        # they bind-mount over the image's: find -xdev still lists those).
        files = set(out.split()) - containers.ENGINE_FILES
        self.assertEqual(sorted(files), containers.current().image_files)

    def test_fuse_mount_in_container_serves_and_stops_cleanly(self):
        self.in_container_config()
        t0 = time.monotonic()
        rc, out, err = self.run_mount_script()
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "container exit %r\nstdout:\n%s\nstderr:\n%s" % (rc, out, err))
        self.assertEqual(between(out, "<<value\n", ">>value"), self.value, out + err)
        self.assertEqual(field(out, "mode"), "444:0:0")
        self.assertEqual(field(out, "rc"), "0", "runsecrets mount did not exit 0 on TERM:\n"
                         + err)
        self.assertEqual(field(out, "mounts"), "0", "still mounted after the stop")
        self.assertNotIn("libgcc_s", err)
        self.assertNotIn("must be installed", err)
        self.assertIn("unmounted", err)
        self.assertClean(rc, out, err)
        self.assertLess(took, 30)

    def test_image_holds_exactly_the_listed_libraries(self):
        # The FUSE loop is the broker's own (fuse/fs.c), which ends its
        # threads without pthread_cancel: glibc never dlopens libgcc_s.so.1,
        # so the image needs nothing beyond `version --libraries` (ldd's
        # list and the libraries loaded on use), and every stop in this file
        # (test_fuse_mount_in_container_serves_and_stops_cleanly, the exec
        # cases, the Vault one loading libcurl) runs without it unless ldd
        # lists it (ASan builds).
        libs = {f for f in containers.current().image_files if ".so" in os.path.basename(f)}
        listed = set(containers.image_libraries(rstest.BINARY))
        self.assertEqual(libs, listed)
        self.assertTrue(set(containers.ldd_paths(rstest.BINARY)) <= listed)
        self.assertTrue(any("libcurl.so" in p for p in listed), listed)

    def test_example_config(self):
        # examples/container/config.json, as docs/containers.md runs it:
        # the config at /etc/runsecrets/config.json, examples/secrets at
        # /etc/runsecrets/secrets (read-only).
        self.in_container_config()
        rc, out, err = self.run_mount_script(
            env={"CONFIG": "/etc/runsecrets/config.json", "FILE": "db/user"},
            volumes=[(os.path.join(EXAMPLES, "container", "config.json"),
                      "/etc/runsecrets/config.json", "ro"),
                     (os.path.join(EXAMPLES, "secrets"), "/etc/runsecrets/secrets", "ro")])
        self.assertEqual(rc, 0, "container exit %r\nstdout:\n%s\nstderr:\n%s" % (rc, out, err))
        self.assertEqual(between(out, "<<value\n", ">>value"), "app")
        self.assertEqual(field(out, "mode"), "444:0:0")
        self.assertEqual(field(out, "rc"), "0", err)
        self.assertNotIn("libgcc_s", err)

    def test_without_dev_fuse_exits_1(self):
        self.in_container_config()
        rc, out, err = self.eng.run(["runsecrets", "mount", "--config", "/cfg/config.json",
                                     "--log-format", "text"], volumes=self.cfg_volume())
        self.assertEqual(rc, 1, "stdout:\n%s\nstderr:\n%s" % (out, err))
        # Today's message (exec will name the missing device or capability).
        self.assertIn("cannot mount on /run/secrets", err)
        self.assertIn("/dev/fuse", err)
        self.assertNotIn("libgcc_s", err)
        self.assertClean(rc, out, err)
        print("\n[%s] without /dev/fuse: %s" % (self.ENGINE, " | ".join(
            l.strip() for l in err.strip().splitlines()[-3:])), file=sys.stderr)

    def test_host_mount_bound_into_unprivileged_container(self):
        pub = rstest.random_value()
        priv = rstest.random_value()
        self.write_secret("pub", pub)
        self.write_secret("priv", priv)
        self.write_config({"pub": {"from": "local:pub", "mode": "0444"},
                           "priv": {"from": "local:priv", "mode": "0400", "uid": 0}})
        b = self.start_broker()
        script = ("id -u; echo '<<pub'; cat /run/secrets/pub; echo; echo '>>pub'; "
                  "cat /run/secrets/priv; echo \"priv_rc=$?\"; "
                  "touch /run/secrets/new 2>/dev/null; echo \"write_rc=$?\"")
        rc, out, err = self.eng.run(["sh", "-c", script], user=containers.APP_UID,
                                    read_only=True, cap_drop_all=True,
                                    volumes=[(self.mnt, "/run/secrets", "ro")])
        self.assertEqual(rc, 0, "stdout:\n%s\nstderr:\n%s" % (out, err))
        self.assertEqual(out.splitlines()[0], str(containers.APP_UID))
        self.assertEqual(between(out, "<<pub\n", ">>pub"), pub)
        self.assertNotIn(priv, out)
        self.assertNotEqual(field(out, "priv_rc"), "0")
        self.assertIn("Permission denied", err)
        self.assertNotEqual(field(out, "write_rc"), "0")
        self.assertEqual(b.stop(), 0, b.describe())


    # ---- the access policy's containers (issue 15)

    RUNTIMES = {"docker": "docker", "podman": "libpod"}

    def create_waiting(self, volumes, extra=()):
        """Create (not start) a container that waits for /tmp/done (at most
        30 s): its id is known before it runs. Returns (name, id)."""
        name = self.eng.env.new_name()
        args = ["create", "--name", name] + self.eng._create_args(
            ["sh", "-c", UNTIL_DONE], False, None, "none", volumes, None, False, False, None,
            list(extra))
        self.eng.started.append(name)      # removed by rm() below, or teardown at the latest
        rc, out, err = self.eng.cli(*args)
        if rc != 0:
            self.eng.rm(name)
            self.fail("%s create: %r %s" % (self.ENGINE, rc, err.strip()))
        cid = out.strip().splitlines()[-1]
        self.assertRegex(cid, r"^[0-9a-f]{64}$")
        return name, cid

    def test_policy_recognises_containers(self):
        """A host mount with a policy naming containers, bound into --network
        none containers: this container reads c (any container of its
        runtime) and p (its own id); the host reads neither; another
        container reads c and not p. Decisions only (the bytes read or
        EACCES), never the audit line."""
        runtime = self.RUNTIMES[self.ENGINE]
        values = {"c": rstest.random_value(), "p": rstest.random_value()}
        for n, v in values.items():
            self.write_secret(n, v)
        vol = [(self.mnt, "/run/secrets", "ro")]
        # Docker: dockerd runs with --cgroup-parent /rsct-RUN (containers.py),
        # so its cgroupfs layout is /rsct-RUN/<id>, which policy_container_of
        # does not take for Docker's (a bare id under a parent not named
        # "docker"). The containers here get Docker's default layout,
        # .../docker/<id>, still under the run's cgroup for the cleanup.
        extra = (["--cgroup-parent", "/%s/docker" % self.eng.env.cgroup]
                 if self.ENGINE == "docker" else [])
        name, cid = self.create_waiting(vol, extra)
        self.write_config({n: {"from": "local:" + n, "mode": "0444", "uid": 0, "gid": 0}
                           for n in values})
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["policy"] = {"default": "deny", "rules": [
            {"secrets": ["c"], "allow": {"containers": ["%s:*" % runtime]}},
            {"secrets": ["p"], "allow": {"containers": ["%s:%s" % (runtime, cid[:12])]}},
        ]}
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        b = self.start_broker()
        try:
            rc, _, err = self.eng.cli("start", name)
            self.assertEqual(rc, 0, err)
            rc, out, err = self.eng.cli("inspect", "--format", "{{.State.Pid}}", name)
            self.assertEqual(rc, 0, err)
            pid = int(out.strip())
            with open("/proc/%d/cgroup" % pid) as f:
                cg = f.read()
            print("\n[%s] container cgroup:\n  %s" % (self.ENGINE, cg.strip().replace("\n", "\n  ")),
                  file=sys.stderr)
            # What the broker makes of this process (explain reads /proc as it does).
            r = rstest.run_cli("check", "-c", self.config_path, "--explain", "p", "--pid", pid)
            self.assertIn("container: %s:%s\n" % (runtime, cid), r.stdout.decode(),
                          "cgroup:\n%s" % cg)
            for n, v in values.items():
                rc, out, err = self.eng.exec(name, ["cat", "/run/secrets/" + n])
                self.assertEqual((rc, out), (0, v), "%s in the container: %s" % (n, err))
            # The host, in no container.
            for n in values:
                self.assertEqual(self.try_read(n), errno.EACCES, n)
            # Another container: another id.
            script = ("echo '<<c'; cat /run/secrets/c; echo; echo '>>c'; "
                      "cat /run/secrets/p; echo \"p_rc=$?\"")
            rc, out, err = self.eng.run(["sh", "-c", script], volumes=vol, extra=extra)
            self.assertEqual(rc, 0, "stdout:\n%s\nstderr:\n%s" % (out, err))
            self.assertEqual(between(out, "<<c\n", ">>c"), values["c"])
            self.assertNotIn(values["p"], out)
            self.assertNotEqual(field(out, "p_rc"), "0")
            self.assertIn("Permission denied", err)
        finally:
            self.eng.rm(name)
        self.assertEqual(b.stop(), 0, b.describe())


    # ---- runsecrets exec as the entrypoint (issue 10)

    def exec_setup(self, secrets=None, exec_=None, backend_path="/etc/runsecrets/secrets",
                   backends=None):
        """Config at /cfg/config.json (a 0755 directory of its own, so uid
        1000 can read it too): x 0444, db_password 0440 root:1000 with
        DB_PASSWORD_FILE, priv 0400 root; exec.stop_grace 4s. backends
        replaces the file backend."""
        self.db = rstest.random_value()
        self.priv = rstest.random_value()
        self.write_secret("x", self.value)
        self.write_secret("db_password", self.db)
        self.write_secret("priv", self.priv)
        self.cfgdir = os.path.join(self.dir, "cfg")
        os.makedirs(self.cfgdir, exist_ok=True)
        os.chmod(self.cfgdir, 0o755)
        cfg = {"mount": "/run/secrets",
               "defaults": {"refresh": "1s", "max_stale": "1h", "mode": "0400", "uid": 0,
                            "gid": 0},
               "backends": backends or {"local": {"type": "file", "path": backend_path}},
               "exec": dict({"stop_grace": "4s", "wait": "10s"}, **(exec_ or {})),
               "secrets": secrets if secrets is not None else {
                   "x": {"from": "local:x", "mode": "0444"},
                   "db_password": {"from": "local:db_password", "mode": "0440", "gid": 1000,
                                   "env": "DB_PASSWORD_FILE"},
                   "priv": {"from": "local:priv", "mode": "0400"}}}
        path = os.path.join(self.cfgdir, "config.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        os.chmod(path, 0o644)
        return path

    def exec_volumes(self):
        return [(self.cfgdir, "/cfg", "ro"), (self.secrets_dir, "/etc/runsecrets/secrets", "ro")]

    def exec_args(self, script, user="app", more=()):
        """The image's ENTRYPOINT as docs/containers.md writes it, then sh -c."""
        args = ["exec", "--config", "/cfg/config.json"] + list(more)
        if user:
            args += ["--user", user]
        return args + ["--", "sh", "-c", script]

    def wait_output(self, name, marker, timeout=20, count=1):
        """Wait until marker has appeared count times in the logs; fail at
        once if the container stops first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out, err = self.eng.logs(name)
            if (out + err).count(marker) >= count:
                return out, err
            if not self.eng.running(name):
                break
            time.sleep(0.1)
        out, err = self.eng.logs(name)
        self.fail("%r not %d times from the app in %.0fs\nstdout:\n%s\nstderr:\n%s"
                  % (marker, count, timeout, out, err))

    def start_exec(self, script, **kw):
        return self.eng.start(self.exec_args(script), fuse=True, volumes=self.exec_volumes(),
                              entrypoint=containers.BINARY_IN_IMAGE, **kw)

    def run_exec(self, script, fuse=True, **kw):
        return self.eng.run(self.exec_args(script), fuse=fuse, volumes=self.exec_volumes(),
                            entrypoint=containers.BINARY_IN_IMAGE, **kw)

    @contextlib.contextmanager
    def removed_after(self, name):
        """The started container NAME is removed when the block ends, before
        the test's assertions on what it said, whatever happened in it."""
        try:
            yield name
        finally:
            self.eng.rm(name)

    def exited(self, name, timeout=30):
        """Its exit status, stdout and stderr, once the container has exited."""
        rc = self.eng.wait(name, timeout=timeout)
        out, err = self.eng.logs(name)
        return rc, out, err

    def finish(self, name):
        """End an app waiting in UNTIL_DONE; exited()."""
        self.eng.exec(name, ["touch", "/tmp/done"], user=0)
        return self.exited(name)

    def outside_views(self, name):
        """PID 1's environ and the engine's `inspect` of a running container:
        where a value must never be."""
        rc1, p1env, e1 = self.eng.exec(name, ["cat", "/proc/1/environ"], user=0)
        rc2, insp, e2 = self.eng.cli("inspect", name)
        self.assertEqual((rc1, rc2), (0, 0), e1 + e2)
        return p1env, insp

    def assertNowhere(self, values, places):
        """No value in any (what, text) of places. assertFalse: a failure
        must not print what it found."""
        for what, text in places:
            for v in values:
                self.assertFalse(v in text, "a value is in %s" % what)

    def test_exec_entrypoint_app_as_uid_1000(self):
        self.exec_setup()
        script = (
            'id -u; echo "<<x"; cat /run/secrets/x; echo; echo ">>x"; '
            'echo "xmode=$(stat -c %a:%u:%g /run/secrets/x)"; '
            'cat /run/secrets/priv >/dev/null 2>&1; echo "priv_rc=$?"; '
            'echo "<<db"; cat "$DB_PASSWORD_FILE"; echo; echo ">>db"; '
            'echo "<<env"; tr "\\0" "\\n" < /proc/self/environ; echo ">>env"; '
            'echo ready; ' + UNTIL_DONE + '; exit 7')
        t0 = time.monotonic()
        with self.removed_after(self.start_exec(script)) as name:
            self.wait_output(name, "ready")
            p1env, insp = self.outside_views(name)
            rc, out, err = self.finish(name)
        took = time.monotonic() - t0
        both = out + err
        self.assertEqual(rc, 7, "container exit %r\n%s" % (rc, both))
        self.assertEqual(both.split("\n")[0].strip(), str(containers.APP_UID), both)
        self.assertEqual(between(both, "<<x\n", ">>x"), self.value)
        self.assertEqual(field(both, "xmode"), "444:0:0")
        self.assertNotEqual(field(both, "priv_rc"), "0")
        self.assertEqual(between(both, "<<db\n", ">>db"), self.db)
        envlines = between(both, "<<env\n", ">>env").splitlines()
        self.assertIn("DB_PASSWORD_FILE=/run/secrets/db_password", envlines)
        self.assertNowhere([self.value, self.db, self.priv],
                           [("the app's environ", "\n".join(envlines)), ("PID 1's environ", p1env),
                            ("%s inspect" % self.ENGINE, insp), ("stderr", err)])
        self.assertNotIn(self.priv, out)
        self.assertNotIn("libgcc_s", err)
        print("\n[%s] exec entrypoint: %.1fs" % (self.ENGINE, took), file=sys.stderr)

    def stop_case(self, script):
        self.exec_setup()
        with self.removed_after(self.start_exec(script)) as name:
            self.wait_output(name, "ready")
            t0 = time.monotonic()
            self.eng.stop(name, grace=20)
            took = time.monotonic() - t0
            rc, out, err = self.exited(name)
        return rc, took, out + err

    def test_exec_stop_app_handles_term(self):
        rc, took, log = self.stop_case(
            "trap 'echo got-term; exit 0' TERM; echo ready; "
            "while :; do sleep 0.1; done")
        self.assertEqual(rc, 0, log)
        self.assertIn("got-term", log)
        self.assertLess(took, 3.0, "the stop waited for the grace (%.1fs)" % took)
        print("\n[%s] stop, app handles TERM: %.1fs" % (self.ENGINE, took), file=sys.stderr)

    def test_exec_stop_app_ignores_term(self):
        rc, took, log = self.stop_case(
            "trap '' TERM; echo ready; while :; do sleep 0.1; done")
        self.assertEqual(rc, 137, log)
        # exec.stop_grace is 4s; docker stop's own grace (20s) never came.
        self.assertGreaterEqual(took, 4.0, log)
        self.assertLess(took, 10, log)
        print("\n[%s] stop, app ignores TERM: %.1fs" % (self.ENGINE, took), file=sys.stderr)

    # The app under `run -it`: what it records goes to /rec (a host
    # directory it owns), what it prints to the terminal.
    TTY_APP = r"""F=/rec/tty
trap 'echo got-hup >> $F' HUP
trap 'echo got-cont >> $F' CONT
trap 'echo got-int >> $F' INT
cat /proc/$$/stat > $F.stat
cat /proc/1/stat > $F.pid1
echo "secret-x=$(cat /run/secrets/x)"
echo ready >> $F
i=0
while [ ! -e $F.finish ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
[ -e $F.finish ] || { echo timeout >> $F; exit 5; }
echo finish >> $F
exit 4
"""

    def test_exec_tty_app_gets_the_terminal(self):
        # `docker run -it` with exec as the entrypoint, the engine's CLI on
        # a terminal of the test's own: the runtime makes the container's
        # terminal PID 1's, and exec hands it to the app (docs/internals/
        # exec.md, "A terminal"). The app leads a session whose controlling
        # terminal it is, in the foreground; runsecrets keeps none; the
        # kernel's HUP and CONT for the hand-over never reach the app; ^C
        # typed at the user's terminal is one SIGINT for the app, which
        # traps it and runs on; its exit status is the container's.
        self.exec_setup()
        rec = os.path.join(self.dir, "rec")
        os.mkdir(rec, 0o755)
        os.chown(rec, containers.APP_UID, containers.APP_GID)
        name = self.eng.env.new_name()
        argv = self.eng.run_argv(name, self.exec_args(self.TTY_APP), run_flags=["-it"],
                                 fuse=True, volumes=self.exec_volumes() + [(rec, "/rec")],
                                 entrypoint=containers.BINARY_IN_IMAGE)
        t0 = time.monotonic()
        term = Terminal(argv, self.eng.cli_env())
        # LIFO: the CLI is killed, then the container removed, then the
        # terminal closed, whatever failed.
        self.addCleanup(term.close)
        self.addCleanup(self.eng.rm, name)
        self.addCleanup(term.stop)
        path = os.path.join(rec, "tty")

        def count(line):
            try:
                with open(path) as f:
                    return f.read().splitlines().count(line)
            except FileNotFoundError:
                return 0

        term.until(lambda: count("ready") == 1, 30, "the app's ready")
        started = time.monotonic() - t0
        with open(path + ".stat") as f:
            app = stat_fields(f.read())
        with open(path + ".pid1") as f:
            pid1 = stat_fields(f.read())
        self.assertEqual((app["session"], app["pgrp"]), (app["pid"], app["pid"]), app)
        self.assertNotEqual(app["tty_nr"], 0, "the app has no controlling terminal")
        self.assertEqual(app["tpgid"], app["pgrp"], "the app is not in the foreground")
        self.assertEqual(pid1["pid"], 1)
        self.assertEqual(pid1["tty_nr"], 0, "runsecrets kept the terminal")
        term.drain(0.3)
        self.assertEqual((count("got-hup"), count("got-cont")), (0, 0),
                         "the hand-over's HUP or CONT reached the app")

        # Typed before the CLI's raw mode, ^C would be a SIGINT for the CLI.
        term.until(term.raw, 10, "raw mode on the CLI's terminal")
        term.type(b"\x03")
        term.until(lambda: count("got-int") >= 1, 10, "got-int")
        term.drain(0.5)
        self.assertEqual(count("got-int"), 1)
        self.assertIsNone(term.p.poll(), "the CLI exited on ^C")
        self.assertEqual((count("finish"), count("timeout")), (0, 0), "the app stopped on ^C")

        open(path + ".finish", "w").close()
        rc = term.finish(30)
        took = time.monotonic() - t0
        out = term.output()
        self.assertEqual(count("finish"), 1, out)
        self.assertEqual(rc, 4, "%s run -it exited %r\n%s" % (self.ENGINE, rc, out))
        irc, state, ierr = self.eng.cli("inspect", "--format", "{{.State.ExitCode}}", name)
        self.assertEqual((irc, state.strip()), (0, "4"), ierr)
        self.assertEqual((count("got-hup"), count("got-cont"), count("got-int")), (0, 0, 1))
        # What the app printed reached the user's terminal: the secret. One
        # echo, one write(): runsecrets' log lines share the terminal and
        # land between two writes, never inside one.
        self.assertEqual(field(out, "secret-x"), self.value, out)
        self.assertNotIn("libgcc_s", out)
        for marker in rstest.SANITIZER_MARKERS:
            self.assertNotIn(marker, out)
        print("\n[%s] run -it: app ready in %.1fs, done in %.1fs"
              % (self.ENGINE, started, took), file=sys.stderr)

    def test_exec_required_secret_missing(self):
        self.exec_setup(secrets={"db_password": {"from": "local:missing", "mode": "0444",
                                                 "env": "DB_PASSWORD_FILE"}},
                        exec_={"wait": "1s"})
        rc, out, err = self.run_exec("echo APP_RAN")
        self.assertEqual(rc, 1, "stdout:\n%s\nstderr:\n%s" % (out, err))
        self.assertNotIn("APP_RAN", out + err)
        line = [l for l in err.splitlines() if l.startswith("runsecrets exec: required")]
        self.assertEqual(len(line), 1, err)
        self.assertIn("db_password", line[0])
        self.assertNotIn("libgcc_s", err)

    def test_exec_without_fuse_names_what_is_missing(self):
        self.exec_setup()
        cases = (([], "/dev/fuse and the CAP_SYS_ADMIN capability are missing"),
                 (["--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined"],
                  "/dev/fuse is missing"),
                 (["--device", "/dev/fuse"], "the CAP_SYS_ADMIN capability is missing"))
        for extra, want in cases:
            with self.subTest(extra=extra):
                rc, out, err = self.run_exec("echo APP_RAN", fuse=False, extra=extra)
                self.assertEqual(rc, 1, "stdout:\n%s\nstderr:\n%s" % (out, err))
                self.assertIn(want, err)
                self.assertIn("--mount-from", err)
                self.assertNotIn("APP_RAN", out + err)

    def test_exec_mount_from_host_mount(self):
        # The cluster without SYS_ADMIN: the host runs `runsecrets mount`,
        # the container gets it read-only and runs exec as uid 1000 with no
        # capability and a read-only root.
        secrets = {"db_password": {"from": "local:db_password", "mode": "0444",
                                   "env": "DB_PASSWORD_FILE"},
                   "priv": {"from": "local:priv", "mode": "0400", "required": False}}
        # ONE config file for both: the host broker reads it, and the
        # container gets the same file at /cfg/config.json, its file
        # backend's path (a host directory, absent in the container)
        # included: --mount-from builds no backend and checks none of a
        # backend's own settings.
        host = self.exec_setup(backend_path=self.secrets_dir, secrets=secrets)
        b = self.start_broker(config=host)
        try:
            rc, out, err = self.eng.run(
                self.exec_args('id -u; echo "<<db"; cat "$DB_PASSWORD_FILE"; echo; echo ">>db"; '
                               '[ -e "%s" ]; echo "backend_dir_rc=$?"' % self.secrets_dir,
                               user=None, more=["--mount-from", "/secrets"]),
                user=containers.APP_UID, read_only=True, cap_drop_all=True,
                volumes=[(self.cfgdir, "/cfg", "ro"), (self.mnt, "/secrets", "ro")],
                entrypoint=containers.BINARY_IN_IMAGE,
                extra=["--security-opt", "no-new-privileges"])
        finally:
            self.assertEqual(b.stop(), 0, b.describe())
        self.assertEqual(rc, 0, "stdout:\n%s\nstderr:\n%s" % (out, err))
        self.assertEqual(out.splitlines()[0], str(containers.APP_UID))
        self.assertEqual(between(out, "<<db\n", ">>db"), self.db)
        self.assertEqual(field(out, "backend_dir_rc"), "1", "the host's backend path is there")
        self.assertNotIn(self.priv, out + err)
        self.assertNotIn(self.db, err)


    def test_exec_reaps_orphans(self):
        # 1,000 grandchildren orphaned to PID 1: 20 subshells start 50
        # sleeps each and exit before their sleeps do (batches, so fewer
        # forks than one sh per orphan, and fewer at once than podman's
        # nproc 1024); once they have exited, no zombie is left.
        self.exec_setup()
        script = ("i=0; for j in $(seq 20); do ( for k in $(seq 50); do sleep 0.3 & done ); "
                  "i=$((i+50)); done; sleep 1.5; echo \"orphans_done=$i\"; "
                  "echo \"zombies=$(grep -l '^State:[[:space:]]*Z' /proc/[0-9]*/status "
                  "2>/dev/null | wc -l)\"")
        t0 = time.monotonic()
        rc, out, err = self.run_exec(script, timeout=90)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "stdout:\n%s\nstderr:\n%s" % (out, err))
        self.assertEqual(field(out, "orphans_done"), "1000", out)
        self.assertEqual(field(out, "zombies"), "0", out)
        print("\n[%s] 1,000 orphans reaped: %.1fs" % (self.ENGINE, took), file=sys.stderr)

    def test_exec_rotation_signals_once(self):
        # The file backend's directory is bind-mounted from the host: a new
        # value written there is the next open's, and on_change
        # signal:SIGHUP gives the app exactly one HUP.
        self.exec_setup(secrets={"x": {"from": "local:x", "mode": "0444",
                                       "on_change": "signal:SIGHUP"}})
        new = rstest.random_value()
        script = ('trap "echo got-hup" HUP; echo "<<before"; cat /run/secrets/x; echo; '
                  'echo ">>before"; echo ready; ' + UNTIL_DONE + '; '
                  'echo "<<after"; cat /run/secrets/x; echo; echo ">>after"')
        with self.removed_after(self.start_exec(script)) as name:
            self.wait_output(name, "ready")
            self.write_secret("x", new)
            self.wait_output(name, "got-hup", timeout=15)
            time.sleep(2.5)           # two more refreshes: no second HUP
            rc, out, err = self.finish(name)
        both = out + err
        self.assertEqual(rc, 0, both)
        self.assertEqual(between(both, "<<before\n", ">>before"), self.value)
        self.assertEqual(between(both, "<<after\n", ">>after"), new)
        self.assertEqual(both.count("got-hup"), 1, both)
        self.assertNotIn(new, err)

    # ---- a network backend, a debounced restart, nothing on the container's disk

    def test_exec_vault_backend_network_host(self):
        # The strict Vault fake on the host's 127.0.0.1 (TLS with a CA of
        # the test's own), the container on the host's network: exec logs
        # in from inside the container with a token FILE bound read-only
        # (0600 root, so the app cannot read it), never a variable, so no
        # environ, `inspect` or log line can hold it.
        pki = os.path.join(self.dir, "pki")
        ca = vaultenv.make_ca_and_cert(pki)["ca.pem"]
        vault = vaultenv.FakeVault(tls_dir=pki).start()
        self.addCleanup(vault.stop)
        vault.add_kv_mount("secret", version=2)
        pw = rstest.random_value()
        vault.put_kv("secret", "app", {"password": pw, "user": "app"})
        token = vault.add_token(ttl=3600, max_ttl=86400, policies=["app"],
                                display_name="rsct")
        vdir = os.path.join(self.dir, "vault")
        os.mkdir(vdir, 0o755)
        shutil.copyfile(ca, os.path.join(vdir, "ca.pem"))
        os.chmod(os.path.join(vdir, "ca.pem"), 0o644)
        with open(os.path.join(vdir, "token"), "w") as f:
            f.write(token + "\n")
        os.chmod(os.path.join(vdir, "token"), 0o600)
        self.exec_setup(
            backends={"vault": {"type": "vault", "address": vault.url,
                                "ca_file": "/vault/ca.pem",
                                "auth": {"method": "token", "token_file": "/vault/token"}}},
            secrets={"db_password": {"from": "vault:secret/app#password", "mode": "0440",
                                     "gid": 1000, "env": "DB_PASSWORD_FILE"}})
        script = (
            'id -u; echo "<<db"; cat /run/secrets/db_password; echo; echo ">>db"; '
            'echo "dbmode=$(stat -c %a:%u:%g /run/secrets/db_password)"; '
            'echo "envfile=$DB_PASSWORD_FILE"; '
            'cat /vault/token >/dev/null 2>&1; echo "token_rc=$?"; '
            'echo "<<env"; tr "\\0" "\\n" < /proc/self/environ; echo ">>env"; '
            'echo ready; ' + UNTIL_DONE + '; exit 0')
        t0 = time.monotonic()
        name = self.eng.start(self.exec_args(script), fuse=True, network="host",
                              volumes=[(self.cfgdir, "/cfg", "ro"), (vdir, "/vault", "ro")],
                              entrypoint=containers.BINARY_IN_IMAGE)
        with self.removed_after(name):
            self.wait_output(name, "ready")
            p1env, insp = self.outside_views(name)
            rc, out, err = self.finish(name)
            # Exited, not removed yet: its files hold neither.
            self.assertNoPlaintextOnDisk(name, [pw, token])
        took = time.monotonic() - t0
        both = out + err
        self.assertEqual(rc, 0, "container exit %r\n%s" % (rc, both))
        self.assertEqual(both.split("\n")[0].strip(), str(containers.APP_UID), both)
        self.assertEqual(between(both, "<<db\n", ">>db"), pw)
        self.assertEqual(field(both, "dbmode"), "440:0:1000")
        self.assertEqual(field(both, "envfile"), "/run/secrets/db_password")
        self.assertNotEqual(field(both, "token_rc"), "0", "the app read the token file")
        self.assertNowhere([token, pw],
                           [("the app's environ", between(both, "<<env\n", ">>env")),
                            ("PID 1's environ", p1env), ("%s inspect" % self.ENGINE, insp),
                            ("stderr", err)])
        self.assertNowhere([token], [("stdout", out)])
        # It was the container that fetched, over the network, with the
        # token of the file.
        reads = vault.requests(method="GET", prefix="secret/data/app")
        self.assertTrue(any(e["status"] == 200 for e in reads), vault.requests())
        self.assertEqual({e["token"] for e in vault.requests() if e["rel"]}, {token})
        print("\n[%s] exec with Vault over the host network: %.1fs" % (self.ENGINE, took),
              file=sys.stderr)

    def test_exec_restart_once_for_a_burst(self):
        # on_change "restart": five new values within a second, inside one
        # exec.debounce (2s, counted from the first change), give ONE
        # restart, and the restarted app reads the last value.
        self.exec_setup(secrets={"x": {"from": "local:x", "mode": "0444", "refresh": "200ms",
                                       "on_change": "restart"}},
                        exec_={"debounce": "2s", "stop_grace": "2s"})
        script = ('echo app-start; trap "echo app-term; exit 0" TERM; '
                  'echo "<<v"; cat /run/secrets/x; echo; echo ">>v"; echo app-ready; ' + UNTIL_DONE)
        values = [rstest.random_value() for _ in range(5)]
        t0 = time.monotonic()
        with self.removed_after(self.start_exec(script)) as name:
            self.wait_output(name, "app-ready")
            for v in values:
                self.write_secret("x", v)
                time.sleep(0.2)
            self.wait_output(name, "app-ready", count=2, timeout=15)
            # A change seen after the restart would be logged at once (the
            # next debounce starts then): five refreshes show there is none.
            time.sleep(1.0)
            rc, out, err = self.finish(name)
        took = time.monotonic() - t0
        both = out + err
        self.assertEqual(rc, 0, both)
        self.assertEqual(out.count("app-start"), 2, both)
        self.assertEqual(out.count("app-term"), 1, both)
        self.assertEqual(err.count("secret changed, restarting the application"), 1, err)
        blocks = out.split("<<v\n")[1:]
        self.assertEqual([b.split(">>v")[0].strip("\n") for b in blocks],
                         [self.value, values[-1]], both)
        for v in values:
            self.assertNotIn(v, err)
        print("\n[%s] restart once for a burst: %.1fs" % (self.ENGINE, took), file=sys.stderr)

    def test_exec_no_plaintext_on_container_disk(self):
        # The app has read its secrets and the container has exited: its
        # files (the image and the writable layer: `export`; bind mounts are
        # not in it) hold no value, and `diff` names no file under
        # /run/secrets. The app writes a marker to /tmp, which the export
        # must show: the search works on what the container wrote.
        self.exec_setup()
        marker = rstest.random_value(prefix="rs-marker-")
        script = ('cat /run/secrets/x "$DB_PASSWORD_FILE" >/dev/null && echo read-ok; '
                  'echo "$MARKER" > /tmp/marker')
        with self.removed_after(self.start_exec(script, env={"MARKER": marker})) as name:
            rc, out, err = self.exited(name)
            self.assertEqual(rc, 0, out + err)
            self.assertIn("read-ok", out)
            self.assertNoPlaintextOnDisk(name, [self.value, self.db, self.priv],
                                         control=marker)
            drc, diff, derr = self.eng.cli("diff", name)
        self.assertEqual(drc, 0, derr)
        changed = sorted(l.split(None, 1)[1] for l in diff.splitlines() if l.strip())
        self.assertIn("/tmp/marker", changed, diff)
        self.assertEqual([p for p in changed if p.startswith("/run/secrets/")], [], diff)
        print("\n[%s] diff after exec: %s" % (self.ENGINE, " ".join(changed)), file=sys.stderr)
        # The image: made before this test's values existed, so it cannot
        # hold them; `save` is checked once (Docker) because an image is
        # what people push. /etc/passwd's app line is the control.
        if self.ENGINE == "docker":
            ctl = "app:x:%d:%d:app:/home/app:/bin/sh" % (containers.APP_UID, containers.APP_GID)
            src, found, n, serr = self.eng.scan(["save", self.eng.image],
                                                [self.value, self.db, self.priv, ctl])
            self.assertEqual(src, 0, serr)
            self.assertTrue(found[ctl.encode()], "save: the control is not in %d bytes" % n)
            self.assertEqual([v for v, f in found.items() if f and v != ctl.encode()], [])

    def assertNoPlaintextOnDisk(self, name, values, control=None):
        needles = list(values) + ([control] if control else [])
        t0 = time.monotonic()
        rc, found, n, err = self.eng.scan(["export", name], needles)
        self.assertEqual(rc, 0, "%s export: %s" % (self.ENGINE, err))
        self.assertGreater(n, 1 << 20, "the export is too small to be the container's files")
        if control:
            self.assertTrue(found[control.encode()],
                            "the marker the app wrote is not in the export (%d bytes)" % n)
        leaked = [i for i, v in enumerate(values) if found[v.encode()]]
        self.assertEqual(leaked, [], "values #%s are in the container's files" % leaked)
        print("\n[%s] export of %d MiB searched in %.1fs"
              % (self.ENGINE, n >> 20, time.monotonic() - t0), file=sys.stderr)

    def test_example_exec(self):
        # examples/container as its Dockerfile runs it: exec --user app in
        # front of app.sh, which reads DB_PASSWORD_FILE and exits 0 on TERM.
        name = self.eng.start(
            ["exec", "--config", "/etc/runsecrets/config.json", "--user", "app", "--",
             "/bin/sh", "/app.sh"], fuse=True, entrypoint=containers.BINARY_IN_IMAGE,
            volumes=[(os.path.join(EXAMPLES, "container", "config.json"),
                      "/etc/runsecrets/config.json", "ro"),
                     (os.path.join(EXAMPLES, "container", "app.sh"), "/app.sh", "ro"),
                     (os.path.join(EXAMPLES, "secrets"), "/etc/runsecrets/secrets", "ro")])
        with self.removed_after(name):
            self.wait_output(name, "bytes")
            self.eng.stop(name, grace=20)
            rc, out, err = self.exited(name)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("app: uid 1000, DB_PASSWORD_FILE=/run/secrets/db_password", out)
        with open(os.path.join(EXAMPLES, "secrets", "db_password"), "rb") as f:
            self.assertIn("app: password is %d bytes" % len(f.read()), out)
        self.assertIn("app: TERM, exiting", out)

class DockerTest(ContainerCase):
    ENGINE = "docker"


class PodmanTest(ContainerCase):
    ENGINE = "podman"


# Issue 13's Compose cases (composecases.py), on this file's dockerd, podman
# store and image: defined here so this module's setUpModule serves them.
class DockerComposeTest(composecases.ComposeCases, EngineCase):
    ENGINE = "docker"


class PodmanComposeTest(composecases.ComposeCases, EngineCase):
    ENGINE = "podman"


del ContainerCase, EngineCase      # not tests of their own

if __name__ == "__main__":
    rstest.main()
