/* vault_i.h - what the files of the Vault provider share.
 *
 *   conf.c    the config object, parsed once into struct vault_conf
 *   vault.c   the provider: create, destroy, check_ref, fetch, fetch_many
 *             (the cold start's batch: every read at once), shutdown, ops
 *   client.c  requests: headers, namespace, Vault's errors, JSON replies,
 *             the authenticated request with its one re-login on a 403,
 *             many reads at once
 *   login.c   the auth methods (token, approle, kubernetes, jwt)
 *   token.c   the login token on top of backends/auth/token_cache: lookup,
 *             renewal, the scheduler's upkeep
 *   kv.c      which mount serves a path, and its KV version
 *   lease.c   leases of dynamic secrets: record, renew, revoke
 *
 * Locks, and the order in which they may nest (never the other way):
 *   mount_lock -> the token cache's lock (a mount probe is a request)
 *   mount_lock -> lock
 * lock is never held across a request or a call into the token cache; the
 * token cache's lock is held across a login, whose callback (login.c)
 * takes none of the provider's locks.
 *
 * Messages name paths and Vault's "errors" text, never a token or a value.
 * The answer parsers marked UNITTEST_STATIC take one HTTP response as
 * Vault sent it and do no I/O; the unit tests and fuzz targets call them.
 */
#ifndef RS_VAULT_I_H
#define RS_VAULT_I_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include "backends/auth/token_cache.h"
#include "backends/core/provider.h"
#include "backends/http/http.h"
#include "backends/http/http_opts.h"
#include "lib/log.h"
#include "lib/unittest.h"

#define VAULT_SECRET_FILE_MAX (64 * 1024)
#define VAULT_PATH_MAX 2048
#define VAULT_K8S_JWT "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define VAULT_MAX_TTL_S (10LL * 366 * 86400)  /* clamp for TTLs a server sends */

enum mount_kind { MOUNT_KV1 = 1, MOUNT_KV2 = 2, MOUNT_OTHER = 3 };

enum auth_method { AUTH_TOKEN, AUTH_APPROLE, AUTH_KUBERNETES, AUTH_JWT };
extern const char *const vault_method_names[];

/* Bits of struct token_life.flags. */
#define VAULT_TOKEN_FROM_LOGIN (1u << 0)    /* ours to revoke at shutdown */
#define VAULT_TOKEN_NEEDS_LOOKUP (1u << 1)  /* token method: TTL not known yet */

/* One kv_versions entry, as configured. */
struct vault_kv_version {
    char *mount;
    enum mount_kind kind;
};

/* The backend's config, checked and typed (conf.c); nothing JSON. */
struct vault_conf {
    struct http_opts http;
    char *ns;                        /* namespace; NULL: none */
    enum auth_method method;
    char *auth_mount;                /* without trailing slashes; default filled in */
    char *token_file, *role, *role_id, *role_id_file, *secret_id_file, *jwt_file;  /* NULL: absent */
    bool revoke_on_shutdown;
    struct vault_kv_version *kv;     /* in config order */
    size_t n_kv;
};
int vault_parse(json_t *json, void **conf, char *err, size_t errlen);
void vault_conf_free(void *conf);

struct mount {
    char *path;                    /* "secret/", with the trailing slash */
    enum mount_kind kind;
    struct mount *next;
};

struct lease {
    char *key;                     /* the reference path it came from */
    char *id;
    unsigned long gen;             /* the token it was created under */
    bool renewable, current, exhausted;
    long long duration_ms, obtained_ms, expires_ms;   /* CLOCK_MONOTONIC */
    struct lease *next;
};

struct vault {
    /* Immutable after create: */
    char *name;                    /* backend name, for logs */
    struct http_client *http;
    char *ns_header;               /* "X-Vault-Namespace: ..." or NULL */
    enum auth_method method;
    char *auth_mount;              /* without slashes */
    char *token_file, *role, *role_id, *role_id_file, *secret_id_file, *jwt_file;
    char *env_token;               /* VAULT_TOKEN (secret memory) when no token_file */
    bool revoke_on_shutdown;
    size_t max_parallel;           /* the client's: a cold-start batch's size */
    struct mount *overrides;       /* from kv_versions */

    /* The login token, its generation and lifetime; locks itself. */
    struct token_cache *tokens;

    pthread_mutex_t mount_lock;    /* one KV-version probe at a time */
    pthread_mutex_t lock;          /* protects mounts and leases */
    struct mount *mounts;          /* protected by lock; learnt by probes */
    struct lease *leases;          /* protected by lock */
};

/* A duration in seconds from Vault, clamped to [0, VAULT_MAX_TTL_S]. */
long long vault_ttl_of(const json_t *v);
void vault_log(struct vault *v, enum log_level lvl, const char *error, const char *msg);

/* client.c */
/* Vault's {"errors": [...]} joined with "; ", or a description of the body. */
void vault_errors(const struct http_response *r, char *out, size_t cap);
/* An HTTP status Vault answered with, as an error for the scheduler
 * (out may be NULL). */
int vault_status_error(const char *what, const struct http_response *r, struct fetch_result *out,
                       char *err, size_t errlen);
/* A JSON object body (*root new), whatever the status. */
int vault_parse_body(const char *what, const struct http_response *r, json_t **root, char *err,
                     size_t errlen);
/* The JSON object of a 200 answer (*root new), or the error for any other status. */
int vault_json_reply(const char *what, const struct http_response *r, struct fetch_result *out,
                     json_t **root, char *err, size_t errlen);
/* v compactly into out (its max says how large it may grow). */
int vault_dump_json(const json_t *v, struct secbuf *out, char *err, size_t errlen);
/* One plain request to /v1/<path>, no token logic; hdr_token may be NULL. */
int vault_raw_call(struct vault *v, const char *method, const char *path,
                   const struct secbuf *body, const char *hdr_token, struct http_response *resp,
                   char *err, size_t errlen);
