/* vault.c - the HashiCorp Vault backend: the provider's ops.
 *
 * KV version 1 and 2 and dynamic secrets (anything answering with a lease)
 * over the shared HTTP layer. One login token per backend (token.c over
 * backends/auth/token_cache), renewed at 2/3 of its TTL by maintain(), and
 * replaced by one fresh login when Vault rejects it. Wire reference:
 * Vault's HTTP API docs (auth login endpoints, the token self endpoints,
 * sys/internal/ui/mounts, the sys/leases endpoints), summarised in
 * docs/internals/backends.md. vault_i.h says which file does what, and
 * the lock order.
 *
 * Secret hygiene: the token, role and secret ids and JWTs live in secret
 * memory; error messages carry Vault's "errors" text and paths, never a
 * token or a value.
 */
#include "backends/vault/vault.h"
#include "backends/vault/vault_i.h"
#include "lib/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAULT_SHUTDOWN_MS (10 * 1000LL)       /* all revocations together */

/* A failed login stands 1 s, doubling to 60 s. */
static const struct backoff vault_login_backoff = {.base_ms = 1000, .max_ms = 60 * 1000LL};

long long vault_ttl_of(const json_t *v)
{
    json_int_t t = json_integer_value(v);
    return t < 0 ? 0 : t > VAULT_MAX_TTL_S ? VAULT_MAX_TTL_S : (long long)t;
}

void vault_log(struct vault *v, enum log_level lvl, const char *error, const char *msg)
{
    struct log_fields lf = {.backend = v->name, .error = error};
    log_f(lvl, &lf, "%s", msg);
}

static void vault_destroy(void *ctx)
{
    struct vault *v = ctx;
    if (!v)
        return;
    token_cache_free(v->tokens);
    http_client_free(v->http);
    free(v->name);
    free(v->ns_header);
    free(v->auth_mount);
    free(v->token_file);
    free(v->role);
    free(v->role_id);
    free(v->role_id_file);
    free(v->secret_id_file);
    free(v->jwt_file);
    secmem_free(v->env_token);
    vault_mounts_free(v->overrides);
    vault_mounts_free(v->mounts);
    vault_leases_free(v->leases);
    pthread_mutex_destroy(&v->mount_lock);
    pthread_mutex_destroy(&v->lock);
    free(v);
}

/* A copy of s, or NULL for NULL; *ok false when out of memory. */
static char *dup_opt(const char *s, bool *ok)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *ok = false;
    return d;
}

static int vault_create(const struct backend_env *env, const void *parsed, void **ctx, char *err,
                        size_t errlen)
{
    const struct vault_conf *c = parsed;
    struct vault *v = calloc(1, sizeof(*v));
    bool ok = true;
    int rc = -ENOMEM;

    if (!v)
        return -ENOMEM;
    pthread_mutex_init(&v->mount_lock, NULL);
    pthread_mutex_init(&v->lock, NULL);
    v->name = strdup(env->name);
    if (!v->name)
        goto fail;
    rc = http_client_new(env->http, &c->http, NULL, &v->http, err, errlen);
    if (rc < 0)
        goto fail;
    rc = -ENOMEM;
    if (c->ns && asprintf(&v->ns_header, "X-Vault-Namespace: %s", c->ns) < 0) {
        v->ns_header = NULL;
        goto fail;
    }
    v->method = c->method;
    v->auth_mount = dup_opt(c->auth_mount, &ok);
    v->token_file = dup_opt(c->token_file, &ok);
    v->role = dup_opt(c->role, &ok);
    v->role_id = dup_opt(c->role_id, &ok);
    v->role_id_file = dup_opt(c->role_id_file, &ok);
    v->secret_id_file = dup_opt(c->secret_id_file, &ok);
    v->jwt_file = dup_opt(c->jwt_file, &ok);
    if (!ok)
        goto fail;
    if (v->method == AUTH_TOKEN && !v->token_file) {
        /* The broker's own VAULT_TOKEN: copied into secret memory, then
         * wiped from the environment block so no child or /proc reader
         * sees it. */
        char *t = getenv("VAULT_TOKEN");
        if (!t || !*t) {
            snprintf(err, errlen, "auth.token_file: missing, and VAULT_TOKEN is not set");
            rc = -EINVAL;
            goto fail;
        }
        v->env_token = secmem_strndup(t, strlen(t));
        if (!v->env_token)
            goto fail;
        secmem_wipe(t, strlen(t));
        unsetenv("VAULT_TOKEN");
    }
    v->revoke_on_shutdown = c->revoke_on_shutdown;
    v->max_parallel = c->http.max_parallel;
    for (size_t i = 0; i < c->n_kv; i++)
        if (vault_add_mount(&v->overrides, c->kv[i].mount, strlen(c->kv[i].mount),
                            c->kv[i].kind) < 0)
            goto fail;
    struct token_cache_conf tc = {
        .login = vault_login, .arg = v, .backoff = vault_login_backoff,
    };
    if (token_cache_new(&tc, &v->tokens) < 0)
        goto fail;
    *ctx = v;
    return 0;
fail:
    vault_destroy(v);
    return rc;
}

