/* supervise.c - PID 1's duties for `runsecrets exec` (see supervise.h and
 * docs/internals/exec.md). */
#include "broker/supervise.h"
#include "lib/spawn.h"
#include "lib/clock.h"
#include "lib/ids.h"
#include "lib/log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

/* How long supervise_stop waits for the child to be reaped after SIGKILL:
 * a process in uninterruptible sleep (a hung NFS read) may take a while,
 * but PID 1 must exit at some point. */
#define SUPERVISE_KILL_WAIT_MS 5000
/* Where close_from's fallback stops when close_range is missing. */
#define SUPERVISE_FD_SCAN_MAX 65536
/* The child's own stack (supervise_start): child_run's frames and what
 * glibc's execvpe puts on the stack, a PATH entry joined with the name
 * (at most PATH_MAX + NAME_MAX) and, for a script without #!, the argv
 * again, which is added per start. */
#define SUPERVISE_CHILD_STACK (64 * 1024)

/* The code the clone child runs (child_run and what it calls). ASan's
 * instrumentation would take the child's stack for a corrupt one of the
 * caller's thread (whose state it shares: same memory, same TLS), warn on
 * stderr at the _exit of a failed exec, and leave redzones poisoned in the
 * shadow memory we share. The child makes system calls only: nothing for
 * ASan to check. */
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_CODE __attribute__((no_sanitize_address))
#else
#define CHILD_CODE
#endif

/* The signals PID 1 forwards to the child (TERM, INT and QUIT also mean
 * "stop"), and CHLD, which means "reap". CONT: an app stopped by ^Z under
 * `docker run -it` has no shell to resume it; `docker kill -s CONT` does. */
static const int forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                        SIGWINCH, SIGCONT};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

struct supervise {
    int sig_fd;        /* signalfd of forwarded_signals + SIGCHLD */
    int wake_fd;       /* eventfd: supervise_wake, from any thread */
    pid_t child;       /* -1: none running (never started, or reaped) */
    bool signal_group; /* forward to -child (setsid made it a group leader) */
    bool stop_sent;    /* TERM, INT or QUIT reached this child */
    int status;        /* exit code of the last child reaped */
    /* We gave our controlling terminal up for the child (TIOCNOTTY as the
     * session leader): the SIGHUP and SIGCONT the kernel sent us for it, in
     * our own name, are not the child's. A bit is cleared when its signal
     * is read. */
    bool tty_hup_due;
    bool tty_cont_due;
};

/* What the child tells the parent through the CLOEXEC pipe when it fails
 * before or at the exec. Nothing arrives when the exec succeeds. */
enum child_stage {
    STAGE_SETGROUPS = 1,
    STAGE_SETGID,
    STAGE_SETUID,
    STAGE_NO_NEW_PRIVS,
    STAGE_CAPBSET,
    STAGE_AMBIENT,
    STAGE_CAPSET,
    STAGE_RLIMIT,
    STAGE_EXEC,
    /* Not fatal: the child goes on without a controlling terminal. */
    STAGE_CTTY,
    STAGE_TTY_FOREGROUND,
};

struct child_report {
    int stage;
    int err;
};

/* ---- --user ---- */

void supervise_user_cleanup(struct supervise_user *u)
{
    free(u->groups);
    memset(u, 0, sizeof(*u));
}

/* A uid or gid written in digits: 0, or -EINVAL when s is not all digits
 * or is (uid_t)-1 or more, which setuid would read as "unchanged". */
static int parse_id(const char *s, unsigned *out)
{
    if (!*s)
        return -EINVAL;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end || v >= UINT32_MAX)
        return -ERANGE;
    *out = (unsigned)v;
    return 0;
}

/* The user's groups from /etc/group, gid first (getgrouplist puts it in). */
static int user_groups(const char *name, gid_t gid, struct supervise_user *u)
{
    int n = 16;
    for (;;) {
        gid_t *g = realloc(u->groups, (size_t)n * sizeof(*g));
        if (!g)
            return -ENOMEM;
        u->groups = g;
        int want = n;
        if (getgrouplist(name, gid, g, &want) >= 0) {
            u->n_groups = (size_t)want;
            return 0;
        }
        if (want <= n || want > 65536)
            return -EINVAL;
        n = want;
    }
}

