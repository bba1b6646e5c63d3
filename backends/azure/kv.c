/* kv.c - Key Vault's Get Secret (REST API 7.4):
 *
 *   GET {vault_url}/secrets/{name}[/{version}]?api-version=7.4
 *   Authorization: Bearer <token>
 *   -> {"value": "...", "id": "{vault}/secrets/{name}/{version}",
 *       "contentType": ..., "tags": {...},
 *       "attributes": {"enabled", "nbf", "exp", "created", "updated", ...}}
 *
 * Errors are {"error": {"code", "message", "innererror": {"code"}}}: 404
 * SecretNotFound (the secret is gone), 403 Forbidden with SecretDisabled
 * or a policy/RBAC code (ForbiddenByPolicy, AccessDenied,
 * ForbiddenByRbac), 401 with a challenge, 429 throttled.
 *
 * The response body, and the value copied out of it, stay in secret memory;
 * the JSON is parsed with jansson's wiping allocator.
 */
#include "backends/azure/azure_i.h"
#include "backends/http/json.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define AZURE_NBF_RETRY_MAX_MS (5 * 60 * 1000LL)

int azure_secret_path(const struct secret_ref *ref, char *out, size_t cap)
{
    /* check_ref allowed only [0-9a-zA-Z-] names and hex versions: nothing
     * to escape. */
    int n = snprintf(out, cap, "/secrets/%s%s%s?api-version=%s", ref->path,
                     ref->version ? "/" : "", ref->version ? ref->version : "", AZURE_API_VERSION);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int azure_vault_raw(struct azure *a, const char *path, const char *hdr, struct http_response *r,
                    char *err, size_t errlen)
{
    const char *headers[3];
    size_t n = 0;
    char msg[AZURE_MSG_MAX] = "";
    if (hdr)
        headers[n++] = hdr;
    headers[n++] = "Accept: application/json";
    headers[n] = NULL;
    struct http_request req = {.method = "GET", .path = path, .headers = headers};
    int rc = http_perform(a->vault, &req, r, msg, sizeof(msg));
    if (rc < 0)
        snprintf(err, errlen, "%s", msg);
    return rc;
}

int azure_vault_get(struct azure *a, const char *what, const char *path, struct http_response *r,
                    struct fetch_result *out, char *err, size_t errlen)
{
    char msg[AZURE_MSG_MAX] = "", *scope = NULL;
    int rc = azure_scope(a, path, &scope, out, msg, sizeof(msg));
    free(scope);   /* the login reads it from the instance */
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", what, msg);
        return rc;
    }
    for (int attempt = 0;; attempt++) {
        char *hdr = NULL;
        unsigned long gen = 0;
        msg[0] = '\0';
        if ((rc = azure_token_header(a, &hdr, &gen, msg, sizeof(msg))) < 0) {
            snprintf(err, errlen, "%s: cannot get a token: %s", what, msg);
            out->retryable = http_errno_retryable(rc);
            return rc;
        }
        rc = azure_vault_raw(a, path, hdr, r, msg, sizeof(msg));
        secmem_free(hdr);
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", what, msg);
            out->retryable = http_errno_retryable(rc);
            return rc;
        }
        if (r->status != 401 || attempt > 0)
            return 0;
        /* The token was refused. Only a challenge we can still trust gets
         * a new token and one more try (the SDKs' rule); a 401 after that
         * is the answer. */
        if ((rc = azure_rechallenge(a, r->www_authenticate, msg, sizeof(msg))) < 0) {
            snprintf(err, errlen, "%s: HTTP 401: %s", what, msg);
            out->retryable = false;
            return rc;
        }
        if ((rc = azure_relogin(a, gen, msg, sizeof(msg))) < 0) {
            snprintf(err, errlen, "%s: HTTP 401, and a new token failed: %s", what, msg);
            out->retryable = http_errno_retryable(rc);
            return rc;
        }
    }
}

void azure_kv_error_fields(const struct http_response *r, char *code, size_t ccap, char *inner,
                           size_t icap, char *msg, size_t mcap)
{
    json_t *root = http_body_object(r);
    const json_t *e = json_object_get(root, "error");
    const json_t *c = json_object_get(e, "code"), *m = json_object_get(e, "message");
    const json_t *ie = json_object_get(e, "innererror");
    if (!ie)
        ie = json_object_get(e, "innerError");
    const json_t *ic = json_object_get(ie, "code");
    code[0] = inner[0] = msg[0] = '\0';
    if (json_is_string(c))
        azure_shown(code, ccap, json_string_value(c), json_string_length(c));
    if (json_is_string(ic))
        azure_shown(inner, icap, json_string_value(ic), json_string_length(ic));
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        azure_shown(msg, mcap, s, strcspn(s, "\r\n"));
    }
    json_decref(root);
}

