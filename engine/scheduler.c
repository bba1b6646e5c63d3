/* scheduler.c - one timing thread and a pool of fetch workers.
 *
 * The timing thread only decides what is due and queues it; workers do the
 * fetching, so a slow backend delays nothing but its own secrets, and a cold
 * start of N secrets runs N fetches at once (bounded by the pool and by each
 * backend's max_parallel). Deadlines are CLOCK_MONOTONIC so wall-clock jumps
 * neither stall nor storm refreshes.
 *
 * Work items are groups (secrets sharing one backend object) followed by
 * backends (token upkeep). An item is never queued twice: while in flight
 * it is not due, which is what makes a group's fetch single-flight.
 *
 * Two pools, each with its own queue. Network items get one worker per
 * group and per backend, so a cold start runs them all at once and a slow
 * server holds up nobody else. Items of local backends (BACKEND_CAP_LOCAL:
 * files) answer in microseconds and share one worker: a thread per file
 * cost more than its read (each ~0.5 ms to create and join on the
 * benchmark VM: docs/performance.md, exec). A file read that hangs (a stuck
 * network file system) so holds up the other files' refreshes, never a
 * network backend's.
 */
#include "engine/scheduler.h"
#include "engine/sched_policy.h"
#include "lib/secmem.h"
#include "lib/regs.h"
#include "backends/backend.h"
#include "backends/extract.h"
#include "lib/log.h"
#include "lib/clock.h"
#include "lib/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHED_ERR_MAX 512
#define SCHED_MAX_WORKERS 64
#define SCHED_TIMER_SLACK_MS 10
#define SCHED_BATCH_LIMIT 256   /* largest batch a backend may ask for */

/* The two pools (see the top of the file). */
enum { POOL_NET, POOL_LOCAL, N_POOLS };

struct group {
    struct backend *backend;       /* borrowed */
    const struct secret_ref *ref;  /* the first member's; path and version are shared */
    size_t *members;
    size_t n;
    struct sched_state state;      /* failures, held-back read; worker only */
    bool settled;                  /* first attempt done; under sc->lock */
};

/* Groups of one batching backend fetched together at the cold start. */
struct batch {
    struct backend *backend;       /* borrowed */
    size_t *groups;
    size_t n;
};

struct item {
    struct timespec due;
    bool never;                    /* nothing to do until told otherwise */
    bool inflight;
    unsigned pool;                 /* POOL_*: which workers run it; fixed when the item is made */
};

/* A queue of item indexes and the workers that take from it. */
struct pool {
    pthread_cond_t work;           /* its workers wait here */
    size_t *queue;                 /* ring of item indexes; under lock */
    size_t qhead, qlen;
    unsigned nworkers;             /* wanted; under lock (a reload may raise it) */
    unsigned nstarted;             /* running; under lock */
};

struct scheduler {
    struct store *st;
    struct backend **backends;
    size_t nb;
    struct group *groups;
    size_t ng;
    struct batch *batches;         /* items ng + nb ... */
    size_t nbatch;
    struct sched_hooks hooks;

    pthread_mutex_t lock;
    pthread_cond_t timer;          /* the timing thread waits here */
    pthread_cond_t idle;           /* fetch_all and scheduler_pause wait here */
    struct item *items;            /* ng groups, nb backends, nbatch batches; under lock */
    struct pool pools[N_POOLS];    /* queues under lock */
    bool stop;
    bool paused;                   /* scheduler_pause: no worker takes an item */
    unsigned busy;                 /* workers between taking an item and the next wait */
    size_t unsettled;              /* groups whose first attempt is pending */
    bool log_cold_start;
    struct timespec started_at;

    pthread_t timer_thread;
    /* When the timer will next walk the items (under lock, set as it
     * waits): a finished fetch whose next due time is later need not wake
     * it. timer_at_any: it waits with no deadline. */
    struct timespec timer_at;
    bool timer_at_any;
    pthread_t workers[SCHED_MAX_WORKERS + 1];   /* in the order started, either pool */
    unsigned nstarted;             /* entries of workers; main or reload thread only */
    bool timer_started;

    /* Per secret: its last error, or NULL. A copy of its own, made only
     * when a fetch fails: a fixed SCHED_ERR_MAX array per secret was 5 MiB
     * at 10,000 secrets, all of it touched by clearing it on success
     * (docs/internals/memory.md). Written by the worker of its group, the
     * pointer swapped under lock for scheduler_last_error. */
    char **errors;
    size_t nerrors;                /* entries of errors (the store's count when made) */
};



/* A secret's group key (backend instance, path, version, stage) and its
 * index, sorted so that equal keys are adjacent: grouping and a reload's
 * matching are O(n log n), not a comparison of every pair (1,000 secrets
 * took ~10 ms that way, with the scheduler paused during a reload). */
struct gkey {
    struct backend *backend;
    const struct secret_ref *ref;
    size_t idx;
};

static int opt_cmp(const char *x, const char *y)
{
    if (!x || !y)
        return (x != NULL) - (y != NULL);
    return strcmp(x, y);
}

static int gkey_cmp_key(const struct gkey *a, const struct gkey *b)
{
    if (a->backend != b->backend)
        return (uintptr_t)a->backend < (uintptr_t)b->backend ? -1 : 1;
    int r = strcmp(a->ref->path, b->ref->path);
    if (r == 0)
        r = opt_cmp(a->ref->version, b->ref->version);
    return r ? r : opt_cmp(a->ref->stage, b->ref->stage);
}

static int gkey_cmp(const void *pa, const void *pb)
{
    const struct gkey *a = pa, *b = pb;
    int r = gkey_cmp_key(a, b);
    return r ? r : (a->idx > b->idx) - (a->idx < b->idx);
}