int supervise_user_parse(const char *spec, struct supervise_user *out, char *err, size_t errlen)
{
    struct supervise_user u = {0};
    struct passwd pw;
    char *copy = NULL, *pwbuf = NULL;
    bool have_pw = false;
    unsigned id;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&pw, 0, sizeof(pw));
    if (!(copy = strdup(spec))) {
        rc = -ENOMEM;
        snprintf(err, errlen, "--user: out of memory");
        goto out;
    }
    char *group = strchr(copy, ':');
    if (group)
        *group++ = '\0';
    if (!*copy || (group && !*group)) {
        rc = -EINVAL;
        snprintf(err, errlen, "--user: expected USER[:GROUP] or UID[:GID], got '%s'", spec);
        goto out;
    }

    if (isdigit((unsigned char)copy[0])) {
        if ((rc = parse_id(copy, &id)) < 0) {
            snprintf(err, errlen, "--user: '%s' is not a valid uid", copy);
            goto out;
        }
        u.uid = (uid_t)id;
        rc = ids_passwd(NULL, u.uid, &pw, &pwbuf);
    } else {
        rc = ids_passwd(copy, 0, &pw, &pwbuf);
        if (rc == -ENOENT) {
            snprintf(err, errlen, "--user: no user '%s' in /etc/passwd", copy);
            goto out;
        }
    }
    if (rc < 0 && rc != -ENOENT) {
        snprintf(err, errlen, "--user: cannot read /etc/passwd: %s", strerror(-rc));
        goto out;
    }
    have_pw = rc == 0;
    if (have_pw)
        u.uid = pw.pw_uid;

    /* A uid unknown to /etc/passwd gets the group of the same number, not
     * root's group 0 (which is what Docker gives it). */
    u.gid = have_pw ? pw.pw_gid : u.uid;
    if (group && isdigit((unsigned char)group[0])) {
        if ((rc = parse_id(group, &id)) < 0) {
            snprintf(err, errlen, "--user: '%s' is not a valid gid", group);
            goto out;
        }
        u.gid = (gid_t)id;
    } else if (group) {
        rc = ids_group(group, &u.gid);
        if (rc == -ENOENT)
            snprintf(err, errlen, "--user: no group '%s' in /etc/group", group);
        else if (rc < 0)
            snprintf(err, errlen, "--user: cannot read /etc/group: %s", strerror(-rc));
        if (rc < 0)
            goto out;
    }

    /* Supplementary groups: the user's memberships in /etc/group with the
     * chosen gid; a uid without a passwd entry has no name to look up and
     * gets the gid alone (so root's own groups never pass to the app). */
    if (have_pw) {
        rc = user_groups(pw.pw_name, u.gid, &u);
        if (rc < 0) {
            snprintf(err, errlen, "--user: cannot list the groups of '%s'", pw.pw_name);
            goto out;
        }
    } else {
        if (!(u.groups = malloc(sizeof(*u.groups)))) {
            rc = -ENOMEM;
            snprintf(err, errlen, "--user: out of memory");
            goto out;
        }
        u.groups[0] = u.gid;
        u.n_groups = 1;
    }
    u.set = true;
    *out = u;
    memset(&u, 0, sizeof(u)); /* ownership moved */
    rc = 0;
out:
    supervise_user_cleanup(&u);
    free(pwbuf);
    free(copy);
    return rc;
}

/* ---- the supervisor ---- */

void supervise_forwarded_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < N_OF(forwarded_signals); i++)
        sigaddset(set, forwarded_signals[i]);
}

static void forwarded_set(sigset_t *set)
{
    supervise_forwarded_set(set);
    sigaddset(set, SIGCHLD);
}

