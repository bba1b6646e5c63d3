"""containers - real Docker and Podman containers for the integration tests.

One test run (one test file) gets:
- ONE private dockerd (its own --data-root, --exec-root, --pidfile and unix
  socket under a temporary directory; no bridge, no iptables), so nothing of
  the host's Docker is touched;
- podman with its own --root/--runroot/--tmpdir under the same directory, so
  the host's podman store is not touched either;
- ONE minimal image, imported into both engines from the same tarball: the
  runsecrets binary, exactly the libraries `runsecrets version --libraries`
  lists (what ldd lists and what it loads on use; see MINIMAL_EXTRA_LIBS),
  a static busybox, /etc/passwd and /etc/group
  with root and app (1000:1000), /tmp and /run. docs/containers.md lists it.

Everything is bounded and everything is removed at the end (containers,
images, the daemon, its containerd and shims, mounts under the directory,
the directory, the per-run cgroup parent every container is put under, and
the few host paths the engines create whatever their options, when they
were not there before: with runs of other worktrees at the same time, the
last one to end does that), from tearDownModule and, as a last resort,
from atexit. teardown() returns what it still found: a test fails on it.

Use from a test file (which runs under rstest.main, so inside a private
mount namespace: the engines' overlay mounts never reach the host):

    import containers
    def setUpModule():    containers.setup(rstest.BINARY)
    def tearDownModule(): containers.teardown()
    ...
    for eng in containers.engines():          # docker, podman
        rc, out, err = eng.run(["runsecrets", "version"])
        rc, out, err = eng.run(cmd, fuse=True, volumes=[(host, "/cfg", "ro")])
        name = eng.start(cmd, fuse=True)      # detached; eng.exec/logs/wait/stop/rm
        rc, out, err = eng.cli("inspect", name)
        containers.current().image_files      # what the image holds
        eng.compose_env()                     # docker only: DOCKER_HOST for docker-compose

Standard library only.
"""

import atexit
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

# Bounds (seconds).
DAEMON_READY_TIMEOUT = 30.0
DAEMON_STOP_TIMEOUT = 20.0
RUN_TIMEOUT = 60.0
CLI_TIMEOUT = 60.0

IMAGE_REPO = "localhost/runsecrets-min"
BINARY_IN_IMAGE = "/usr/local/bin/runsecrets"
APP_UID = 1000
APP_GID = 1000

# Busybox applets linked in the image (the shell scripts of the tests use
# them; /bin/busybox itself answers any other name).
BUSYBOX_APPLETS = ("sh", "cat", "ls", "id", "sleep", "kill", "grep", "stat", "echo", "test",
                   "[", "ps", "mkdir", "rm", "head", "tail", "wc", "true", "false", "env",
                   "chmod", "sed", "tr", "cut", "timeout", "mount", "umount", "wait", "pidof",
                   "printf", "seq", "find", "readlink", "dd", "hexdump", "od", "tee", "touch",
                   "uname", "whoami", "date", "expr", "nproc", "usleep", "xargs", "ln", "cp")

# Libraries loaded at run time with dlopen that `version --libraries` does
# not list (it lists ldd's and the ones runsecrets loads on use): none.
# libgcc_s.so.1 was one while the FUSE loop was libfuse's
# fuse_session_loop_mt, which stops its workers with pthread_cancel (glibc
# 2.34+ dlopens libgcc_s for that, and aborts without it); the broker's own
# loop (fuse/fs.c) cancels nothing, and test_containers.py checks that the
# image holds only what ldd lists (docs/containers.md).
MINIMAL_EXTRA_LIBS = ()

# Files every container has that the image does not: the engines' markers
# and what they bind-mount over /etc.
ENGINE_FILES = frozenset({"/.dockerenv", "/run/.containerenv", "/etc/hosts", "/etc/hostname",
                          "/etc/resolv.conf"})