static int build_groups(struct scheduler *sc)
{
    struct store *st = sc->st;
    size_t n = store_count(st);
    size_t *group_of = calloc(n + 1, sizeof(*group_of));
    size_t *run_group = calloc(n + 1, sizeof(*run_group));
    size_t *run_of = calloc(n + 1, sizeof(*run_of));
    struct gkey *keys = calloc(n + 1, sizeof(*keys));
    sc->groups = calloc(n + 1, sizeof(*sc->groups));
    int rc = -ENOMEM;
    if (!group_of || !run_group || !run_of || !keys || !sc->groups)
        goto out;
    for (size_t i = 0; i < n; i++)
        keys[i] = (struct gkey){.backend = store_backend(st, i), .ref = &store_cfg(st, i)->ref,
                                .idx = i};
    qsort(keys, n, sizeof(*keys), gkey_cmp);
    size_t runs = 0;
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && gkey_cmp_key(&keys[k - 1], &keys[k]) != 0)
            runs++;
        run_of[keys[k].idx] = runs;
    }
    /* Groups are numbered in the order of their first member, as before. */
    for (size_t r = 0; r <= runs; r++)
        run_group[r] = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t g = run_group[run_of[i]];
        if (g == SIZE_MAX) {
            g = run_group[run_of[i]] = sc->ng++;
            sc->groups[g].backend = store_backend(st, i);
            sc->groups[g].ref = &store_cfg(st, i)->ref;
        }
        group_of[i] = g;
        sc->groups[g].n++;
    }
    for (size_t g = 0; g < sc->ng; g++) {
        sc->groups[g].members = calloc(sc->groups[g].n, sizeof(size_t));
        if (!sc->groups[g].members)
            goto out;
        sc->groups[g].n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct group *g = &sc->groups[group_of[i]];
        g->members[g->n++] = i;
    }
    rc = 0;
out:
    free(group_of);
    free(run_group);
    free(run_of);
    free(keys);
    return rc;
}

/* A backend that batches gets its groups in chunks of batch_max, fetched
 * together at the cold start (afterwards each group refreshes alone). */
static int build_batches(struct scheduler *sc)
{
    for (size_t bi = 0; bi < sc->nb; bi++) {
        struct backend *b = sc->backends[bi];
        size_t max = backend_batch_max(b), count = 0;
        if (max > SCHED_BATCH_LIMIT)
            max = SCHED_BATCH_LIMIT;
        for (size_t g = 0; g < sc->ng; g++)
            count += sc->groups[g].backend == b;
        if (max == 0 || count < 2)
            continue;
        for (size_t g = 0; g < sc->ng; g++) {
            if (sc->groups[g].backend != b)
                continue;
            struct batch *last = sc->nbatch ? &sc->batches[sc->nbatch - 1] : NULL;
            if (!last || last->backend != b || last->n == max) {
                struct batch *nb = realloc(sc->batches, (sc->nbatch + 1) * sizeof(*nb));
                if (!nb)
                    return -ENOMEM;
                sc->batches = nb;
                last = &sc->batches[sc->nbatch++];
                *last = (struct batch){.backend = b, .groups = calloc(max, sizeof(size_t))};
                if (!last->groups)
                    return -ENOMEM;
            }
            last->groups[last->n++] = g;
        }
    }
    return 0;
}

static size_t nitems(const struct scheduler *sc)
{
    return sc->ng + sc->nb + sc->nbatch;
}

/* The backend item i works for: its group's, its own, or its batch's. */
static struct backend *item_backend(const struct scheduler *sc, size_t i)
{
    if (i < sc->ng)
        return sc->groups[i].backend;
    if (i < sc->ng + sc->nb)
        return sc->backends[i - sc->ng];
    return sc->batches[i - sc->ng - sc->nb].backend;
}

/* Each item's pool, and the workers each pool wants: one per network
 * item (at most SCHED_MAX_WORKERS), one for all the local ones. A reload
 * only ever raises the counts: an idle worker costs a stack. */
static void plan_pools(const struct scheduler *sc, struct item *items, struct pool *pools)
{
    size_t counts[N_POOLS] = {0};
    for (size_t i = 0; i < nitems(sc); i++) {
        struct item *it = &items[i];
        it->pool = backend_has_cap(item_backend(sc, i), BACKEND_CAP_LOCAL) ? POOL_LOCAL : POOL_NET;
        if (i < sc->ng + sc->nb)   /* batches run on the workers their groups have */
            counts[it->pool]++;
    }
    size_t net = counts[POOL_NET] < SCHED_MAX_WORKERS ? counts[POOL_NET] : SCHED_MAX_WORKERS;
    unsigned want[N_POOLS] = {[POOL_NET] = (unsigned)net, [POOL_LOCAL] = counts[POOL_LOCAL] ? 1 : 0};
    if (net + counts[POOL_LOCAL] == 0)
        want[POOL_NET] = 1;   /* nothing configured: one idle worker */
    for (unsigned p = 0; p < N_POOLS; p++)
        if (want[p] > pools[p].nworkers)
            pools[p].nworkers = want[p];
}

int scheduler_new(struct store *st, struct backend **backends, size_t nb, struct scheduler **out)
{
    pthread_condattr_t ca;
    struct scheduler *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return -ENOMEM;
    sc->st = st;
    sc->backends = backends;
    sc->nb = nb;
    pthread_mutex_init(&sc->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sc->timer, &ca);
    pthread_cond_init(&sc->idle, NULL);
    pthread_condattr_destroy(&ca);
    for (unsigned p = 0; p < N_POOLS; p++)
        pthread_cond_init(&sc->pools[p].work, NULL);
    if (build_groups(sc) < 0 || build_batches(sc) < 0)
        goto nomem;
    sc->items = calloc(nitems(sc) + 1, sizeof(*sc->items));
    sc->errors = calloc(store_count(st) + 1, sizeof(*sc->errors));
    sc->nerrors = store_count(st);
    if (!sc->items || !sc->errors)
        goto nomem;
    for (unsigned p = 0; p < N_POOLS; p++)
        if (!(sc->pools[p].queue = calloc(nitems(sc) + 1, sizeof(size_t))))
            goto nomem;
    for (size_t i = 0; i < nitems(sc); i++)
        sc->items[i].never = true;
    plan_pools(sc, sc->items, sc->pools);
    *out = sc;
    return 0;
nomem:
    scheduler_free(sc);
    return -ENOMEM;
}

