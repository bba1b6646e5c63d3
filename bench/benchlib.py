"""benchlib - what the cold-start benchmarks share: machine facts for the
report, small file and mount helpers. Standard library only."""

import datetime
import json
import os
import subprocess
import sys

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cmd_out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(build):
    """CPU count and model, kernel, UTC date, Python, build type and commit."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    buildtype = ""
    try:
        opts = json.loads(cmd_out(["meson", "introspect", build, "--buildoptions"]) or "[]")
        buildtype = next((o["value"] for o in opts if o.get("name") == "buildtype"), "")
    except ValueError:
        pass
    commit = cmd_out(["git", "-C", SRC, "rev-parse", "--short", "HEAD"])
    dirty = cmd_out(["git", "-C", SRC, "status", "--porcelain", "--untracked-files=no"])
    return {
        "nproc": cmd_out(["nproc", "--all"]),
        "model": model,
        "kernel": os.uname().release,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": sys.version.split()[0],
        "build": "%s, buildtype=%s" % (build, buildtype or "?"),
        "commit": (commit + (" + uncommitted changes" if dirty else "")) or "?",
    }


def loadavg():
    try:
        with open("/proc/loadavg", encoding="utf-8") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def read_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        out = []
        while True:
            b = os.read(fd, 4096)
            if not b:
                return b"".join(out)
            out.append(b)
    finally:
        os.close(fd)


def is_mounted(path):
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and fields[4].replace("\\040", " ") == path:
                return True
    return False


def parse_log_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
