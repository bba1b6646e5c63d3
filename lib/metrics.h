/* metrics.h - what the broker counts and publishes for the admin endpoint
 * (/metrics, /health, /status; docs/operations.md).
 *
 * Writers are the hot paths (a FUSE open, a fetch worker), so every write
 * is a relaxed atomic on an object found once, when a store is bound
 * (engine/store.h: store_bind_metrics), never by a lookup per event. The
 * objects live as long as the registry (the broker's whole life), keyed
 * by name: a reload that keeps a secret keeps its counters (Prometheus
 * counters never go backwards), one that removes it takes it out of the
 * published list (its series disappear) and one that brings it back
 * continues them.
 *
 * Locks: metrics.lock protects the registry (its tables and the published
 * lists); it is taken by binding (broker_open, a reload) and by a page
 * being built, never by a FUSE thread or a fetch worker. Each secret's
 * text_lock protects its error text and version: a fetch worker and a
 * page take it for one copy, nothing else is done under it; both are
 * leaves.
 */
#ifndef RS_METRICS_H
#define RS_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Upper bounds (seconds) of the fetch duration histogram's buckets; +Inf
 * is the count. */
#define METRICS_BUCKETS 11
extern const double metrics_bucket_bounds[METRICS_BUCKETS];

enum metrics_read { METRICS_READ_ALLOW, METRICS_READ_DENY, METRICS_READ_ERROR, METRICS_READ_N };
enum metrics_fetch { METRICS_FETCH_OK, METRICS_FETCH_UNCHANGED, METRICS_FETCH_NOT_FOUND,
                     METRICS_FETCH_ERROR, METRICS_FETCH_N };
/* The published state of a secret (engine/store.h's, by value). */
enum metrics_state { METRICS_ABSENT, METRICS_FRESH, METRICS_STALE, METRICS_EXPIRED };

#define METRICS_VERSION_MAX 64
#define METRICS_ERROR_MAX 512
#define METRICS_METHOD_MAX 32

struct metrics_backend {
    atomic_ullong fetches[METRICS_FETCH_N];
    atomic_ullong buckets[METRICS_BUCKETS];   /* not cumulative: a page sums them */
    atomic_ullong count;
    atomic_ullong sum_us;
    atomic_int up;                 /* -1: no answer yet; 0: the last fetch failed for
                                      want of an answer (transport, 5xx, 429); 1 */
    /* The login's state as last published by a fetch worker (provider.h's
     * backend_auth, by value): */
    atomic_int auth_state;
    atomic_llong auth_expires_unix_ms;
    _Atomic(const char *) type;   /* static string (the provider's type) */
    pthread_mutex_t text_lock;     /* protects method */
    char method[METRICS_METHOD_MAX];
    char name[];
};

struct metrics_secret {
    atomic_ullong reads[METRICS_READ_N];      /* one per open: allowed, refused, failed */
    /* The store's mirror, written under the secret's own lock (store.c): */
    atomic_int state;              /* enum metrics_state */
    /* (The two flags sit here, in state's padding: 10,000 objects.) */
    atomic_bool settled;           /* the scheduler's: the first attempt has ended */
    atomic_bool required;          /* set when bound */
    atomic_llong size;             /* bytes served; -1: none */
    atomic_llong last_success_ms;  /* CLOCK_MONOTONIC ms of the last good fetch; 0: never */
    /* The scheduler's, written by the worker of the secret's group: */
    atomic_llong last_attempt_ms;  /* CLOCK_MONOTONIC ms; 0: never */
    atomic_llong next_ms;          /* CLOCK_MONOTONIC ms of the next attempt; 0: unknown */
    atomic_llong lease_expiry_ms;  /* CLOCK_MONOTONIC ms its lease or TTL ends; 0: none */
    /* Set when bound (a reload may change them), with required: */
    atomic_llong max_stale_ms;
    _Atomic(struct metrics_backend *) backend;
    pthread_mutex_t text_lock;     /* protects error and version */
    char *error;                   /* NULL: none */
    char *version;                 /* NULL: none; at most METRICS_VERSION_MAX-1 bytes */
    char name[];
};

struct metrics;

/* A registry; NULL on ENOMEM. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* The object for a name, made on first use (counters at zero). Not on a hot
 * path: binding only. NULL on ENOMEM. */
struct metrics_secret *metrics_secret_get(struct metrics *m, const char *name);
struct metrics_backend *metrics_backend_get(struct metrics *m, const char *name);

/* Make these the published lists (the current configuration's secrets and
 * backends, in its order; arrays copied). 0 or -ENOMEM (nothing changed). */
int metrics_publish(struct metrics *m, struct metrics_secret *const *secrets, size_t n,
                    struct metrics_backend *const *backends, size_t nb)
    __attribute__((warn_unused_result));

/* Process-wide counters. */
void metrics_reload_done(struct metrics *m, bool ok);

/* A page's view: the published lists and the counters kept for every
 * object ever made, under metrics.lock from begin to end. */
struct metrics_view {
    struct metrics_secret *const *secrets;
    size_t n;
    struct metrics_backend *const *backends;
    size_t nb;
    unsigned long long reloads_ok, reloads_failed;
};
void metrics_view_begin(struct metrics *m, struct metrics_view *v);
/* Between begin and end: the opens of every secret ever made, whatever
 * their outcome (runsecrets_opens_total; a walk of the whole registry). */
unsigned long long metrics_view_opens(struct metrics *m);
void metrics_view_end(struct metrics *m);

/* ---- writers: each a no-op on NULL ---- */
static inline void metrics_read(struct metrics_secret *s, enum metrics_read r)
{
    if (s)
        atomic_fetch_add_explicit(&s->reads[r], 1, memory_order_relaxed);
}
/* A fetch's outcome; seconds < 0: not timed (one of a batch). */
void metrics_fetch(struct metrics_backend *b, enum metrics_fetch r, double seconds);
/* Set a secret's error text ("" or NULL: none) and, when version is not
 * NULL and not "", the version. Copies; at most METRICS_ERROR_MAX-1 bytes. */
void metrics_secret_text(struct metrics_secret *s, const char *error, const char *version);
/* Copy them out (both may be NULL); "" when none. */
void metrics_secret_text_get(struct metrics_secret *s, char *error, size_t errlen, char *version,
                             size_t verlen);
void metrics_backend_method(struct metrics_backend *b, const char *method);
void metrics_backend_method_get(struct metrics_backend *b, char *out, size_t len);

/* ---- the text format ---- */
/* Append a label value escaped for the Prometheus text format 0.0.4
 * (backslash, double quote and newline) to buf at *off (never past len;
 * always NUL-terminated when len > 0). */
void metrics_escape_label(char *buf, size_t len, size_t *off, const char *value);

#endif
