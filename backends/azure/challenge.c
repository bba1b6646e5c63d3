/* challenge.c - Key Vault's authentication challenge.
 *
 * Key Vault does not say in advance which resource its tokens are for: a
 * request without a token is answered 401 with
 *   WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
 *                     resource="https://vault.azure.net"
 * and the client asks Entra for a token for that resource (the scope
 * "<resource>/.default", or the challenge's own `scope`). The Azure SDKs
 * learn it once per client with a copy of the first request sent without a
 * token, and so do we, once per backend (single flight, see azure_scope).
 *
 * Before any token is asked for, the challenge's resource is checked
 * against the host the token would go to, as the SDKs' challenge policy
 * does (verify_challenge_resource): otherwise a vault_url pointing at a
 * server that is not Key Vault could name https://vault.azure.net in its
 * challenge and collect a token good at every real vault. The rule and its
 * one configured exception (challenge_resource) are in azure_host_allowed.
 */
#include "backends/azure/azure_i.h"
#include "backends/http/url.h"

#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int azure_url_host(const char *url, char **host, char *err, size_t errlen)
{
    struct http_url u;
    int rc = http_url_parse(url, &u, err, errlen);
    if (rc < 0)
        return rc;
    *host = strdup(u.host);
    http_url_cleanup(&u);
    if (!*host)
        return -ENOMEM;
    for (char *p = *host; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

/* ---- the WWW-Authenticate parser (RFC 7235) ---- */

static bool tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static size_t token_len(const char *p)
{
    size_t n = 0;
    while (tchar((unsigned char)p[n]))
        n++;
    return n;
}

/* p starts an auth-param ("name =") rather than the next challenge's
 * scheme ("PoP nonce=..."). */
static bool at_param(const char *p)
{
    size_t n = token_len(p);
    return n > 0 && *ows(p + n) == '=';
}

/* One auth-param value at *pp (after "name="): a quoted-string (escapes
 * undone) or, leniently as the SDKs are, a bare run up to ',' or white
 * space. Copied into out when out is not NULL (-E2BIG past cap). */
static int param_value(const char **pp, char *out, size_t cap)
{
    const char *p = *pp;
    size_t n = 0;
    bool quoted = *p == '"';
    if (quoted)
        p++;
    for (;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\0') {
            if (quoted)
                return -EPROTO;   /* no closing quote */
            break;
        }
        if (quoted && c == '"') {
            p++;
            break;
        }
        if (!quoted && (c == ',' || c == ' ' || c == '\t' || c == '"'))
            break;
        if (quoted && c == '\\' && p[1])
            c = (unsigned char)*++p;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return -EPROTO;
        if (out) {
            if (n + 1 >= cap)
                return -E2BIG;
            out[n++] = (char)c;
        }
    }
    if (out)
        out[n] = '\0';
    *pp = p;
    return 0;
}

/* Where a Bearer parameter we keep goes (NULL: ignored). */
static char *slot_of(struct azure_challenge *c, const char *name, size_t n, size_t *cap, bool *uri)
{
    *uri = false;
    *cap = AZURE_URL_MAX;
    if (n == 13 && strncasecmp(name, "authorization", n) == 0)
        return c->authorization;
    if (n == 17 && strncasecmp(name, "authorization_uri", n) == 0) {
        *uri = true;
        return c->authorization;
    }
    if (n == 8 && strncasecmp(name, "resource", n) == 0)
        return c->resource;
    if (n == 5 && strncasecmp(name, "scope", n) == 0)
        return c->scope;
    return NULL;
}

/* The tenant: the first path segment of the authorization URI. */
static void tenant_of(struct azure_challenge *c)
{
    const char *p = strstr(c->authorization, "://");
    c->tenant[0] = '\0';
    if (!p || !(p = strchr(p + 3, '/')))
        return;
    p++;
    size_t n = strcspn(p, "/?#");
    if (n == 0 || n > AZURE_ID_MAX)
        return;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[i]) && p[i] != '-' && p[i] != '.' && p[i] != '_')
            return;
    memcpy(c->tenant, p, n);
    c->tenant[n] = '\0';
}

