/* signals.c - the broker's signal table (see signals.h). */
#include "broker/signals.h"
#include "fuse/fs.h"
#include "fuse/mountns.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

/* Raised by a fault in our own code: handled on the alternate stack (a
 * stack overflow leaves no room on the normal one), never blocked. */
static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP};
/* The FUSE loop's threads block them (fs.c), so TERM, INT and QUIT reach
 * the main thread, waiting in fs_run for the stop; the handler's fs_exit
 * wakes it, and it ends the loop threads. XCPU and XFSZ are sent to the
 * thread that went over the limit, and end the loop the same way. */
/* HUP is not here: under `mount` it is blocked in every thread and read
 * from a signalfd by the reload thread (service.h). */
static const int stop_signals[] = {SIGTERM, SIGINT, SIGQUIT, SIGXCPU, SIGXFSZ};
/* Their default would kill the broker and leave the mount: nothing here
 * means anything by them. Realtime signals are added at run time. USR1
 * is not here: under `mount` it is blocked and read by the reload thread
 * like HUP (it reopens the audit file; an ignored signal would be dropped
 * before the signalfd saw it). */
static const int ignored_signals[] = {SIGPIPE, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF,
                                      SIGPOLL, SIGPWR, SIGSTKFLT, SIGTSTP, SIGTTIN, SIGTTOU};
/* Exec mode: the same minus USR1 and USR2, which the supervisor forwards
 * (an ignored signal is dropped when it is sent, never read from the
 * signalfd), plus XCPU and XFSZ: only the supervisor may end PID 1, and
 * their default would kill it with the application still running. */
static const int exec_ignored_signals[] = {SIGPIPE, SIGALRM, SIGVTALRM, SIGPROF, SIGPOLL,
                                           SIGPWR, SIGSTKFLT, SIGTSTP, SIGTTIN, SIGTTOU,
                                           SIGXCPU, SIGXFSZ};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define ALTSTACK_MIN (64 * 1024)

/* Signal handlers can reach nothing but static storage. These are set once
 * in signals_install, before the FUSE loop starts its threads, and read by
 * the handlers: the allowed exception to "no mutable globals", like the log
 * sink. The mountpoint is a copy so the crash handler never follows a
 * pointer into the heap it may have just corrupted. */
static char crash_mountpoint[PATH_MAX];
static int crash_mount_ns = -1;   /* -1: the mount is in our namespace */
static struct fs *volatile stop_fs;
static volatile sig_atomic_t stop_signal;
static void *altstack;
static enum signals_mode installed_mode;

/* Async-signal-safe: fs_exit raises libfuse's exit flag and writes an
 * eventfd every loop thread waits on. */
static void on_stop(int sig)
{
    struct fs *fs = stop_fs;
    stop_signal = sig;
    if (fs)
        fs_exit(fs);
}

/* Exec mode: SIGNALS_WAKE is blocked in every thread and taken by the main
 * thread's sigtimedwait, so this does not run; it is an action, not
 * SIG_IGN, so the signal is never dropped should a thread unblock it. */
static void on_wake(int sig)
{
    (void)sig;
}

/* Async-signal-safe calls only. A lazy detach never waits for the daemon
 * (us). SA_RESETHAND made the action the default again, so the re-raised
 * signal kills us as soon as the handler returns and the exit status still
 * shows the crash (a fault would also recur on return). Needs the same
 * privilege as mounting; without it the next broker detaches the stale
 * mount at start. */
static void on_crash(int sig)
{
    /* In another namespace, a child joins it to detach there: here the
     * path names at most a propagated copy of the mount. */
    if (crash_mountpoint[0] != '\0' && crash_mount_ns >= 0)
        mountns_detach_async(crash_mount_ns, crash_mountpoint);
    else if (crash_mountpoint[0] != '\0')
        (void)umount2(crash_mountpoint, MNT_DETACH);
    (void)raise(sig);
}

