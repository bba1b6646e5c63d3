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

static int vault_fetch(void *ctx, const struct secret_ref *ref, struct fetch_result *out,
                       char *err, size_t errlen)
{
    struct vault *v = ctx;
    enum mount_kind kind = MOUNT_KV1;
    char *mpath = NULL, path[2 * VAULT_PATH_MAX + 64];
    struct http_response r;
    json_t *root = NULL;
    int rc;

    http_response_init(&r);
    rc = vault_mount_for(v, ref->path, out, &mpath, &kind, err, errlen);
    if (rc < 0)
        goto out;
    if (ref->version && kind != MOUNT_KV2) {
        snprintf(err, errlen, "?version= needs a KV version 2 mount; %s is %s", mpath,
                 kind == MOUNT_KV1 ? "KV version 1" : "not a KV mount");
        out->retryable = false;
        rc = -EINVAL;
        goto out;
    }
    if (kind == MOUNT_OTHER && out->cached) {
        rc = vault_renew_lease(v, ref->path, out, err, errlen);
        if (rc <= 0)
            goto out;
    }
    if ((rc = vault_read_path(mpath, kind, ref->path, ref->version, path, sizeof(path))) < 0) {
        snprintf(err, errlen, "path too long");
        out->retryable = false;
        goto out;
    }
    rc = vault_call(v, "GET", path, NULL, &r, err, errlen);
    if (rc < 0) {
        out->retryable = http_errno_retryable(rc);
        goto out;
    }
    if ((rc = vault_read_answer(ref->path, &r, kind == MOUNT_KV2, out, &root, err, errlen)) < 0)
        goto out;
    if (kind == MOUNT_OTHER)
        rc = vault_record_lease(v, ref->path, root, out);
out:
    json_decref(root);
    http_response_cleanup(&r);
    free(mpath);
    return rc;
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
    .parse = vault_parse,
    .conf_free = vault_conf_free,
    .create = vault_create,
    .check_ref = vault_check_ref,
    .fetch = vault_fetch,
    .maintain = vault_maintain,
    .shutdown = vault_shutdown,
    .destroy = vault_destroy,
    .auth_status = vault_auth_status,
};