void scheduler_set_hooks(struct scheduler *sc, const struct sched_hooks *hooks)
{
    sc->hooks = *hooks;
}

static void free_errors(char **errors, size_t n)
{
    for (size_t i = 0; errors && i < n; i++)
        free(errors[i]);
    free(errors);
}

void scheduler_free(struct scheduler *sc)
{
    if (!sc)
        return;
    scheduler_stop(sc);
    pthread_cond_destroy(&sc->timer);
    pthread_cond_destroy(&sc->idle);
    for (unsigned p = 0; p < N_POOLS; p++) {
        pthread_cond_destroy(&sc->pools[p].work);
        free(sc->pools[p].queue);
    }
    pthread_mutex_destroy(&sc->lock);
    if (sc->groups)
        for (size_t g = 0; g < sc->ng; g++)
            free(sc->groups[g].members);
    free(sc->groups);
    for (size_t i = 0; i < sc->nbatch; i++)
        free(sc->batches[i].groups);
    free(sc->batches);
    free(sc->items);
    free_errors(sc->errors, sc->nerrors);
    free(sc);
}

char *scheduler_last_error(struct scheduler *sc, size_t idx, char *buf, size_t len)
{
    pthread_mutex_lock(&sc->lock);
    snprintf(buf, len, "%s", sc->errors[idx] ? sc->errors[idx] : "");
    pthread_mutex_unlock(&sc->lock);
    return buf;
}

/* Record (msg non-empty) or clear secret idx's last error. Only the worker
 * of its group calls it, so reading the pointer needs no lock; the swap is
 * under lock for scheduler_last_error. The copy and the free are outside
 * it. Out of memory: the error is lost, the outcome is not. */
static void set_error(struct scheduler *sc, size_t idx, const char *msg)
{
    if (!msg[0] && !sc->errors[idx])
        return;   /* the usual success: nothing to clear */
    char *copy = msg[0] ? strndup(msg, SCHED_ERR_MAX - 1) : NULL;
    pthread_mutex_lock(&sc->lock);
    char *old = sc->errors[idx];
    sc->errors[idx] = copy;
    pthread_mutex_unlock(&sc->lock);
    free(old);
}

static void notify(struct scheduler *sc, size_t idx, bool removed)
{
    if (sc->hooks.changed)
        sc->hooks.changed(sc->hooks.arg, idx, removed);
}

/* ---- one fetch, applied to every member of a group ---- */