void signals_block_async(sigset_t *old)
{
    sigset_t set;
    sigfillset(&set);
    for (size_t i = 0; i < N_OF(crash_signals); i++)
        sigdelset(&set, crash_signals[i]);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static int set_action(int sig, void (*handler)(int), int flags, char *err, size_t errlen)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        int rc = -errno;
        snprintf(err, errlen, "cannot set the action of signal %d: %s", sig, strerror(errno));
        return rc;
    }
    return 0;
}

static int install_exec(char *err, size_t errlen)
{
    int rc;
    for (size_t i = 0; i < N_OF(exec_ignored_signals); i++) {
        rc = set_action(exec_ignored_signals[i], SIG_IGN, 0, err, errlen);
        if (rc < 0)
            return rc;
    }
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++) {
        if (sig == FS_WAKE_SIGNAL)
            continue;   /* the FUSE loop's own (fs_run sets it) */
        /* No SA_RESTART: the wake must interrupt the loop's wait. */
        rc = set_action(sig, sig == SIGNALS_WAKE ? on_wake : SIG_IGN, 0, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void signals_block_wake(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGNALS_WAKE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int signals_install(struct fs *fs, const char *mountpoint, int mount_ns_fd, enum signals_mode mode,
                    char *err, size_t errlen)
{
    int rc;

    if (strlen(mountpoint) >= sizeof(crash_mountpoint)) {
        snprintf(err, errlen, "%s: path too long", mountpoint);
        return -ENAMETOOLONG;
    }
    memcpy(crash_mountpoint, mountpoint, strlen(mountpoint) + 1);
    crash_mount_ns = mount_ns_fd;
    stop_fs = mode == SIGNALS_MOUNT ? fs : NULL;
    stop_signal = 0;
    installed_mode = mode;

    long min = sysconf(_SC_SIGSTKSZ);
    size_t size = min > ALTSTACK_MIN ? (size_t)min : ALTSTACK_MIN;
    altstack = malloc(size);
    stack_t ss = {.ss_sp = altstack, .ss_size = size, .ss_flags = 0};
    if (!altstack || sigaltstack(&ss, NULL) != 0) {
        rc = altstack ? -errno : -ENOMEM;
        snprintf(err, errlen, "cannot set up the alternate signal stack: %s", strerror(-rc));
        return rc;
    }
    for (size_t i = 0; i < N_OF(crash_signals); i++) {
        rc = set_action(crash_signals[i], on_crash, SA_ONSTACK | SA_RESETHAND, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (mode == SIGNALS_EXEC)
        return install_exec(err, errlen);
    /* No SA_RESTART: the signal must interrupt the loop's waits so its
     * threads look at the exit flag. */
    for (size_t i = 0; i < N_OF(stop_signals); i++) {
        rc = set_action(stop_signals[i], on_stop, 0, err, errlen);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < N_OF(ignored_signals); i++) {
        rc = set_action(ignored_signals[i], SIG_IGN, 0, err, errlen);
        if (rc < 0)
            return rc;
    }
    /* SIGRTMIN, not 32: glibc keeps the first realtime signals for itself.
     * FS_WAKE_SIGNAL is the FUSE loop's own (fs_run sets it). */
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++) {
        if (sig == FS_WAKE_SIGNAL)
            continue;
        rc = set_action(sig, SIG_IGN, 0, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

const char *signals_stopped_by(void)
{
    int sig = stop_signal;
    return sig ? sigabbrev_np(sig) : NULL;
}

void signals_restore(void)
{
    char err[128];
    /* Exec mode installed no stop actions: nothing to put back. */
    for (size_t i = 0; installed_mode == SIGNALS_MOUNT && i < N_OF(stop_signals); i++)
        (void)set_action(stop_signals[i], SIG_DFL, 0, err, sizeof(err));
    for (size_t i = 0; i < N_OF(crash_signals); i++)
        (void)set_action(crash_signals[i], SIG_DFL, 0, err, sizeof(err));
    stop_fs = NULL;
    crash_mountpoint[0] = '\0';
    crash_mount_ns = -1;
    if (altstack) {
        stack_t ss = {.ss_flags = SS_DISABLE};
        (void)sigaltstack(&ss, NULL);
        free(altstack);
        altstack = NULL;
    }
}
