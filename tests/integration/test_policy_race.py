"""The access policy against pid reuse (issue 15): a secret allowed only to
one executable (a copy of cat, by inode) and denied to a byte-identical
copy at another path, opened by hundreds of short-lived processes of both
while pids are reused on purpose.

The broker and the processes run in a private pid namespace with its own
/proc (policy_race_driver.py is its pid 1), where the driver sets
/proc/sys/kernel/ns_last_pid so that a process gets the pid another one
just had: a victim is SIGKILLed at a random moment around its open, and a
process of the other executable is forked with its pid. Asserted: no
process of the denied copy ever read the value; every process of the
allowed one that ran to its end read it or was refused (EACCES); pids
really were reused. Decisions only: the audit line is not looked at."""

import json
import os
import shutil
import subprocess
import sys

import rstest

CAT = os.path.realpath(shutil.which("cat") or "/bin/cat")
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "policy_race_driver.py")
ROUNDS = 1000         # each: one victim and one successor, of the two executables in turn
SECONDS = 25.0        # the race's bound, whatever the rounds done


class PidReuseTest(rstest.BrokerTestCase):

    def test_pid_reuse_never_reads_for_the_denied_copy(self):
        value = rstest.random_value()
        self.write_secret("r", value)
        allowed = os.path.join(self.dir, "cat-allowed")
        denied = os.path.join(self.dir, "cat-denied")
        for p in (allowed, denied):
            shutil.copy2(CAT, p)
        with open(allowed, "rb") as f1, open(denied, "rb") as f2:
            self.assertEqual(f1.read(), f2.read())
        self.write_config({"r": {"from": "local:r"}},
                          defaults={"refresh": "1h", "max_stale": "1h", "mode": "0444",
                                    "uid": 0, "gid": 0})
        with open(self.config_path) as f:
            cfg = json.load(f)
        cfg["policy"] = {"default": "deny", "rules": [
            {"secrets": ["r"], "allow": {"exe": [allowed]}}]}
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)
        broker_stderr = os.path.join(self.dir, "broker.stderr")
        args = self.write_private("race.json", json.dumps({
            "binary": rstest.BINARY, "config": self.config_path, "mnt": self.mnt,
            "secret": self.mpath("r"), "value": value, "exe_allowed": allowed,
            "exe_denied": denied, "rounds": ROUNDS, "seconds": SECONDS,
            "broker_stderr": broker_stderr}))
        # pid 1 of the namespace: when it exits, the kernel kills the rest.
        r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                            sys.executable, DRIVER, args],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=SECONDS + 60)
        with open(broker_stderr, "rb") as f:
            berr = f.read()
        self.assertNotIn(value.encode(), berr, "the value is in the broker's stderr")
        for marker in rstest.SANITIZER_MARKERS:
            self.assertNotIn(marker, berr.decode("utf-8", "replace"))
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-3000:])
        res = json.loads(r.stdout)
        self.assertEqual(res["setup"], "", "%s\nbroker stderr:\n%s"
                         % (res["setup"], berr.decode("utf-8", "replace")[-3000:]))
        self.assertEqual(res["broker_rc"], 0, berr.decode("utf-8", "replace")[-3000:])
        procs = res["procs"]

        def count(**kw):
            return sum(1 for p in procs if all(p.get(k) == v for k, v in kw.items()))

        stats = {
            "rounds": count(victim=True),
            "reused": count(reused=True),
            "reused, denied after allowed": count(reused=True, role="denied"),
            "reused, allowed after denied": count(reused=True, role="allowed"),
            "victims killed": count(victim=True, killed=True),
            "allowed read": count(role="allowed", read=True),
            "allowed EACCES": count(role="allowed", eacces=True),
            "denied EACCES": count(role="denied", eacces=True),
        }
        print("\npid reuse race: %s" % ", ".join("%s %d" % kv for kv in stats.items()),
              file=sys.stderr)
        # Not one read for the denied copy, killed or not, whatever its pid had been.
        self.assertEqual([p for p in procs if p["role"] == "denied" and p["read"]], [])
        # Every allowed process that ran to its end read the value or was refused.
        odd = [p for p in procs if p["role"] == "allowed" and not p["killed"]
               and not (p["read"] or p["eacces"])]
        self.assertEqual(odd, [])
        # Denied successors ran to their end: each refused.
        self.assertEqual([p for p in procs if p["role"] == "denied" and not p.get("victim")
                          and not p["eacces"]], [])
        # The harness races: enough rounds, pids reused both ways, and the
        # allowed copy really is allowed (the denials are the policy's).
        self.assertGreaterEqual(stats["rounds"], 100, stats)
        self.assertGreater(stats["reused, denied after allowed"], 0, stats)
        self.assertGreater(stats["reused, allowed after denied"], 0, stats)
        self.assertGreater(stats["allowed read"], 0, stats)


if __name__ == "__main__":
    rstest.main()