/* "secret 'name'" or "secret 'name' version v", for messages. */
static void what_of(const struct secret_ref *ref, char *out, size_t cap)
{
    snprintf(out, cap, "secret '%s'%s%s", ref->path, ref->version ? " version " : "",
             ref->version ? ref->version : "");
}

/* A Key Vault error answer about ref as a fetch error. */
static int status_error(const struct secret_ref *ref, const struct http_response *r,
                        const char *identity, struct fetch_result *out, char *err, size_t errlen)
{
    char what[AZURE_NAME_MAX + AZURE_VERSION_LEN + 32], code[64], inner[64], msg[240], codes[140];
    long st = r->status;
    what_of(ref, what, sizeof(what));
    azure_kv_error_fields(r, code, sizeof(code), inner, sizeof(inner), msg, sizeof(msg));
    snprintf(codes, sizeof(codes), "%s%s%s", code[0] ? code : "no error code",
             inner[0] ? "/" : "", inner);
    out->retryable = http_status_retryable(st);
    out->retry_after_ms = r->retry_after_ms > 0 ? r->retry_after_ms : 0;
    bool not_found = strcmp(code, "SecretNotFound") == 0 || strcmp(inner, "SecretNotFound") == 0;
    bool disabled = strcmp(code, "SecretDisabled") == 0 || strcmp(inner, "SecretDisabled") == 0;

    if (st == 404 && not_found) {
        snprintf(err, errlen, "%s: not found (HTTP 404 %s)", what, codes);
        return -ENOENT;
    }
    if (st == 404) {
        /* Not Key Vault's word that the secret is gone (a proxy, a wrong
         * vault_url path): an error, so a mistake does not delete every
         * secret at once. */
        snprintf(err, errlen, "%s: HTTP 404 %s%s%s (not SecretNotFound: is vault_url the vault?)",
                 what, codes, msg[0] ? ": " : "", msg);
        out->retryable = false;
        return -EIO;
    }
    if (st == 403 && disabled) {
        snprintf(err, errlen, "%s is disabled (HTTP 403 %s), asked as %s", what, codes,
                 identity[0] ? identity : "an unknown identity");
        return -EACCES;
    }
    if (st == 403 || st == 401) {
        snprintf(err, errlen, "%s: access denied to %s (HTTP %ld %s%s%s)", what,
                 identity[0] ? identity : "an unknown identity", st, codes, msg[0] ? ": " : "",
                 msg);
        return -EACCES;
    }
    snprintf(err, errlen, "%s: HTTP %ld %s%s%s", what, st, codes, msg[0] ? ": " : "", msg);
    if (out->retryable)
        return -EAGAIN;
    return st == 400 ? -EINVAL : -EIO;
}

/* The version id of an answer's id ("<vault>/secrets/<name>/<version>"):
 * 0 when it names ref's secret (names compare case-blind, as Key Vault's
 * do) and a 32-hex-digit version. */
static int version_of(const char *id, const char *name, char *version)
{
    const char *p = strstr(id, "://");
    const char *s = p ? strstr(p + 3, "/secrets/") : NULL;
    size_t n = strlen(name);
    if (!s)
        return -EPROTO;
    s += strlen("/secrets/");
    if (strncasecmp(s, name, n) != 0 || s[n] != '/')
        return -EPROTO;
    s += n + 1;
    if (strlen(s) != AZURE_VERSION_LEN || strspn(s, "0123456789abcdefABCDEF") != AZURE_VERSION_LEN)
        return -EPROTO;
    for (size_t i = 0; i <= AZURE_VERSION_LEN; i++)
        version[i] = (char)tolower((unsigned char)s[i]);
    return 0;
}

/* A Unix time attribute (seconds): 0 and *t, 1 when absent or null, or
 * -EPROTO when it is not an integer. */
static int time_attr(const json_t *attrs, const char *key, long long *t)
{
    const json_t *v = json_object_get(attrs, key);
    if (!v || json_is_null(v))
        return 1;
    if (!json_is_integer(v))
        return -EPROTO;
    *t = json_integer_value(v);
    return 0;
}

static void utc(long long t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld", t);
}