static int vault_check_ref(const struct secret_ref *ref, char *err, size_t errlen)
{
    const char *p = ref->path;
    if (p[0] == '/' || p[strlen(p) - 1] == '/' || strstr(p, "//")) {
        snprintf(err, errlen, "vault path '%.200s': expected <mount>/<path> without leading, "
                 "trailing or doubled '/'", p);
        return -EINVAL;
    }
    if (!strchr(p, '/')) {
        snprintf(err, errlen, "vault path '%.200s': expected <mount>/<path>", p);
        return -EINVAL;
    }
    for (const char *s = p; s; s = strchr(s, '/') ? strchr(s, '/') + 1 : NULL)
        if ((s[0] == '.' && (s[1] == '/' || s[1] == '\0')) ||
            (s[0] == '.' && s[1] == '.' && (s[2] == '/' || s[2] == '\0'))) {
            snprintf(err, errlen, "vault path '%.200s': '.' and '..' segments are not allowed", p);
            return -EINVAL;
        }
    if (strlen(p) > VAULT_PATH_MAX / 2) {
        snprintf(err, errlen, "vault path too long");
        return -EINVAL;
    }
    if (ref->version) {
        const char *d = ref->version;
        if (!*d || strspn(d, "0123456789") != strlen(d) || d[0] == '0' || strlen(d) > 9) {
            snprintf(err, errlen, "vault ?version= must be a positive integer, got '%.32s'", d);
            return -EINVAL;
        }
    }
    return 0;
}

/* KV v2's data.metadata.version into out->version. A KV v1 read has no
 * version, and a dynamic secret's lease id is a handle on a credential,
 * never shown: both stay "". */
static void version_of(const json_t *root, struct fetch_result *out)
{
    const json_t *v = json_object_get(json_object_get(json_object_get(root, "data"), "metadata"),
                                      "version");
    char num[24];
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return;
    int n = snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
    fetch_result_set_version(out, num, (size_t)n);
}

/* A read of path (KV or a dynamic secret): the data object as compact JSON
 * into out->value; *root (new) still holds the lease fields. */
UNITTEST_STATIC int vault_read_answer(const char *path, const struct http_response *r, bool kv2,
                                      struct fetch_result *out, json_t **root, char *err,
                                      size_t errlen)
{
    int rc = vault_json_reply(path, r, out, root, err, errlen);
    if (rc < 0)
        return rc;
    const json_t *data = json_object_get(*root, "data");
    if (kv2)
        data = json_object_get(data, "data");
    if (json_is_null(data) || !data) {
        snprintf(err, errlen, "%.200s: no data (deleted version)", path);
        return -ENOENT;
    }
    if (!json_is_object(data)) {
        snprintf(err, errlen, "%.200s: data is not a JSON object", path);
        return -EPROTO;
    }
    if ((rc = vault_dump_json(data, &out->value, err, errlen)) < 0) {
        out->retryable = false;
        return rc;
    }
    if (kv2)
        version_of(*root, out);
    return 0;
}

