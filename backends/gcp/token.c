/* token.c - how the GCP backend gets an access token, on the token cache
 * (backends/auth/token_cache.h calls gcp_login with its lock held, one
 * login at a time), and the upkeep that replaces it ahead of its end.
 *
 *   service_account   POST token_uri, form grant_type=urn:ietf:params:oauth:
 *                     grant-type:jwt-bearer&assertion=<RS256 JWT> (jwt.c)
 *   authorized_user   POST token_uri, form grant_type=refresh_token,
 *                     client_id, client_secret, refresh_token
 *   external_account  POST token_url (STS), form grant_type=urn:ietf:params:
 *                     oauth:grant-type:token-exchange, audience, scope,
 *                     requested_token_type, subject_token (the
 *                     credential_source file, read at every exchange),
 *                     subject_token_type; then, when the file names one,
 *                     POST service_account_impersonation_url with the STS
 *                     token as Bearer and {"scope": [...], "lifetime":
 *                     "3600s"} -> {"accessToken", "expireTime"}
 *   metadata          GET <metadata_url>/computeMetadata/v1/instance/
 *                     service-accounts/default/token, Metadata-Flavor: Google
 *
 * The credentials file is read again at every login (cred.c). Forms,
 * assertions, subject tokens and tokens live in secret memory and are
 * wiped after use. A throttled or failing token service (408, 429, 5xx)
 * is -EAGAIN with its Retry-After: the token cache lets the failure stand
 * at least that long (its backoff is the retry); a refusal (400, 401,
 * 403) is -EACCES.
 */
#include "backends/gcp/gcp_i.h"
#include "backends/auth/oauth.h"
#include "backends/http/json.h"
#include "lib/clock.h"
#include "lib/encode.h"
#include "lib/secfile.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GCP_TOKEN_MAX (32 * 1024)
#define GCP_FORM_MAX (3 * GCP_CRED_MAX + 8192)
#define GCP_JWT_BEARER "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define GCP_TOKEN_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"
#define GCP_ACCESS_TOKEN_TYPE "urn:ietf:params:oauth:token-type:access_token"
#define GCP_IMPERSONATION_BODY "{\"scope\":[\"" GCP_SCOPE "\"],\"lifetime\":\"3600s\"}"
#define GCP_MAINTAIN_MAX_MS (60 * 1000LL)

/* ---- the answers ---- */

static bool retry_status(long st)
{
    return st == 408 || http_status_retryable(st);
}

/* An error answer of a token service: OAuth's {"error",
 * "error_description"} or Google's {"error": {"status", "message"}};
 * "HTTP <status> <code>: <text>" and the errno. */
static int token_error(const struct http_response *r, char *err, size_t errlen)
{
    json_t *root = http_body_object(r);
    const json_t *e = json_object_get(root, "error");
    const json_t *d = json_object_get(root, "error_description");
    char code[96] = "", desc[240] = "";
    if (json_is_string(e)) {
        gcp_shown(code, sizeof(code), json_string_value(e), json_string_length(e));
        if (json_is_string(d)) {
            const char *s = json_string_value(d);
            gcp_shown(desc, sizeof(desc), s, strcspn(s, "\r\n"));
        }
    } else if (json_is_object(e)) {
        gcp_error_fields(r, code, sizeof(code), desc, sizeof(desc));
    }
    if (!root)
        snprintf(err, errlen, "HTTP %ld (not a JSON answer)", r->status);
    else
        snprintf(err, errlen, "HTTP %ld %s%s%s", r->status, code[0] ? code : "error",
                 desc[0] ? ": " : "", desc);
    json_decref(root);
    if (retry_status(r->status))
        return -EAGAIN;
    if (r->status == 400 || r->status == 401 || r->status == 403)
        return -EACCES;
    return -EIO;
}

