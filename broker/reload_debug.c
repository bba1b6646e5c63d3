/* reload_debug.c - TEMPORARY test trigger for broker_apply, until the
 * SIGHUP thread of the hostsvc branch is merged: with
 * RUNSECRETS_DEBUG_RELOAD_FIFO=PATH (a FIFO), each byte written to it
 * loads the configuration again and applies it, and logs the outcome
 * ("debug reload" with result ok/failed). Not for production: it is
 * removed when hostsvc's reload plumbing lands. */
#include "broker/reload_debug.h"
#include "broker/reload.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

struct debug_reload {
    struct broker *b;
    char *path;
    int fd;
};

static void *debug_thread(void *arg)
{
    struct debug_reload *d = arg;
    char c;
    for (;;) {
        ssize_t n = read(d->fd, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        char err[1024] = "";
        struct config *next = NULL;
        int rc = cfg_load(d->path, &next, err, sizeof(err));
        if (rc == 0)
            rc = broker_apply(d->b, next, err, sizeof(err));
        /* warn: seen by tests that run with --log-level warn (no audit lines) */
        log_f(rc == 0 ? LOG_WARN : LOG_ERROR,
              &(struct log_fields){.result = rc == 0 ? "ok" : "failed", .error = rc ? err : NULL,
                                   .has_counts = rc == 0, .ok = (long)d->b->last_apply.added,
                                   .failed = (long)d->b->last_apply.removed,
                                   .ms = d->b->last_apply.ms},
              "debug reload");
    }
    return NULL;
}

void reload_debug_start(struct broker *b, const char *config_path)
{
    const char *fifo = getenv("RUNSECRETS_DEBUG_RELOAD_FIFO");
    if (!fifo || !fifo[0])
        return;
    struct debug_reload *d = calloc(1, sizeof(*d));
    if (!d)
        return;
    d->b = b;
    d->path = realpath(config_path, NULL);
    d->fd = open(fifo, O_RDWR | O_CLOEXEC);   /* RDWR: never EOF when a writer closes */
    if (!d->path || d->fd < 0) {
        log_error("debug reload: cannot open the FIFO or the config");
        return;   /* the process ends soon: a test setup error */
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    if (pthread_create(&t, NULL, debug_thread, d) == 0)
        pthread_detach(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    log_warn("debug reload trigger enabled (RUNSECRETS_DEBUG_RELOAD_FIFO): tests only");
}
