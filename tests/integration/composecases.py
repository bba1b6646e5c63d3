"""The Compose secrets-file cases of test_containers.py (issue 13), in a
mixin so they share that file's one private dockerd, podman store and
image (containers.py): test_containers.py defines DockerComposeTest and
PodmanComposeTest from it.

One case per engine, on examples/compose/docker-compose.yml (three services,
one per way to bind the secrets) with docker-compose 1.29 or podman-compose,
after `runsecrets compose up` driven as Compose 2.36+ drives a provider
(composeenv.py), since neither of those knows provider services:
- each container reads the right bytes, as uid 1000;
- it is the FUSE file itself: in the container, /run/secrets/db_password
  is a fuse.runsecrets mount with the host mount's device number;
- a rotation is seen by a new open in the running container (same
  container, not restarted);
- the broker restarted (SIGTERM, then up again): what each bind shape sees
  while it is down and after (docs/compose.md has the table);
- down (containers, then the provider) leaves no broker, mount or state.
"""

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time

import composeenv
import containers
import rstest

EXAMPLES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                         "examples", "compose"))
SERVICES = ("app", "app-dir", "app-rslave")
COMPOSE_TIMEOUT = 120

# New opens inside a container, one exec for every file named: for each,
# its bytes between markers, the exit status and the error text.
READ = ('for f in "$@"; do echo "<<"; cat "$f" 2>/tmp/err; rc=$?; echo; echo ">>rc=$rc"; '
        'cat /tmp/err; echo "=="; done')


PODMAN_WRAPPER = """#!%(python)s
import os, sys
args = sys.argv[1:]
if args[:2] in (["network", "exists"], ["network", "create"]):
    sys.exit(0)
if args[:1] == ["run"] and "none" in [args[i + 1] for i, a in enumerate(args[:-1])
                                      if a == "--network"]:
    out, i = [], 0
    while i < len(args):
        if args[i] in ("--net", "--network-alias"):
            i += 2
            continue
        out.append(args[i])
        i += 1
    args = out
base = %(base)s
os.execv(base[0], base + args)
"""