/* What a read of ref needs before its request: the mount serving it
 * (probed once per mount when neither configured nor learnt), its kind,
 * and the request path (*path new). */
static int plan_read(struct vault *v, const struct secret_ref *ref, struct fetch_result *out,
                     enum mount_kind *kind, char **path, char *err, size_t errlen)
{
    char *mpath = NULL, buf[2 * VAULT_PATH_MAX + 64];
    int rc;

    *path = NULL;
    *kind = MOUNT_KV1;
    rc = vault_mount_for(v, ref->path, out, &mpath, kind, err, errlen);
    if (rc < 0)
        goto out;
    if (ref->version && *kind != MOUNT_KV2) {
        snprintf(err, errlen, "?version= needs a KV version 2 mount; %s is %s", mpath,
                 *kind == MOUNT_KV1 ? "KV version 1" : "not a KV mount");
        out->retryable = false;
        rc = -EINVAL;
        goto out;
    }
    if ((rc = vault_read_path(mpath, *kind, ref->path, ref->version, buf, sizeof(buf))) < 0) {
        snprintf(err, errlen, "path too long");
        out->retryable = false;
        goto out;
    }
    if (strlen(buf) + sizeof("/v1/") > VAULT_PATH_MAX + 8) {   /* vault_raw_call's limit */
        snprintf(err, errlen, "path too long");
        out->retryable = false;
        rc = -ENAMETOOLONG;
        goto out;
    }
    rc = (*path = strdup(buf)) ? 0 : -ENOMEM;
out:
    free(mpath);
    return rc;
}

/* The answer r to a read of ref from a mount of kind: the value into
 * out, and a dynamic secret's lease recorded. */
static int read_done(struct vault *v, const struct secret_ref *ref, enum mount_kind kind,
                     const struct http_response *r, struct fetch_result *out, char *err,
                     size_t errlen)
{
    json_t *root = NULL;
    int rc = vault_read_answer(ref->path, r, kind == MOUNT_KV2, out, &root, err, errlen);
    if (rc == 0 && kind == MOUNT_OTHER)
        rc = vault_record_lease(v, ref->path, root, out);
    json_decref(root);
    return rc;
}

static int vault_fetch(void *ctx, const struct secret_ref *ref, struct fetch_result *out,
                       char *err, size_t errlen)
{
    struct vault *v = ctx;
    enum mount_kind kind;
    char *path = NULL;
    struct http_response r;
    int rc;

    http_response_init(&r);
    if ((rc = plan_read(v, ref, out, &kind, &path, err, errlen)) < 0)
        goto out;
    if (kind == MOUNT_OTHER && out->cached) {
        rc = vault_renew_lease(v, ref->path, out, err, errlen);
        if (rc <= 0)
            goto out;
    }
    rc = vault_call(v, "GET", path, NULL, &r, err, errlen);
    if (rc < 0) {
        out->retryable = http_errno_retryable(rc);
        goto out;
    }
    rc = read_done(v, ref, kind, &r, out, err, errlen);
out:
    http_response_cleanup(&r);
    free(path);
    return rc;
}

/* A cold start's batch (vault_fetch_many) and one round of its reads. */
struct many {
    struct vault *v;
    const struct secret_ref *const *refs;
    struct fetch_result *outs;
    int *rcs;
    char (*errs)[BACKEND_ERR_MAX];
    void (*ready)(void *arg, size_t i);
    void *arg;
    char **path;                   /* per item: its request path; NULL once final */
    enum mount_kind *kind;
    /* This round's requests, k for item idx[k]: */
    size_t *idx;
    const char **paths;
    struct http_response *resps;
    int *hrc;
    char (*herr)[BACKEND_ERR_MAX];
    bool hold_403;                 /* first round: a 403 waits for the token check */
    bool denied;                   /* a 403 is waiting */
};

/* Item i is final: tell the scheduler. */
static void many_final(struct many *mb, size_t i)
{
    free(mb->path[i]);
    mb->path[i] = NULL;
    if (mb->ready)
        mb->ready(mb->arg, i);
}