UNITTEST_STATIC int azure_challenge_parse(const char *hdr, struct azure_challenge *c, char *err,
                                          size_t errlen)
{
    const char *p = hdr ? hdr : "";
    bool found = false, have_auth = false, have_auth_uri = false;
    memset(c, 0, sizeof(*c));
    while (!found) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t n = token_len(p);
        if (n == 0) {
            snprintf(err, errlen, "malformed WWW-Authenticate (expected an auth scheme)");
            return -EPROTO;
        }
        bool bearer = n == 6 && strncasecmp(p, "Bearer", 6) == 0;
        p += n;
        /* Its parameters, up to the next challenge's scheme. */
        for (;;) {
            const char *q = p;
            while (*q == ' ' || *q == '\t' || *q == ',')
                q++;
            if (!*q || !at_param(q)) {
                p = q;
                break;
            }
            size_t nl = token_len(q);
            const char *name = q;
            q = ows(ows(q + nl) + 1);   /* past '=' */
            size_t cap = 0;
            bool uri = false;
            char *slot = bearer ? slot_of(c, name, nl, &cap, &uri) : NULL;
            bool is_auth = slot == c->authorization;
            if ((is_auth && (uri ? have_auth_uri : have_auth)) || (slot && !is_auth && slot[0])) {
                snprintf(err, errlen, "challenge names %.*s twice", (int)nl, name);
                return -EPROTO;
            }
            if (is_auth && uri && have_auth)
                slot = NULL;   /* authorization wins over authorization_uri */
            int rc = param_value(&q, slot, cap);
            if (rc == -E2BIG) {
                snprintf(err, errlen, "challenge's %.*s is longer than %d bytes", (int)nl, name,
                         AZURE_URL_MAX - 1);
                return -EPROTO;
            }
            if (rc < 0) {
                snprintf(err, errlen, "malformed WWW-Authenticate (a bad quoted value)");
                return -EPROTO;
            }
            if (is_auth) {
                have_auth_uri = have_auth_uri || uri;
                have_auth = have_auth || !uri;
            }
            q = ows(q);
            if (*q && *q != ',') {
                snprintf(err, errlen, "malformed WWW-Authenticate (text after a value)");
                return -EPROTO;
            }
            p = q;
        }
        found = bearer;
    }
    if (!found) {
        snprintf(err, errlen, "no Bearer challenge in WWW-Authenticate");
        return -EPROTO;
    }
    /* What the SDKs insist on, and what we need. */
    if (!c->authorization[0]) {
        snprintf(err, errlen, "Bearer challenge without authorization or authorization_uri");
        return -EPROTO;
    }
    if (!c->resource[0] && !c->scope[0]) {
        snprintf(err, errlen, "Bearer challenge without resource or scope");
        return -EPROTO;
    }
    tenant_of(c);
    return 0;
}

/* ---- the resource check ---- */

/* An IP literal has no parent domains to speak of. */
static bool ip_literal(const char *h)
{
    return strchr(h, ':') || h[0] == '[' || strspn(h, "0123456789.") == strlen(h);
}

bool azure_host_allowed(const char *rh, const char *vh, const char *allowed)
{
    size_t n, m;
    if (!rh || !vh || !rh[0] || !vh[0])
        return false;
    if (strcasecmp(rh, vh) == 0 || (allowed && strcasecmp(rh, allowed) == 0))
        return true;
    if (ip_literal(vh) || ip_literal(rh))
        return false;
    n = strlen(vh);
    m = strlen(rh);
    return n > m + 1 && vh[n - m - 1] == '.' && strcasecmp(vh + n - m, rh) == 0;
}

void azure_scope_resource(const char *scope, char *out, size_t cap)
{
    static const char suffix[] = "/.default";
    size_t n = strlen(scope), s = sizeof(suffix) - 1;
    if (n > s && strcmp(scope + n - s, suffix) == 0)
        n -= s;
    snprintf(out, cap, "%.*s", (int)n, scope);
}

int azure_challenge_scope(const struct azure_challenge *c, const char *vault_host,
                          const char *allowed, char *scope, size_t cap, char *err, size_t errlen)
{
    char s[AZURE_URL_MAX + 16], msg[200], shown[160];
    char *host = NULL;
    if (c->scope[0]) {
        snprintf(s, sizeof(s), "%s", c->scope);
    } else {
        size_t n = strlen(c->resource);
        while (n > 0 && c->resource[n - 1] == '/')
            n--;
        snprintf(s, sizeof(s), "%.*s/.default", (int)n, c->resource);
    }
    int rc = strlen(s) < cap ? azure_url_host(s, &host, msg, sizeof(msg)) : -EINVAL;
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        azure_shown(shown, sizeof(shown), s, strlen(s));
        snprintf(err, errlen, "Key Vault's challenge names no usable resource ('%s')", shown);
        return -EPROTO;
    }
    if (!azure_host_allowed(host, vault_host, allowed)) {
        azure_shown(shown, sizeof(shown), host, strlen(host));
        snprintf(err, errlen, "Key Vault's challenge names resource '%s', which is neither %s "
                 "nor a parent domain of it: no token sent (challenge_resource trusts one "
                 "explicitly)", shown, vault_host);
        free(host);
        return -EACCES;
    }
    free(host);
    snprintf(scope, cap, "%s", s);
    return 0;
}

