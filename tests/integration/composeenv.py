"""composeenv - run `runsecrets compose` exactly as Docker Compose runs a
provider service (docker/compose docs/extension.md and pkg/compose/plugins.go,
which Debian 12 does not ship: it has docker-compose 1.29).

What Compose does, and so what provider() does:
- `PROVIDER compose metadata` first; when it prints metadata, an option of
  `provider.options` is passed to a command only if that command's
  metadata lists it, and a `required` one that is missing is an error
  before anything runs; `stop` runs only when metadata has a "stop" block;
- then `PROVIDER compose --project-name=NAME COMMAND --KEY=VALUE... SERVICE`
  (each option as one `--key=value` argument, one per value of a list),
  with stdin and stdout pipes;
- stdout is read as JSON messages until EOF; each needs a "type" among
  info, error, setenv, rawsetenv, debug (anything else aborts the command);
  the first "error" ends the command at once: Compose kills the provider;
  a setenv/rawsetenv message without '=' aborts it;
- after EOF, the exit status: non-zero fails the command;
- setenv KEY=VAL reaches each dependent service as SERVICE_KEY (the
  service name upper-cased, then '_'), rawsetenv as KEY.

Stricter than Compose where a test should be: one JSON object per line
(the document says "JSON line delimited"), and every wait is bounded.

Standard library only.
"""

import json
import os
import select
import signal
import subprocess
import tempfile
import time

TYPES = ("info", "error", "setenv", "rawsetenv", "debug")
TIMEOUT = 60.0


class ProviderResult:
    def __init__(self):
        self.argv = []
        self.rc = None
        self.messages = []          # the JSON objects, in order
        self.lines = []             # stdout as read, line by line
        self.stderr = ""
        self.errored = False        # an "error" line came
        self.killed = False         # ... and we killed the provider, as Compose does
        self.eof_s = None           # seconds from start to stdout's EOF
        self.exit_s = None
        self.protocol_error = None  # what Compose would have refused
        self.prefixed = {}          # setenv: KEY -> VAL
        self.raw = {}               # rawsetenv
        self.skipped = False        # stop without a "stop" block in metadata

    def of(self, kind):
        return [m["message"] for m in self.messages if m.get("type") == kind]

    def ok(self):
        return self.rc == 0 and not self.errored and self.protocol_error is None

    def env_for(self, service):
        """The variables a service depending on `service` gets."""
        env = {"%s_%s" % (service.upper(), k): v for k, v in self.prefixed.items()}
        env.update(self.raw)
        return env

    def describe(self):
        return ("argv %s\nrc %r error line %r protocol_error %r\nstdout:\n%s\nstderr:\n%s"
                % (" ".join(self.argv), self.rc, self.errored, self.protocol_error,
                   "\n".join(self.lines), self.stderr))


def metadata(binary, env=None, timeout=TIMEOUT):
    """`compose metadata` as Compose reads it: {} when it fails or is not
    JSON (Compose then passes every option to every command)."""
    try:
        r = subprocess.run([binary, "compose", "metadata"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {}
    if r.returncode != 0:
        return {}
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {}


def argv_for(binary, command, project, service, options, meta):
    """The command line Compose builds (setupPluginCommand)."""
    empty = not meta.get("description") and not meta.get("up", {}).get("parameters") \
        and not meta.get("down", {}).get("parameters")
    params = {p["name"] for p in (meta.get(command) or {}).get("parameters") or []}
    for p in (meta.get(command) or {}).get("parameters") or []:
        if not empty and p.get("required") and p["name"] not in options:
            raise ValueError("required parameter %r is missing" % p["name"])
    argv = [binary, "compose", "--project-name=" + project, command]
    for k, v in options.items():
        for value in (v if isinstance(v, (list, tuple)) else [v]):
            if empty or k in params:
                argv.append("--%s=%s" % (k, value))
    return argv + [service]


def provider(binary, command, project, service, options=None, env=None, timeout=TIMEOUT,
             meta=None, kill_on_error=True):
    """Run one provider command as Compose does; returns a ProviderResult.
    kill_on_error=False: read on to EOF and take the exit status after an
    error line (Compose kills; a test of the status does not)."""
    res = ProviderResult()
    if meta is None:
        meta = metadata(binary, env)
    if command == "stop" and "stop" not in meta:
        res.skipped = True
        return res
    res.argv = argv_for(binary, command, project, service, options or {}, meta)
    errf = tempfile.TemporaryFile()
    t0 = time.monotonic()
    p = subprocess.Popen(res.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf,
                         env=env)
    deadline = t0 + timeout
    buf = b""
    try:
        fd = p.stdout.fileno()
        eof = False
        while not eof and not res.killed and res.protocol_error is None:
            left = deadline - time.monotonic()
            if left <= 0:
                res.protocol_error = "stdout not at EOF within %.0fs" % timeout
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                eof = True
                res.eof_s = time.monotonic() - t0
            buf += chunk
            while b"\n" in buf or (eof and buf):
                line, sep, buf = buf.partition(b"\n")
                _take(res, line.decode("utf-8", "replace"))
                res.killed = res.errored and kill_on_error
                if res.killed or res.protocol_error:
                    break
        if res.killed or res.protocol_error:
            p.kill()
        try:
            res.rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            res.rc = p.wait(timeout=10)
            res.protocol_error = res.protocol_error or "no exit within %.0fs" % timeout
        res.exit_s = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        p.stdin.close()
        p.stdout.close()
        errf.seek(0)
        res.stderr = errf.read().decode("utf-8", "replace")
        errf.close()
    return res


def _take(res, line):
    res.lines.append(line)
    try:
        msg = json.loads(line)
    except ValueError:
        res.protocol_error = "not a JSON line: %r" % line
        return
    if not isinstance(msg, dict) or msg.get("type") not in TYPES \
            or not isinstance(msg.get("message"), str):
        res.protocol_error = "invalid message: %r" % line
        return
    res.messages.append(msg)
    kind = msg["type"]
    if kind == "error":
        res.errored = True      # Compose returns at once; its deferred Kill runs
    elif kind in ("setenv", "rawsetenv"):
        key, eq, val = msg["message"].partition("=")
        if not eq:
            res.protocol_error = "invalid response from plugin: %s" % msg["message"]
            return
        (res.prefixed if kind == "setenv" else res.raw)[key] = val


def state_pid(run_dir, project):
    """The broker's pid as `compose up` recorded it, or None."""
    try:
        with open(os.path.join(run_dir, ".compose", project + ".json")) as f:
            return int(json.load(f)["pid"])
    except (OSError, ValueError, KeyError):
        return None


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def kill_project(run_dir, project, timeout=10.0):
    """Last resort for a test's cleanup: SIGKILL the recorded broker."""
    pid = state_pid(run_dir, project)
    if pid and pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            return
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
