/* azure.c - the Azure Key Vault backend: the provider's ops.
 *
 * Secrets are read with Get Secret (kv.c) over the shared HTTP layer, with
 * a token for the scope Key Vault's challenge names (challenge.c) from
 * the configured identity (identity.c), held in a token cache and
 * refreshed ahead of its end (token.c). A refresh reads the latest
 * version and answers `unchanged` when its id is the one served. Key
 * Vault has no batch read: a cold start fetches every secret on its own
 * worker, in parallel over the shared connection pool. azure_i.h says
 * which file does what, and the lock order.
 */
#include "backends/azure/azure.h"
#include "backends/azure/azure_i.h"
#include "lib/escape.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A failed login stands 1 s, doubling to 60 s. */
static const struct backoff azure_login_backoff = {.base_ms = 1000, .max_ms = 60 * 1000LL};

void azure_log(struct azure *a, enum log_level lvl, const char *error, const char *fmt, ...)
{
    char msg[AZURE_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct log_fields lf = {.backend = a->name, .error = error};
    log_f(lvl, &lf, "%s", msg);
}

const char *azure_shown(char *out, size_t cap, const char *s, size_t n)
{
    escape_bytes(out, cap, s, n, 0);
    return out;
}

void azure_identity(struct azure *a, char *out, size_t cap)
{
    pthread_mutex_lock(&a->lock);
    snprintf(out, cap, "%s", a->identity);
    pthread_mutex_unlock(&a->lock);
}

static void seen_free(struct azure_seen *s)
{
    while (s) {
        struct azure_seen *n = s->next;
        free(s->key);
        free(s);
        s = n;
    }
}

static void azure_destroy(void *ctx)
{
    struct azure *a = ctx;
    if (!a)
        return;
    token_cache_free(a->tokens);
    http_client_free(a->vault);
    http_client_free(a->entra);
    http_client_free(a->imds);
    free(a->name);
    free(a->vault_host);
    free(a->challenge_host);
    free(a->guess_scope);
    free(a->tenant_id);
    free(a->client_id);
    free(a->client_secret_file);
    free(a->federated_token_file);
    free(a->authority_host);
    free(a->imds_endpoint);
    secmem_free(a->env_secret);
    free(a->scope);
    seen_free(a->seen);
    pthread_cond_destroy(&a->challenged);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* A copy of s, or NULL for NULL; *ok false when out of memory. */
static char *dup_opt(const char *s, bool *ok)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *ok = false;
    return d;
}

/* The clients for Entra and IMDS: the backend's HTTP settings (ca_file and
 * the other TLS settings, timeouts, limits) at another address, but not
 * tls_server_name, which names the vault's server. */
static int aux_clients(struct azure *a, const struct backend_env *env, const struct azure_conf *c,
                       char *err, size_t errlen)
{
    struct http_opts o;
    int rc = http_opts_copy(&c->http, &o);
    if (rc < 0)
        return rc;
    free(o.tls_server_name);
    o.tls_server_name = NULL;
    if (c->method != AZURE_MANAGED_IDENTITY)
        rc = http_client_new(env->http, &o, c->authority_host, &a->entra, err, errlen);
    if (rc == 0 && (c->method == AZURE_MANAGED_IDENTITY || c->method == AZURE_DEFAULT)) {
        rc = http_client_new(env->http, &o, c->imds_endpoint, &a->imds, err, errlen);
        if (rc == 0)
            http_client_set_timeouts(a->imds, o.connect_timeout_ms < AZURE_IMDS_CONNECT_MS
                                                  ? o.connect_timeout_ms
                                                  : AZURE_IMDS_CONNECT_MS,
                                     o.timeout_ms);
    }
    http_opts_cleanup(&o);
    return rc;
}

static int azure_create(const struct backend_env *env, const void *parsed, void **ctx, char *err,
                        size_t errlen)
{
    const struct azure_conf *c = parsed;
    struct azure *a = calloc(1, sizeof(*a));
    char msg[200];
    bool ok = true;
    int rc = -ENOMEM;

    if (!a)
        return -ENOMEM;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->challenged, NULL);
    a->winner = -1;
    a->method = c->method;
    if (!(a->name = strdup(env->name)))
        goto fail;
    if ((rc = http_client_new(env->http, &c->http, NULL, &a->vault, err, errlen)) < 0 ||
        (rc = aux_clients(a, env, c, err, errlen)) < 0)
        goto fail;
    /* Tokens go to whoever holds a certificate for this name. */
    msg[0] = '\0';
    if (c->http.tls_server_name)
        rc = (a->vault_host = strdup(c->http.tls_server_name)) ? 0 : -ENOMEM;
    else
        rc = azure_url_host(c->http.address, &a->vault_host, msg, sizeof(msg));
    if (rc < 0) {
        snprintf(err, errlen, "vault_url: %s", msg[0] ? msg : "out of memory");
        goto fail;
    }
    for (char *p = a->vault_host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    rc = -ENOMEM;
    a->challenge_host = dup_opt(c->challenge_host, &ok);
    a->tenant_id = dup_opt(c->tenant_id, &ok);
    a->client_id = dup_opt(c->client_id, &ok);
    a->client_secret_file = dup_opt(c->client_secret_file, &ok);
    a->federated_token_file = dup_opt(c->federated_token_file, &ok);
    a->authority_host = dup_opt(c->authority_host, &ok);
    a->imds_endpoint = dup_opt(c->imds_endpoint, &ok);
    if (!ok || azure_guess_scope(a->vault_host, a->challenge_host, &a->guess_scope) < 0)
        goto fail;
    if (c->secret_env) {
        /* Copied into secret memory. The environment keeps it: several
         * backends (one per vault) may share the identity, and each reads
         * it here. A client_secret_file keeps it out of the broker's
         * environment block altogether. */
        const char *s = getenv("AZURE_CLIENT_SECRET");
        if (s && *s && !(a->env_secret = secmem_strndup(s, strlen(s))))
            goto fail;
        if (!a->env_secret && c->method == AZURE_CLIENT_SECRET) {
            snprintf(err, errlen, "auth.client_secret_file: missing, and AZURE_CLIENT_SECRET is "
                     "not set");
            rc = -EINVAL;
            goto fail;
        }
    }
    struct token_cache_conf tc = {
        .login = azure_login, .arg = a, .backoff = azure_login_backoff,
    };
    if (token_cache_new(&tc, &a->tokens) < 0)
        goto fail;
    *ctx = a;
    return 0;
fail:
    azure_destroy(a);
    return rc;
}

static int azure_check_ref(const struct secret_ref *ref, char *err, size_t errlen)
{
    const char *p = ref->path;
    size_t n = strlen(p);
    char shown[160];
    if (n == 0 || n > AZURE_NAME_MAX ||
        strspn(p, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") != n) {
        escape_str(shown, sizeof(shown), p, ESCAPE_SQUOTE);
        snprintf(err, errlen, "azure secret name '%s': expected 1 to %d letters, digits and '-'",
                 shown, AZURE_NAME_MAX);
        return -EINVAL;
    }
    if (ref->version) {
        const char *v = ref->version;
        if (strlen(v) != AZURE_VERSION_LEN ||
            strspn(v, "0123456789abcdefABCDEF") != AZURE_VERSION_LEN) {
            escape_str(shown, sizeof(shown), v, ESCAPE_SQUOTE);
            snprintf(err, errlen, "azure ?version= must be a version id of %d hex digits, got "
                     "'%s'", AZURE_VERSION_LEN, shown);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- the version a reference was last served at ---- */

static char *seen_key(const struct secret_ref *ref)
{
    char *k;
    if (asprintf(&k, "%s\n%s", ref->path, ref->version ? ref->version : "") < 0)
        return NULL;
    return k;
}

/* Whether ref was last served at version (case-blind, as Key Vault's ids). */
static bool seen_is(struct azure *a, const struct secret_ref *ref, const char *version)
{
    char *k = seen_key(ref);
    bool same = false;
    if (!k)
        return false;
    pthread_mutex_lock(&a->lock);
    for (struct azure_seen *s = a->seen; s; s = s->next)
        if (strcmp(s->key, k) == 0)
            same = strcasecmp(s->version, version) == 0;
    pthread_mutex_unlock(&a->lock);
    free(k);
    return same;
}

/* Record version for ref ("" forgets it). */
static void seen_set(struct azure *a, const struct secret_ref *ref, const char *version)
{
    char *k = seen_key(ref);
    if (!k)
        return;
    pthread_mutex_lock(&a->lock);
    struct azure_seen *s = a->seen;
    while (s && strcmp(s->key, k) != 0)
        s = s->next;
    if (!s && version[0] && (s = calloc(1, sizeof(*s)))) {
        s->key = k;
        k = NULL;
        s->next = a->seen;
        a->seen = s;
    }
    if (s)
        snprintf(s->version, sizeof(s->version), "%s", version);
    pthread_mutex_unlock(&a->lock);
    free(k);
}

static int azure_fetch(void *ctx, const struct secret_ref *ref, struct fetch_result *out,
                       char *err, size_t errlen)
{
    struct azure *a = ctx;
    char version[AZURE_VERSION_LEN + 1];
    int rc = azure_kv_read(a, ref, out, version, err, errlen);
    if (rc == -ENOENT)
        seen_set(a, ref, "");
    if (rc < 0)
        return rc;
    if (out->cached && seen_is(a, ref, version)) {
        /* The version served is still the one: nothing to seal again. */
        out->unchanged = true;
        out->version[0] = '\0';   /* the caller keeps the one it showed */
        secbuf_cleanup(&out->value);
        return 0;
    }
    seen_set(a, ref, version);
    return 0;
}

/* The token cache's state. The default chain shows the credential that
 * worked once one has (winner is atomic: the login writes it with the
 * token cache's lock held). */
static void azure_auth_status(void *ctx, struct backend_auth *out)
{
    struct azure *a = ctx;
    int m = a->method == AZURE_DEFAULT ? a->winner : (int)a->method;
    token_cache_status(a->tokens, out);
    snprintf(out->method, sizeof(out->method), "%s",
             azure_method_names[m >= 0 ? m : AZURE_DEFAULT]);
}

const struct backend_ops backend_azure_ops = {
    .type = "azure",
    .caps = BACKEND_CAP_VERSIONS,
    .parse = azure_parse,
    .conf_free = azure_conf_free,
    .create = azure_create,
    .check_ref = azure_check_ref,
    .fetch = azure_fetch,
    .maintain = azure_maintain,
    .destroy = azure_destroy,
    .auth_status = azure_auth_status,
};
