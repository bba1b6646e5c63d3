/* gcp.c - the GCP Secret Manager backend: the provider's ops.
 *
 * Secrets are read with AccessSecretVersion (sm.c) over the shared HTTP
 * layer, with a token from the credential Application Default
 * Credentials found (conf.c, cred.c, token.c), held in a token cache and
 * replaced ahead of its end. A refresh of `latest` compares the version
 * number the answer names with the one served and answers `unchanged`
 * when they are the same. Secret Manager has no batch read: a cold start
 * fetches every secret on its own worker, in parallel over the shared
 * connection pool, after one token request. gcp_i.h says which file does
 * what, and the lock order.
 */
#include "backends/gcp/gcp.h"
#include "backends/gcp/gcp_i.h"
#include "backends/http/json.h"
#include "lib/escape.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed login stands 1 s, doubling to 60 s. */
static const struct backoff gcp_login_backoff = {.base_ms = 1000, .max_ms = 60 * 1000LL};

void gcp_log(struct gcp *g, enum log_level lvl, const char *error, const char *fmt, ...)
{
    char msg[GCP_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct log_fields lf = {.backend = g->name, .error = error};
    log_f(lvl, &lf, "%s", msg);
}

const char *gcp_shown(char *out, size_t cap, const char *s, size_t n)
{
    escape_bytes(out, cap, s, n, 0);
    return out;
}

void gcp_identity(struct gcp *g, char *out, size_t cap)
{
    pthread_mutex_lock(&g->lock);
    snprintf(out, cap, "%s", g->identity);
    pthread_mutex_unlock(&g->lock);
}

void gcp_error_fields(const struct http_response *r, char *status, size_t scap, char *msg,
                      size_t mcap)
{
    json_t *root = http_body_object(r);
    const json_t *e = json_object_get(root, "error");
    const json_t *s = json_object_get(e, "status"), *m = json_object_get(e, "message");
    status[0] = msg[0] = '\0';
    if (json_is_string(s))
        gcp_shown(status, scap, json_string_value(s), json_string_length(s));
    if (json_is_string(m)) {
        const char *t = json_string_value(m);
        gcp_shown(msg, mcap, t, strcspn(t, "\r\n"));
    }
    json_decref(root);
}

static void seen_free(struct gcp_seen *s)
{
    while (s) {
        struct gcp_seen *n = s->next;
        free(s->key);
        free(s);
        s = n;
    }
}

static void gcp_destroy(void *ctx)
{
    struct gcp *g = ctx;
    if (!g)
        return;
    token_cache_free(g->tokens);
    http_client_free(g->sm);
    http_client_free(g->metadata);
    http_opts_cleanup(&g->aux);
    free(g->name);
    free(g->project);
    free(g->location);
    free(g->cred_path);
    free(g->metadata_url);
    seen_free(g->seen);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* A copy of s, or NULL for NULL; *ok false when out of memory. */
static char *dup_opt(const char *s, bool *ok)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *ok = false;
    return d;
}

static int gcp_create(const struct backend_env *env, const void *parsed, void **ctx, char *err,
                      size_t errlen)
{
    const struct gcp_conf *c = parsed;
    struct gcp *g = calloc(1, sizeof(*g));
    bool ok = true;
    int rc = -ENOMEM;

    if (!g)
        return -ENOMEM;
    pthread_mutex_init(&g->lock, NULL);
    g->source = c->source;
    g->engine = env->http;
    if (!(g->name = strdup(env->name)))
        goto fail;
    g->project = dup_opt(c->project, &ok);
    g->location = dup_opt(c->location, &ok);
    g->cred_path = dup_opt(c->cred_path, &ok);
    g->metadata_url = dup_opt(c->metadata_url, &ok);
    if (!ok)
        goto fail;
    snprintf(g->identity, sizeof(g->identity), "%s", c->identity);
    if ((rc = http_client_new(env->http, &c->http, NULL, &g->sm, err, errlen)) < 0)
        goto fail;
    /* The token services get every HTTP setting but tls_server_name,
     * which names Secret Manager's server, not theirs. */
    if ((rc = http_opts_copy(&c->http, &g->aux)) < 0)
        goto fail;
    free(g->aux.tls_server_name);
    g->aux.tls_server_name = NULL;
    if (c->source == GCP_METADATA) {
        if ((rc = http_client_new(env->http, &g->aux, c->metadata_url, &g->metadata, err,
                                  errlen)) < 0)
            goto fail;
        http_client_set_timeouts(g->metadata,
                                 g->aux.connect_timeout_ms < GCP_METADATA_CONNECT_MS
                                     ? g->aux.connect_timeout_ms
                                     : GCP_METADATA_CONNECT_MS,
                                 g->aux.timeout_ms);
    }
    struct token_cache_conf tc = {
        .login = gcp_login, .arg = g, .backoff = gcp_login_backoff,
    };
    rc = -ENOMEM;
    if (token_cache_new(&tc, &g->tokens) < 0)
        goto fail;
    if (c->source == GCP_SERVICE_ACCOUNT)
        gcp_jwt_secure_heap(g);
    if (c->cred_path)
        gcp_log(g, LOG_INFO, NULL, "gcp credentials: %s from %s (%s)", c->identity,
                c->cred_from, c->cred_path);
    else
        gcp_log(g, LOG_INFO, NULL, "gcp credentials: no credentials file, the metadata server "
                "at %s", c->metadata_url);
    *ctx = g;
    return 0;
fail:
    gcp_destroy(g);
    return rc;
}

static int gcp_check_ref(const struct secret_ref *ref, char *err, size_t errlen)
{
    struct gcp_name n;
    return gcp_name_parse(ref, NULL, NULL, &n, err, errlen);
}

static int gcp_check_ref_conf(const void *conf, const struct secret_ref *ref, char *err,
                              size_t errlen)
{
    const struct gcp_conf *c = conf;
    struct gcp_name n;
    int rc = gcp_name_parse(ref, c->project, c->location, &n, err, errlen);
    if (rc == 0 && !n.project[0]) {
        snprintf(err, errlen, "gcp secret '%s' names no project: set \"project\" in the backend "
                 "(or use a service account file with a project_id), or write "
                 "projects/PROJECT/secrets/%s", n.secret, n.secret);
        return -EINVAL;
    }
    return rc;
}

/* ---- the version a reference was last served at ---- */

static char *seen_key(const struct secret_ref *ref)
{
    char *k;
    if (asprintf(&k, "%s\n%s", ref->path, ref->version ? ref->version : "") < 0)
        return NULL;
    return k;
}

static bool seen_is(struct gcp *g, const struct secret_ref *ref, const char *version)
{
    char *k = seen_key(ref);
    bool same = false;
    if (!k)
        return false;
    pthread_mutex_lock(&g->lock);
    for (struct gcp_seen *s = g->seen; s; s = s->next)
        if (strcmp(s->key, k) == 0)
            same = strcmp(s->version, version) == 0;
    pthread_mutex_unlock(&g->lock);
    free(k);
    return same;
}

/* Record version for ref ("" forgets it). */
static void seen_set(struct gcp *g, const struct secret_ref *ref, const char *version)
{
    char *k = seen_key(ref);
    if (!k)
        return;
    pthread_mutex_lock(&g->lock);
    struct gcp_seen *s = g->seen;
    while (s && strcmp(s->key, k) != 0)
        s = s->next;
    if (!s && version[0] && (s = calloc(1, sizeof(*s)))) {
        s->key = k;
        k = NULL;
        s->next = g->seen;
        g->seen = s;
    }
    if (s)
        snprintf(s->version, sizeof(s->version), "%s", version);
    pthread_mutex_unlock(&g->lock);
    free(k);
}

static int gcp_fetch(void *ctx, const struct secret_ref *ref, struct fetch_result *out, char *err,
                     size_t errlen)
{
    struct gcp *g = ctx;
    struct gcp_name n;
    char version[GCP_VERSION_MAX + 1];
    int rc = gcp_name_parse(ref, g->project, g->location, &n, err, errlen);
    if (rc == 0 && !n.project[0]) {
        snprintf(err, errlen, "gcp secret '%s' names no project", n.secret);
        rc = -EINVAL;
    }
    if (rc < 0) {
        out->retryable = false;
        return rc;
    }
    rc = gcp_access(g, &n, out, version, err, errlen);
    if (rc == -ENOENT)
        seen_set(g, ref, "");
    if (rc < 0)
        return rc;
    if (out->cached && seen_is(g, ref, version)) {
        /* The version served is still the one: nothing to seal again. */
        out->unchanged = true;
        out->version[0] = '\0';   /* the caller keeps the one it showed */
        secbuf_cleanup(&out->value);
        return 0;
    }
    seen_set(g, ref, version);
    return 0;
}

/* The token cache's state; the source is fixed when the config is read. */
static void gcp_auth_status(void *ctx, struct backend_auth *out)
{
    static const char *const names[] = {
        [GCP_SERVICE_ACCOUNT] = "service_account", [GCP_AUTHORIZED_USER] = "authorized_user",
        [GCP_EXTERNAL_ACCOUNT] = "external_account", [GCP_METADATA] = "metadata",
    };
    struct gcp *g = ctx;
    token_cache_status(g->tokens, out);
    snprintf(out->method, sizeof(out->method), "%s", names[g->source]);
}

const struct backend_ops backend_gcp_ops = {
    .type = "gcp",
    .caps = BACKEND_CAP_VERSIONS,
    .parse = gcp_parse,
    .conf_free = gcp_conf_free,
    .create = gcp_create,
    .check_ref = gcp_check_ref,
    .check_ref_conf = gcp_check_ref_conf,
    .fetch = gcp_fetch,
    .maintain = gcp_maintain,
    .destroy = gcp_destroy,
    .auth_status = gcp_auth_status,
};