UNITTEST_STATIC int gcp_oauth_answer(const struct http_response *r, char **tok, long long *ttl_s,
                                     char *err, size_t errlen)
{
    *tok = NULL;
    if (r->status != 200)
        return token_error(r, err, errlen);
    return oauth_answer(r, GCP_TOKEN_MAX, GCP_MAX_TTL_S, tok, ttl_s, err, errlen);
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

UNITTEST_STATIC int gcp_rfc3339(const char *s, long long *out)
{
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
    size_t n = strlen(s), i = 19;
    if (n < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) ||
        s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return -EINVAL;
    if (s[i] == '.') {
        size_t f = ++i;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        if (i == f)
            return -EINVAL;
    }
    long long off = 0;
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        off = 0;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) &&
               s[i + 3] == ':' && digits(s + i + 4, 2)) {
        off = (num(s + i + 1, 2) * 60LL + num(s + i + 4, 2)) * 60;
        if (s[i] == '-')
            off = -off;
    } else {
        return -EINVAL;
    }
    struct tm tm = {0};
    tm.tm_year = num(s, 4) - 1900;
    tm.tm_mon = num(s + 5, 2) - 1;
    tm.tm_mday = num(s + 8, 2);
    tm.tm_hour = num(s + 11, 2);
    tm.tm_min = num(s + 14, 2);
    tm.tm_sec = num(s + 17, 2);
    if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -EINVAL;
    *out = (long long)timegm(&tm) - off;
    return 0;
}

UNITTEST_STATIC int gcp_iam_answer(const struct http_response *r, time_t now, char **tok,
                                   long long *ttl_s, char *err, size_t errlen)
{
    json_t *root = NULL;
    long long end = 0;
    int rc = -EPROTO;
    *tok = NULL;
    if (r->status != 200)
        return token_error(r, err, errlen);
    if (!(root = http_body_object(r))) {
        snprintf(err, errlen, "HTTP 200 with a body that is not a JSON object");
        return -EPROTO;
    }
    const json_t *exp = json_object_get(root, "expireTime");
    if (!json_is_string(exp) || gcp_rfc3339(json_string_value(exp), &end) < 0) {
        snprintf(err, errlen, "no usable expireTime in the answer");
    } else if (end <= (long long)now) {
        snprintf(err, errlen, "the token's expireTime has passed (clock skew?)");
    } else {
        *ttl_s = end - (long long)now;
        if (*ttl_s > GCP_MAX_TTL_S)
            *ttl_s = GCP_MAX_TTL_S;
        if ((*tok = oauth_bearer(root, "accessToken", GCP_TOKEN_MAX, err, errlen)))
            rc = 0;
    }
    json_decref(root);
    return rc;
}

static bool space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

UNITTEST_STATIC int gcp_subject_token(const struct secbuf *content, const char *field, char **tok,
                                      char *err, size_t errlen)
{
    const char *s = (const char *)content->data;
    size_t a = 0, e = content->len;
    json_t *root = NULL;
    *tok = NULL;
    if (field) {
        json_error_t jerr;
        root = json_loadb(s, e, 0, &jerr);
        secmem_wipe(&jerr, sizeof(jerr));   /* its text quotes the token */
        const json_t *v = json_object_get(root, field);
        if (!json_is_string(v)) {
            snprintf(err, errlen, "not a JSON object with a string %s", field);
            json_decref(root);
            return -EINVAL;
        }
        s = json_string_value(v);
        e = json_string_length(v);
    }
    while (a < e && space((unsigned char)s[a]))
        a++;
    while (e > a && space((unsigned char)s[e - 1]))
        e--;
    int rc = 0;
    if (e == a) {
        snprintf(err, errlen, "empty subject token");
        rc = -EINVAL;
    } else if (memchr(s + a, '\0', e - a)) {
        snprintf(err, errlen, "the subject token holds a NUL byte");
        rc = -EINVAL;
    } else if (!(*tok = secmem_strndup(s + a, e - a))) {
        rc = -ENOMEM;
    }
    json_decref(root);
    return rc;
}

/* ---- the requests ---- */

/* One request to url (a token service) with the backend's HTTP settings;
 * iam: the answer is IAM Credentials' (accessToken, expireTime), else
 * OAuth's. what names the service in messages. */