/* What the attributes allow: 0, or why this version may not be served. */
static int check_attributes(const json_t *root, const char *what, time_t now,
                            struct fetch_result *out, char *err, size_t errlen)
{
    const json_t *attrs = json_object_get(root, "attributes");
    const json_t *en = json_object_get(attrs, "enabled");
    long long nbf = 0, exp = 0;
    char when[64];
    int has_nbf = 1, has_exp = 1;
    if (attrs && !json_is_object(attrs)) {
        snprintf(err, errlen, "%s: attributes is not an object", what);
        return -EPROTO;
    }
    if ((en && !json_is_boolean(en)) || (has_nbf = time_attr(attrs, "nbf", &nbf)) < 0 ||
        (has_exp = time_attr(attrs, "exp", &exp)) < 0) {
        snprintf(err, errlen, "%s: malformed attributes (enabled, nbf, exp)", what);
        return -EPROTO;
    }
    if (json_is_false(en)) {
        snprintf(err, errlen, "%s is disabled (attributes.enabled is false)", what);
        out->retryable = false;
        return -EACCES;
    }
    if (has_exp == 0 && exp <= (long long)now) {
        utc(exp, when, sizeof(when));
        snprintf(err, errlen, "%s expired at %s (attributes.exp)", what, when);
        out->retryable = false;
        return -EKEYEXPIRED;
    }
    if (has_nbf == 0 && nbf > (long long)now) {
        /* Not valid yet: not served. Looked at again when it becomes
         * valid (at most every 5 minutes until then). */
        long long wait_s = nbf - (long long)now;   /* capped before it becomes ms */
        utc(nbf, when, sizeof(when));
        snprintf(err, errlen, "%s is not valid before %s (attributes.nbf)", what, when);
        out->retryable = true;
        out->retry_after_ms = wait_s < AZURE_NBF_RETRY_MAX_MS / 1000 ? wait_s * 1000
                                                                     : AZURE_NBF_RETRY_MAX_MS;
        return -EAGAIN;
    }
    return 0;
}

UNITTEST_STATIC int azure_secret_answer(const struct secret_ref *ref,
                                        const struct http_response *r, time_t now,
                                        const char *identity, struct fetch_result *out,
                                        char *version, char *err, size_t errlen)
{
    char what[AZURE_NAME_MAX + AZURE_VERSION_LEN + 32];
    json_t *root = NULL;
    int rc;

    version[0] = '\0';
    if (r->status != 200)
        return status_error(ref, r, identity, out, err, errlen);
    what_of(ref, what, sizeof(what));
    if (!(root = http_body_object(r))) {
        snprintf(err, errlen, "%s: HTTP 200 with a body that is not a JSON object", what);
        return -EPROTO;
    }
    const json_t *value = json_object_get(root, "value");
    const json_t *id = json_object_get(root, "id");
    rc = -EPROTO;
    if (!json_is_string(value)) {
        snprintf(err, errlen, "%s: no string value in the answer", what);
        goto out;
    }
    if (!json_is_string(id) || version_of(json_string_value(id), ref->path, version) < 0) {
        snprintf(err, errlen, "%s: the answer's id does not name this secret and a version", what);
        version[0] = '\0';
        goto out;
    }
    if (ref->version && strcasecmp(version, ref->version) != 0) {
        snprintf(err, errlen, "%s: the answer is for version %s", what, version);
        goto out;
    }
    if ((rc = check_attributes(root, what, now, out, err, errlen)) < 0)
        goto out;
    if ((rc = secbuf_append(&out->value, json_string_value(value), json_string_length(value))) < 0) {
        snprintf(err, errlen, "%s: value larger than %zu bytes (max_size)", what, out->value.max);
        out->retryable = false;
        goto out;
    }
    /* version_of checked it: 32 hex digits, lower case */
    fetch_result_set_version(out, version, strlen(version));
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int azure_kv_read(struct azure *a, const struct secret_ref *ref, struct fetch_result *out,
                  char *version, char *err, size_t errlen)
{
    char path[AZURE_NAME_MAX + AZURE_VERSION_LEN + 64];
    char what[AZURE_NAME_MAX + AZURE_VERSION_LEN + 32], identity[sizeof(a->identity)];
    struct http_response r;
    int rc;

    version[0] = '\0';
    what_of(ref, what, sizeof(what));
    if (azure_secret_path(ref, path, sizeof(path)) < 0) {
        snprintf(err, errlen, "%s: name too long", what);
        out->retryable = false;
        return -ENAMETOOLONG;
    }
    http_response_init(&r);
    rc = azure_vault_get(a, what, path, &r, out, err, errlen);
    if (rc == 0) {
        azure_identity(a, identity, sizeof(identity));
        rc = azure_secret_answer(ref, &r, time(NULL), identity, out, version, err, errlen);
    }
    http_response_cleanup(&r);
    return rc;
}
