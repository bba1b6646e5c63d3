/* identity.c - how the Azure backend gets an access token: the token
 * cache's login callback (backends/auth/token_cache.h calls it with its
 * lock held, one login at a time).
 *
 *   client_secret      Entra's client credentials flow: POST
 *                      <authority_host>/<tenant>/oauth2/v2.0/token with
 *                      client_id, scope, client_secret
 *   workload_identity  the same flow with the federated token as a client
 *                      assertion, read from its file at every request
 *                      (Kubernetes rotates it)
 *   managed_identity   the instance metadata service: GET <imds_endpoint>
 *                      ?api-version=2018-02-01&resource=...[&client_id=...]
 *                      with "Metadata: true"; its numbers are strings
 *   default            DefaultAzureCredential's chain: environment (a
 *                      client secret), workload identity, managed identity
 *
 * The scope is the one Key Vault's challenge named (challenge.c). Client
 * secrets, federated tokens, request bodies and tokens live in secret
 * memory and are wiped after use; messages carry Entra's and IMDS's error
 * text, never one of them.
 */
#include "backends/azure/azure_i.h"
#include "backends/auth/oauth.h"
#include "backends/http/json.h"
#include "lib/encode.h"
#include "lib/secfile.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AZURE_TOKEN_MAX (32 * 1024)
#define AZURE_FORM_MAX (3 * AZURE_FILE_MAX + 4096)
#define AZURE_JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

/* ---- the answers ---- */

/* An OAuth error answer {"error", "error_description", "error_codes"}:
 * "HTTP <status> <error>: <first line of the description>", and the errno:
 * a refusal (4xx: a wrong secret, an unknown client or tenant) is -EACCES,
 * a throttled or failing service -EAGAIN. */
static int oauth_error(const struct http_response *r, char *err, size_t errlen)
{
    json_t *root = http_body_object(r);
    const json_t *e = json_object_get(root, "error");
    const json_t *d = json_object_get(root, "error_description");
    char code[96] = "", desc[240] = "";
    if (json_is_string(e))
        azure_shown(code, sizeof(code), json_string_value(e), json_string_length(e));
    if (json_is_string(d)) {
        /* Entra appends "\r\nTrace ID: ..." lines: the first one says it. */
        const char *s = json_string_value(d);
        azure_shown(desc, sizeof(desc), s, strcspn(s, "\r\n"));
    }
    if (!root)
        snprintf(err, errlen, "HTTP %ld (not a JSON answer)", r->status);
    else
        snprintf(err, errlen, "HTTP %ld %s%s%s", r->status, code[0] ? code : "error",
                 desc[0] ? ": " : "", desc);
    json_decref(root);
    if (r->status == 400 || r->status == 401 || r->status == 403)
        return -EACCES;
    return http_status_retryable(r->status) || r->status == 404 || r->status == 410 ? -EAGAIN
                                                                                       : -EIO;
}

UNITTEST_STATIC int azure_entra_answer(const struct http_response *r, char **tok,
                                       long long *ttl_s, char *err, size_t errlen)
{
    *tok = NULL;
    if (r->status != 200)
        return oauth_error(r, err, errlen);
    return oauth_answer(r, AZURE_TOKEN_MAX, AZURE_MAX_TTL_S, tok, ttl_s, err, errlen);
}

UNITTEST_STATIC int azure_imds_answer(const struct http_response *r, time_t now, char **tok,
                                      long long *ttl_s, char *client_id, size_t cap, char *err,
                                      size_t errlen)
{
    json_t *root = NULL;
    int rc = -EPROTO;
    *tok = NULL;
    client_id[0] = '\0';
    if (r->status != 200)
        return oauth_error(r, err, errlen);
    if (!(root = http_body_object(r))) {
        snprintf(err, errlen, "HTTP 200 with a body that is not a JSON object");
        return -EPROTO;
    }
    *ttl_s = oauth_seconds(json_object_get(root, "expires_in"), AZURE_MAX_TTL_S);
    if (*ttl_s == 0) {
        /* Some identity endpoints give only the end, as an epoch string. */
        long long end = oauth_seconds(json_object_get(root, "expires_on"), 999999999999LL);
        *ttl_s = end > (long long)now ? end - (long long)now : 0;
        if (*ttl_s > AZURE_MAX_TTL_S)
            *ttl_s = AZURE_MAX_TTL_S;
    }
    const json_t *cid = json_object_get(root, "client_id");
    if (json_is_string(cid) && json_string_length(cid) < cap)
        azure_shown(client_id, cap, json_string_value(cid), json_string_length(cid));
    if (*ttl_s == 0)
        snprintf(err, errlen, "no usable expires_in or expires_on in the answer");
    else if ((*tok = oauth_bearer(root, "access_token", AZURE_TOKEN_MAX, err, errlen)))
        rc = 0;
    json_decref(root);
    return rc;
}