int supervise_block_signals(void)
{
    sigset_t set;
    forwarded_set(&set);
    return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int supervise_fd_floor(void)
{
    int top = 2;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int own = dirfd(d);
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end = NULL;
            long fd = strtol(e->d_name, &end, 10);
            if (*end == '\0' && end != e->d_name && fd != own && fd > top && fd < INT_MAX)
                top = (int)fd;
        }
        closedir(d);
    }
    return top + 1;
}

int supervise_new(struct supervise **out, char *err, size_t errlen)
{
    struct supervise *s = NULL;
    sigset_t set, cur;
    int rc;

    *out = NULL;
    forwarded_set(&set);
    /* A signal that is not blocked never reaches the signalfd: its default
     * action (TERM kills us) would happen instead. */
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(&set, sig) == 1 && sigismember(&cur, sig) != 1) {
            snprintf(err, errlen, "supervise: SIG%s is not blocked (supervise_block_signals first)",
                     sigabbrev_np(sig));
            return -EINVAL;
        }
    }
    if (!(s = calloc(1, sizeof(*s)))) {
        snprintf(err, errlen, "supervise: out of memory");
        return -ENOMEM;
    }
    s->sig_fd = s->wake_fd = s->child = -1;
    if ((s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
        (s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "supervise: %s: %s", s->sig_fd < 0 ? "signalfd" : "eventfd", strerror(-rc));
        goto out;
    }
    /* PID 1 inherits every orphan anyway; elsewhere (tests, `exec` run
     * outside a pid namespace) ask for them, so reaping works the same. */
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
        rc = -errno;
        snprintf(err, errlen, "supervise: PR_SET_CHILD_SUBREAPER: %s", strerror(-rc));
        goto out;
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    supervise_free(s);
    return rc;
}

void supervise_free(struct supervise *s)
{
    if (!s)
        return;
    if (s->sig_fd >= 0)
        close(s->sig_fd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    free(s);
}

/* The highest capability this kernel knows, read before the fork (the
 * child may only make system calls). */
static int cap_last(void)
{
    char buf[16] = {0};
    int last = CAP_LAST_CAP;
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n > 0) {
            char *end = NULL;
            long v = strtol(buf, &end, 10);
            if (end != buf && v >= 0 && v < 64)
                last = (int)v;
        }
        close(fd);
    }
    return last;
}

/* Tell the parent about a step that failed; the parent reads reports
 * until the exec closes the pipe (one write of a few bytes is atomic). */
CHILD_CODE static void child_note(int pipe_w, int stage, int e)
{
    struct child_report r = {stage, e};
    ssize_t n = write(pipe_w, &r, sizeof(r));
    (void)n;
}

CHILD_CODE static _Noreturn void child_fail(int pipe_w, int stage, int e)
{
    child_note(pipe_w, stage, e);
    _exit(stage == STAGE_EXEC && e == ENOENT ? 127 : 126);
}

/* Make stdin, a terminal, the new session's controlling terminal and our
 * group its foreground group, so the terminal's own signals (^C, ^Z,
 * a resize) reach the application's group directly and a shell gets job
 * control. While still privileged: TIOCSCTTY on an fd not open for
 * reading needs CAP_SYS_ADMIN. Arg 0: never steal a terminal that is
 * another session's (the supervisor was not its session leader, so could
 * not give it up): the child runs without one, as it always did. */
CHILD_CODE static void child_take_tty(int pipe_w)
{
    if (ioctl(STDIN_FILENO, TIOCSCTTY, 0) != 0) {
        child_note(pipe_w, STAGE_CTTY, errno);
        return;
    }
    /* Linux's TIOCSCTTY already made our group the foreground one; POSIX
     * does not say so, and a background group would get no ^C. */
    if (tcsetpgrp(STDIN_FILENO, getpgrp()) != 0)
        child_note(pipe_w, STAGE_TTY_FOREGROUND, errno);
}

/* The 32-bit ids' system calls: on i386 and arm32 plain SYS_setuid & co.
 * are the 16-bit legacy ones (glibc uses the *32 ones there too). */
