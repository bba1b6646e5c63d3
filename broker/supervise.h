/* supervise.h - PID 1's duties for `runsecrets exec` (what tini and dumb-init do).
 *
 * Start the application as another user in a clean state, forward the
 * signals an orchestrator sends it, reap every zombie (orphaned
 * grandchildren too, since PID 1 inherits them), stop it with a grace
 * period, and report its exit status the way a shell does (128 + signal).
 *
 * The caller blocks the forwarded signals in every thread before any
 * thread starts (supervise_block_signals) and then runs supervise_wait
 * on one thread, which reads them from a signalfd: no async handlers, no
 * races with waitpid.
 */
#ifndef RS_SUPERVISE_H
#define RS_SUPERVISE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

/* Who the application runs as. */
struct supervise_user {
    uid_t uid;
    gid_t gid;
    gid_t *groups;          /* supplementary groups; owned */
    size_t n_groups;
    bool set;               /* false: keep our own ids (no --user) */
};

/* Resolve "--user USER[:GROUP]" (a name from /etc/passwd and /etc/group
 * or numeric uid[:gid]; a name's gid and supplementary groups come from
 * those files). 0 or -EINVAL/-ENOENT with err naming what was not found. */
int supervise_user_parse(const char *spec, struct supervise_user *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void supervise_user_cleanup(struct supervise_user *u);

struct supervise_child {
    char *const *argv;      /* argv[0] looked up in PATH like execvp; borrowed */
    char *const *envp;      /* the child's whole environment; borrowed */
    const struct supervise_user *user;
    bool signal_group;      /* forward signals to the child's process group */
    /* > 2: every fd from this number up is closed at the exec (a library
     * may open one without O_CLOEXEC), the ones below pass to the child.
     * 0: only O_CLOEXEC decides. See supervise_fd_floor. */
    int close_from;
    /* The core-dump limit to give the app (what the container set before
     * runsecrets lowered its own to 0), or NULL: inherit ours. */
    const struct rlimit *core_limit;
};

/* One more than the highest fd open now (at least 3): called first thing in
 * main, it is the close_from that passes what the container runtime handed
 * us (stdio, socket activation) and nothing runsecrets opened later. */
int supervise_fd_floor(void);

struct supervise;

/* The signals PID 1 forwards to the child: TERM INT HUP QUIT USR1 USR2
 * WINCH CONT. */
void supervise_forwarded_set(sigset_t *set);

/* Block the signals PID 1 forwards or acts on (those and CHLD) in the
 * calling thread; threads started afterwards inherit the mask. Call before
 * starting any thread. */
int supervise_block_signals(void) __attribute__((warn_unused_result));

/* New supervisor with its signalfd; also makes this process a child
 * subreaper when it is not PID 1 (so tests outside a pid namespace reap
 * orphans too). */
int supervise_new(struct supervise **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void supervise_free(struct supervise *s);

/* clone(CLONE_VM | CLONE_VFORK) (docs/internals/exec.md says why not fork)
 * + in the child: a new session, default signal dispositions and an
 * empty mask, setgroups/setgid/setuid, PR_SET_NO_NEW_PRIVS, every
 * capability dropped (bounding and ambient sets too), execvpe.
 * When stdin is a terminal (`docker run -t`): if it is our controlling
 * terminal and we lead its session, we give it up (TIOCNOTTY) and the
 * kernel's SIGHUP for that is never forwarded; the child makes it its
 * controlling terminal with its group in the foreground (not fatal when
 * it cannot: a debug line, and it runs without one). An exec
 * failure is reported as exit status 127 (not found) or 126 (not
 * executable) with one line on stderr, as a shell does: this returns 0 and
 * supervise_wait then gives SUPERVISE_EXITED with that status. A failure
 * to drop privileges returns -errno with err naming the step (the child is
 * reaped). c and what it points to may be freed once this returns. */
int supervise_start(struct supervise *s, const struct supervise_child *c, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* What supervise_wait returned for. */
enum supervise_event {
    SUPERVISE_EXITED,       /* the child exited: *status is its exit code (128+sig if killed) */
    SUPERVISE_STOP,         /* SIGTERM/SIGINT/SIGQUIT arrived (already forwarded) */
    SUPERVISE_WAKE,         /* supervise_wake was called (another thread wants attention) */
    SUPERVISE_TIMEOUT,      /* timeout_ms passed */
};

/* Wait for the next event, forwarding signals and reaping zombies
 * meanwhile. timeout_ms < 0: no timeout; 0: only what is pending. With no
 * child running (never started, or already reaped): SUPERVISE_EXITED at
 * once with the last child's status. */
enum supervise_event supervise_wait(struct supervise *s, long long timeout_ms, int *status);
/* Async-signal- and thread-safe: make supervise_wait return SUPERVISE_WAKE. */
void supervise_wake(struct supervise *s);
/* Send sig to the child (its group with signal_group). 0 or -ESRCH (no
 * child running). */
int supervise_signal(struct supervise *s, int sig);
/* SIGTERM (sent here unless a TERM, INT or QUIT already reached the child
 * through supervise_wait or supervise_signal), wait up to grace_ms while
 * still reaping, then SIGKILL the child's process group; returns its exit
 * code (128 + 9 when killed). Forwards signals meanwhile; leaves a
 * supervise_wake pending for the next supervise_wait. */
int supervise_stop(struct supervise *s, long long grace_ms);
/* Whether the child is running. */
bool supervise_running(const struct supervise *s);

#endif
