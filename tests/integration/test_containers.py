"""runsecrets in real containers, Docker and Podman (issue 10).

One private dockerd and one minimal image per run (containers.py): the
binary, the libraries ldd lists plus libgcc_s.so.1, a static busybox,
/etc/passwd and /etc/group. Each case runs in both engines:
- the image is complete: `runsecrets version` runs, and the image holds
  exactly the files the harness put there;
- `runsecrets mount` with the file backend inside the container (FUSE:
  --device /dev/fuse --cap-add SYS_ADMIN) serves the right bytes and stops
  cleanly on TERM: exit 0, the mount gone, no "libgcc_s" on stderr;
- without libgcc_s.so.1 in the image the same stop aborts in glibc (the
  reason the image ships it: libfuse cancels its workers);
- examples/container/config.json serves examples/secrets the same way;
- without /dev/fuse, `runsecrets mount` exits 1 with a clear message;
- a host `runsecrets mount` bind-mounted read-only into an unprivileged
  container (--cap-drop ALL --read-only --user 1000): uid 1000 reads a 0444
  file and is refused a 0400 root file.
At the end nothing is left: no daemon, container, mount or directory.
"""

import os
import sys
import time
import unittest

import containers
import rstest

# The in-container mount, started in the background by a shell script,
# read once, then stopped with TERM; markers delimit what the script says.
MOUNT_SCRIPT = r"""
set -u
CONFIG=${CONFIG:-/cfg/config.json}
FILE=${FILE:-x}
[ "${DROP_LIBGCC:-}" ] && rm -f "$DROP_LIBGCC"
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
    if d:
        left += ["fuse mount %s" % m["mountpoint"] for m in rstest.mountinfo()
                 if m["fstype"].startswith("fuse") and m["mountpoint"].startswith("/tmp/rs")]
    if left:
        raise AssertionError("left behind: %s" % "; ".join(left))


class ContainerCase(rstest.BrokerTestCase):
    ENGINE = None

    def setUp(self):
        super().setUp()
        env = containers.current()
        self.eng = next(e for e in env.engines if e.name == self.ENGINE)
        self.value = rstest.random_value()

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

    def test_without_libgcc_s_the_stop_aborts(self):
        # Why the image holds libgcc_s.so.1 although ldd does not list it:
        # libfuse's fuse_session_loop_mt stops its workers with
        # pthread_cancel. When this starts passing without the library,
        # libfuse no longer cancels and the image can drop it.
        libgcc = next(f for f in containers.current().image_files if "libgcc_s.so" in f)
        if any("libgcc_s.so" in p for p in containers.ldd_paths(rstest.BINARY)):
            self.skipTest("this binary links libgcc_s itself (an ASan build): nothing to show")
        self.in_container_config()
        rc, out, err = self.run_mount_script(env={"DROP_LIBGCC": libgcc})
        self.assertEqual(between(out, "<<value\n", ">>value"), self.value, out + err)
        self.assertIn("libgcc_s.so.1 must be installed for pthread_cancel to work", err)
        self.assertNotEqual(field(out, "rc"), "0")

    def test_example_config(self):
        # examples/container/config.json, as docs/containers.md runs it:
        # the config at /etc/runsecrets/config.json, examples/secrets at
        # /etc/runsecrets/secrets (read-only).
        self.in_container_config()
        ex = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")
        ex = os.path.normpath(ex)
        rc, out, err = self.run_mount_script(
            env={"CONFIG": "/etc/runsecrets/config.json", "FILE": "db/user"},
            volumes=[(os.path.join(ex, "container", "config.json"),
                      "/etc/runsecrets/config.json", "ro"),
                     (os.path.join(ex, "secrets"), "/etc/runsecrets/secrets", "ro")])
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


class DockerTest(ContainerCase):
    ENGINE = "docker"


class PodmanTest(ContainerCase):
    ENGINE = "podman"


del ContainerCase      # not a test of its own

if __name__ == "__main__":
    rstest.main()
