"""The pid-reuse race of test_policy_race.py, run as pid 1 of a private pid
namespace with its own /proc (unshare --pid --fork --mount-proc), so that
this process can choose the next pid (/proc/sys/kernel/ns_last_pid, CRIU's
trick) and the broker, started here, sees the same pids as its callers.

    python3 policy_race_driver.py ARGS.json

ARGS.json: binary, config, mnt, secret (the file's path under mnt), value,
exe_allowed, exe_denied, rounds, seconds, broker_stderr. Prints one JSON
object on stdout: the processes started (role, pid, killed, rc, read,
eacces, reused) and what setup found. Never prints the value.

Every round: a victim opens the secret and is SIGKILLed at a random moment
(before, during or after its open); then ns_last_pid is set so that the
next process gets the victim's pid, and a successor of the other role
opens the secret to the end. Even rounds: the victim is allowed and the
successor denied; odd rounds the reverse. Everything is bounded: the
rounds, the seconds, every wait. When this process (pid 1) exits, the
kernel kills whatever is left in the namespace, the broker included, and
the mount goes with the mount namespace.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

MOUNT_TIMEOUT = 15.0
CHILD_TIMEOUT = 10.0
NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


def mounted(mnt):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            if parts[4] == mnt and parts[sep + 1] == "fuse.runsecrets":
                return True
    return False


def spawn(exe, path):
    return subprocess.Popen([exe, path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, close_fds=True)


def outcome(p, role, value, victim=False, reused=None):
    try:
        out, err = p.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=CHILD_TIMEOUT)
    rec = {"role": role, "pid": p.pid, "killed": p.returncode == -signal.SIGKILL,
           "rc": p.returncode, "read": value in out,
           "eacces": p.returncode == 1 and b"Permission denied" in err}
    if victim:
        rec["victim"] = True
    if reused is not None:
        rec["reused"] = reused
    return rec


def main():
    with open(sys.argv[1]) as f:
        a = json.load(f)
    value = a["value"].encode()
    res = {"pid1": os.getpid(), "procs": [], "setup": ""}
    if os.getpid() != 1:
        res["setup"] = "not pid 1 of a pid namespace (pid %d)" % os.getpid()
        print(json.dumps(res))
        return 0
    with open(a["broker_stderr"], "wb") as err:
        broker = subprocess.Popen([a["binary"], "mount", "--config", a["config"], a["mnt"]],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=err)
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not (mounted(a["mnt"]) and os.path.exists(a["secret"])):
            if broker.poll() is not None or time.monotonic() > deadline:
                res["setup"] = "the broker did not mount (exit %r)" % broker.poll()
                print(json.dumps(res))
                return 0
            time.sleep(0.05)
        roles = (("allowed", a["exe_allowed"]), ("denied", a["exe_denied"]))
        end = time.monotonic() + a["seconds"]
        rng = random.Random(a.get("seed"))
        for i in range(a["rounds"]):
            if time.monotonic() > end:
                break
            (vrole, vexe), (srole, sexe) = roles if i % 2 == 0 else roles[::-1]
            victim = spawn(vexe, a["secret"])
            # From before its exec to after its open: cat runs in ~1 ms.
            time.sleep(rng.uniform(0, 0.003))
            try:
                victim.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
            rec = outcome(victim, vrole, value, victim=True)
            res["procs"].append(rec)
            try:
                with open(NS_LAST_PID, "w") as f:
                    f.write(str(victim.pid - 1))
            except OSError as e:
                res["setup"] = "cannot write %s: %s" % (NS_LAST_PID, e)
                break
            succ = spawn(sexe, a["secret"])
            res["procs"].append(outcome(succ, srole, value, reused=succ.pid == victim.pid))
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            res["broker_rc"] = broker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            broker.kill()
            res["broker_rc"] = broker.wait(timeout=10)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