static int token_request(struct gcp *g, const char *url, bool iam,
                         const struct http_request *req, const char *what, char **tok,
                         long long *ttl, long long *retry_ms, char *err, size_t errlen)
{
    struct http_client *c = NULL;
    struct http_response r;
    char msg[GCP_MSG_MAX] = "";
    int rc;
    http_response_init(&r);
    if ((rc = http_client_new(g->engine, &g->aux, url, &c, msg, sizeof(msg))) == 0 &&
        (rc = http_perform(c, req, &r, msg, sizeof(msg))) == 0) {
        if (iam)
            rc = gcp_iam_answer(&r, time(NULL), tok, ttl, msg, sizeof(msg));
        else
            rc = gcp_oauth_answer(&r, tok, ttl, msg, sizeof(msg));
        if (rc == -EAGAIN && r.retry_after_ms > *retry_ms)
            *retry_ms = r.retry_after_ms;
    } else if (http_errno_retryable(rc)) {
        rc = -EAGAIN;   /* the network, not the credential: the token cache backs off */
    }
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", what, msg);
    http_response_cleanup(&r);
    http_client_free(c);
    return rc;
}

static int post_form(struct gcp *g, const char *url, const struct secbuf *form, const char *what,
                     char **tok, long long *ttl, long long *retry_ms, char *err, size_t errlen)
{
    static const char *const hdrs[] = {"Content-Type: application/x-www-form-urlencoded",
                                       "Accept: application/json", NULL};
    struct http_request req = {.method = "POST", .path = "", .headers = hdrs,
                               .body = form->data, .body_len = form->len};
    return token_request(g, url, false, &req, what, tok, ttl, retry_ms, err, errlen);
}

/* POST a credentials file's form to its token_uri (rc: how building the
 * form went; a form that did not fit is not sent). */
static int post_cred_form(struct gcp *g, const struct gcp_cred *c, struct secbuf *form, int rc,
                          char **tok, long long *ttl, long long *retry_ms, char *err,
                          size_t errlen)
{
    char what[GCP_URL_MAX + 256];
    snprintf(what, sizeof(what), "token request to %s (credentials file %.200s)", c->token_uri,
             g->cred_path);
    if (rc < 0) {
        snprintf(err, errlen, "%s: the form does not fit in %d bytes", what, GCP_FORM_MAX);
        return rc;
    }
    return post_form(g, c->token_uri, form, what, tok, ttl, retry_ms, err, errlen);
}

static int service_account(struct gcp *g, const struct gcp_cred *c, char **tok, long long *ttl,
                           long long *retry_ms, char *err, size_t errlen)
{
    char *assertion = NULL, msg[GCP_MSG_MAX] = "";
    struct secbuf form;
    int rc = gcp_jwt_assertion(c, time(NULL), &assertion, msg, sizeof(msg));
    if (rc < 0) {
        snprintf(err, errlen, "%.200s: %s", g->cred_path, msg);
        return rc;
    }
    secbuf_init(&form, GCP_FORM_MAX);
    if ((rc = encode_form_field(&form, "grant_type", GCP_JWT_BEARER)) == 0)
        rc = encode_form_field(&form, "assertion", assertion);
    secmem_free(assertion);
    rc = post_cred_form(g, c, &form, rc, tok, ttl, retry_ms, err, errlen);
    secbuf_cleanup(&form);
    return rc;
}

static int authorized_user(struct gcp *g, const struct gcp_cred *c, char **tok, long long *ttl,
                           long long *retry_ms, char *err, size_t errlen)
{
    struct secbuf form;
    int rc;
    secbuf_init(&form, GCP_FORM_MAX);
    if ((rc = encode_form_field(&form, "grant_type", "refresh_token")) == 0 &&
        (rc = encode_form_field(&form, "client_id", c->client_id)) == 0 &&
        (rc = encode_form_field(&form, "client_secret", c->client_secret)) == 0)
        rc = encode_form_field(&form, "refresh_token", c->refresh_token);
    rc = post_cred_form(g, c, &form, rc, tok, ttl, retry_ms, err, errlen);
    secbuf_cleanup(&form);
    return rc;
}