#ifdef SYS_setuid32
#define RS_SYS_SETUID SYS_setuid32
#define RS_SYS_SETGID SYS_setgid32
#define RS_SYS_SETGROUPS SYS_setgroups32
#else
#define RS_SYS_SETUID SYS_setuid
#define RS_SYS_SETGID SYS_setgid
#define RS_SYS_SETGROUPS SYS_setgroups
#endif

/* Runs in the child of supervise_start's clone(CLONE_VM | CLONE_VFORK):
 * on its own stack, in the broker's memory, with the broker's TLS, while
 * the broker's other threads run on. So: system calls only, no
 * allocation, no locks, no stdio, nothing written but our own stack (and
 * errno, which is the suspended caller's). Every signal is blocked on
 * entry, so no handler of the broker's runs here before the dispositions
 * are reset. */
CHILD_CODE static _Noreturn void child_run(const struct supervise_child *c, int pipe_w, int last_cap,
                                            bool tty)
{
    sigset_t none;
    const struct supervise_user *u = c->user;

    setsid();
    if (tty)
        child_take_tty(pipe_w);
    /* Dispositions first, then the mask: nothing is pending in a new child,
     * and an ignored signal would otherwise survive the exec. */
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(sig, &sa, NULL); /* glibc's reserved ones say EINVAL */
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (c->close_from > 2 && close_range((unsigned)c->close_from, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
        struct rlimit rl = {0};
        long top = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < SUPERVISE_FD_SCAN_MAX
                       ? (long)rl.rlim_cur
                       : SUPERVISE_FD_SCAN_MAX;
        for (long fd = c->close_from; fd < top; fd++)
            fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    }

    /* runsecrets set its own core limit to 0 (hard too, broker/hardening.c):
     * give the app the container's back while still root (raising a hard
     * limit needs CAP_SYS_RESOURCE). EPERM: we were never privileged, and
     * the limit the app gets is the one we were given. */
    if (c->core_limit && setrlimit(RLIMIT_CORE, c->core_limit) != 0 && errno != EPERM)
        child_fail(pipe_w, STAGE_RLIMIT, errno);

    /* The bounding set needs CAP_SETPCAP, which setuid takes away: drop it
     * while still root. EPERM means we never had CAP_SETPCAP (runsecrets
     * itself unprivileged, as with --mount-from): the set cannot shrink,
     * and no_new_privs keeps exec from granting anything in it. */
    for (int cap = 0; cap <= last_cap; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL && errno != EPERM)
            child_fail(pipe_w, STAGE_CAPBSET, errno);
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        child_fail(pipe_w, STAGE_AMBIENT, errno);

    /* The raw system calls: glibc's setuid & co. see a threaded process
     * (its flag is the broker's, in shared memory) and would signal the
     * broker's threads to change their ids too. The child is one thread:
     * the system call alone changes all of it. */
    if (u && u->set) {
        if (syscall(RS_SYS_SETGROUPS, u->n_groups, u->groups) != 0)
            child_fail(pipe_w, STAGE_SETGROUPS, errno);
        if (syscall(RS_SYS_SETGID, u->gid) != 0)
            child_fail(pipe_w, STAGE_SETGID, errno);
        if (syscall(RS_SYS_SETUID, u->uid) != 0)
            child_fail(pipe_w, STAGE_SETUID, errno);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        child_fail(pipe_w, STAGE_NO_NEW_PRIVS, errno);
    /* Effective, permitted, inheritable: all empty (a root app keeps uid 0
     * but no capability). Lowering needs no privilege. */
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) != 0)
        child_fail(pipe_w, STAGE_CAPSET, errno);

    execvpe(c->argv[0], c->argv, c->envp);
    child_fail(pipe_w, STAGE_EXEC, errno);
}

struct child_args {
    const struct supervise_child *c;
    int pipe_w;
    int last_cap;
    bool tty;
};

CHILD_CODE static int child_entry(void *arg)
{
    const struct child_args *a = arg;
    child_run(a->c, a->pipe_w, a->last_cap, a->tty);
}