/* ---- the requests ---- */

/* The Retry-After of a throttled or failing token service (rc -EAGAIN),
 * into *retry_ms: the token cache lets the failure stand that long. */
static void retry_of(int rc, const struct http_response *r, long long *retry_ms)
{
    if (rc == -EAGAIN && r->retry_after_ms > *retry_ms)
        *retry_ms = r->retry_after_ms;
}

/* POST form to Entra's token endpoint for the tenant. */
static int entra_token(struct azure *a, const struct secbuf *form, char **tok, long long *ttl,
                       long long *retry_ms, char *err, size_t errlen)
{
    static const char *const hdrs[] = {"Content-Type: application/x-www-form-urlencoded",
                                       "Accept: application/json", NULL};
    char path[AZURE_ID_MAX + 64], msg[AZURE_MSG_MAX] = "";
    struct http_response r;
    snprintf(path, sizeof(path), "/%s/oauth2/v2.0/token", a->tenant_id);
    struct http_request req = {.method = "POST", .path = path, .headers = hdrs,
                               .body = form->data, .body_len = form->len};
    http_response_init(&r);
    int rc = http_perform(a->entra, &req, &r, msg, sizeof(msg));
    if (rc == 0) {
        rc = azure_entra_answer(&r, tok, ttl, msg, sizeof(msg));
        retry_of(rc, &r, retry_ms);
    }
    if (rc < 0)
        snprintf(err, errlen, "token request to %s: %s", a->authority_host, msg);
    http_response_cleanup(&r);
    return rc;
}

/* The client credentials flow, with the secret (client_secret) or the
 * federated token as an assertion (workload identity). */
static int client_credentials(struct azure *a, enum azure_method m, const char *scope, char **tok,
                              long long *ttl, long long *retry_ms, char *err, size_t errlen)
{
    struct secbuf form;
    char *cred = NULL;
    int rc = 0;

    if (m == AZURE_WORKLOAD_IDENTITY)
        rc = secfile_token(a->federated_token_file, AZURE_FILE_MAX, &cred, err, errlen);
    else if (a->client_secret_file)
        rc = secfile_token(a->client_secret_file, AZURE_FILE_MAX, &cred, err, errlen);
    else if (!(cred = secmem_strndup(a->env_secret, strlen(a->env_secret))))
        rc = -ENOMEM;
    if (rc < 0)
        return rc;
    secbuf_init(&form, AZURE_FORM_MAX);
    if ((rc = encode_form_field(&form, "grant_type", "client_credentials")) == 0 &&
        (rc = encode_form_field(&form, "client_id", a->client_id)) == 0 &&
        (rc = encode_form_field(&form, "scope", scope)) == 0) {
        if (m == AZURE_WORKLOAD_IDENTITY) {
            if ((rc = encode_form_field(&form, "client_assertion_type", AZURE_JWT_BEARER)) == 0)
                rc = encode_form_field(&form, "client_assertion", cred);
        } else {
            rc = encode_form_field(&form, "client_secret", cred);
        }
    }
    secmem_free(cred);
    if (rc < 0)
        snprintf(err, errlen, "token request: the form does not fit in %d bytes", AZURE_FORM_MAX);
    else
        rc = entra_token(a, &form, tok, ttl, retry_ms, err, errlen);
    secbuf_cleanup(&form);
    return rc;
}

/* The instance metadata service (IMDS): the resource is the scope without
 * "/.default"; client_id picks a user-assigned identity. */