/* The STS exchange, then the impersonation when the file names one. */
static int external_account(struct gcp *g, const struct gcp_cred *c, char **tok, long long *ttl,
                            long long *retry_ms, char *err, size_t errlen)
{
    char msg[GCP_MSG_MAX] = "", what[GCP_URL_MAX + 256], *subject = NULL, *sts = NULL;
    struct secbuf content, form;
    int rc = secfile_read(c->source_file, GCP_CRED_MAX, &content, msg, sizeof(msg));
    if (rc < 0) {
        snprintf(err, errlen, "credential_source.file %s", msg);
        return rc;
    }
    rc = gcp_subject_token(&content, c->source_field, &subject, msg, sizeof(msg));
    secbuf_cleanup(&content);
    if (rc < 0) {
        snprintf(err, errlen, "credential_source.file %.200s: %s", c->source_file, msg);
        return rc;
    }
    secbuf_init(&form, GCP_FORM_MAX);
    if ((rc = encode_form_field(&form, "grant_type", GCP_TOKEN_EXCHANGE)) == 0 &&
        (rc = encode_form_field(&form, "audience", c->audience)) == 0 &&
        (rc = encode_form_field(&form, "scope", GCP_SCOPE)) == 0 &&
        (rc = encode_form_field(&form, "requested_token_type", GCP_ACCESS_TOKEN_TYPE)) == 0 &&
        (rc = encode_form_field(&form, "subject_token", subject)) == 0)
        rc = encode_form_field(&form, "subject_token_type", c->subject_token_type);
    secmem_free(subject);
    snprintf(what, sizeof(what), "token exchange at %s (credentials file %.200s)", c->token_url,
             g->cred_path);
    if (rc < 0)
        snprintf(err, errlen, "%s: the form does not fit in %d bytes", what, GCP_FORM_MAX);
    else
        rc = post_form(g, c->token_url, &form, what, c->impersonation_url ? &sts : tok, ttl,
                       retry_ms, err, errlen);
    secbuf_cleanup(&form);
    if (rc < 0 || !c->impersonation_url)
        return rc;

    /* Impersonation: the STS token (a federated token) buys the service
     * account's access token. */
    size_t n = strlen(GCP_AUTH_PREFIX) + strlen(sts) + 1;
    char *auth = secmem_alloc(n);
    if (!auth) {
        secmem_free(sts);
        return -ENOMEM;
    }
    snprintf(auth, n, "%s%s", GCP_AUTH_PREFIX, sts);
    secmem_free(sts);
    const char *hdrs[] = {auth, "Content-Type: application/json", "Accept: application/json",
                          NULL};
    struct http_request req = {.method = "POST", .path = "", .headers = hdrs,
                               .body = GCP_IMPERSONATION_BODY,
                               .body_len = strlen(GCP_IMPERSONATION_BODY)};
    snprintf(what, sizeof(what), "impersonation at %s (credentials file %.200s)",
             c->impersonation_url, g->cred_path);
    rc = token_request(g, c->impersonation_url, true, &req, what, tok, ttl, retry_ms, err,
                       errlen);
    secmem_free(auth);
    return rc;
}

static int metadata(struct gcp *g, char **tok, long long *ttl, long long *retry_ms, char *err,
                    size_t errlen)
{
    static const char *const hdrs[] = {"Metadata-Flavor: Google", "Accept: application/json",
                                       NULL};
    struct http_request req = {.method = "GET", .path = GCP_METADATA_TOKEN_PATH,
                               .headers = hdrs};
    struct http_response r;
    char msg[GCP_MSG_MAX] = "";
    http_response_init(&r);
    int rc = http_perform(g->metadata, &req, &r, msg, sizeof(msg));
    if (rc == 0) {
        rc = gcp_oauth_answer(&r, tok, ttl, msg, sizeof(msg));
        if (rc == -EAGAIN && r.retry_after_ms > *retry_ms)
            *retry_ms = r.retry_after_ms;
        if (r.status == 404)
            snprintf(msg, sizeof(msg), "HTTP 404 (no service account attached to this "
                     "instance?)");
    } else if (http_errno_retryable(rc)) {
        rc = -EAGAIN;
    }
    if (rc < 0)
        snprintf(err, errlen, "metadata server %s: %s", g->metadata_url, msg);
    http_response_cleanup(&r);
    return rc;
}

