/* store.c - per-secret state: current sealed value and freshness. */
#include "engine/store.h"
#include "backends/backend.h"
#include "lib/clock.h"
#include "lib/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct secret {
    const struct cfg_secret *cfg;  /* borrowed from the config */
    struct backend *backend;       /* borrowed from the broker */
    pthread_mutex_t lock;
    /* protected by lock */
    struct cache_value *value;     /* current version or NULL */
    enum secret_state state;
    struct timespec last_success;  /* CLOCK_MONOTONIC */
    struct timespec changed;       /* CLOCK_REALTIME of the last value change */
    bool expired_logged;
    bool settled;                  /* first fetch attempt finished; under store->settle_lock */
    struct metrics_secret *m;      /* NULL until bound; its mirror written under lock */
};

_Static_assert((int)SECRET_ABSENT == METRICS_ABSENT && (int)SECRET_FRESH == METRICS_FRESH &&
               (int)SECRET_STALE == METRICS_STALE && (int)SECRET_EXPIRED == METRICS_EXPIRED,
               "a store publishes its state by value");

struct store {
    struct cache *cache;           /* borrowed */
    const struct config *cfg;      /* borrowed */
    struct backend **backends;     /* borrowed; NULL in some unit tests */
    struct secret *secrets;
    size_t n;
    struct metrics_backend **bm;   /* per cfg->backends; NULL until bound */
    pthread_mutex_t settle_lock;   /* guards every secret's settled flag */
};

size_t store_count(const struct store *s)
{
    return s->n;
}

const struct cfg_secret *store_cfg(const struct store *s, size_t idx)
{
    return s->secrets[idx].cfg;
}

struct backend *store_backend(const struct store *s, size_t idx)
{
    return s->secrets[idx].backend;
}

const struct policy_rules *store_policy(const struct store *s)
{
    return s->cfg->policy;
}

const char *store_backend_name(const struct store *s, size_t idx)
{
    return s->secrets[idx].backend ? backend_name(s->secrets[idx].backend) : "";
}

int store_unseal(const struct store *s, size_t idx, const struct cache_value *v, void *pt)
{
    return cache_unseal(s->cache, s->secrets[idx].cfg->name, v, pt);
}

int store_new(const struct config *cfg, struct backend **backends, struct cache *cache,
              struct store **out)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cache = cache;
    s->cfg = cfg;
    s->backends = backends;
    s->secrets = calloc(cfg->n_secrets + 1, sizeof(*s->secrets));
    if (!s->secrets) {
        free(s);
        return -ENOMEM;
    }
    pthread_mutex_init(&s->settle_lock, NULL);
    for (size_t i = 0; i < cfg->n_secrets; i++) {
        struct secret *sec = &s->secrets[i];
        sec->cfg = &cfg->secrets[i];
        sec->backend = backends ? backends[cfg->secrets[i].backend] : NULL;
        sec->state = SECRET_ABSENT;
        if (pthread_mutex_init(&sec->lock, NULL) != 0) {
            s->n = i;
            store_free(s);
            return -ENOMEM;
        }
        s->n = i + 1;
    }
    *out = s;
    return 0;
}

int store_new_from(const struct config *cfg, struct backend **backends, struct cache *cache,
                   struct store *old, const long *carry, struct store **out)
{
    struct store *s = NULL;
    int rc = store_new(cfg, backends, cache, &s);
    if (rc < 0)
        return rc;
    for (size_t i = 0; old && i < s->n; i++) {
        if (carry[i] < 0)
            continue;
        struct secret *from = &old->secrets[carry[i]], *to = &s->secrets[i];
        pthread_mutex_lock(&from->lock);
        to->value = from->value ? cache_value_ref(from->value) : NULL;
        to->state = from->state;
        to->last_success = from->last_success;
        to->changed = from->changed;
        to->expired_logged = from->expired_logged;
        pthread_mutex_unlock(&from->lock);
        to->settled = store_settled(old, (size_t)carry[i]);
    }
    *out = s;
    return 0;
}

struct cache *store_cache(const struct store *s)
{
    return s->cache;
}

void store_free(struct store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        cache_value_unref(s->secrets[i].value);
        pthread_mutex_destroy(&s->secrets[i].lock);
    }
    free(s->secrets);
    free(s->bm);
    pthread_mutex_destroy(&s->settle_lock);
    free(s);
}