/* Request k of this round answered (or failed): item idx[k]'s outcome,
 * unless it is a 403 that may be a dead token's (decided after the round). */
static void many_answer(void *arg, size_t k)
{
    struct many *mb = arg;
    size_t i = mb->idx[k];
    if (mb->hold_403 && mb->hrc[k] == 0 && mb->resps[k].status == 403) {
        mb->denied = true;
        return;
    }
    if (mb->hrc[k] < 0) {
        mb->rcs[i] = mb->hrc[k];
        snprintf(mb->errs[i], BACKEND_ERR_MAX, "%s", mb->herr[k]);
        mb->outs[i].retryable = http_errno_retryable(mb->hrc[k]);
    } else {
        mb->rcs[i] = read_done(mb->v, mb->refs[i], mb->kind[i], &mb->resps[k], &mb->outs[i],
                               mb->errs[i], BACKEND_ERR_MAX);
    }
    http_response_cleanup(&mb->resps[k]);
    http_response_init(&mb->resps[k]);
    many_final(mb, i);
}

/* Read every item not final yet at once with one token, each reported
 * as its answer arrives. A 403 gets what vault_call gives a single read:
 * one check of the token, and if Vault rejects it, one fresh login and
 * one retry of the 403s. */
static void read_many(struct many *mb, size_t n)
{
    for (int attempt = 0;; attempt++) {
        char msg[384] = "", *hdr = NULL;
        unsigned long gen = 0;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (mb->path[i]) {
                mb->idx[m] = i;
                mb->paths[m++] = mb->path[i];
            }
        if (m == 0)
            return;
        mb->hold_403 = attempt == 0;
        mb->denied = false;
        int rc = vault_token_header(mb->v, &hdr, &gen, msg, sizeof(msg));
        if (rc == 0) {
            vault_raw_many(mb->v, mb->paths, m, hdr, mb->resps, mb->hrc, mb->herr[0],
                           BACKEND_ERR_MAX, many_answer, mb);
        } else {
            for (size_t k = 0; k < m; k++) {
                mb->hrc[k] = rc;
                snprintf(mb->herr[k], BACKEND_ERR_MAX, "GET %.200s: cannot log in: %s",
                         mb->paths[k], msg);
                many_answer(mb, k);
            }
        }
        bool again = mb->denied && vault_token_rejected(mb->v, hdr);
        secmem_free(hdr);
        if (!again) {
            mb->hold_403 = false;
            for (size_t k = 0; k < m; k++)
                if (mb->path[mb->idx[k]])
                    many_answer(mb, k);   /* the 403s held: the path is denied */
            return;
        }
        for (size_t k = 0; k < m; k++) {
            http_response_cleanup(&mb->resps[k]);
            http_response_init(&mb->resps[k]);
        }
        if ((rc = vault_relogin(mb->v, gen, msg, sizeof(msg))) < 0) {
            for (size_t i = 0; i < n; i++)
                if (mb->path[i]) {
                    mb->rcs[i] = rc;
                    snprintf(mb->errs[i], BACKEND_ERR_MAX,
                             "GET %.200s: HTTP 403, and logging in again failed: %s", mb->path[i],
                             msg);
                    many_final(mb, i);
                }
            return;
        }
    }
}

/* A cold start's batch: each reference's mount as for a single fetch (one
 * probe per mount, under mount_lock), then every read at once, each
 * reported ready as its answer arrives. One worker so has the whole batch
 * in flight (up to max_parallel), where one request per worker took a
 * wave per pool's worth of secrets. A lease already served (not at a cold
 * start) is renewed by vault_fetch. */