int azure_guess_scope(const char *vault_host, const char *allowed, char **scope)
{
    const char *host = allowed;
    *scope = NULL;
    if (!host) {
        const char *dot = vault_host ? strchr(vault_host, '.') : NULL;
        if (!dot || ip_literal(vault_host) || !strchr(dot + 1, '.'))
            return 0;   /* "localhost", "host.tld", an address: no guess */
        host = dot + 1;
    }
    size_t n = strlen(host) + sizeof("https:///.default");
    if (!(*scope = malloc(n)))
        return -ENOMEM;
    snprintf(*scope, n, "https://%s/.default", host);
    return 0;
}

/* ---- learning the scope ---- */

/* The login for the guessed scope, beside the challenge request: Entra's
 * (or IMDS's) round trip overlaps Key Vault's instead of following it.
 * The token lands in the cache; nothing is sent to the vault with it
 * until the challenge has named the same scope (azure_scope). */
static void *guess_login(void *arg)
{
    pthread_setname_np(pthread_self(), "rs-azure-guess");
    struct azure *a = arg;
    char msg[AZURE_MSG_MAX] = "";
    /* Its outcome is not this thread's to report: a failure stands in
     * the cache like any failed login (the fetches that need the token
     * get it), and is forgotten with the token when the guess was wrong. */
    int rc = token_cache_get(a->tokens, TOKEN_ANY, NULL, NULL, NULL, msg, sizeof(msg));
    (void)rc;
    return NULL;
}

/* Start guess_login when a guess is worth it: the first challenge round,
 * no token held yet. true when started (join it with guess_end). */
static bool guess_start(struct azure *a, pthread_t *th)
{
    struct token_info ti;
    token_cache_info(a->tokens, &ti);
    if (ti.gen != 0)
        return false;
    pthread_mutex_lock(&a->lock);
    bool go = a->guess_scope && !a->guessed && !a->scope;
    a->guessed = a->guessed || go;
    a->guessing = go;
    pthread_mutex_unlock(&a->lock);
    if (go && pthread_create(th, NULL, guess_login, a) == 0)
        return true;
    pthread_mutex_lock(&a->lock);
    a->guessing = false;
    pthread_mutex_unlock(&a->lock);
    return false;
}

/* The guessed login has ended: keep its token (or its failure) only when
 * the challenge named the scope it was for (scope NULL: the challenge
 * failed, nothing was confirmed). */
static void guess_end(struct azure *a, pthread_t th, const char *scope)
{
    pthread_join(th, NULL);
    pthread_mutex_lock(&a->lock);
    a->guessing = false;
    bool right = scope && strcmp(scope, a->guess_scope) == 0;
    pthread_mutex_unlock(&a->lock);
    if (!right) {
        token_cache_forget(a->tokens);
        if (scope) {
            char why[2 * AZURE_URL_MAX + 64];
            snprintf(why, sizeof(why), "the challenge names scope %s, not the guessed %s", scope,
                     a->guess_scope);
            azure_log(a, LOG_INFO, why, "azure token for the guessed scope dropped");
        }
    }
}

/* The unauthenticated request and its challenge: the scope (new) and the
 * challenge's tenant (into tenant, "" when none), or the error with whether
 * it is worth retrying. */
static int learn(struct azure *a, const char *path, char **scope, char *tenant, size_t tcap,
                 bool *retryable, long long *retry_after, char *err, size_t errlen)
{
    struct http_response r;
    struct azure_challenge c;
    char msg[AZURE_MSG_MAX] = "", s[AZURE_URL_MAX];
    int rc;

    *retryable = false;
    *retry_after = 0;
    http_response_init(&r);
    rc = azure_vault_raw(a, path, NULL, &r, err, errlen);
    if (rc < 0) {
        *retryable = http_errno_retryable(rc);
        goto out;
    }
    if (r.status != 401) {
        char code[64], inner[64], text[200];
        azure_kv_error_fields(&r, code, sizeof(code), inner, sizeof(inner), text, sizeof(text));
        snprintf(err, errlen, "expected Key Vault's 401 challenge to a request without a token, "
                 "got HTTP %ld%s%s%s%s", r.status, code[0] ? " " : "", code,
                 text[0] ? ": " : "", text);
        *retryable = http_status_retryable(r.status);
        *retry_after = r.retry_after_ms > 0 ? r.retry_after_ms : 0;
        rc = *retryable ? -EAGAIN : -EPROTO;
        goto out;
    }
    if ((rc = azure_challenge_parse(r.www_authenticate, &c, msg, sizeof(msg))) < 0) {
        snprintf(err, errlen, "Key Vault's 401: %s", msg);
        goto out;
    }
    rc = azure_challenge_scope(&c, a->vault_host, a->challenge_host, s, sizeof(s), err, errlen);
    if (rc < 0)
        goto out;
    snprintf(tenant, tcap, "%s", c.tenant);
    rc = (*scope = strdup(s)) ? 0 : -ENOMEM;
out:
    http_response_cleanup(&r);
    return rc;
}