/* Start child_run in a new process that shares our memory until its
 * execve (or _exit), the calling thread suspended until then, as glibc's
 * posix_spawn does. Not fork: fork copies the page tables of every
 * mapping (36 libraries, a dozen thread stacks, the locked secret heaps),
 * write-protects our anonymous memory so every thread's next write to a
 * page faults, and the child's execve then tears that copy down again:
 * 4.3 ms from fork to the child's execve here, tini's fork takes 2.4
 * (docs/performance.md, exec). Nor vfork(): the child would run on the
 * caller's stack and return through its frames. The stack is a mapping of
 * our own, freed once the child has left it. Every signal is blocked
 * across the clone, so the child starts with them blocked (child_run
 * resets the dispositions, then the mask); the caller's mask comes back
 * after. Returns the pid, or -errno. */
static pid_t child_spawn(const struct supervise_child *c, int pipe_w, int last_cap, bool tty)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), argc = 0;
    while (c->argv[argc])
        argc++;
    size_t size = SUPERVISE_CHILD_STACK + (argc + 2) * sizeof(char *) + page - 1;
    size = size / page * page + page;   /* + the guard page at the bottom */
    unsigned char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (stack == MAP_FAILED)
        return -errno;
    pid_t pid = -EAGAIN;
    if (mprotect(stack, page, PROT_NONE) != 0) {
        pid = -errno;
        goto out;
    }
    struct child_args a = {.c = c, .pipe_w = pipe_w, .last_cap = last_cap, .tty = tty};
    sigset_t all, old;
    sigfillset(&all);
    /* The child shares our mm: its setuid/setgid make the kernel set the
     * mm's dumpable flag to fs.suid_dumpable (commit_creds), which is
     * ours too. Put back what hardening_init set once it has exec'd. */
    int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = clone(child_entry, stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
    if (pid < 0)
        pid = -errno;
    if (dumpable >= 0)
        (void)prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
#if defined(__SANITIZE_ADDRESS__)
    /* Should anything in the child (an interceptor) have poisoned shadow
     * memory of its stack, the next mapping at this address must not
     * inherit it. */
    ASAN_UNPOISON_MEMORY_REGION(stack + page, size - page);
#endif
out:
    munmap(stack, size);
    return pid;
}

static const char *stage_name(int stage)
{
    switch (stage) {
    case STAGE_SETGROUPS:
        return "setgroups";
    case STAGE_SETGID:
        return "setgid";
    case STAGE_SETUID:
        return "setuid";
    case STAGE_NO_NEW_PRIVS:
        return "set PR_SET_NO_NEW_PRIVS";
    case STAGE_CAPBSET:
        return "drop the capability bounding set";
    case STAGE_AMBIENT:
        return "clear the ambient capabilities";
    case STAGE_CAPSET:
        return "drop capabilities (capset)";
    case STAGE_RLIMIT:
        return "restore the core-dump limit";
    case STAGE_CTTY:
        return "make the terminal the controlling one (TIOCSCTTY)";
    case STAGE_TTY_FOREGROUND:
        return "make the application the terminal's foreground (tcsetpgrp)";
    default:
        return "exec";
    }
}

/* In `docker run -t`, the runtime made stdin's terminal PID 1's
 * controlling terminal, with PID 1 as session leader and its group in the
 * foreground. The child's new session can take the terminal only once no
 * session holds it, and only its session leader can release it for the
 * whole session: TIOCNOTTY. The kernel then sends SIGHUP and SIGCONT to
 * the terminal's foreground group (us) in our own name; both are swallowed
 * in wait_once.
 * Not the session leader (runsecrets run from an interactive shell): the
 * terminal is the shell's, we leave it alone. Only the first start finds
 * it ours: after it, a child's session holds it, and when that leader
 * exits the kernel frees it for the next. */
static void tty_give_up(struct supervise *s)
{
    pid_t sid = getsid(0);
    if (sid != getpid() || tcgetsid(STDIN_FILENO) != sid)
        return;
    if (ioctl(STDIN_FILENO, TIOCNOTTY) != 0) {
        log_f(LOG_DEBUG, &(struct log_fields){.error = strerror(errno)},
              "cannot give the controlling terminal to the application (TIOCNOTTY)");
        return;
    }
    s->tty_hup_due = true;
    s->tty_cont_due = true;
}