static void vault_fetch_many(void *ctx, const struct secret_ref *const *refs, size_t n,
                             struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX],
                             void (*ready)(void *arg, size_t i), void *arg)
{
    struct many mb = {
        .v = ctx, .refs = refs, .outs = outs, .rcs = rcs, .errs = errs, .ready = ready,
        .arg = arg, .path = calloc(n, sizeof(char *)), .kind = calloc(n, sizeof(*mb.kind)),
        .idx = calloc(n, sizeof(size_t)), .paths = calloc(n, sizeof(char *)),
        .resps = calloc(n, sizeof(*mb.resps)), .hrc = calloc(n, sizeof(int)),
        .herr = calloc(n, sizeof(*mb.herr)),
    };
    bool ok = mb.path && mb.kind && mb.idx && mb.paths && mb.resps && mb.hrc && mb.herr;

    for (size_t i = 0; ok && i < n; i++)
        http_response_init(&mb.resps[i]);
    for (size_t i = 0; i < n; i++) {
        errs[i][0] = '\0';
        if (!ok) {
            rcs[i] = vault_fetch(mb.v, refs[i], &outs[i], errs[i], BACKEND_ERR_MAX);
            continue;
        }
        rcs[i] = plan_read(mb.v, refs[i], &outs[i], &mb.kind[i], &mb.path[i], errs[i],
                           BACKEND_ERR_MAX);
        if (rcs[i] == 0 && mb.kind[i] == MOUNT_OTHER && outs[i].cached) {
            free(mb.path[i]);
            mb.path[i] = NULL;
            rcs[i] = vault_fetch(mb.v, refs[i], &outs[i], errs[i], BACKEND_ERR_MAX);
        }
        if (!mb.path[i])
            many_final(&mb, i);
    }
    if (ok)
        read_many(&mb, n);
    free(mb.path);
    free(mb.kind);
    free(mb.idx);
    free(mb.paths);
    free(mb.resps);
    free(mb.hrc);
    free(mb.herr);
}

/* A batch fills the client's max_parallel (the scheduler caps it). */
static size_t vault_batch_max(void *ctx)
{
    const struct vault *v = ctx;
    return v->max_parallel;
}

/* Revoke every live lease, then the token we logged in for, with the token
 * we hold: no login at shutdown (a token that is gone took its leases with
 * it). Stops at the first transport failure and after VAULT_SHUTDOWN_MS,
 * so an unreachable Vault costs one request timeout, not one per lease. */
static void vault_shutdown(void *ctx)
{
    struct vault *v = ctx;
    char err[512] = "";
    size_t revoked = 0, failed = 0;
    long long deadline = clock_mono_ms() + VAULT_SHUTDOWN_MS;
    bool reachable = true;
    struct token_info ti;
    char *hdr = NULL;

    if (!v->revoke_on_shutdown)
        return;
    if (token_cache_get(v->tokens, TOKEN_HELD, VAULT_TOKEN_PREFIX, &hdr, &ti, err,
                        sizeof(err)) < 0)
        return;
    if (ti.life.ttl_ms != 0 && clock_mono_ms() >= ti.obtained_ms + ti.life.ttl_ms) {
        secmem_free(hdr);   /* expired: nothing left to revoke with it */
        return;
    }
    vault_leases_revoke(v, hdr, deadline, &reachable, &revoked, &failed);
    if (revoked || failed) {
        struct log_fields lf = {.backend = v->name};
        log_f(failed ? LOG_WARN : LOG_INFO, &lf, "vault leases revoked: %zu, failed: %zu",
              revoked, failed);
    }
    if (reachable && clock_mono_ms() < deadline)
        vault_token_revoke(v, hdr, ti.life.flags & VAULT_TOKEN_FROM_LOGIN);
    secmem_free(hdr);
}

/* The token cache's state; the method is fixed by the config. */
static void vault_auth_status(void *ctx, struct backend_auth *out)
{
    struct vault *v = ctx;
    token_cache_status(v->tokens, out);
    snprintf(out->method, sizeof(out->method), "%s", vault_method_names[v->method]);
}

const struct backend_ops backend_vault_ops = {
    .type = "vault",
    .caps = BACKEND_CAP_VERSIONS,
    .batch_max = vault_batch_max,
    .parse = vault_parse,
    .conf_free = vault_conf_free,
    .create = vault_create,
    .check_ref = vault_check_ref,
    .fetch = vault_fetch,
    .fetch_many = vault_fetch_many,
    .maintain = vault_maintain,
    .shutdown = vault_shutdown,
    .destroy = vault_destroy,
    .auth_status = vault_auth_status,
};
