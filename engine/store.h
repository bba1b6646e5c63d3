/* store.h - the live state of every configured secret.
 *
 * Shared by the scheduler (writer) and the filesystem and CLI (readers).
 * The struct is opaque (store.c). Each secret has its own lock guarding its
 * current sealed value and freshness; readers take a reference to the value
 * and never hold the lock while serving it. The settled flags have one lock
 * of their own. Both are leaves: the store never takes one while holding
 * the other, so callers may hold their own locks around these calls (the
 * fs holds its wait_lock around store_settled, the scheduler its lock
 * around store_settle and store_view).
 */
#ifndef RS_STORE_H
#define RS_STORE_H

#include <stdbool.h>
#include <time.h>
#include "engine/config.h"
#include "engine/cache.h"

struct backend;
struct metrics;
struct metrics_secret;
struct metrics_backend;

/* The values of enum metrics_state (lib/metrics.h): a store publishes its
 * state by value. */
enum secret_state {
    SECRET_ABSENT,   /* never fetched, or gone at the backend: no file */
    SECRET_FRESH,    /* last refresh succeeded */
    SECRET_STALE,    /* refresh failing, still within max_stale */
    SECRET_EXPIRED,  /* refresh failing past max_stale: opens fail with EIO */
};

struct secret_view {               /* a consistent copy for getattr/readdir */
    bool present;
    size_t size;
    struct timespec changed;
    enum secret_state state;
};

struct store;

/* New store for every secret of cfg; backends[i] serves cfg->backends[i]. */
int store_new(const struct config *cfg, struct backend **backends, struct cache *cache,
              struct store **out) __attribute__((warn_unused_result));
/* A reload's store (docs/internals/reload.md): the secrets of cfg, where
 * carry[i] >= 0 names the secret of old whose value, state, times and
 * settled flag secret i starts with (a new reference to the same sealed
 * value); -1: a new secret, absent and unsettled. old is borrowed; nothing
 * may update it meanwhile (the scheduler is paused). *out is new. */
int store_new_from(const struct config *cfg, struct backend **backends, struct cache *cache,
                   struct store *old, const long *carry, struct store **out)
    __attribute__((warn_unused_result));
void store_free(struct store *s);
/* The cache the values are sealed with (borrowed; it outlives every store). */
struct cache *store_cache(const struct store *s);

/* What the store was built from (borrowed, valid while it lives). */
size_t store_count(const struct store *s);
const struct cfg_secret *store_cfg(const struct store *s, size_t idx);
struct backend *store_backend(const struct store *s, size_t idx);
const char *store_backend_name(const struct store *s, size_t idx);
/* The access policy of the configuration the store was built from
 * (borrowed, valid while the store lives); NULL: file modes alone decide.
 * A reload builds a new store from the new configuration, so whoever asks
 * the store it serves gets the policy of the same generation. */
const struct policy_rules *store_policy(const struct store *s);
/* Unseal a value of secret idx (bound to its name) into pt. */
int store_unseal(const struct store *s, size_t idx, const struct cache_value *v, void *pt)
    __attribute__((warn_unused_result));

/* Snapshot the current value for an open: *out is a new reference.
 * 0, -ENOENT (no value) or -EIO (past max_stale: fail closed). */
int store_acquire(struct store *s, size_t idx, struct cache_value **out)
    __attribute__((warn_unused_result));
void store_view(struct store *s, size_t idx, struct secret_view *out);

enum store_change { STORE_UNCHANGED, STORE_NEW, STORE_ROTATED, STORE_RECOVERED };
/* Record a successful fetch of plaintext (borrowed). 0 or negative errno;
 * *change says what happened. */
int store_update(struct store *s, size_t idx, const void *pt, size_t len, enum store_change *change)
    __attribute__((warn_unused_result));
/* The backend says the object is gone: drop the value. True if it was there. */
bool store_remove(struct store *s, size_t idx);
/* A refresh failed: returns the state after the failure. */
enum secret_state store_fail(struct store *s, size_t idx);
/* Re-evaluate freshness against the clock; returns true once when the secret
 * has just passed max_stale (for logging the transition). */
bool store_check_expiry(struct store *s, size_t idx);

/* A fetch found the value already served still valid (a lease renewed,
 * the same version): fresh again (*change says whether it recovered from
 * failing refreshes). False if there was no value. */
bool store_touch(struct store *s, size_t idx, enum store_change *change);

/* The first fetch attempt of secret idx has finished (success or not). */
void store_settle(struct store *s, size_t idx);
/* Whether that first attempt has finished: until then an absent value
 * means "not fetched yet", not "gone" (fs parks its readers). */
bool store_settled(struct store *s, size_t idx);

const char *secret_state_name(enum secret_state st);

/* Metrics (lib/metrics.h). store_bind_metrics finds (or makes) the objects
 * of every secret and backend of s in m, publishes into them what s holds
 * now (a reload's carried values) and from then on keeps the secrets'
 * mirrors current; before a reload's swap, with the scheduler paused.
 * store_publish_metrics makes s's secrets and backends the ones m lists
 * (after the swap). Unbound, the accessors return NULL and every metrics
 * write is a no-op. 0 or -ENOMEM. */
int store_bind_metrics(struct store *s, struct metrics *m) __attribute__((warn_unused_result));
int store_publish_metrics(struct store *s, struct metrics *m) __attribute__((warn_unused_result));
struct metrics_secret *store_metrics(const struct store *s, size_t idx);
/* The metrics of backend bi (an index of the configuration's backends). */
struct metrics_backend *store_backend_metrics(const struct store *s, size_t bi);

#ifdef UNITTEST
/* Move secret idx's last success ms into the past (whole seconds). */
void store_backdate(struct store *s, size_t idx, long long ms);
#endif

#endif