PODMAN_RUN_FLAGS = ["--runtime", "runc",
                    "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
FUSE_FLAGS = ["--device", "/dev/fuse", "--cap-add", "SYS_ADMIN",
              "--security-opt", "apparmor=unconfined"]

_env = None


class ContainersUnavailable(Exception):
    """An engine is not installed or cannot start here."""


# --------------------------------------------------------------------------
# helpers


def _run(cmd, timeout, env=None, input=None):
    """(rc, stdout, stderr) as text; rc is None on timeout."""
    try:
        r = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        err = (e.stderr or b"").decode("utf-8", "replace")
        return None, out, err + "\n(timed out after %.0fs)" % timeout
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def ldd_paths(binary):
    """The files `ldd` lists for binary: every resolved library and the
    dynamic loader, as absolute paths (the vDSO is no file)."""
    rc, out, err = _run(["ldd", binary], 30)
    if rc != 0:
        raise ContainersUnavailable("ldd %s failed: %s" % (binary, err.strip()))
    paths = []
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (")[0].strip()
            if target.startswith("/"):
                paths.append(target)
            elif target == "not found" or "not found" in line:
                raise ContainersUnavailable("ldd: %s" % line)
        elif line.startswith("/"):
            paths.append(line.split(" (")[0].strip())     # the loader
    return paths


def image_libraries(binary):
    """What `binary version --libraries` lists: every shared object it
    links or loads on use (libcurl, OpenSSL, libmicrohttpd and what they
    pull in), the loader included, as absolute paths."""
    rc, out, err = _run([binary, "version", "--libraries"], 30)
    paths = out.split()
    if rc != 0 or not paths or not all(p.startswith("/") for p in paths):
        raise RuntimeError("%s version --libraries: exit %d: %s%s" % (binary, rc, out, err))
    return paths


def _ldconfig_lookup(soname):
    """Where the host's loader finds soname (ldconfig -p)."""
    rc, out, _ = _run(["ldconfig", "-p"], 30)
    found = []
    for line in (out or "").splitlines():
        line = line.strip()
        if line.startswith(soname + " ") and "=>" in line:
            found.append((line, line.split("=>", 1)[1].strip()))
    # A multilib host lists the 32-bit one too: take the 64-bit one.
    for line, path in found:
        if "x86-64" in line or "AArch64" in line:
            return path
    return found[0][1] if found else None


def _which(names):
    for n in names:
        if os.path.isabs(n):
            if os.access(n, os.X_OK):
                return n
            continue
        p = shutil.which(n)
        if p:
            return p
    return None


def _copy_file(src, rootfs, dest=None):
    """Copy src's content (symlinks followed) to the same path in rootfs."""
    dest = dest or src
    target = os.path.join(rootfs, dest.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(os.path.realpath(src), target)
    return dest


def build_rootfs(binary, rootfs, busybox="/bin/busybox", extra_libs=MINIMAL_EXTRA_LIBS):
    """The minimal image's root filesystem. Returns the sorted list of the
    files put in it (absolute paths in the image), for docs and asserts."""
    files = []
    os.makedirs(rootfs)
    for d, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("run", 0o755),
                    ("usr/local/bin", 0o755), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755),
                    ("home/app", 0o755), ("root", 0o700)):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        os.chmod(os.path.join(rootfs, d), mode)
    os.chown(os.path.join(rootfs, "home/app"), APP_UID, APP_GID)
    files.append(_copy_file(binary, rootfs, BINARY_IN_IMAGE))
    for lib in image_libraries(binary):
        files.append(_copy_file(lib, rootfs))
    for soname in extra_libs:
        path = _ldconfig_lookup(soname)
        if not path:
            raise ContainersUnavailable("%s not found on the host (ldconfig -p)" % soname)
        files.append(_copy_file(path, rootfs))
    if not os.path.exists(busybox):
        raise ContainersUnavailable("%s is missing: apt-get install busybox-static "
                                    "(scripts/deps.sh)" % busybox)
    files.append(_copy_file(busybox, rootfs, "/bin/busybox"))
    for applet in BUSYBOX_APPLETS:
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    with open(os.path.join(rootfs, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n"
                "app:x:%d:%d:app:/home/app:/bin/sh\n" % (APP_UID, APP_GID))
    with open(os.path.join(rootfs, "etc/group"), "w") as f:
        f.write("root:x:0:\napp:x:%d:\n" % APP_GID)
    files += ["/etc/passwd", "/etc/group"]
    return sorted(set(files))


# --------------------------------------------------------------------------
# engines


class Engine:
    """One container engine (docker or podman) with its private state."""

    name = None

    def __init__(self, env):
        self.env = env
        self.image = None
        self.started = []          # names of containers started detached

    # -- subclasses

    def base_cmd(self):
        raise NotImplementedError

    def run_flags(self):
        return []

    def cli_env(self):
        return None

    # -- the API

    def cli(self, *args, timeout=CLI_TIMEOUT, input=None):
        """Run the engine's CLI: (rc, stdout, stderr); rc None on timeout."""
        return _run(self.base_cmd() + [str(a) for a in args], timeout, env=self.cli_env(),
                    input=input)

    def _create_args(self, cmd, fuse, user, network, volumes, env, read_only, cap_drop_all,
                     entrypoint, extra):
        args = ["--network", network, "--cgroup-parent", "/" + self.env.cgroup] \
            + self.run_flags()
        if fuse:
            args += FUSE_FLAGS
        if cap_drop_all:
            args += ["--cap-drop", "ALL"]
        if read_only:
            args += ["--read-only"]
        if user is not None:
            args += ["--user", str(user)]
        for v in volumes or ():
            args += ["-v", ":".join(v) if isinstance(v, (tuple, list)) else v]
        for k, val in (env or {}).items():
            args += ["-e", "%s=%s" % (k, val)]
        if entrypoint is not None:
            args += ["--entrypoint", entrypoint]
        args += list(extra or ())
        return args + [self.image] + [str(c) for c in cmd]

    def run(self, cmd, timeout=RUN_TIMEOUT, fuse=False, user=None, network="none",
            volumes=None, env=None, read_only=False, cap_drop_all=False, entrypoint=None,
            extra=None, input=None):
        """Run cmd in a new container of the minimal image and wait for it:
        (exit code, stdout, stderr). The container is removed (--rm, and
        rm -f when the wait timed out, with rc None). volumes: (host,
        container[, opts]) tuples or "-v" strings. fuse: the device and
        capabilities FUSE needs."""
        name = self.env.new_name()
        # --rm: gone when it ends; rm -f below when the client gave up first.
        args = ["run", "--rm", "--name", name]
        if input is not None:
            args.append("-i")
        args += self._create_args(cmd, fuse, user, network, volumes, env, read_only,
                                  cap_drop_all, entrypoint, extra)
        res = (None, "", "")
        try:
            res = self.cli(*args, timeout=timeout, input=input)
            return res
        finally:
            # --rm removed it unless the client gave up (timeout) or the
            # engine failed around it (125 and up).
            if res[0] is None or res[0] >= 125:
                self.rm(name)

    def start(self, cmd, fuse=False, user=None, network="none", volumes=None, env=None,
              read_only=False, cap_drop_all=False, entrypoint=None, extra=None):
        """Start a detached container; returns its name (removed by
        teardown at the latest, or by rm())."""
        name = self.env.new_name()
        args = ["run", "-d", "--name", name] + self._create_args(
            cmd, fuse, user, network, volumes, env, read_only, cap_drop_all, entrypoint, extra)
        self.started.append(name)
        rc, out, err = self.cli(*args)
        if rc != 0:
            self.rm(name)
            raise AssertionError("%s run -d failed (%r): %s" % (self.name, rc, err.strip()))
        return name

    def run_argv(self, name, cmd, run_flags=(), fuse=False, user=None, network="none",
                 volumes=None, env=None, entrypoint=None, extra=None):
        """The whole command line of `run --name NAME RUN_FLAGS ...`, for a
        test that runs the CLI itself (with cli_env()): on a terminal of its
        own, say. The test removes the container (rm)."""
        return self.base_cmd() + ["run", "--name", name] + list(run_flags) + self._create_args(
            cmd, fuse, user, network, volumes, env, False, False, entrypoint, extra)

    def scan(self, args, needles, timeout=CLI_TIMEOUT):
        """Run the engine's CLI and search its stdout, streamed (never
        stored), for each needle (bytes): (rc, {needle: found}, bytes
        read, stderr). For `export NAME` and `save IMAGE`, whose tar
        streams are the container's or image's files. rc None on timeout."""
        needles = [n.encode() if isinstance(n, str) else n for n in needles]
        found = {n: False for n in needles}
        keep = max((len(n) for n in needles), default=1) - 1
        total = 0
        tail = b""
        with tempfile.TemporaryFile() as errf:
            proc = subprocess.Popen(self.base_cmd() + [str(a) for a in args],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=errf, env=self.cli_env())
            # A CLI that hangs mid-stream blocks the read: a timer kills it.
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            try:
                while True:
                    chunk = proc.stdout.read1(1 << 20)
                    if not chunk:
                        break
                    total += len(chunk)
                    buf = tail + chunk        # a needle may straddle two chunks
                    for n in needles:
                        if not found[n] and n in buf:
                            found[n] = True
                    tail = buf[-keep:] if keep else b""
                rc = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                rc = None
            finally:
                timed_out = not timer.is_alive()
                timer.cancel()
                proc.stdout.close()
            if timed_out:
                rc = None
            errf.seek(0)
            err = errf.read().decode("utf-8", "replace")
        return rc, found, total, err

    def exec(self, name, cmd, timeout=RUN_TIMEOUT, user=None):
        args = ["exec"]
        if user is not None:
            args += ["--user", str(user)]
        return self.cli(*(args + [name] + [str(c) for c in cmd]), timeout=timeout)

    def logs(self, name):
        """(stdout, stderr) of a container so far."""
        _, out, err = self.cli("logs", name)
        return out, err

    def wait(self, name, timeout=RUN_TIMEOUT):
        """The container's exit code (None on timeout)."""
        rc, out, _ = self.cli("wait", name, timeout=timeout)
        if rc != 0:
            return None
        try:
            return int(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None

    def kill(self, name, sig="TERM"):
        return self.cli("kill", "--signal", sig, name)

    def stop(self, name, grace=10, timeout=None):
        return self.cli("stop", "-t", str(grace), name, timeout=timeout or grace + 30)

    def running(self, name):
        rc, out, _ = self.cli("inspect", "--format", "{{.State.Running}}", name)
        return rc == 0 and out.strip() == "true"

    def rm(self, name):
        """Remove a container, whatever its state. Never raises."""
        self.cli("rm", "-f", name, timeout=CLI_TIMEOUT)
        if name in self.started:
            self.started.remove(name)

    def import_image(self, tarball, tag):
        rc, out, err = self.cli("import", tarball, tag, timeout=120)
        if rc != 0:
            raise ContainersUnavailable("%s import failed: %s" % (self.name, err.strip()))
        self.image = tag

    def containers(self):
        """Names of every container of this engine's private state."""
        rc, out, _ = self.cli("ps", "-a", "--format", "{{.Names}}")
        return [n for n in out.split() if n] if rc == 0 else []

    def cleanup(self):
        """Remove every container and the image. Never raises."""
        for n in self.containers():
            self.cli("rm", "-f", n)
        if self.image:
            self.cli("rmi", "-f", self.image)


class Docker(Engine):
    """A private dockerd for this run."""

    name = "docker"

    def __init__(self, env):
        super().__init__(env)
        self.dir = os.path.join(env.dir, "docker")
        self.sock = os.path.join(self.dir, "sock")
        self.pidfile = os.path.join(self.dir, "pid")
        self.proc = None
        self.log = None
        self.client = _which(["/usr/bin/docker", "docker"])
        self.dockerd = _which(["/usr/sbin/dockerd", "/usr/bin/dockerd", "dockerd"])
        if not self.client or not self.dockerd:
            raise ContainersUnavailable("docker is not installed: apt-get install docker.io "
                                        "(scripts/deps.sh)")

    def base_cmd(self):
        return [self.client, "-H", "unix://" + self.sock]

    def cli_env(self):
        env = dict(os.environ)
        env.pop("DOCKER_HOST", None)
        env["DOCKER_CONFIG"] = os.path.join(self.dir, "client")    # not ~/.docker
        return env

    def compose_env(self):
        """The environment for docker-compose to use this run's daemon."""
        env = self.cli_env()
        env["DOCKER_HOST"] = "unix://" + self.sock
        return env

    def start_daemon(self):
        os.makedirs(self.dir)
        cmd = [self.dockerd, "--data-root", os.path.join(self.dir, "data"),
               "--exec-root", os.path.join(self.dir, "exec"), "--pidfile", self.pidfile,
               "-H", "unix://" + self.sock, "--bridge=none", "--iptables=false",
               "--ip-masq=false", "--cgroup-parent", "/" + self.env.cgroup]
        self.log = open(os.path.join(self.dir, "dockerd.log"), "wb")
        # Its own session: a ^C to the test reaches the test, which stops
        # the daemon in order, rather than reaching the daemon first.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + DAEMON_READY_TIMEOUT
        while True:
            rc, out, err = self.cli("info", "--format", "{{.ServerVersion}}", timeout=10)
            if rc == 0 and out.strip():
                self.version = out.strip()
                return
            if self.proc.poll() is not None:
                raise ContainersUnavailable("dockerd exited (%d) before it was ready:\n%s"
                                            % (self.proc.returncode, self.daemon_log()[-3000:]))
            if time.monotonic() >= deadline:
                raise ContainersUnavailable("dockerd not ready within %.0fs:\n%s"
                                            % (DAEMON_READY_TIMEOUT, self.daemon_log()[-3000:]))
            time.sleep(0.2)

    def daemon_log(self):
        try:
            with open(os.path.join(self.dir, "dockerd.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop_daemon(self):
        """SIGTERM, wait, SIGKILL after DAEMON_STOP_TIMEOUT. Never raises."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=DAEMON_STOP_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        if self.log:
            self.log.close()
            self.log = None


class Podman(Engine):
    """podman with a private store under the run's directory."""

    name = "podman"

    def __init__(self, env):
        super().__init__(env)
        self.dir = os.path.join(env.dir, "podman")
        self.client = _which(["/usr/bin/podman", "podman"])
        if not self.client:
            raise ContainersUnavailable("podman is not installed: apt-get install podman runc "
                                        "(scripts/deps.sh)")
        for d in ("root", "run", "tmp", "volumes"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)

    def base_cmd(self):
        return [self.client,
                "--root", os.path.join(self.dir, "root"),
                "--runroot", os.path.join(self.dir, "run"),
                "--tmpdir", os.path.join(self.dir, "tmp"),
                "--volumepath", os.path.join(self.dir, "volumes"),
                "--storage-driver", "overlay",
                "--cgroup-manager", "cgroupfs",
                "--events-backend", "none",
                "--runtime", "runc"]

    def cli_env(self):
        env = dict(os.environ)
        # Nothing from the host's containers.conf/storage.conf redirects us.
        env.pop("CONTAINERS_STORAGE_CONF", None)
        env["XDG_RUNTIME_DIR"] = os.path.join(self.dir, "run")
        return env

    def run_flags(self):
        return list(PODMAN_RUN_FLAGS)

    def check(self):
        rc, out, err = self.cli("version", "--format", "{{.Client.Version}}", timeout=30)
        if rc != 0:
            raise ContainersUnavailable("podman does not work here: %s" % err.strip())
        self.version = out.strip()

    def cleanup(self):
        super().cleanup()
        # Layers and anything else the private store still holds.
        self.cli("system", "prune", "-a", "-f", timeout=CLI_TIMEOUT)


# --------------------------------------------------------------------------
# the run's environment


class Env:
    def __init__(self, binary):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="rsct-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.run_id = uuid.uuid4().hex[:10]
        self.counter = 0
        self.engines = []
        self.image_files = []
        self.tag = "%s:%s" % (IMAGE_REPO, self.run_id)
        self.timings = {}
        # Every container's cgroup lives under this parent, removed at the end.
        self.cgroup = "rsct-%s" % self.run_id
        self.host_paths_before = host_paths_before(self.dir)
        with open(os.path.join(self.dir, HOST_PATHS_RECORD), "w") as f:
            json.dump(self.host_paths_before, f)

    def new_name(self):
        self.counter += 1
        return "rs-%s-%d" % (self.run_id, self.counter)

    def build(self):
        t0 = time.monotonic()
        rootfs = os.path.join(self.dir, "rootfs")
        self.image_files = build_rootfs(self.binary, rootfs)
        tarball = os.path.join(self.dir, "rootfs.tar")
        rc, _, err = _run(["tar", "--numeric-owner", "-C", rootfs, "-cf", tarball, "."], 120)
        if rc != 0:
            raise ContainersUnavailable("tar: %s" % err.strip())
        self.timings["rootfs"] = time.monotonic() - t0

        t0 = time.monotonic()
        d = Docker(self)
        self.engines.append(d)
        d.start_daemon()
        self.timings["dockerd ready"] = time.monotonic() - t0
        p = Podman(self)
        self.engines.append(p)
        p.check()
        for e in self.engines:
            t0 = time.monotonic()
            e.import_image(tarball, self.tag)
            self.timings["%s import" % e.name] = time.monotonic() - t0
        os.unlink(tarball)

    def teardown(self):
        """Everything back as it was. Never raises; returns what it found
        still there at the end (strings), [] when clean."""
        for e in self.engines:
            try:
                e.cleanup()
            except Exception:   # noqa: BLE001 - go on with the rest
                pass
        for e in self.engines:
            if isinstance(e, Docker):
                e.stop_daemon()
        self._kill_leftover_processes()
        self._unmount_under_dir()
        shutil.rmtree(self.dir, ignore_errors=True)
        remove_cgroups(self.cgroup)
        # The host paths are shared: while another run's engines live they
        # may hold its sockets (containerd's shims put theirs under
        # /run/containerd/s whatever the daemon's options), so the last run
        # to end removes and checks them.
        others = other_live_runs(self.dir)
        if not others:
            self._remove_host_paths()
        found = leftovers(self.dir)
        found += ["cgroup %s" % c for c in cgroups_named(self.cgroup)]
        found += ["host path %s (created by the engines)" % p for p in HOST_PATHS
                  if os.path.lexists(p) and not self.host_paths_before[p] and not others]
        return found

    def _remove_host_paths(self):
        """What the engines create outside our directory whatever their
        options (dockerd's trust key, empty state directories): removed
        when it was not there before and holds nothing else."""
        for p in HOST_PATHS:                      # deepest first
            if self.host_paths_before[p] or not os.path.lexists(p):
                continue
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    os.rmdir(p)                   # only when empty
                else:
                    os.unlink(p)
            except OSError:
                pass

    def _kill_leftover_processes(self):
        """Processes whose command line names our directory (containerd,
        shims, conmon) and outlived their daemon: by pid, TERM then KILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = processes_naming(self.dir)
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            if pids:
                deadline = time.monotonic() + 5
                while processes_naming(self.dir) and time.monotonic() < deadline:
                    time.sleep(0.1)

    def _unmount_under_dir(self):
        for _ in range(5):
            left = mounts_under(self.dir)
            if not left:
                return
            for mp in sorted(left, key=len, reverse=True):
                subprocess.run(["umount", "-l", mp], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)


# Paths engines may create outside the run's directory, deepest first.
HOST_PATHS = ("/etc/docker/key.json", "/etc/docker", "/run/docker/plugins", "/run/containerd/s",
              "/run/containerd/runc", "/run/containerd", "/run/runc", "/run/crun",
              "/run/libpod", "/run/containers/storage", "/run/containers",
              "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
              "/var/lib/containers/cache", "/var/lib/containers/storage", "/var/lib/containers",
              "/var/lib/docker",
              "/var/run/docker.sock", "/run/docker", "/etc/cni/net.d", "/etc/cni")

CGROUP_ROOTS = ("/sys/fs/cgroup",)

# Each run's record of HOST_PATHS as it found them, in its directory.
RUN_DIR_GLOB = "/tmp/rsct-*"
HOST_PATHS_RECORD = "host-paths-before.json"


def other_live_runs(mydir):
    """Directories of the other runs (another worktree's test, at the same
    time) whose engines are still running."""
    return [d for d in glob.glob(RUN_DIR_GLOB)
            if d != mydir and os.path.isdir(d) and processes_naming(d + "/")]


def host_paths_before(mydir):
    """{path: existed} for HOST_PATHS, as the host had them: a path that
    another live run found absent was made by its engines, not the host's,
    so this run must not keep it either (the last run removes it)."""
    before = {p: os.path.lexists(p) for p in HOST_PATHS}
    for d in other_live_runs(mydir):
        try:
            with open(os.path.join(d, HOST_PATHS_RECORD)) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        for p in HOST_PATHS:
            if rec.get(p) is False:
                before[p] = False
    return before


def cgroups_named(name):
    """The directories of cgroup name (a top-level one) in every hierarchy."""
    out = []
    for root in CGROUP_ROOTS:
        try:
            hier = os.listdir(root)
        except OSError:
            continue
        for h in hier + [""]:
            d = os.path.join(root, h, name)
            if os.path.isdir(d):
                out.append(d)
    return out


def remove_cgroups(name):
    """rmdir the cgroup name and its children (empty once their processes
    are gone) in every hierarchy, deepest first; bounded retries."""
    for _ in range(20):
        dirs = cgroups_named(name)
        if not dirs:
            return
        for top in dirs:
            for d, _, _ in sorted(os.walk(top), key=lambda t: len(t[0]), reverse=True):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        time.sleep(0.1)


def processes_naming(path):
    """Pids (not ours) whose command line holds path."""
    me = os.getpid()
    out = []
    needle = path.encode()
    for ent in os.listdir("/proc"):
        if not ent.isdigit() or int(ent) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % ent, "rb") as f:
                if needle in f.read():
                    out.append(int(ent))
        except OSError:
            continue
    return out


def mounts_under(path):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp == path or mp.startswith(path + "/"):
                out.append(mp)
    return out


def leftovers(path):
    """What of a run is still there: processes, mounts, the directory."""
    found = ["process %d (%s)" % (pid, _cmdline(pid)) for pid in processes_naming(path)]
    found += ["mount %s" % m for m in mounts_under(path)]
    if os.path.exists(path):
        found.append("directory %s" % path)
    return found


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()[:200]
    except OSError:
        return "?"


# --------------------------------------------------------------------------
# module-level API


def setup(binary):
    """Start the private engines and import the minimal image (once per
    run; later calls return the same environment). Raises
    ContainersUnavailable (after cleaning up) when an engine is missing or
    does not start."""
    global _env
    if _env is not None:
        return _env
    env = Env(binary)
    _env = env
    atexit.register(_atexit)
    # A test runner that gives up sends SIGTERM: unwind so atexit still
    # stops the daemon (its own session, so the TERM does not reach it).
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        env.build()
    except BaseException:
        teardown()
        raise
    return env


def teardown():
    """Remove everything setup made. Returns the leftovers ([] when clean)."""
    global _env
    env, _env = _env, None
    if env is None:
        return []
    return env.teardown()


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _atexit():
    if _env is not None:
        teardown()


def current():
    return _env


def engines():
    return list(_env.engines) if _env else []
