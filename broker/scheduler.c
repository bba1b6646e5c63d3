/* scheduler.c - one thread that keeps every secret fresh.
 *
 * Deadlines are CLOCK_MONOTONIC so wall-clock jumps neither stall nor storm
 * refreshes. Fetches run without the scheduler lock held, so stop() and
 * hooks never wait behind a slow backend more than one fetch.
 */
#include "scheduler.h"
#include "backend.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#define SCHED_ERR_MAX 256
#define SCHED_BACKOFF_BASE_MS 1000LL

struct scheduler {
    struct store *st;
    struct sched_hooks hooks;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool started;
    bool stop;                     /* protected by lock */
    struct timespec *due;          /* per secret; protected by lock */
    char (*errors)[SCHED_ERR_MAX]; /* per secret; written only by the fetching thread */
};

int scheduler_new(struct store *st, struct scheduler **out)
{
    pthread_condattr_t ca;
    struct scheduler *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return -ENOMEM;
    sc->st = st;
    sc->due = calloc(st->n + 1, sizeof(*sc->due));
    sc->errors = calloc(st->n + 1, sizeof(*sc->errors));
    if (!sc->due || !sc->errors) {
        free(sc->due);
        free(sc->errors);
        free(sc);
        return -ENOMEM;
    }
    pthread_mutex_init(&sc->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sc->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = sc;
    return 0;
}

void scheduler_set_hooks(struct scheduler *sc, const struct sched_hooks *hooks)
{
    sc->hooks = *hooks;
}

void scheduler_free(struct scheduler *sc)
{
    if (!sc)
        return;
    scheduler_stop(sc);
    pthread_cond_destroy(&sc->cond);
    pthread_mutex_destroy(&sc->lock);
    free(sc->due);
    free(sc->errors);
    free(sc);
}

const char *scheduler_last_error(const struct scheduler *sc, size_t idx)
{
    return sc->errors[idx];
}

static void notify(struct scheduler *sc, size_t idx, bool removed)
{
    if (sc->hooks.changed)
        sc->hooks.changed(sc->hooks.arg, idx, removed);
}

int scheduler_refresh(struct scheduler *sc, size_t idx, char *err, size_t errlen)
{
    struct secret *sec = &sc->st->secrets[idx];
    struct log_fields lf = {.secret = sec->cfg->name, .backend = sec->backend->name};
    struct fetch_result r;
    char msg[SCHED_ERR_MAX] = "";
    enum store_change change;
    int rc;

    fetch_result_init(&r, sec->backend->max_value);
    rc = backend_resolve(sec->backend, &sec->cfg->ref, &r, msg, sizeof(msg));
    if (rc == 0)
        rc = store_update(sc->st, idx, r.value.data, r.value.len, &change);
    fetch_result_cleanup(&r);   /* wipes the plaintext */

    if (rc == 0) {
        sc->errors[idx][0] = '\0';
        switch (change) {
        case STORE_NEW:
            log_f(LOG_INFO, &lf, "secret fetched");
            notify(sc, idx, false);
            break;
        case STORE_ROTATED:
            log_f(LOG_INFO, &lf, "secret rotated");
            notify(sc, idx, false);
            break;
        case STORE_RECOVERED:
            log_f(LOG_INFO, &lf, "secret recovered");
            notify(sc, idx, false);
            break;
        case STORE_UNCHANGED:
            log_f(LOG_DEBUG, &lf, "secret unchanged");
            break;
        }
        return 0;
    }

    if (msg[0] == '\0')
        snprintf(msg, sizeof(msg), "%s", strerror(-rc));
    snprintf(sc->errors[idx], SCHED_ERR_MAX, "%s", msg);
    if (err)
        snprintf(err, errlen, "%s", msg);
    lf.error = msg;
    if (rc == -ENOENT) {
        if (store_remove(sc->st, idx)) {
            log_f(LOG_WARN, &lf, "secret removed");
            notify(sc, idx, true);
        } else {
            log_f(LOG_WARN, &lf, "fetch failed");
        }
        return rc;
    }
    switch (store_fail(sc->st, idx)) {
    case SECRET_ABSENT:
        log_f(LOG_ERROR, &lf, "fetch failed");
        break;
    case SECRET_FRESH:
    case SECRET_STALE:
        log_f(LOG_WARN, &lf, "refresh failed, serving stale value");
        break;
    case SECRET_EXPIRED:
        if (store_check_expiry(sc->st, idx))
            log_f(LOG_ERROR, &lf, "secret expired, failing closed");
        else
            log_f(LOG_WARN, &lf, "refresh failed, still failing closed");
        break;
    }
    return rc;
}

size_t scheduler_fetch_all(struct scheduler *sc)
{
    size_t failed = 0;
    for (size_t i = 0; i < sc->st->n; i++)
        if (scheduler_refresh(sc, i, NULL, 0) < 0)
            failed++;
    return failed;
}

static void ts_add_ms(struct timespec *t, long long ms)
{
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static int ts_cmp(const struct timespec *a, const struct timespec *b)
{
    if (a->tv_sec != b->tv_sec)
        return a->tv_sec < b->tv_sec ? -1 : 1;
    return a->tv_nsec < b->tv_nsec ? -1 : a->tv_nsec > b->tv_nsec;
}

/* Milliseconds until the next attempt at secret idx. Healthy: the refresh
 * interval ±10% (spreads load on the backend), never past 90% of max_stale
 * so a healthy secret never fails closed. Failing: exponential backoff from
 * 1 s with jitter, capped at the refresh interval. */
static long long next_delay_ms(const struct secret *sec, unsigned failures)
{
    long long refresh = sec->cfg->attrs.refresh * 1000LL;
    if (failures == 0) {
        long long spread = refresh / 5;   /* 20% wide: ±10% */
        long long d = refresh - refresh / 10 + (spread > 0 ? (long long)randombytes_uniform(
                                                   (uint32_t)(spread < UINT32_MAX ? spread : UINT32_MAX)) : 0);
        long long cap = sec->cfg->attrs.max_stale * 900LL;
        return d < cap ? d : cap;
    }
    long long b = SCHED_BACKOFF_BASE_MS << (failures > 20 ? 20 : failures - 1);
    if (b > refresh)
        b = refresh;
    /* Equal jitter: at least half the backoff, so retries never storm. */
    return b / 2 + (long long)randombytes_uniform((uint32_t)(b / 2 + 1));
}

static unsigned failures_of(struct store *st, size_t idx)
{
    struct secret *sec = &st->secrets[idx];
    pthread_mutex_lock(&sec->lock);
    unsigned f = sec->failures;
    pthread_mutex_unlock(&sec->lock);
    return f;
}

static void schedule(struct scheduler *sc, size_t idx)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    ts_add_ms(&t, next_delay_ms(&sc->st->secrets[idx], failures_of(sc->st, idx)));
    sc->due[idx] = t;
}

static void *sched_thread(void *arg)
{
    struct scheduler *sc = arg;
    pthread_mutex_lock(&sc->lock);
    while (!sc->stop) {
        size_t next = SIZE_MAX;
        for (size_t i = 0; i < sc->st->n; i++)
            if (next == SIZE_MAX || ts_cmp(&sc->due[i], &sc->due[next]) < 0)
                next = i;
        if (next == SIZE_MAX) {
            pthread_cond_wait(&sc->cond, &sc->lock);
            continue;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (ts_cmp(&now, &sc->due[next]) < 0) {
            pthread_cond_timedwait(&sc->cond, &sc->lock, &sc->due[next]);
            continue;
        }
        pthread_mutex_unlock(&sc->lock);
        (void)scheduler_refresh(sc, next, NULL, 0);
        pthread_mutex_lock(&sc->lock);
        schedule(sc, next);
    }
    pthread_mutex_unlock(&sc->lock);
    return NULL;
}

int scheduler_start(struct scheduler *sc)
{
    sigset_t all, old;
    pthread_mutex_lock(&sc->lock);
    for (size_t i = 0; i < sc->st->n; i++)
        schedule(sc, i);
    sc->stop = false;
    pthread_mutex_unlock(&sc->lock);
    /* Signals belong to the FUSE loop: the new thread starts with all blocked. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&sc->thread, NULL, sched_thread, sc);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    sc->started = true;
    return 0;
}

void scheduler_stop(struct scheduler *sc)
{
    if (!sc->started)
        return;
    pthread_mutex_lock(&sc->lock);
    sc->stop = true;
    pthread_cond_signal(&sc->cond);
    pthread_mutex_unlock(&sc->lock);
    pthread_join(sc->thread, NULL);
    sc->started = false;
}
