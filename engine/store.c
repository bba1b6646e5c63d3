/* store.c - per-secret state: current sealed value and freshness. */
#include "engine/store.h"
#include "backends/backend.h"
#include "lib/clock.h"

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
};

struct store {
    struct cache *cache;           /* borrowed */
    struct secret *secrets;
    size_t n;
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
    pthread_mutex_destroy(&s->settle_lock);
    free(s);
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
    }
    pthread_mutex_unlock(&sec->lock);
    return had;
}

void store_settle(struct store *s, size_t idx)
{
    pthread_mutex_lock(&s->settle_lock);
    s->secrets[idx].settled = true;
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

#ifdef UNITTEST
void store_backdate(struct store *s, size_t idx, long long ms)
{
    struct secret *sec = &s->secrets[idx];
    pthread_mutex_lock(&sec->lock);
    sec->last_success.tv_sec -= ms / 1000;
    pthread_mutex_unlock(&sec->lock);
}
#endif