int azure_scope(struct azure *a, const char *path, char **scope, struct fetch_result *out,
                char *err, size_t errlen)
{
    char msg[AZURE_MSG_MAX] = "";
    char *s = NULL, tenant[AZURE_ID_MAX + 1] = "";
    bool retryable = false;
    long long retry_after = 0;
    int rc;

    *scope = NULL;
    pthread_mutex_lock(&a->lock);
    unsigned long round = a->challenge_round;
    while (a->challenging)
        pthread_cond_wait(&a->challenged, &a->lock);
    if (!a->scope && a->challenge_round != round) {
        /* The round we waited for failed: its answer is ours too, so an
         * outage costs one request per round, not one per waiting fetch. */
        rc = a->challenge_rc;
        snprintf(err, errlen, "%s", a->challenge_err);
        if (out) {
            out->retryable = a->challenge_retryable;
            out->retry_after_ms = a->challenge_retry_after_ms;
        }
        pthread_mutex_unlock(&a->lock);
        return rc;
    }
    if (a->scope) {
        *scope = strdup(a->scope);
        pthread_mutex_unlock(&a->lock);
        return *scope ? 0 : -ENOMEM;
    }
    a->challenging = true;
    pthread_mutex_unlock(&a->lock);

    pthread_t th;
    bool guessed = guess_start(a, &th);
    rc = learn(a, path, &s, tenant, sizeof(tenant), &retryable, &retry_after, msg, sizeof(msg));
    if (guessed)
        guess_end(a, th, rc == 0 ? s : NULL);   /* before anyone may use the token */

    pthread_mutex_lock(&a->lock);
    if (rc == 0) {
        free(a->scope);
        a->scope = s;
        *scope = strdup(s);
        if (!*scope)
            rc = -ENOMEM;
    }
    a->challenge_rc = rc;
    a->challenge_retryable = retryable;
    a->challenge_retry_after_ms = retry_after;
    snprintf(a->challenge_err, sizeof(a->challenge_err), "%s", msg);
    a->challenge_round++;
    a->challenging = false;
    pthread_cond_broadcast(&a->challenged);
    pthread_mutex_unlock(&a->lock);

    if (rc == 0) {
        azure_log(a, LOG_INFO, NULL, "azure key vault challenge accepted: scope %s", *scope);
        if (tenant[0] && a->tenant_id && strcasecmp(tenant, a->tenant_id) != 0)
            azure_log(a, LOG_WARN, NULL, "azure key vault's challenge names tenant %s; the "
                      "credential is for tenant %s", tenant, a->tenant_id);
    } else {
        snprintf(err, errlen, "%s", msg);
        if (out) {
            out->retryable = retryable;
            out->retry_after_ms = retry_after;
        }
    }
    return rc;
}

int azure_rechallenge(struct azure *a, const char *hdr, char *err, size_t errlen)
{
    struct azure_challenge c;
    char msg[AZURE_MSG_MAX] = "", s[AZURE_URL_MAX];
    int rc;
    if (!hdr) {
        snprintf(err, errlen, "no challenge with it");
        return -EACCES;
    }
    if ((rc = azure_challenge_parse(hdr, &c, msg, sizeof(msg))) < 0) {
        snprintf(err, errlen, "%s", msg);
        return -EACCES;
    }
    if ((rc = azure_challenge_scope(&c, a->vault_host, a->challenge_host, s, sizeof(s), err,
                                    errlen)) < 0)
        return rc;
    char *copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    pthread_mutex_lock(&a->lock);
    bool changed = !a->scope || strcmp(a->scope, s) != 0;
    if (changed) {
        free(a->scope);
        a->scope = copy;
        copy = NULL;
    }
    pthread_mutex_unlock(&a->lock);
    free(copy);
    if (changed)
        azure_log(a, LOG_WARN, NULL, "azure key vault's challenge names a new scope: %s", s);
    return 0;
}