/* SIGHUP or SIGCONT that our own TIOCNOTTY made the kernel send: si_code
 * SI_USER with our pid as the sender (kill_pgrp without privilege, kernel
 * tty_jobctrl.c). From outside the pid namespace a sender reads as pid 0,
 * and nothing of ours kill()s itself: no other signal matches. */
static bool is_tty_signal(struct supervise *s, const struct signalfd_siginfo *si)
{
    bool *due = si->ssi_signo == SIGHUP ? &s->tty_hup_due
              : si->ssi_signo == SIGCONT ? &s->tty_cont_due : NULL;
    if (!due || !*due || si->ssi_code != SI_USER || si->ssi_pid != (uint32_t)getpid())
        return false;
    *due = false;
    return true;
}

int supervise_start(struct supervise *s, const struct supervise_child *c, char *err, size_t errlen)
{
    int p[2] = {-1, -1};
    int rc;

    if (s->child > 0) {
        snprintf(err, errlen, "supervise: a child is already running (pid %d)", (int)s->child);
        return -EBUSY;
    }
    if (!c->argv || !c->argv[0]) {
        snprintf(err, errlen, "supervise: no command");
        return -EINVAL;
    }
    int last = cap_last();
    bool tty = isatty(STDIN_FILENO);
    if (tty)
        tty_give_up(s);
    if (pipe2(p, O_CLOEXEC) != 0) {
        rc = -errno;
        snprintf(err, errlen, "supervise: pipe: %s", strerror(-rc));
        return rc;
    }
    /* The child gets a copy of our descriptors (no CLONE_FILES): p[0] is
     * CLOEXEC, and gone with the exec. */
    pid_t pid = child_spawn(c, p[1], last, tty);
    if (pid < 0) {
        rc = pid;
        snprintf(err, errlen, "cannot start %s: clone: %s", c->argv[0], strerror(-rc));
        goto out;
    }
    close(p[1]);
    p[1] = -1;
    s->child = pid;
    s->signal_group = c->signal_group;
    s->stop_sent = false;

    /* The child has exec'd or exited (CLONE_VFORK): its reports are in the
     * pipe. End of file: the exec closed it, the command runs. */
    struct child_report r;
    ssize_t n;
    for (;;) {
        n = read(p[0], &r, sizeof(r));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(r) || (r.stage != STAGE_CTTY && r.stage != STAGE_TTY_FOREGROUND))
            break;
        log_f(LOG_DEBUG, &(struct log_fields){.error = strerror(r.err)},
              "no terminal job control for the application: cannot %s", stage_name(r.stage));
    }
    rc = 0;
    if (n == (ssize_t)sizeof(r) && r.stage == STAGE_EXEC) {
        /* As a shell does: one line, and the status (127 or 126) is the
         * child's, which supervise_wait reports. */
        fprintf(stderr, "runsecrets exec: %s: %s\n", c->argv[0], strerror(r.err));
        fflush(stderr);
    } else if (n == (ssize_t)sizeof(r)) {
        /* Failing to drop privileges is ours, not the app's: no status to
         * pass on, the caller stops with this error. */
        rc = r.err ? -r.err : -EPERM;
        snprintf(err, errlen, "cannot %s for %s: %s", stage_name(r.stage), c->argv[0], strerror(r.err));
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        s->child = -1;
    }
out:
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    return rc;
}

static int exit_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 255;
}

/* Reap every zombie there is (orphans reparented to us included: one
 * SIGCHLD may stand for many). True when the child was among them. */
static bool reap(struct supervise *s)
{
    bool found = false;
    for (;;) {
        int st = 0;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return found;
        if (pid == s->child) {
            s->status = exit_code(st);
            s->child = -1;
            found = true;
        } else {
            (void)spawn_claim_status(pid, st);   /* a credential_process of ours */
        }
    }
}

