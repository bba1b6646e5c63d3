/* backend.h - the one interface every secret backend implements.
 *
 * A backend type is a const struct backend_ops registered in backend.c; a
 * configured instance is a struct backend. Callers use the backend_*()
 * wrappers, never the ops directly (maintain and shutdown are optional; the
 * wrappers know), so no caller ever probes for NULL.
 */
#ifndef RS_BACKEND_H
#define RS_BACKEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "secmem.h"
#include "ref.h"

struct http_engine;

#define BACKEND_CAP_VERSIONS (1u << 0) /* understands ?version= */
#define BACKEND_CAP_STAGES (1u << 1)   /* understands ?stage= */
/* A read may catch an object mid-rewrite and see it empty (a file truncated
 * and rewritten in place): the caller confirms an empty value with the next
 * read before it replaces a non-empty one. */
#define BACKEND_CAP_CONFIRM_EMPTY (1u << 2)

/* Error text of one fetch. */
#define BACKEND_ERR_MAX 512

/* Largest value any backend hands over unless its config says otherwise. */
#define BACKEND_DEFAULT_MAX_VALUE (1024 * 1024)

struct fetch_result {
    /* Input: */
    bool cached;              /* the caller still serves this object's value, so
                                 the backend may answer `unchanged` */
    struct secbuf value;      /* plaintext in secret memory; owned */
    /* Success only: */
    bool unchanged;           /* the value already served is still valid (a
                                 lease was renewed, the version is the same):
                                 value is empty; only when cached was set */
    long long valid_ms;       /* > 0: the value is good for this long (lease or
                                 TTL); the next fetch is due at that point
                                 instead of the refresh interval */
    /* Failure only: */
    bool retryable;           /* transient (default): back off and retry;
                                 false: wait the refresh interval */
    long long retry_after_ms; /* > 0: the server asked us to wait this long */
};
void fetch_result_init(struct fetch_result *r, size_t max);
void fetch_result_cleanup(struct fetch_result *r);

/* What a live backend may use from the broker. */
struct backend_env {
    struct http_engine *http;  /* the shared HTTP engine; borrowed */
    const char *name;          /* the instance's name, for logs; set by backend_new */
};

/* Error messages from validate() name the offending key first, as
 * "<key>: <what is wrong>", so the config layer can point at file:line:col. */
struct backend_ops {
    const char *type;
    unsigned caps;
    /* Optional: most refs per fetch_many call for this instance; 0 (or no
     * slot): no batches, every object is fetched on its own. */
    size_t (*batch_max)(void *ctx);
    /* Static check of the backend's config object (may stat local files, no
     * network). 0 or -EINVAL. */
    int (*validate)(json_t *conf, char *err, size_t errlen);
    /* Build a live instance; conf has passed validate(). *ctx is new. No
     * network: `check` builds every backend without fetching. */
    int (*create)(const struct backend_env *env, json_t *conf, void **ctx, char *err,
                  size_t errlen);
    /* Static check of a reference's path for this backend. 0 or -EINVAL. */
    int (*check_ref)(const struct secret_ref *ref, char *err, size_t errlen);
    /* Fetch the raw value of ref->path (the #field is applied by the caller).
     * 0, -ENOENT when the object does not exist (the secret disappears), or
     * another negative errno with a message in err. */
    int (*fetch)(void *ctx, const struct secret_ref *ref, struct fetch_result *out,
                 char *err, size_t errlen);
    /* Optional: fetch n objects in as few requests as the service allows
     * (the cold start). Same per-item contract as fetch: rcs[i] and errs[i]
     * for outs[i]; outs are initialised by the caller. */
    void (*fetch_many)(void *ctx, const struct secret_ref *const *refs, size_t n,
                       struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX]);
    /* Background upkeep such as renewing a login token, run by the
     * scheduler on a fetch worker. Returns milliseconds until it wants to
     * run again, or -1 for never. */
    long long (*maintain)(void *ctx);
    /* Clean shutdown: give back what the backend holds at the server
     * (leases, tokens). Bounded by the backend's HTTP timeouts. */
    void (*shutdown)(void *ctx);
    void (*destroy)(void *ctx);
};

struct backend {
    char *name;                     /* owned */
    const struct backend_ops *ops;  /* static */
    void *ctx;                      /* owned, freed by ops->destroy */
    size_t max_value;
    long long retry_base_ms;        /* backoff after failures: full jitter */
    long long retry_max_ms;
};

static inline bool backend_has_cap(const struct backend *b, unsigned cap)
{
    return (b->ops->caps & cap) != 0;
}

#define BACKEND_DEFAULT_RETRY_BASE_MS 1000LL
#define BACKEND_DEFAULT_RETRY_MAX_MS (5 * 60 * 1000LL)

/* Registry: the ops for a type name, or NULL. */
const struct backend_ops *backend_find_type(const char *type);
/* Comma-separated list of known types (static string), for messages. */
const char *backend_type_list(void);

/* Validate a backend config object: "type" known and ops->validate passes.
 * On error err holds "<key>: <message>" relative to the object. */
int backend_validate(json_t *conf, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Static reference check against the backend type. */
int backend_check_ref(json_t *conf, const struct secret_ref *ref, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* New live instance; conf and env are borrowed. */
int backend_new(const struct backend_env *env, const char *name, json_t *conf,
                struct backend **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Up to batch_max refs at once when the backend batches (returns false
 * when it does not: fetch them one by one). */
bool backend_fetch_many(struct backend *b, const struct secret_ref *const *refs, size_t n,
                        struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX]);
size_t backend_batch_max(const struct backend *b);
/* Upkeep and shutdown, see the ops. */
long long backend_maintain(struct backend *b);
void backend_shutdown(struct backend *b);
void backend_free(struct backend *b);

/* Fetch ref without applying its #field (the raw object, which several
 * secrets may share). Same contract as backend_resolve. */
int backend_fetch(struct backend *b, const struct secret_ref *ref, struct fetch_result *out,
                  char *err, size_t errlen) __attribute__((warn_unused_result));
/* Fetch ref and apply its #field: out->value holds the final plaintext.
 * out must be initialised with fetch_result_init. 0, -ENOENT (gone) or
 * another negative errno with err filled (never containing the value). */
int backend_resolve(struct backend *b, const struct secret_ref *ref, struct fetch_result *out,
                    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