class ComposeCases:
    """Mixed into a ContainerCase (self.eng, self.dir, write_secret...)."""

    def compose_setup(self):
        self.run_dir = os.path.join(self.dir, "run")
        os.makedirs(self.run_dir)
        # rslave needs a shared (or slave) source mount; on a systemd host
        # /run is shared already, here the test's namespace is private.
        subprocess.run(["mount", "--bind", self.run_dir, self.run_dir], check=True)
        subprocess.run(["mount", "--make-shared", self.run_dir], check=True)
        self.project = "rs%s" % containers.current().run_id[:8]
        self.value = rstest.random_value()
        self.api = rstest.random_value()
        self.write_secret("db_password", self.value)
        self.write_secret("api_key", self.api)
        with open(os.path.join(EXAMPLES, "runsecrets.json")) as f:
            cfg = json.load(f)
        cfg["backends"]["local"]["path"] = self.secrets_dir
        cfg["defaults"]["refresh"] = "1s"
        self.config_path = os.path.join(self.dir, "runsecrets.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        self.mount = os.path.join(self.run_dir, self.project)
        self.compose_up_done = False

    def tearDown(self):
        # Before the base's tearDown unmounts and removes the directory.
        try:
            if getattr(self, "run_dir", None):
                self.compose_cleanup()
        finally:
            super().tearDown()

    def compose_cleanup(self):
        if self.compose_up_done:
            self.compose_cli("down", "-t", "2")
        res = self.provider("down")
        if not res.ok():
            composeenv.kill_project(self.run_dir, self.project)
        rstest.unmount(self.run_dir)

    def provider(self, command):
        opts = {"run-dir": self.run_dir}
        if command == "up":
            opts["config"] = self.config_path
        res = composeenv.provider(rstest.BINARY, command, self.project, "secrets", opts)
        self.assertIsNone(res.protocol_error, res.describe())
        return res

    def compose_cli(self, *args):
        env = dict(os.environ)
        env.update({"APP_IMAGE": self.eng.image, "RUNSECRETS_RUN_DIR": self.run_dir,
                    "COMPOSE_PROJECT_NAME": self.project})
        f = os.path.join(EXAMPLES, "docker-compose.yml")
        if self.ENGINE == "docker":
            env.update(self.eng.compose_env())
            argv = ["docker-compose", "-p", self.project, "-f", f] + list(args)
        else:
            env.update(self.eng.cli_env())
            argv = ["podman-compose", "--podman-path", self.podman_wrapper(), "-p",
                    self.project, "-f", f] + list(args)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=COMPOSE_TIMEOUT)
        return r.returncode, r.stdout.decode("utf-8", "replace")

    def podman_wrapper(self):
        """podman-compose runs one podman binary: this one adds the run's
        private store (containers.Podman.base_cmd), and works around
        podman-compose 1.0's get_net_args, which adds `--net
        <project>_default --network-alias S` even to a service with
        network_mode: none (podman then refuses "multiple networks"): the
        pair is dropped when --network none is there, and the default
        network is never created (no bridge, no host firewall rules)."""
        path = os.path.join(self.dir, "podman")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(PODMAN_WRAPPER % {"python": sys.executable,
                                          "base": json.dumps(self.eng.base_cmd())})
            os.chmod(path, 0o755)
        return path

    def container(self, service):
        return "%s_%s_1" % (self.project, service)

    def path_in(self, service, name="db_password"):
        return "/run/secrets/" + name if service == "app" else os.path.join(self.mount, name)

    def read_in(self, service, *paths):
        """[(value or None, error text)] of a new open of each path (default:
        db_password as the service sees it) in the container."""
        paths = paths or (self.path_in(service),)
        rc, out, err = self.eng.cli("exec", self.container(service), "sh", "-c", READ, "sh",
                                    *paths)
        self.assertEqual(rc, 0, "exec in %s: %s%s" % (service, out, err))
        res = []
        for part in out.split("==\n")[:len(paths)]:
            value = part.split("<<\n", 1)[1].split("\n>>rc=", 1)[0]
            status = part.split(">>rc=", 1)[1].split("\n", 1)
            res.append((value if status[0] == "0" else None, status[1].strip()))
        return res

    def read_all(self):
        """{service: (value or None, error)} for db_password, the three
        containers' execs at once (each exec is a second or two here)."""
        with concurrent.futures.ThreadPoolExecutor(len(SERVICES)) as ex:
            futs = {s: ex.submit(self.read_in, s) for s in SERVICES}
            return {s: f.result()[0] for s, f in futs.items()}

    def started_at(self):
        """Each container's start time, one inspect for all."""
        rc, out, _ = self.eng.cli("inspect", "--format", "{{.State.StartedAt}}",
                                  *[self.container(s) for s in SERVICES])
        self.assertEqual(rc, 0)
        return out.split()

    def test_compose_secrets_file_provider(self):
        t0 = time.monotonic()
        timings = []
        self.compose_setup()

        res = self.provider("up")
        self.assertTrue(res.ok(), res.describe())
        self.assertEqual(res.of("setenv"), ["DB_PASSWORD_FILE=%s/db_password" % self.mount,
                                            "API_KEY_FILE=%s/api_key" % self.mount])
        timings.append(("provider up", time.monotonic() - t0))

        rc, out = self.compose_cli("up", "-d")
        self.compose_up_done = True
        self.assertEqual(rc, 0, out)
        timings.append(("compose up", time.monotonic() - t0))
        self.assertEqual(self.read_all(), {s: (self.value, "") for s in SERVICES})
        # In app, as uid 1000: api_key; and it is the FUSE file itself, not
        # a copy: the container's mount table has a fuse.runsecrets mount at
        # /run/secrets/db_password whose device is the host mount's.
        got = self.read_in("app", "/run/secrets/api_key", "/proc/self/mountinfo",
                           "/proc/self/status")
        self.assertEqual(got[0], (self.api, ""))
        line = [ln for ln in got[1][0].splitlines()
                if ln.split()[4] == "/run/secrets/db_password"]
        self.assertEqual(len(line), 1, got[1][0])
        f = line[0].split()
        self.assertEqual(f[f.index("-") + 1], "fuse.runsecrets", line[0])
        st = os.stat(os.path.join(self.mount, "db_password"))
        self.assertEqual(f[2], "%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev)))
        self.assertIn("\nUid:\t1000\t1000\t1000\t1000\n", got[2][0])

        # A rotation: the next open in the same, running container.
        started = self.started_at()
        new = rstest.random_value()
        self.write_secret("db_password", new)
        rstest.wait_until(lambda: rstest.read_all(os.path.join(self.mount, "db_password"))
                          == new.encode(), 10, "the rotation on the host")
        self.assertEqual(self.read_all(), {s: (new, "") for s in SERVICES})
        self.assertEqual(self.started_at(), started)
        timings.append(("rotation", time.monotonic() - t0))

        # The broker restarts: SIGTERM (it unmounts), then up again.
        pid = composeenv.state_pid(self.run_dir, self.project)
        os.kill(pid, signal.SIGTERM)
        rstest.wait_until(lambda: not composeenv.pid_alive(pid), 20, "the broker's exit")
        down = self.read_all()
        res = self.provider("up")
        self.assertTrue(res.ok(), res.describe())
        self.assertNotEqual(composeenv.state_pid(self.run_dir, self.project), pid)
        after = self.read_all()
        timings.append(("restart", time.monotonic() - t0))
        print("\n[%s compose] broker down: %s\n[%s compose] after the restart: %s"
              % (self.ENGINE, down, self.ENGINE, after), file=sys.stderr)
        # A bind of the old FUSE mount (a file, or the project directory)
        # keeps the dead connection; the run directory bound rslave sees
        # the mount go and the new one come.
        dead = ("Transport endpoint is not connected", "Software caused connection abort")
        for s in ("app", "app-dir"):
            self.assertIn(down[s], [(None, "cat: can't open '%s': %s" % (self.path_in(s), d))
                                    for d in dead], s)
            self.assertIn(after[s], [(None, "cat: can't open '%s': %s" % (self.path_in(s), d))
                                     for d in dead], s)
        self.assertEqual(down["app-rslave"], (None, "cat: can't open '%s': No such file or "
                                              "directory" % self.path_in("app-rslave")))
        self.assertEqual(after["app-rslave"], (new, ""))

        # Down in Compose's order: the containers, then the provider.
        rc, out = self.compose_cli("down", "-t", "2")
        self.assertEqual(rc, 0, out)
        self.compose_up_done = False
        pid = composeenv.state_pid(self.run_dir, self.project)
        res = self.provider("down")
        self.assertTrue(res.ok(), res.describe())
        self.assertFalse(composeenv.pid_alive(pid))
        self.assertEqual(rstest.mounts_at(self.mount), [])
        self.assertFalse(os.path.exists(self.mount))
        timings.append(("down", time.monotonic() - t0))
        print("[%s compose] %s" % (self.ENGINE, ", ".join("%s at %.1fs" % t for t in timings)),
              file=sys.stderr)