int supervise_signal(struct supervise *s, int sig)
{
    if (s->child <= 0)
        return -ESRCH;
    /* The group (setsid made the child its leader) reaches its children
     * too; kill(child) alone would leave a shell's `sleep` running. */
    int rc = kill(s->signal_group ? -s->child : s->child, sig);
    if (rc != 0 && s->signal_group)
        rc = kill(s->child, sig);
    if (rc != 0)
        return -errno;
    if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
        s->stop_sent = true;
    return 0;
}

/* One pass of supervise_wait; with_wake false leaves the eventfd alone
 * (supervise_stop keeps a wake-up for the caller's next wait). */
static enum supervise_event wait_once(struct supervise *s, long long timeout_ms, bool with_wake, int *status)
{
    long long deadline = timeout_ms < 0 ? -1 : clock_mono_ms() + timeout_ms;

    if (s->child <= 0) {
        *status = s->status;
        return SUPERVISE_EXITED;
    }
    for (;;) {
        struct signalfd_siginfo si;
        /* One signal at a time: the rest stay queued in the signalfd for
         * the next call, so none is lost when this one returns. */
        ssize_t n = read(s->sig_fd, &si, sizeof(si));
        if (n == (ssize_t)sizeof(si)) {
            int sig = (int)si.ssi_signo;
            if (sig == SIGCHLD) {
                if (reap(s)) {
                    *status = s->status;
                    return SUPERVISE_EXITED;
                }
                continue;
            }
            if (is_tty_signal(s, &si)) {
                log_debug("SIG%s from giving up the terminal, not forwarded",
                          sig == SIGHUP ? "HUP" : "CONT");
                continue;
            }
            supervise_signal(s, sig); /* -ESRCH: it just exited; CHLD follows */
            if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT)
                return SUPERVISE_STOP;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            /* Cannot happen with a valid signalfd; do not spin on it. */
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (with_wake) {
            uint64_t v;
            if (read(s->wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
                return SUPERVISE_WAKE;
        }
        long long left = -1;
        if (deadline >= 0) {
            left = deadline - clock_mono_ms();
            if (left <= 0)
                return SUPERVISE_TIMEOUT;
        }
        struct pollfd pfd[2] = {{.fd = s->sig_fd, .events = POLLIN},
                                {.fd = with_wake ? s->wake_fd : -1, .events = POLLIN}};
        int pr = poll(pfd, 2, left < 0 ? -1 : (left > INT_MAX ? INT_MAX : (int)left));
        if (pr < 0 && errno != EINTR) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

enum supervise_event supervise_wait(struct supervise *s, long long timeout_ms, int *status)
{
    return wait_once(s, timeout_ms, true, status);
}

void supervise_wake(struct supervise *s)
{
    uint64_t one = 1;
    ssize_t n = write(s->wake_fd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is full, a wake-up is pending anyway */
}

int supervise_stop(struct supervise *s, long long grace_ms)
{
    int status = s->status;

    if (s->child <= 0)
        return s->status;
    if (!s->stop_sent)
        supervise_signal(s, SIGTERM);
    long long deadline = clock_mono_ms() + (grace_ms > 0 ? grace_ms : 0);
    for (;;) {
        long long left = deadline - clock_mono_ms();
        if (left <= 0)
            break;
        if (wait_once(s, left, false, &status) == SUPERVISE_EXITED)
            return status;
    }
    /* Grace is over: the whole group, so the app's own children go too. */
    pid_t pgid = s->child;
    if (kill(-pgid, SIGKILL) != 0)
        kill(pgid, SIGKILL);
    deadline = clock_mono_ms() + SUPERVISE_KILL_WAIT_MS;
    for (;;) {
        long long left = deadline - clock_mono_ms();
        if (left <= 0)
            return 128 + SIGKILL;
        if (wait_once(s, left, false, &status) == SUPERVISE_EXITED)
            return status;
    }
}

bool supervise_running(const struct supervise *s)
{
    return s->child > 0;
}