/* removed: the backend says the object is gone. */
static void member_failure(struct scheduler *sc, size_t idx, bool removed, const char *msg)
{
    const struct cfg_secret *sec = store_cfg(sc->st, idx);
    struct log_fields lf = {.secret = sec->name, .backend = store_backend_name(sc->st, idx), .error = msg};

    set_error(sc, idx, msg);
    if (removed) {
        if (store_remove(sc->st, idx)) {
            log_f(LOG_WARN, &lf, "secret removed");
            notify(sc, idx, true);
        } else {
            log_f(LOG_WARN, &lf, "fetch failed");
        }
        return;
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
}

static void member_success(struct scheduler *sc, size_t idx, const struct fetch_result *raw)
{
    const struct cfg_secret *sec = store_cfg(sc->st, idx);
    struct log_fields lf = {.secret = sec->name, .backend = store_backend_name(sc->st, idx)};
    char msg[SCHED_ERR_MAX] = "";
    enum store_change change;
    int rc;

    if (raw->unchanged) {
        /* A member whose #field failed has no value to keep: its error
         * stands until the object is read again. */
        if (!store_touch(sc->st, idx, &change))
            return;
        rc = 0;
    } else if (sec->ref.field) {
        struct secbuf v;
        secbuf_init(&v, raw->value.max);
        rc = secbuf_append(&v, raw->value.data, raw->value.len);
        if (rc == 0)
            rc = extract_field(&v, sec->ref.field, msg, sizeof(msg));
        if (rc == 0)
            rc = store_update(sc->st, idx, v.data, v.len, &change);
        secbuf_cleanup(&v);   /* wipes the plaintext */
    } else {
        rc = store_update(sc->st, idx, raw->value.data, raw->value.len, &change);
    }
    if (rc < 0) {
        if (!msg[0])
            snprintf(msg, sizeof(msg), "%s", strerror(-rc));
        member_failure(sc, idx, false, msg);
        return;
    }
    set_error(sc, idx, "");
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
}

struct group_at {
    struct scheduler *sc;
    const struct group *g;
};

/* sched_outcome.serving: a member serves a non-empty value. */
static bool group_serving(void *arg)
{
    const struct group_at *at = arg;
    bool served = false;
    for (size_t k = 0; k < at->g->n; k++) {
        struct secret_view v;
        store_view(at->sc->st, at->g->members[k], &v);
        served = served || (v.present && v.size > 0);
    }
    return served;
}

/* Apply one fetch outcome (rc, r, msg) to every member of group gi and
 * return the milliseconds until its next attempt (sched_decide says which,
 * and what the members get). */
/* The metrics of group gi's backend (NULL when the store is not bound). */
static struct metrics_backend *group_metrics(const struct scheduler *sc, size_t gi)
{
    return store_backend_metrics(sc->st, store_cfg(sc->st, sc->groups[gi].members[0])->backend);
}

/* What the admin endpoint shows of a backend's login, after anything that
 * may have logged in (a fetch, upkeep): published by the worker that did
 * it, so a page never asks the backend (whose locks a login holds). */
static void publish_auth(struct backend *be, struct metrics_backend *bm)
{
    if (!bm)
        return;
    struct backend_auth a;
    backend_auth_status(be, &a);
    atomic_store_explicit(&bm->auth_state, (int)a.state, memory_order_relaxed);
    atomic_store_explicit(&bm->auth_expires_unix_ms, a.expires_unix_ms, memory_order_relaxed);
    metrics_backend_method(bm, a.method);
}

/* Publish one fetch outcome of group gi (after its members were updated):
 * the backend's counters, and each member's error, version, times. */
static void publish_fetch(struct scheduler *sc, size_t gi, int rc, const struct fetch_result *r,
                          enum sched_action action, long long delay_ms, double seconds)
{
    struct group *g = &sc->groups[gi];
    struct metrics_backend *bm = group_metrics(sc, gi);
    enum metrics_fetch what;
    switch (action) {
    case SCHED_SUCCESS:
    case SCHED_HELD_BACK:
        what = r->unchanged ? METRICS_FETCH_UNCHANGED : METRICS_FETCH_OK;
        break;
    case SCHED_UNCHANGED:
        what = METRICS_FETCH_UNCHANGED;
        break;
    case SCHED_REMOVED:
        what = METRICS_FETCH_NOT_FOUND;
        break;
    case SCHED_FAILURE:
        what = METRICS_FETCH_ERROR;
        break;
    case SCHED_NOTHING:
    default:
        return;   /* cancelled by the stop: not an outcome */
    }
    metrics_fetch(bm, what, seconds);
    if (bm)
        /* Down: a failure the provider calls worth retrying (transport,
         * 5xx, 429; the file backend's read errors). Up: a value, not
         * found, or a refusal (the service answered). */
        atomic_store_explicit(&bm->up, rc == 0 || action == SCHED_REMOVED || !r->retryable,
                              memory_order_relaxed);
    long long now = clock_mono_ms();
    bool ok = action == SCHED_SUCCESS || action == SCHED_UNCHANGED;
    for (size_t k = 0; k < g->n; k++) {
        size_t idx = g->members[k];
        struct metrics_secret *ms = store_metrics(sc->st, idx);
        if (!ms)
            continue;
        metrics_secret_text(ms, sc->errors[idx] ? sc->errors[idx] : "", ok ? r->version : NULL);
        atomic_store_explicit(&ms->last_attempt_ms, now, memory_order_relaxed);
        atomic_store_explicit(&ms->next_ms, delay_ms >= 0 ? now + delay_ms : 0,
                              memory_order_relaxed);
        if (ok && !r->unchanged)
            atomic_store_explicit(&ms->lease_expiry_ms, r->valid_ms > 0 ? now + r->valid_ms : 0,
                                  memory_order_relaxed);
        else if (ok && r->valid_ms > 0)
            atomic_store_explicit(&ms->lease_expiry_ms, now + r->valid_ms, memory_order_relaxed);
    }
}

static long long apply_result(struct scheduler *sc, size_t gi, int rc, const struct fetch_result *r,
                              char *msg, size_t msglen, double seconds)
{
    struct group *g = &sc->groups[gi];
    struct group_at at = {.sc = sc, .g = g};
    struct sched_policy p = {
        .backoff = backend_backoff(g->backend),
        .confirm_empty = backend_has_cap(g->backend, BACKEND_CAP_CONFIRM_EMPTY),
    };
    for (size_t k = 0; k < g->n; k++) {
        const struct cfg_attrs *a = &store_cfg(sc->st, g->members[k])->attrs;
        if (k == 0 || a->refresh < p.refresh_ms)
            p.refresh_ms = a->refresh;
        if (k == 0 || a->max_stale < p.max_stale_ms)
            p.max_stale_ms = a->max_stale;
    }
    struct sched_outcome o = {
        .rc = rc, .unchanged = r->unchanged, .empty = r->value.len == 0, .valid_ms = r->valid_ms,
        .retryable = r->retryable, .retry_after_ms = r->retry_after_ms,
        .serving = group_serving, .arg = &at,
    };
    struct sched_decision d = sched_decide(&p, &o, &g->state);

    switch (d.action) {
    case SCHED_SUCCESS:
    case SCHED_UNCHANGED:
        for (size_t k = 0; k < g->n; k++)
            member_success(sc, g->members[k], r);
        break;
    case SCHED_HELD_BACK: {
        /* Neither a success nor a failure: the served value stays, and
         * max_stale still counts from the last value taken. */
        const struct cfg_secret *sec = store_cfg(sc->st, g->members[0]);
        log_f(LOG_INFO, &(struct log_fields){.secret = sec->name, .backend = backend_name(g->backend)},
              "empty value held back until the next read confirms it");
        break;
    }
    case SCHED_FAILURE:
    case SCHED_REMOVED:
        if (!msg[0])
            snprintf(msg, msglen, "%s", strerror(-rc));
        for (size_t k = 0; k < g->n; k++)
            member_failure(sc, g->members[k], d.action == SCHED_REMOVED, msg);
        break;
    case SCHED_NOTHING:
        break;
    }
    /* The members' values are sealed: the last plaintext this thread
     * touched (extraction, sealing) may still be in vector registers,
     * and what follows (metrics, the backend's next item, a lock it may
     * sleep on) is no reason to keep it there: a dump of a thread that
     * runs or sleeps holds its registers (docs/reliability.md). */
    regs_scrub();
    publish_fetch(sc, gi, rc, r, d.action, d.delay_ms, seconds);
    return d.delay_ms;
}

/* Fetch group g once and apply the result to every member. Returns the
 * milliseconds until its next attempt (sched_decide). */
static long long refresh_group(struct scheduler *sc, size_t gi)
{
    struct group *g = &sc->groups[gi];
    struct fetch_result r;
    char msg[SCHED_ERR_MAX] = "";
    fetch_result_init(&r, backend_max_value(g->backend));
    r.cached = true;
    for (size_t k = 0; k < g->n; k++) {
        struct secret_view v;
        store_view(sc->st, g->members[k], &v);
        r.cached = r.cached && v.present;
    }
    long long t0 = clock_mono_us();
    int rc = backend_fetch(g->backend, g->ref, &r, msg, sizeof(msg));
    double seconds = (double)(clock_mono_us() - t0) / 1e6;
    publish_auth(g->backend, group_metrics(sc, gi));
    long long delay = apply_result(sc, gi, rc, &r, msg, sizeof(msg), seconds);
    fetch_result_cleanup(&r);   /* wipes the plaintext */
    return delay;
}

/* ---- timing and workers ---- */

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

/* An item's next due time was set (under lock): wake the timer only when
 * it falls before the timer's next walk. Waking it for every finished
 * fetch made a refresh cycle of N secrets cost N walks of N items
 * (docs/performance.md, "Scaling curve"). */
static void due_changed_locked(struct scheduler *sc, const struct timespec *due)
{
    if (sc->timer_at_any || ts_cmp(due, &sc->timer_at) < 0)
        pthread_cond_signal(&sc->timer);
}

/* Called with sc->lock held. */
static void enqueue_locked(struct scheduler *sc, size_t item)
{
    struct item *it = &sc->items[item];
    struct pool *p = &sc->pools[it->pool];
    if (it->inflight)
        return;
    it->inflight = true;
    p->queue[(p->qhead + p->qlen) % nitems(sc)] = item;
    p->qlen++;
    pthread_cond_signal(&p->work);
}

/* Called with sc->lock held, after the first attempt of group gi. */
static bool settle_locked(struct scheduler *sc, size_t gi)
{
    struct group *g = &sc->groups[gi];
    if (g->settled)
        return false;
    g->settled = true;
    for (size_t k = 0; k < g->n; k++)
        store_settle(sc->st, g->members[k]);
    if (--sc->unsettled > 0 || !sc->log_cold_start)
        return true;
    struct log_fields lf = {.has_counts = true, .ms = clock_elapsed_ms(&sc->started_at)};
    for (size_t i = 0; i < store_count(sc->st); i++) {
        struct secret_view v;
        store_view(sc->st, i, &v);
        if (v.present)
            lf.ok++;
        else
            lf.failed++;
    }
    log_f(lf.failed ? LOG_WARN : LOG_INFO, &lf, "cold start done");
    return true;
}

/* Tell the filesystem a group's first attempt is over; no locks held. */
static void notify_settled(struct scheduler *sc, size_t gi)
{
    if (!sc->hooks.settled)
        return;
    for (size_t k = 0; k < sc->groups[gi].n; k++)
        sc->hooks.settled(sc->hooks.arg, sc->groups[gi].members[k]);
}

/* A batch in progress (run_batch). */
struct batch_run {
    struct scheduler *sc;
    struct batch *bt;
    struct fetch_result *outs;
    int *rcs;
    char (*errs)[BACKEND_ERR_MAX];
    bool *done;                    /* group k applied and settled */
    long long t0;                  /* clock_mono_us at the call */
    bool published;                /* the backend's auth state, once */
};

/* Group k of a batch is final: apply and schedule it as if it had been
 * fetched alone, and tell its waiting readers at once. */
static void batch_finish(struct batch_run *br, size_t k, double seconds)
{
    struct scheduler *sc = br->sc;
    size_t g = br->bt->groups[k];
    long long delay = apply_result(sc, g, br->rcs[k], &br->outs[k], br->errs[k], BACKEND_ERR_MAX,
                                   seconds);
    fetch_result_cleanup(&br->outs[k]);   /* wipes the plaintext */
    br->done[k] = true;
    pthread_mutex_lock(&sc->lock);
    struct item *it = &sc->items[g];
    it->inflight = false;
    it->never = false;
    clock_gettime(CLOCK_MONOTONIC, &it->due);
    ts_add_ms(&it->due, delay);
    bool first = settle_locked(sc, g);
    due_changed_locked(sc, &it->due);
    pthread_mutex_unlock(&sc->lock);
    if (first)
        notify_settled(sc, g);
}

/* The backend's word that group k is final while others are still in
 * flight (a backend that sends one request per object): a slow object
 * holds up no other member of its batch. Its own time is observed. */
static void batch_ready(void *arg, size_t k)
{
    struct batch_run *br = arg;
    if (!br->published) {
        publish_auth(br->bt->backend, group_metrics(br->sc, br->bt->groups[0]));
        br->published = true;
    }
    batch_finish(br, k, (double)(clock_mono_us() - br->t0) / 1e6);
}

/* One batch: a single backend call for its groups, then each group the
 * backend did not report ready is applied and scheduled as if it had
 * been fetched alone. */
static void run_batch(struct scheduler *sc, size_t bi)
{
    struct batch *bt = &sc->batches[bi];
    size_t n = bt->n;
    const struct secret_ref **refs = calloc(n, sizeof(*refs));
    struct batch_run br = {
        .sc = sc, .bt = bt, .outs = calloc(n, sizeof(*br.outs)), .rcs = calloc(n, sizeof(int)),
        .errs = calloc(n, sizeof(*br.errs)), .done = calloc(n, sizeof(bool)),
    };

    if (!refs || !br.outs || !br.rcs || !br.errs || !br.done) {
        for (size_t k = 0; k < n; k++) {
            long long delay = refresh_group(sc, bt->groups[k]);
            pthread_mutex_lock(&sc->lock);
            struct item *it = &sc->items[bt->groups[k]];
            it->inflight = false;
            it->never = false;
            clock_gettime(CLOCK_MONOTONIC, &it->due);
            ts_add_ms(&it->due, delay);
            bool first = settle_locked(sc, bt->groups[k]);
            pthread_mutex_unlock(&sc->lock);
            if (first)
                notify_settled(sc, bt->groups[k]);
        }
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        refs[k] = sc->groups[bt->groups[k]].ref;
        fetch_result_init(&br.outs[k], backend_max_value(bt->backend));
    }
    br.t0 = clock_mono_us();
    (void)backend_fetch_many(bt->backend, refs, n, br.outs, br.rcs, br.errs, batch_ready, &br);
    /* What was not reported ready came back with the call: one request
     * for the lot, one observation of its time. */
    double seconds = (double)(clock_mono_us() - br.t0) / 1e6;
    bool observed = br.published;
    if (!br.published)
        publish_auth(bt->backend, group_metrics(sc, bt->groups[0]));
    for (size_t k = 0; k < n; k++) {
        if (br.done[k])
            continue;
        batch_finish(&br, k, observed ? -1 : seconds);
        observed = true;
    }
out:
    free(refs);
    free(br.outs);
    free(br.rcs);
    free(br.errs);
    free(br.done);
}

static void run_worker(struct scheduler *sc, struct pool *p)
{
    secmem_hide_stack();   /* fetches, extraction and sealing run here */
    pthread_mutex_lock(&sc->lock);
    while (!sc->stop) {
        if (p->qlen == 0 || sc->paused) {
            regs_scrub();   /* the last job's plaintext, before sleeping */
            pthread_cond_wait(&p->work, &sc->lock);
            continue;
        }
        size_t item = p->queue[p->qhead];
        p->qhead = (p->qhead + 1) % nitems(sc);
        p->qlen--;
        /* Busy until the next wait, hooks included: scheduler_pause waits
         * for none to be, so a reload never changes what a worker uses. */
        sc->busy++;
        pthread_mutex_unlock(&sc->lock);

        if (item >= sc->ng + sc->nb) {
            run_batch(sc, item - sc->ng - sc->nb);
            pthread_mutex_lock(&sc->lock);
            sc->items[item].inflight = false;
            sc->items[item].never = true;   /* a cold-start tool only */
            sc->busy--;
            pthread_cond_signal(&sc->timer);
            pthread_cond_broadcast(&sc->idle);
            continue;
        }
        long long delay;
        if (item < sc->ng) {
            delay = refresh_group(sc, item);
        } else {
            delay = backend_maintain(sc->backends[item - sc->ng]);
            publish_auth(sc->backends[item - sc->ng],
                         store_backend_metrics(sc->st, item - sc->ng));
        }

        pthread_mutex_lock(&sc->lock);
        struct item *it = &sc->items[item];
        it->inflight = false;
        it->never = delay < 0;
        if (delay >= 0) {
            clock_gettime(CLOCK_MONOTONIC, &it->due);
            ts_add_ms(&it->due, delay);
        }
        bool first = item < sc->ng && settle_locked(sc, item);
        if (delay >= 0)
            due_changed_locked(sc, &it->due);
        pthread_cond_broadcast(&sc->idle);
        if (first) {
            pthread_mutex_unlock(&sc->lock);
            notify_settled(sc, item);
            pthread_mutex_lock(&sc->lock);
        }
        sc->busy--;
        pthread_cond_broadcast(&sc->idle);
    }
    pthread_mutex_unlock(&sc->lock);
}

static void *net_worker(void *arg)
{
    pthread_setname_np(pthread_self(), "rs-fetch");
    struct scheduler *sc = arg;
    run_worker(sc, &sc->pools[POOL_NET]);
    return NULL;
}

static void *local_worker(void *arg)
{
    pthread_setname_np(pthread_self(), "rs-fetch-local");
    struct scheduler *sc = arg;
    run_worker(sc, &sc->pools[POOL_LOCAL]);
    return NULL;
}

static void *timer_thread(void *arg)
{
    pthread_setname_np(pthread_self(), "rs-timer");
    struct scheduler *sc = arg;
    pthread_mutex_lock(&sc->lock);
    while (!sc->stop) {
        struct timespec now, next = {0, 0};
        bool have_next = false;
        clock_gettime(CLOCK_MONOTONIC, &now);
        for (size_t i = 0; i < nitems(sc); i++) {
            struct item *it = &sc->items[i];
            if (it->never || it->inflight)
                continue;
            if (ts_cmp(&it->due, &now) <= 0)
                enqueue_locked(sc, i);
            else if (!have_next || ts_cmp(&it->due, &next) < 0) {
                next = it->due;
                have_next = true;
            }
        }
        /* Walks at most every SCHED_TIMER_SLACK_MS: deadlines closer than
         * that (jitter spreads them) are taken together, a few ms late. */
        struct timespec soonest = now;
        ts_add_ms(&soonest, SCHED_TIMER_SLACK_MS);
        if (have_next && ts_cmp(&next, &soonest) < 0)
            next = soonest;
        sc->timer_at = next;
        sc->timer_at_any = !have_next;
        if (have_next)
            pthread_cond_timedwait(&sc->timer, &sc->lock, &next);
        else
            pthread_cond_wait(&sc->timer, &sc->lock);
        sc->timer_at_any = true;   /* awake: anything may need a walk */
    }
    pthread_mutex_unlock(&sc->lock);
    return NULL;
}

/* Threads start with every signal blocked: signals belong to the FUSE loop. */
static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

static void *(*const pool_main[N_POOLS])(void *) = {[POOL_NET] = net_worker,
                                                     [POOL_LOCAL] = local_worker};

/* Start the workers each pool wants and lacks. Called with no lock: only
 * the main or the reload thread starts or joins workers, never both at
 * once. The counts are read and written under lock for the workers'
 * sake (a reload raises nworkers). */
static int spawn_missing(struct scheduler *sc)
{
    int rc = 0;
    for (unsigned p = 0; p < N_POOLS && rc == 0; p++) {
        pthread_mutex_lock(&sc->lock);
        unsigned want = sc->pools[p].nworkers, have = sc->pools[p].nstarted;
        pthread_mutex_unlock(&sc->lock);
        for (; have < want && sc->nstarted < SCHED_MAX_WORKERS + 1; have++) {
            rc = spawn(&sc->workers[sc->nstarted], pool_main[p], sc);
            if (rc < 0)
                break;
            sc->nstarted++;
            pthread_mutex_lock(&sc->lock);
            sc->pools[p].nstarted++;
            pthread_mutex_unlock(&sc->lock);
        }
    }
    return rc;
}

/* Fewer workers than planned still work, as long as each pool that has
 * items got one. Otherwise none is left running. */
static int start_workers(struct scheduler *sc)
{
    pthread_mutex_lock(&sc->lock);
    sc->stop = false;
    pthread_mutex_unlock(&sc->lock);
    int rc = spawn_missing(sc);
    if (rc == 0)
        return 0;
    bool ok = true;
    pthread_mutex_lock(&sc->lock);
    for (unsigned p = 0; p < N_POOLS; p++)
        ok = ok && (sc->pools[p].nworkers == 0 || sc->pools[p].nstarted > 0);
    pthread_mutex_unlock(&sc->lock);
    if (ok)
        return 0;
    scheduler_stop(sc);   /* joins the ones that started */
    return rc;
}

static void begin_cold_start_locked(struct scheduler *sc)
{
    clock_gettime(CLOCK_MONOTONIC, &sc->started_at);
    sc->unsettled = 0;
    for (size_t g = 0; g < sc->ng; g++) {
        sc->groups[g].settled = false;
        sc->unsettled++;
        sc->items[g].never = false;
        sc->items[g].due = sc->started_at;
    }
    /* Groups in a batch are fetched by it: in flight until it is done. */
    for (size_t i = 0; i < sc->nbatch; i++) {
        for (size_t k = 0; k < sc->batches[i].n; k++)
            sc->items[sc->batches[i].groups[k]].inflight = true;
        sc->items[sc->ng + sc->nb + i].never = false;
        enqueue_locked(sc, sc->ng + sc->nb + i);
    }
    for (size_t g = 0; g < sc->ng; g++)
        enqueue_locked(sc, g);   /* no-op for those in flight */
}

size_t scheduler_fetch_all(struct scheduler *sc)
{
    size_t failed = 0;
    pthread_mutex_lock(&sc->lock);
    sc->log_cold_start = false;
    begin_cold_start_locked(sc);
    pthread_mutex_unlock(&sc->lock);
    if (start_workers(sc) < 0) {
        /* No thread at all: fetch here, one by one. */
        for (size_t g = 0; g < sc->ng; g++)
            (void)refresh_group(sc, g);
    } else {
        pthread_mutex_lock(&sc->lock);
        while (sc->unsettled > 0)
            pthread_cond_wait(&sc->idle, &sc->lock);
        pthread_mutex_unlock(&sc->lock);
        scheduler_stop(sc);
    }
    for (size_t i = 0; i < store_count(sc->st); i++) {
        struct secret_view v;
        store_view(sc->st, i, &v);
        failed += !v.present;
    }
    return failed;
}

int scheduler_start(struct scheduler *sc)
{
    pthread_mutex_lock(&sc->lock);
    sc->log_cold_start = true;
    begin_cold_start_locked(sc);
    for (size_t i = 0; i < sc->nb; i++) {
        sc->items[sc->ng + i].never = false;
        sc->items[sc->ng + i].due = sc->started_at;
        enqueue_locked(sc, sc->ng + i);
    }
    pthread_mutex_unlock(&sc->lock);
    int rc = start_workers(sc);
    if (rc < 0)
        return rc;
    rc = spawn(&sc->timer_thread, timer_thread, sc);
    if (rc < 0) {
        scheduler_stop(sc);
        return rc;
    }
    sc->timer_started = true;
    return 0;
}

void scheduler_stop(struct scheduler *sc)
{
    pthread_mutex_lock(&sc->lock);
    sc->stop = true;
    for (unsigned p = 0; p < N_POOLS; p++)
        pthread_cond_broadcast(&sc->pools[p].work);
    pthread_cond_broadcast(&sc->timer);
    pthread_mutex_unlock(&sc->lock);
    if (sc->timer_started)
        pthread_join(sc->timer_thread, NULL);
    sc->timer_started = false;
    for (unsigned i = 0; i < sc->nstarted; i++)
        pthread_join(sc->workers[i], NULL);
    sc->nstarted = 0;
    /* Whatever was queued is dropped; items become idle again. */
    pthread_mutex_lock(&sc->lock);
    for (unsigned p = 0; p < N_POOLS; p++)
        sc->pools[p].nstarted = 0;
    sc->busy = 0;
    for (size_t i = 0; i < nitems(sc); i++)
        sc->items[i].inflight = false;
    for (unsigned p = 0; p < N_POOLS; p++)
        sc->pools[p].qlen = 0;
    pthread_mutex_unlock(&sc->lock);
}

/* ---- reload (docs/internals/reload.md) ---- */

void scheduler_pause(struct scheduler *sc)
{
    pthread_mutex_lock(&sc->lock);
    sc->paused = true;
    while (sc->busy > 0)
        pthread_cond_wait(&sc->idle, &sc->lock);
    pthread_mutex_unlock(&sc->lock);
}

void scheduler_resume(struct scheduler *sc)
{
    pthread_mutex_lock(&sc->lock);
    sc->paused = false;
    bool running = sc->timer_started;
    for (unsigned p = 0; p < N_POOLS; p++)
        pthread_cond_broadcast(&sc->pools[p].work);
    pthread_cond_signal(&sc->timer);
    pthread_mutex_unlock(&sc->lock);
    /* A reload that brought the first local backend, or more network
     * items, wants more workers. Without them the items still run, on the
     * workers there are, unless a pool has none at all. */
    if (running && spawn_missing(sc) < 0)
        log_f(LOG_ERROR, &(struct log_fields){.error = "cannot start a fetch worker"},
              "fewer fetch workers than the new configuration wants");
}

/* bsearch by key alone (the group index is what it finds). */
static int gkey_cmp_nokey(const void *pa, const void *pb)
{
    return gkey_cmp_key(pa, pb);
}

static void free_layout(struct group *groups, size_t ng, struct batch *batches, size_t nbatch)
{
    for (size_t g = 0; groups && g < ng; g++)
        free(groups[g].members);
    free(groups);
    for (size_t i = 0; i < nbatch; i++)
        free(batches[i].groups);
    free(batches);
}

/* The smallest refresh of group g's members. */
static long long group_refresh(const struct store *st, const struct group *g)
{
    long long ms = 0;
    for (size_t k = 0; k < g->n; k++) {
        long long r = store_cfg(st, g->members[k])->attrs.refresh;
        if (k == 0 || r < ms)
            ms = r;
    }
    return ms;
}

int scheduler_apply(struct scheduler *sc, struct store *st, struct backend **backends, size_t nb,
                    const long *carry)
{
    /* The new layout is built aside, where failing changes nothing. */
    struct scheduler n = {.st = st, .backends = backends, .nb = nb};
    struct item *items = NULL;
    char **errors = NULL;
    size_t *queues[N_POOLS] = {NULL};
    int rc = build_groups(&n);
    if (rc == 0) {
        items = calloc(nitems(&n) + 1, sizeof(*items));
        errors = calloc(store_count(st) + 1, sizeof(*errors));
        for (unsigned p = 0; p < N_POOLS; p++)
            queues[p] = calloc(nitems(&n) + 1, sizeof(size_t));
        rc = items && errors && queues[POOL_NET] && queues[POOL_LOCAL] ? 0 : -ENOMEM;
    }
    if (rc < 0) {
        free_layout(n.groups, n.ng, NULL, 0);
        free(items);
        free_errors(errors, store_count(st));
        for (unsigned p = 0; p < N_POOLS; p++)
            free(queues[p]);
        return rc;
    }

    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&sc->lock);
    /* The current groups by key (their idx: the group), to find each new
     * group's predecessor. Keys are unique per group. */
    struct gkey *old_keys = calloc(sc->ng + 1, sizeof(*old_keys));
    if (!old_keys) {
        pthread_mutex_unlock(&sc->lock);
        free_layout(n.groups, n.ng, NULL, 0);
        free(items);
        free_errors(errors, store_count(st));
        for (unsigned p = 0; p < N_POOLS; p++)
            free(queues[p]);
        return -ENOMEM;
    }
    for (size_t j = 0; j < sc->ng; j++)
        old_keys[j] = (struct gkey){.backend = sc->groups[j].backend, .ref = sc->groups[j].ref,
                                    .idx = j};
    qsort(old_keys, sc->ng, sizeof(*old_keys), gkey_cmp);
    /* Paused, so no worker holds an index into what is replaced here; the
     * timer thread only runs under this lock. Before scheduler_start
     * (never started) new items wait for the cold start like the others. */
    bool running = sc->timer_started;
    size_t was_unsettled = sc->unsettled, unsettled = 0;
    for (size_t g = 0; g < n.ng; g++) {
        struct group *ng = &n.groups[g];
        struct item *it = &items[g];
        bool kept = true;
        for (size_t k = 0; k < ng->n; k++)
            kept = kept && carry[ng->members[k]] >= 0;
        /* Kept members have the same backend instance and reference, so
         * they were one group before too: it keeps its timing and state. */
        size_t og = sc->ng;
        struct gkey want = {.backend = ng->backend, .ref = ng->ref};
        const struct gkey *hit = kept ? bsearch(&want, old_keys, sc->ng, sizeof(*old_keys),
                                                gkey_cmp_nokey) : NULL;
        if (hit)
            og = hit->idx;
        if (og < sc->ng) {
            *it = sc->items[og];
            ng->state = sc->groups[og].state;
            ng->settled = sc->groups[og].settled;
            /* A shorter refresh takes effect now, not after the old one. */
            struct timespec cap = now;
            ts_add_ms(&cap, group_refresh(st, ng));
            if (!it->never && ts_cmp(&cap, &it->due) < 0)
                it->due = cap;
        } else {
            *it = (struct item){.due = now, .never = !running};
        }
        it->inflight = false;
        unsettled += !ng->settled;
    }
    for (size_t i = 0; i < nb; i++) {
        struct item *it = &items[n.ng + i];
        *it = (struct item){.due = now, .never = !running};   /* new: upkeep at once */
        for (size_t j = 0; j < sc->nb; j++)
            if (sc->backends[j] == backends[i])
                *it = sc->items[sc->ng + j];
        it->inflight = false;
    }
    /* Copies, not moves: the old list is freed whole below. Rare (only
     * secrets whose last fetch failed), and an error lost to ENOMEM is
     * only text. */
    for (size_t i = 0; i < store_count(st); i++)
        if (carry[i] >= 0 && sc->errors[carry[i]])
            errors[i] = strdup(sc->errors[carry[i]]);
    plan_pools(&n, items, sc->pools);
    free(old_keys);

    struct group *old_groups = sc->groups;
    struct batch *old_batches = sc->batches;
    size_t old_ng = sc->ng, old_nbatch = sc->nbatch;
    struct item *old_items = sc->items;
    char **old_errors = sc->errors;
    size_t old_n = sc->nerrors;
    size_t *old_queues[N_POOLS];
    sc->st = st;
    sc->backends = backends;
    sc->nb = nb;
    sc->groups = n.groups;
    sc->ng = n.ng;
    sc->batches = NULL;   /* batches are a cold-start tool: new groups fetch alone */
    sc->nbatch = 0;
    sc->items = items;
    sc->errors = errors;
    sc->nerrors = store_count(st);
    for (unsigned p = 0; p < N_POOLS; p++) {
        old_queues[p] = sc->pools[p].queue;
        sc->pools[p].queue = queues[p];
        sc->pools[p].qhead = sc->pools[p].qlen = 0;   /* due items are queued again */
    }
    sc->unsettled = unsettled;
    /* "cold start done" is logged once, by the cold start: only if it has
     * not finished yet (it then counts the new secrets too). */
    sc->log_cold_start = sc->log_cold_start && was_unsettled > 0;
    pthread_mutex_unlock(&sc->lock);

    free_layout(old_groups, old_ng, old_batches, old_nbatch);
    free(old_items);
    free_errors(old_errors, old_n);
    for (unsigned p = 0; p < N_POOLS; p++)
        free(old_queues[p]);
    return 0;
}