/* GET /v1/<paths[k]> for k < n at once with hdr_token: rcs[k], resps[k]
 * (initialised by the caller) and errs + k * errlen as vault_raw_call
 * gives them; done(arg, k) (may be NULL) as each is final. */
void vault_raw_many(struct vault *v, const char *const *paths, size_t n, const char *hdr_token,
                    struct http_response *resps, int *rcs, char *errs, size_t errlen,
                    void (*done)(void *arg, size_t k), void *arg);
/* An authenticated request: a 403 with a token Vault no longer accepts
 * gets one re-login and one retry. 0 with the response (any status), or a
 * transport / login error. */
int vault_call(struct vault *v, const char *method, const char *path, const struct secbuf *body,
               struct http_response *resp, char *err, size_t errlen);

/* login.c */
/* The token cache's login callback (arg: struct vault). */
int vault_login(void *arg, enum token_login_why why, char **tok, struct token_life *life,
                char *err, size_t errlen);

/* token.c */
#define VAULT_TOKEN_PREFIX "X-Vault-Token: "
/* "X-Vault-Token: <token>", new, in secret memory (NULL: no memory). */
char *vault_token_hdr(const char *token);
/* Where the token self endpoints live. */
const char *vault_token_mount(const struct vault *v);
/* GET auth/<token mount>/lookup-self with hdr. */
int vault_lookup_self(struct vault *v, const char *hdr, long long *ttl, long long *increment,
                      bool *renewable, char *err, size_t errlen);
/* A usable "X-Vault-Token: ..." header (new, secret memory), logging in
 * when there is no token or it has expired; *gen says which token. */
int vault_token_header(struct vault *v, char **hdr, unsigned long *gen, char *err, size_t errlen);
/* Vault answered 403 to hdr: whether it rejects the token itself. */
bool vault_token_rejected(struct vault *v, const char *hdr);
/* Token gen was rejected: one fresh login, unless another thread already
 * replaced it. */
int vault_relogin(struct vault *v, unsigned long gen, char *err, size_t errlen);
unsigned long vault_token_gen(struct vault *v);
/* How long a value made under the current token may be planned for. */
long long vault_token_bound_ms(struct vault *v, long long limit);
long long vault_maintain(void *ctx);
/* Give the token back (revoke-self) if we logged in for it. */
void vault_token_revoke(struct vault *v, const char *hdr, bool from_login);

/* kv.c */
void vault_mounts_free(struct mount *m);
/* Prepend path[0..n) (trailing slashes normalised to one) to *list. */
int vault_add_mount(struct mount **list, const char *path, size_t n, enum mount_kind kind);
/* Copy of the mount serving path (*mpath new) and its kind. */
int vault_mount_for(struct vault *v, const char *path, struct fetch_result *out, char **mpath,
                    enum mount_kind *kind, char *err, size_t errlen);
/* The request path (escaped) that reads ref_path served by mount mpath of kind. */
int vault_read_path(const char *mpath, enum mount_kind kind, const char *ref_path,
                    const char *version, char *out, size_t cap);

/* lease.c */
void vault_leases_free(struct lease *l);
/* Renew the current lease of key: 0 (value still valid), 1 (read anew) or an error. */
int vault_renew_lease(struct vault *v, const char *key, struct fetch_result *out, char *err,
                      size_t errlen);
/* Record the lease of a read answer of key; sets out->valid_ms. */
int vault_record_lease(struct vault *v, const char *key, const json_t *root,
                       struct fetch_result *out);
/* Revoke every live lease with hdr until deadline, counting into *revoked
 * and *failed; the first transport failure sets *reachable false and ends it. */
void vault_leases_revoke(struct vault *v, const char *hdr, long long deadline, bool *reachable,
                         size_t *revoked, size_t *failed);

#ifdef UNITTEST
/* login.c: auth/<method>/login: a new token (secret memory) with its TTL. */
int vault_login_answer(const char *what, const struct http_response *r, char **tok,
                       long long *ttl, bool *renewable, char *err, size_t errlen);
/* token.c: auth/token/lookup-self. */
int vault_lookup_answer(const struct http_response *r, long long *ttl, long long *increment,
                        bool *renewable, char *err, size_t errlen);
/* token.c: auth/token/renew-self: 0, 1 (refused: log in afresh) or an error. */
int vault_renew_self_answer(const struct http_response *r, long long *ttl, bool *renewable,
                            char *err, size_t errlen);
/* kv.c: the longest mount of list that is a prefix of path (borrowed), or NULL. */
const struct mount *vault_match_mount(const struct mount *list, const char *path);
/* kv.c: sys/internal/ui/mounts/<path>: the mount (borrowed from path or
 * *root, which is new) serving path. */
int vault_mount_answer(const struct http_response *r, const char *path, struct fetch_result *out,
                       json_t **root, const char **mp, size_t *mplen, enum mount_kind *kind,
                       char *err, size_t errlen);
/* vault.c: a read of path: the data object into out->value; *root is new. */
int vault_read_answer(const char *path, const struct http_response *r, bool kv2,
                      struct fetch_result *out, json_t **root, char *err, size_t errlen);
/* lease.c: the lease of a read answer (id borrowed from root): 0, or 1 if none. */
int vault_lease_of(const json_t *root, const char **id, long long *dur, bool *renewable);
/* lease.c: sys/leases/renew: 0 and the seconds granted, 1 (read anew) or an error. */
int vault_lease_renew_answer(const struct http_response *r, struct fetch_result *out,
                             long long *granted, char *err, size_t errlen);
#endif

#endif