static long long ts_ms(const struct timespec *t)
{
    return (long long)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

/* Publish sec's state to its metrics. Called with sec->lock held (its
 * only writer). */
static void mirror(const struct secret *sec)
{
    struct metrics_secret *m = sec->m;
    if (!m)
        return;
    atomic_store_explicit(&m->state, (int)sec->state, memory_order_relaxed);
    atomic_store_explicit(&m->size, sec->value ? (long long)cache_value_len(sec->value) : -1,
                          memory_order_relaxed);
    atomic_store_explicit(&m->last_success_ms,
                          sec->last_success.tv_sec || sec->last_success.tv_nsec
                              ? ts_ms(&sec->last_success) : 0,
                          memory_order_relaxed);
}

/* Called with sec->lock held. */
static bool past_max_stale(const struct secret *sec)
{
    return clock_elapsed_ms(&sec->last_success) > sec->cfg->attrs.max_stale;
}

int store_acquire(struct store *s, size_t idx, struct cache_value **out)
{
    struct secret *sec = &s->secrets[idx];
    int rc = 0;
    pthread_mutex_lock(&sec->lock);
    if (!sec->value)
        rc = -ENOENT;
    else if (past_max_stale(sec))
        rc = -EIO;   /* fail closed: a value this old may have been revoked */
    else
        *out = cache_value_ref(sec->value);
    pthread_mutex_unlock(&sec->lock);
    return rc;
}

void store_view(struct store *s, size_t idx, struct secret_view *out)
{
    struct secret *sec = &s->secrets[idx];
    pthread_mutex_lock(&sec->lock);
    out->present = sec->value != NULL;
    out->size = sec->value ? cache_value_len(sec->value) : 0;
    out->changed = sec->changed;
    out->state = sec->state;
    pthread_mutex_unlock(&sec->lock);
}

int store_update(struct store *s, size_t idx, const void *pt, size_t len, enum store_change *change)
{
    struct secret *sec = &s->secrets[idx];
    struct cache_value *v = NULL, *old = NULL;
    int rc = cache_seal(s->cache, sec->cfg->name, pt, len, &v);
    if (rc < 0)
        return rc;

    pthread_mutex_lock(&sec->lock);
    enum secret_state was = sec->state;
    bool same = sec->value && cache_value_equal(sec->value, v);
    if (!sec->value)
        *change = STORE_NEW;
    else if (was == SECRET_STALE || was == SECRET_EXPIRED)
        *change = STORE_RECOVERED;
    else
        *change = same ? STORE_UNCHANGED : STORE_ROTATED;
    if (same) {
        old = v;   /* keep the current version: same bytes, same mtime */
    } else {
        old = sec->value;
        sec->value = v;
        clock_gettime(CLOCK_REALTIME, &sec->changed);
    }
    sec->state = SECRET_FRESH;
    sec->expired_logged = false;
    clock_gettime(CLOCK_MONOTONIC, &sec->last_success);
    mirror(sec);
    pthread_mutex_unlock(&sec->lock);
    cache_value_unref(old);
    return 0;
}

bool store_remove(struct store *s, size_t idx)
{
    struct secret *sec = &s->secrets[idx];
    pthread_mutex_lock(&sec->lock);
    struct cache_value *old = sec->value;
    sec->value = NULL;
    sec->state = SECRET_ABSENT;
    mirror(sec);
    pthread_mutex_unlock(&sec->lock);
    cache_value_unref(old);   /* open files keep their own reference */
    return old != NULL;
}

enum secret_state store_fail(struct store *s, size_t idx)
{
    struct secret *sec = &s->secrets[idx];
    pthread_mutex_lock(&sec->lock);
    if (sec->value)
        sec->state = past_max_stale(sec) ? SECRET_EXPIRED : SECRET_STALE;
    mirror(sec);
    enum secret_state st = sec->state;
    pthread_mutex_unlock(&sec->lock);
    return st;
}

bool store_check_expiry(struct store *s, size_t idx)
{
    struct secret *sec = &s->secrets[idx];
    bool now_expired = false;
    pthread_mutex_lock(&sec->lock);
    if (sec->value && past_max_stale(sec)) {
        sec->state = SECRET_EXPIRED;
        mirror(sec);
        if (!sec->expired_logged) {
            sec->expired_logged = true;
            now_expired = true;
        }
    }
    pthread_mutex_unlock(&sec->lock);
    return now_expired;
}

bool store_touch(struct store *s, size_t idx, enum store_change *change)
{
    struct secret *sec = &s->secrets[idx];
    pthread_mutex_lock(&sec->lock);
    bool had = sec->value != NULL;
    *change = sec->state == SECRET_STALE || sec->state == SECRET_EXPIRED ? STORE_RECOVERED
                                                                         : STORE_UNCHANGED;
    if (had) {
        sec->state = SECRET_FRESH;
        sec->expired_logged = false;
        clock_gettime(CLOCK_MONOTONIC, &sec->last_success);
        mirror(sec);
    }
    pthread_mutex_unlock(&sec->lock);
    return had;
}

void store_settle(struct store *s, size_t idx)
{
    pthread_mutex_lock(&s->settle_lock);
    s->secrets[idx].settled = true;
    if (s->secrets[idx].m)
        atomic_store_explicit(&s->secrets[idx].m->settled, true, memory_order_relaxed);
    pthread_mutex_unlock(&s->settle_lock);
}

bool store_settled(struct store *s, size_t idx)
{
    pthread_mutex_lock(&s->settle_lock);
    bool settled = s->secrets[idx].settled;
    pthread_mutex_unlock(&s->settle_lock);
    return settled;
}

const char *secret_state_name(enum secret_state st)
{
    switch (st) {
    case SECRET_ABSENT: return "absent";
    case SECRET_FRESH: return "fresh";
    case SECRET_STALE: return "stale";
    case SECRET_EXPIRED: return "expired";
    }
    return "unknown";
}

int store_bind_metrics(struct store *s, struct metrics *m)
{
    size_t nb = s->cfg->n_backends;
    struct metrics_backend **bm = calloc(nb + 1, sizeof(*bm));
    if (!bm)
        return -ENOMEM;
    for (size_t i = 0; i < nb; i++) {
        bm[i] = metrics_backend_get(m, s->cfg->backends[i].name);
        if (!bm[i]) {
            free(bm);
            return -ENOMEM;
        }
        atomic_store(&bm[i]->type, backend_conf_type(s->cfg->backends[i].conf));
    }
    for (size_t i = 0; i < s->n; i++) {
        struct secret *sec = &s->secrets[i];
        struct metrics_secret *ms = metrics_secret_get(m, sec->cfg->name);
        if (!ms) {
            free(bm);
            return -ENOMEM;
        }
        atomic_store(&ms->required, sec->cfg->required);
        atomic_store(&ms->max_stale_ms, sec->cfg->attrs.max_stale);
        atomic_store(&ms->backend, bm[sec->cfg->backend]);
        pthread_mutex_lock(&sec->lock);
        sec->m = ms;
        mirror(sec);
        pthread_mutex_unlock(&sec->lock);
        atomic_store(&ms->settled, store_settled(s, i));
    }
    free(s->bm);
    s->bm = bm;
    return 0;
}

int store_publish_metrics(struct store *s, struct metrics *m)
{
    if (!s->bm)
        return 0;   /* never bound */
    struct metrics_secret **list = calloc(s->n + 1, sizeof(*list));
    if (!list)
        return -ENOMEM;
    for (size_t i = 0; i < s->n; i++)
        list[i] = s->secrets[i].m;
    int rc = metrics_publish(m, list, s->n, s->bm, s->cfg->n_backends);
    free(list);
    return rc;
}

struct metrics_secret *store_metrics(const struct store *s, size_t idx)
{
    return s->secrets[idx].m;
}

struct metrics_backend *store_backend_metrics(const struct store *s, size_t bi)
{
    return s->bm ? s->bm[bi] : NULL;
}

#ifdef UNITTEST
void store_backdate(struct store *s, size_t idx, long long ms)
{
    struct secret *sec = &s->secrets[idx];
    pthread_mutex_lock(&sec->lock);
    sec->last_success.tv_sec -= ms / 1000;
    pthread_mutex_unlock(&sec->lock);
}
#endif