int gcp_login(void *arg, enum token_login_why why, char **tok, struct token_life *life,
              char *err, size_t errlen)
{
    struct gcp *g = arg;
    struct gcp_cred c;
    char ident[GCP_ID_MAX] = "";
    long long ttl = 0, retry_ms = 0;
    int rc;
    (void)why;

    *tok = NULL;
    memset(&c, 0, sizeof(c));
    if (g->source == GCP_METADATA) {
        c.type = GCP_METADATA;
        rc = metadata(g, tok, &ttl, &retry_ms, err, errlen);
    } else if ((rc = gcp_cred_load(g->cred_path, &c, err, errlen)) == 0) {
        if (c.type == GCP_SERVICE_ACCOUNT)
            rc = service_account(g, &c, tok, &ttl, &retry_ms, err, errlen);
        else if (c.type == GCP_AUTHORIZED_USER)
            rc = authorized_user(g, &c, tok, &ttl, &retry_ms, err, errlen);
        else
            rc = external_account(g, &c, tok, &ttl, &retry_ms, err, errlen);
    }
    if (rc == 0)
        gcp_cred_identity(&c, ident, sizeof(ident));
    gcp_cred_cleanup(&c);
    if (rc < 0) {
        secmem_free(*tok);
        *tok = NULL;
        life->retry_after_ms = retry_ms;   /* no token request sooner */
        return rc;
    }
    memset(life, 0, sizeof(*life));
    life->ttl_ms = ttl * 1000;
    pthread_mutex_lock(&g->lock);
    snprintf(g->identity, sizeof(g->identity), "%s", ident);
    pthread_mutex_unlock(&g->lock);
    gcp_log(g, LOG_INFO, NULL, "gcp token for %s, valid %lld s", ident, ttl);
    return 0;
}

/* ---- the token on the cache ---- */

long long gcp_due_in(const struct token_info *t, long long now_ms)
{
    long long ttl = t->life.ttl_ms;
    if (ttl <= 0)
        return LLONG_MAX;
    long long at = ttl - GCP_REFRESH_LEFT_MS;
    if (at < ttl / 2)
        at = ttl / 2;
    return t->obtained_ms + at - now_ms;
}

int gcp_token_header(struct gcp *g, char **hdr, unsigned long *gen, char *err, size_t errlen)
{
    struct token_info ti;
    int rc = token_cache_get(g->tokens, TOKEN_FRESH, GCP_AUTH_PREFIX, hdr, &ti, err, errlen);
    *gen = ti.gen;
    return rc;
}

static void say_refused(void *arg)
{
    gcp_log(arg, LOG_WARN, NULL, "gcp token refused by Secret Manager (HTTP 401), getting a new "
            "one");
}

int gcp_relogin(struct gcp *g, unsigned long gen, char *err, size_t errlen)
{
    return token_cache_relogin(g->tokens, gen, say_refused, g, err, errlen);
}

/* Token upkeep, run by the scheduler: the first token, then a new one
 * when the current one is due. A failed refresh keeps the current token
 * in use (fetches take it until it ends) and is tried again after the
 * cache's backoff. */
long long gcp_maintain(void *ctx)
{
    struct gcp *g = ctx;
    char err[GCP_MSG_MAX] = "";
    struct token_info ti;

    if (token_cache_get(g->tokens, TOKEN_ANY, NULL, NULL, &ti, err, sizeof(err)) < 0) {
        gcp_log(g, LOG_ERROR, err, "gcp login failed");
        return token_cache_backoff_ms(g->tokens);
    }
    if (gcp_due_in(&ti, clock_mono_ms()) <= 0) {
        if (token_cache_relogin(g->tokens, ti.gen, NULL, NULL, err, sizeof(err)) < 0) {
            gcp_log(g, LOG_WARN, err, "gcp token refresh failed; the current token stays in use "
                    "until it ends");
            return token_cache_backoff_ms(g->tokens);
        }
        token_cache_info(g->tokens, &ti);
    }
    long long next = gcp_due_in(&ti, clock_mono_ms());
    if (next > GCP_MAINTAIN_MAX_MS)
        next = GCP_MAINTAIN_MAX_MS;
    return next < 100 ? 100 : next;
}
