/* provider.h - what a backend provider implements, and the helpers every
 * provider shares.
 *
 * A provider is a folder under backends/ exporting one const struct
 * backend_ops; backends/backend.c lists them (the registry) and is the only
 * caller of the ops. Providers include this header, never backend.h.
 */
#ifndef RS_PROVIDER_H
#define RS_PROVIDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "lib/secmem.h"
#include "lib/ref.h"

struct http_engine;

#define BACKEND_CAP_VERSIONS (1u << 0) /* understands ?version= */
#define BACKEND_CAP_STAGES (1u << 1)   /* understands ?stage= */
/* A read may catch an object mid-rewrite and see it empty (a file truncated
 * and rewritten in place): the caller confirms an empty value with the next
 * read before it replaces a non-empty one. */
#define BACKEND_CAP_CONFIRM_EMPTY (1u << 2)
/* Fetches without the network: env->http may be NULL. When every configured
 * backend has it, the broker starts no HTTP engine and never initialises
 * libcurl and OpenSSL (a shorter start and exit: docs/performance.md). */
#define BACKEND_CAP_LOCAL (1u << 3)

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
    char version[64];         /* the version served, as the backend names it
                                 (Vault's KV v2 number, AWS VersionId, Azure's
                                 version id, GCP's version number); "" when
                                 not known or unchanged; never secret */
    /* Failure only: */
    bool retryable;           /* transient (default): back off and retry;
                                 false: wait the refresh interval */
    long long retry_after_ms; /* > 0: the server asked us to wait this long */
};
void fetch_result_init(struct fetch_result *r, size_t max);
void fetch_result_cleanup(struct fetch_result *r);
/* The version served: s[0..n) into r->version, cut to what fits. A
 * version is shown by /status, so one holding anything but printable
 * ASCII (a server's bytes we cannot vouch for) is not copied: "" and
 * false. s may be NULL (""). */
bool fetch_result_set_version(struct fetch_result *r, const char *s, size_t n);

/* What a live backend may use from the broker. */
struct backend_env {
    struct http_engine *http;  /* the shared HTTP engine; borrowed; NULL for BACKEND_CAP_LOCAL */
    const char *name;          /* the instance's name, for logs; set by backend_new */
    size_t max_value;          /* the common max_size setting: largest value to accept */
};

/* A backend's login, as the admin endpoint shows it. */
enum backend_auth_state {
    BACKEND_AUTH_NONE,     /* needs no login (file), or keeps no state worth showing */
    BACKEND_AUTH_PENDING,  /* not logged in yet */
    BACKEND_AUTH_OK,       /* holds a credential that worked */
    BACKEND_AUTH_FAILING,  /* the last login failed */
};
struct backend_auth {
    enum backend_auth_state state;
    long long expires_unix_ms;  /* the credential's end (wall clock ms); 0: unknown or never */
    char method[32];            /* how it logged in ("token", "approle", "client_secret",
                                   "service_account", "env", ...); "" unknown; never secret */
};

/* Error messages from validate() name the offending key first, as
 * "<key>: <what is wrong>", so the config layer can point at file:line:col. */
struct backend_ops {
    const char *type;
    unsigned caps;
    /* Optional: most refs per fetch_many call for this instance; 0 (or no
     * slot): no batches, every object is fetched on its own. */
    size_t (*batch_max)(void *ctx);
    /* Check the backend's config object and turn it into the provider's
     * typed config (*conf is new, freed by conf_free): the only place a
     * provider reads JSON. May stat local files; no network. 0 or -EINVAL
     * (or -ENOMEM). The common keys (type, max_size, retry_*) are parsed by
     * backend.c, which passes them in backend_env. */
    int (*parse)(json_t *json, void **conf, char *err, size_t errlen);
    void (*conf_free)(void *conf);
    /* Build a live instance from a parsed config (borrowed: the instance
     * copies what it keeps). *ctx is new. No network: `check` builds every
     * backend without fetching. */
    int (*create)(const struct backend_env *env, const void *conf, void **ctx, char *err,
                  size_t errlen);
    /* Static check of a reference's path for this backend. 0 or -EINVAL. */
    int (*check_ref)(const struct secret_ref *ref, char *err, size_t errlen);
    /* Optional: the reference against the parsed config (conf, as parse
     * made it), after check_ref, for what a reference may leave to the
     * backend's settings (GCP: the project). Not called when the config
     * was parsed for its types only. 0 or -EINVAL. */
    int (*check_ref_conf)(const void *conf, const struct secret_ref *ref, char *err,
                          size_t errlen);
    /* Fetch the raw value of ref->path (the #field is applied by the caller).
     * 0, -ENOENT when the object does not exist (the secret disappears), or
     * another negative errno with a message in err. */
    int (*fetch)(void *ctx, const struct secret_ref *ref, struct fetch_result *out,
                 char *err, size_t errlen);
    /* Optional: fetch n objects in as few requests as the service allows
     * (the cold start). Same per-item contract as fetch: rcs[i] and errs[i]
     * for outs[i]; outs are initialised by the caller. A backend that
     * learns item i's outcome before the others' (one request per object)
     * may call ready(arg, i) on the calling thread once outs[i], rcs[i]
     * and errs[i] are final; it then leaves them alone. */
    void (*fetch_many)(void *ctx, const struct secret_ref *const *refs, size_t n,
                       struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX],
                       void (*ready)(void *arg, size_t i), void *arg);
    /* Background upkeep such as renewing a login token, run by the
     * scheduler on a fetch worker. Returns milliseconds until it wants to
     * run again, or -1 for never. */
    long long (*maintain)(void *ctx);
    /* Clean shutdown: give back what the backend holds at the server
     * (leases, tokens). Bounded by the backend's HTTP timeouts. */
    void (*shutdown)(void *ctx);
    void (*destroy)(void *ctx);
    /* Optional: the login's state, for /status and /metrics (broker/admin.h).
     * Called on an admin thread at any time: it must not block, so never
     * takes a lock held across a request (the token cache's lock is one):
     * it reads what the provider published with atomics
     * (token_cache_status). No slot: BACKEND_AUTH_NONE. */
    void (*auth_status)(void *ctx, struct backend_auth *out);
};

/* Helpers for parse(): each returns 0 or -EINVAL with "<key>: <what>" in err. */
/* Keys allowed: the common ones (type, max_size, retry_base, retry_max),
 * allowed and more (either may be NULL). */
int backend_conf_check_keys(json_t *conf, const char *const *allowed, const char *const *more,
                            char *err, size_t errlen) __attribute__((warn_unused_result));
int backend_conf_size(json_t *conf, const char *key, size_t dflt, size_t *out,
                      char *err, size_t errlen) __attribute__((warn_unused_result));

/* The one check of a path in a config: absolute, exists, of the kind
 * flags ask for. *out is a new copy (NULL when absent and optional). Errors
 * read "<prefix><key>: <path>: <what>". */
#define CONF_REQUIRED (1u << 0)
#define CONF_PATH_FILE (1u << 1)      /* a regular file */
#define CONF_PATH_DIR (1u << 2)       /* a directory */
#define CONF_PATH_READABLE (1u << 3)  /* we may read it (access R_OK) */
int backend_conf_path(json_t *obj, const char *prefix, const char *key, unsigned flags,
                      char **out, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
