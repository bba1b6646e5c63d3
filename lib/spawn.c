/* spawn.c - see spawn.h. */
#include "lib/spawn.h"
#include "lib/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The longest a poll sleeps: the child's exit is noticed by waitpid, which
 * poll does not wake for. */
#define SPAWN_POLL_MS 100

void spawn_result_cleanup(struct spawn_result *r)
{
    secbuf_cleanup(&r->out);
    free(r->err);
    r->err = NULL;
    r->err_len = 0;
}

/* Start o->path with stdout on out_w and, when captured, stderr on err_w. */
static int start(const struct spawn_opts *o, int out_w, int err_w, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t all, none;
    int rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_w, STDOUT_FILENO);
    if (err_w >= 0)
        posix_spawn_file_actions_adddup2(&fa, err_w, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_init(&attr);
    /* Default actions and nothing blocked: an ignored signal would
     * otherwise survive the exec, and the calling thread blocks every
     * signal. */
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    rc = posix_spawn(pid, o->path, &fa, &attr, o->argv, o->envp ? o->envp : environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Read what is there on fd: stdout into r->out (secret), stderr into
 * r->err up to err_max (the rest dropped). 1 at end of file, 0, or -E2BIG
 * when stdout passed its cap. */
static int drain(int fd, bool is_out, const struct spawn_opts *o, struct spawn_result *r)
{
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    int rc = 0;
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        return 1;
    if (n < 0)
        return 0;
    if (is_out) {
        rc = secbuf_append(&r->out, chunk, (size_t)n);
        secmem_wipe(chunk, sizeof(chunk));
        return rc < 0 ? -E2BIG : 0;
    }
    size_t take = (size_t)n;
    if (take > o->err_max - r->err_len)
        take = o->err_max - r->err_len;
    memcpy(r->err + r->err_len, chunk, take);
    r->err_len += take;
    r->err[r->err_len] = '\0';
    return 0;
}

/* Programs running now, for a PID 1 that reaps every zombie (runsecrets
 * exec, broker/supervise.c): its waitpid(-1) may take the exit status of
 * one of ours, which it then hands back with spawn_claim_status. Process-
 * wide, like the zombies themselves. Nodes live on spawn_run's stack. */
struct live {
    pid_t pid;
    bool reaped;           /* by someone else: status holds what they got */
    int status;
    struct live *next;
};
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;   /* protects live_list */
static struct live *live_list;

bool spawn_claim_status(pid_t pid, int status)
{
    bool ours = false;
    pthread_mutex_lock(&live_lock);
    for (struct live *l = live_list; l; l = l->next)
        if (l->pid == pid) {
            l->reaped = true;
            l->status = status;
            ours = true;
            break;
        }
    pthread_mutex_unlock(&live_lock);
    return ours;
}

static void live_remove(struct live *me)
{
    pthread_mutex_lock(&live_lock);
    for (struct live **p = &live_list; *p; p = &(*p)->next)
        if (*p == me) {
            *p = me->next;
            break;
        }
    pthread_mutex_unlock(&live_lock);
}

/* A reaper hands a status over at once; past this, nobody will. */
#define SPAWN_HANDOVER_MAX_MS 10000

/* Whether pid has exited (*status set), by our waitpid or by a reaper
 * that handed it back. block: wait for it (bounded). */
static bool child_done(struct live *me, bool block, int *status)
{
    long long give_up = clock_mono_ms() + SPAWN_HANDOVER_MAX_MS;
    for (;;) {
        pid_t w = waitpid(me->pid, status, block ? 0 : WNOHANG);
        if (w == me->pid)
            return true;
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {   /* ECHILD: a reaper took it; it hands the status over */
            bool done;
            pthread_mutex_lock(&live_lock);
            done = me->reaped;
            *status = me->status;
            pthread_mutex_unlock(&live_lock);
            if (done || !block || clock_mono_ms() > give_up)
                return done;
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        return false;   /* 0: still running */
    }
}

int spawn_run(const struct spawn_opts *o, struct spawn_result *r, char *err, size_t errlen)
{
    struct live me = {.pid = -1};
    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    pid_t pid = -1;
    int rc = 0, status = 0;
    bool exited = false, out_eof = false, err_eof = true;

    memset(r, 0, sizeof(*r));
    secbuf_init(&r->out, o->out_max);
    if (o->err_max > 0) {
        if (!(r->err = calloc(1, o->err_max + 1)))
            return -ENOMEM;
        err_eof = false;
    }
    /* Only our read ends are non-blocking: O_NONBLOCK belongs to the open
     * pipe, so pipe2(O_NONBLOCK) would hand the child a stdout that fails
     * with EAGAIN whenever the pipe is full (`yes` under load did). */
    if (pipe2(out_p, O_CLOEXEC) != 0 || fcntl(out_p[0], F_SETFL, O_NONBLOCK) != 0 ||
        (o->err_max > 0 &&
         (pipe2(err_p, O_CLOEXEC) != 0 || fcntl(err_p[0], F_SETFL, O_NONBLOCK) != 0))) {
        rc = -errno;
        snprintf(err, errlen, "cannot make a pipe: %s", strerror(-rc));
        goto out;
    }
    /* Listed before it can exit: a reaper's claim waits for the lock. */
    pthread_mutex_lock(&live_lock);
    rc = start(o, out_p[1], err_p[1], &pid);
    if (rc == 0) {
        me.pid = pid;
        me.next = live_list;
        live_list = &me;
    }
    pthread_mutex_unlock(&live_lock);
    close(out_p[1]);
    out_p[1] = -1;
    if (err_p[1] >= 0) {
        close(err_p[1]);
        err_p[1] = -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot start %s: %s", o->path, strerror(rc));
        rc = -rc;
        pid = -1;
        goto out;
    }
    long long deadline = clock_mono_ms() + o->timeout_ms;
    while (!exited || !out_eof || !err_eof) {
        long long left = deadline - clock_mono_ms();
        if (left <= 0) {
            snprintf(err, errlen, "no answer within %lld s", (o->timeout_ms + 999) / 1000);
            rc = -ETIMEDOUT;
            break;
        }
        if (!out_eof || !err_eof) {
            struct pollfd p[2] = {{.fd = out_eof ? -1 : out_p[0], .events = POLLIN},
                                  {.fd = err_eof ? -1 : err_p[0], .events = POLLIN}};
            if (poll(p, 2, (int)(left < SPAWN_POLL_MS ? left : SPAWN_POLL_MS)) > 0) {
                int d = p[0].revents ? drain(out_p[0], true, o, r) : 0;
                if (d == -E2BIG) {
                    snprintf(err, errlen, "output larger than %zu bytes", o->out_max);
                    rc = -E2BIG;
                    break;
                }
                out_eof = out_eof || d == 1;
                if (p[1].revents && drain(err_p[0], false, o, r) == 1)
                    err_eof = true;
            }
        } else {
            /* Output done, exit not yet seen: wait for it in small steps. */
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (!exited)
            exited = child_done(&me, false, &status);
    }
    /* Past the deadline or the cap the whole group goes, grandchildren
     * too, even when the program itself already exited: one of them may
     * still hold the pipe. */
    if (rc < 0 || !exited)
        kill(-pid, SIGKILL);
    if (!exited && !child_done(&me, true, &status)) {
        snprintf(err, errlen, "%s: its exit status was taken by another waiter", o->path);
        rc = -ECHILD;
    }
    r->status = status;
out:
    if (me.pid > 0)
        live_remove(&me);
    for (int i = 0; i < 2; i++) {
        if (out_p[i] >= 0)
            close(out_p[i]);
        if (err_p[i] >= 0)
            close(err_p[i]);
    }
    return rc;
}