static int imds_token(struct azure *a, const char *scope, char **tok, long long *ttl,
                      long long *retry_ms, char *client_id, size_t cap, char *err, size_t errlen)
{
    static const char *const hdrs[] = {"Metadata: true", "Accept: application/json", NULL};
    char resource[AZURE_URL_MAX], res_enc[3 * AZURE_URL_MAX], cid_enc[3 * AZURE_ID_MAX + 1];
    char path[4 * AZURE_URL_MAX + 4 * AZURE_ID_MAX], msg[AZURE_MSG_MAX] = "";
    struct http_response r;

    azure_scope_resource(scope, resource, sizeof(resource));
    if (encode_percent_str(resource, res_enc, sizeof(res_enc), 0) < 0 ||
        (a->client_id &&
         encode_percent_str(a->client_id, cid_enc, sizeof(cid_enc), 0) < 0)) {
        snprintf(err, errlen, "managed identity: resource or client id too long");
        return -EINVAL;
    }
    snprintf(path, sizeof(path), "?api-version=%s&resource=%s%s%s", AZURE_IMDS_API_VERSION,
             res_enc, a->client_id ? "&client_id=" : "", a->client_id ? cid_enc : "");
    struct http_request req = {.method = "GET", .path = path, .headers = hdrs};
    http_response_init(&r);
    int rc = http_perform(a->imds, &req, &r, msg, sizeof(msg));
    if (rc == 0) {
        rc = azure_imds_answer(&r, time(NULL), tok, ttl, client_id, cap, msg, sizeof(msg));
        retry_of(rc, &r, retry_ms);
    }
    if (rc < 0)
        snprintf(err, errlen, "managed identity token from %s: %s", a->imds_endpoint, msg);
    http_response_cleanup(&r);
    return rc;
}

/* One method's token, and who it is for (ident); on failure *retry_ms
 * (when more than it was) is the service's Retry-After. */
static int method_token(struct azure *a, enum azure_method m, const char *scope, char **tok,
                        long long *ttl, long long *retry_ms, char *ident, size_t icap, char *err,
                        size_t errlen)
{
    if (m != AZURE_MANAGED_IDENTITY) {
        snprintf(ident, icap, "client id %s", a->client_id);
        return client_credentials(a, m, scope, tok, ttl, retry_ms, err, errlen);
    }
    char cid[AZURE_ID_MAX + 1] = "";
    int rc = imds_token(a, scope, tok, ttl, retry_ms, cid, sizeof(cid), err, errlen);
    if (a->client_id || cid[0])
        snprintf(ident, icap, "managed identity with client id %s", a->client_id ? a->client_id
                                                                                  : cid);
    else
        snprintf(ident, icap, "the system-assigned managed identity");
    return rc;
}

/* Whether the default chain can try m at all; why not into why. */
static bool configured(const struct azure *a, enum azure_method m, char *why, size_t cap)
{
    if (m == AZURE_MANAGED_IDENTITY)
        return true;
    const char *miss = !a->tenant_id ? "tenant_id (AZURE_TENANT_ID)"
                       : !a->client_id ? "client_id (AZURE_CLIENT_ID)"
                       : m == AZURE_CLIENT_SECRET && !a->client_secret_file && !a->env_secret
                           ? "client secret (AZURE_CLIENT_SECRET)"
                       : m == AZURE_WORKLOAD_IDENTITY && !a->federated_token_file
                           ? "federated token file (AZURE_FEDERATED_TOKEN_FILE)"
                           : NULL;
    if (miss)
        snprintf(why, cap, "not configured: no %s", miss);
    return miss == NULL;
}

static const char *const chain_names[] = {
    [AZURE_CLIENT_SECRET] = "environment",
    [AZURE_WORKLOAD_IDENTITY] = "workload identity",
    [AZURE_MANAGED_IDENTITY] = "managed identity",
};

/* Cut s to at most max bytes, "..." marking the cut. */
static void cut_to(char *s, size_t max)
{
    if (strlen(s) <= max)
        return;
    if (max < 3) {
        s[max] = '\0';
        return;
    }
    memcpy(s + max - 3, "...", 4);
}

