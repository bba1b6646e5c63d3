"""Signals: every catchable signal either stops the broker cleanly, is
ignored, or (a crash) detaches the mount before the process dies of it.
None may leave a mount behind (issue 8: USR1 and USR2 killed the broker
and left a dead mount)."""

import signal

import rstest

IGNORED = [signal.SIGHUP,   # a reload: it must not stop the broker either
           signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF,
           signal.SIGPOLL, signal.SIGPWR, signal.SIGSTKFLT, signal.SIGTSTP, signal.SIGTTIN,
           signal.SIGTTOU, signal.SIGPIPE, signal.SIGWINCH, signal.SIGURG,
           signal.SIGRTMIN, signal.SIGRTMIN + 5, signal.SIGRTMAX]
# HUP reloads the configuration under `mount` (test_service.py).
STOP = [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGXCPU, signal.SIGXFSZ]
CRASH = [signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE,
         signal.SIGSYS, signal.SIGTRAP]


def name(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "SIGRTMIN+%d" % (sig - signal.SIGRTMIN)


class SignalTest(rstest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        self.value = rstest.random_value()
        self.write_secret("pw", self.value)
        self.write_config({"pw": {"from": "local:pw"}})

    def test_ignored_signals_keep_serving(self):
        b = self.start_broker()
        for sig in IGNORED:
            with self.subTest(signal=name(sig)):
                b.send(sig)
                # reads after the signal: still served, by the same process
                self.assertEqual(rstest.read_all(self.mpath("pw")), self.value.encode())
                self.assertTrue(b.running(), "%s killed the broker\n%s" % (name(sig),
                                                                           b.describe()))
        self.assertEqual(len(rstest.runsecrets_mounts_at(self.mnt)), 1)
        self.assertEqual(b.stop(), 0, b.describe())
        self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [])

    def test_stop_signals_unmount_and_exit_0(self):
        for sig in STOP:
            with self.subTest(signal=name(sig)):
                b = self.start_broker()
                self.assertEqual(rstest.read_all(self.mpath("pw")), self.value.encode())
                rc = b.stop(sig)
                self.assertEqual(rc, 0, "exit %r after %s\n%s" % (rc, name(sig), b.describe()))
                self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [], "still mounted")
                b.wait_log("stopping on %s" % name(sig))
                b.wait_log("unmounted")

    def test_crash_signals_detach_the_mount_and_die_of_the_signal(self):
        for sig in CRASH:
            with self.subTest(signal=name(sig)):
                b = self.start_broker()
                self.assertEqual(rstest.read_all(self.mpath("pw")), self.value.encode())
                rc = b.stop(sig)
                self.assertEqual(rc, -sig, "exit %r after %s\n%s" % (rc, name(sig), b.describe()))
                self.assertEqual(rstest.runsecrets_mounts_at(self.mnt), [],
                                 "%s left a mount behind" % name(sig))


if __name__ == "__main__":
    rstest.main()