UNITTEST_STATIC void azure_chain_fit(char (*part)[AZURE_CHAIN_PART_MAX], size_t n, size_t budget)
{
    bool done[AZURE_DEFAULT] = {false};
    size_t left = budget;
    if (n > AZURE_DEFAULT)
        n = AZURE_DEFAULT;
    /* Shortest first: each keeps what it needs up to an even share of
     * what is left, so what the short ones leave goes to the long ones. */
    for (size_t round = 0; round < n; round++) {
        size_t k = n;
        for (size_t i = 0; i < n; i++)
            if (!done[i] && (k == n || strlen(part[i]) < strlen(part[k])))
                k = i;
        cut_to(part[k], left / (n - round));
        left -= strlen(part[k]);
        done[k] = true;
    }
}

/* DefaultAzureCredential's order. A credential that is not configured, or
 * whose service cannot be reached, hands over to the next; one that Entra
 * refuses (a wrong secret, an unknown client) ends the chain, as in the
 * SDKs, so a broken setting is reported rather than hidden by the next
 * credential. The first that works is kept for every later token. */
static int default_chain(struct azure *a, const char *scope, char **tok, long long *ttl,
                         long long *retry_ms, char *ident, size_t icap, char *err, size_t errlen)
{
    char part[AZURE_DEFAULT][AZURE_CHAIN_PART_MAX], msg[AZURE_MSG_MAX];
    int rc = -EACCES, m;
    bool stop = false;

    int winner = a->winner;
    if (winner >= 0)
        return method_token(a, (enum azure_method)winner, scope, tok, ttl, retry_ms, ident, icap,
                            err, errlen);
    for (m = AZURE_CLIENT_SECRET; m <= AZURE_MANAGED_IDENTITY; m++) {
        if (!configured(a, (enum azure_method)m, part[m], sizeof(part[m])))
            continue;
        if (stop) {
            snprintf(part[m], sizeof(part[m]), "not tried");
            continue;
        }
        msg[0] = '\0';
        rc = method_token(a, (enum azure_method)m, scope, tok, ttl, retry_ms, ident, icap, msg,
                          sizeof(msg));
        if (rc == 0) {
            a->winner = m;
            azure_log(a, LOG_INFO, NULL, "azure default credential: %s (%s)", chain_names[m],
                      ident);
            return 0;
        }
        snprintf(part[m], sizeof(part[m]), "%s", msg);
        stop = rc == -EACCES && m != AZURE_MANAGED_IDENTITY;
    }
    azure_chain_fit(part, AZURE_DEFAULT, AZURE_CHAIN_BUDGET);
    snprintf(err, errlen, "default chain: environment: %s; workload identity: %s; managed "
             "identity: %s", part[0], part[1], part[2]);
    return rc;
}

int azure_login(void *arg, enum token_login_why why, char **tok, struct token_life *life,
                char *err, size_t errlen)
{
    struct azure *a = arg;
    char ident[sizeof(a->identity)] = "";
    long long ttl = 0, retry_ms = 0;
    int rc;
    (void)why;

    *tok = NULL;
    pthread_mutex_lock(&a->lock);
    /* Before the challenge is answered, the one login allowed is the
     * guess's (challenge.c): its token waits in the cache for the
     * challenge to confirm the scope. */
    const char *use = a->scope ? a->scope : a->guessing ? a->guess_scope : NULL;
    char *scope = use ? strdup(use) : NULL;
    bool known = use != NULL;
    pthread_mutex_unlock(&a->lock);
    if (!scope) {
        snprintf(err, errlen, known ? "out of memory"
                                    : "no scope yet (Key Vault's challenge not seen)");
        return known ? -ENOMEM : -EAGAIN;
    }
    if (a->method == AZURE_DEFAULT)
        rc = default_chain(a, scope, tok, &ttl, &retry_ms, ident, sizeof(ident), err, errlen);
    else
        rc = method_token(a, a->method, scope, tok, &ttl, &retry_ms, ident, sizeof(ident), err,
                          errlen);
    free(scope);
    if (rc < 0) {
        secmem_free(*tok);
        *tok = NULL;
        life->retry_after_ms = retry_ms;   /* no token request sooner */
        return rc;
    }
    memset(life, 0, sizeof(*life));
    life->ttl_ms = ttl * 1000;
    pthread_mutex_lock(&a->lock);
    snprintf(a->identity, sizeof(a->identity), "%s", ident);
    pthread_mutex_unlock(&a->lock);
    azure_log(a, LOG_INFO, NULL, "azure token for %s, valid %lld s", ident, ttl);
    return 0;
}
