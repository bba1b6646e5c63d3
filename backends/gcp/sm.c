/* sm.c - Secret Manager's AccessSecretVersion (REST v1):
 *
 *   GET {endpoint}/v1/projects/{p}[/locations/{l}]/secrets/{s}/versions/{v}:access
 *   Authorization: Bearer <token>
 *   -> {"name": "projects/<number>/secrets/<s>/versions/<n>",
 *       "payload": {"data": <base64>, "dataCrc32c": "<int64 as a string>"}}
 *
 * Errors are {"error": {"code", "message", "status", "details"}}: 404
 * NOT_FOUND (the secret or version is gone), 400 FAILED_PRECONDITION (a
 * disabled or destroyed version), 403 PERMISSION_DENIED (IAM, or a token
 * without the cloud-platform scope), 401 UNAUTHENTICATED, 429
 * RESOURCE_EXHAUSTED, 503 UNAVAILABLE. A path Google does not route gets
 * an HTML 404: that is not "gone".
 *
 * The response body, and the value decoded out of it, stay in secret
 * memory; the JSON is parsed with jansson's wiping allocator.
 */
#include "backends/gcp/gcp_i.h"
#include "backends/http/json.h"
#include "lib/crc32c.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gcp_access_path(const struct gcp_name *n, char *out, size_t cap)
{
    /* name.c allowed only characters that need no escaping. */
    int k = snprintf(out, cap, "/v1/projects/%s%s%s/secrets/%s/versions/%s:access", n->project,
                     n->location[0] ? "/locations/" : "", n->location, n->secret, n->version);
    return k < 0 || (size_t)k >= cap ? -ENAMETOOLONG : 0;
}

/* "secret 's'" or "secret 's' version v", for messages. */
static void what_of(const struct gcp_name *n, char *out, size_t cap)
{
    bool pinned = strcmp(n->version, "latest") != 0;
    snprintf(out, cap, "secret '%s'%s%s", n->secret, pinned ? " version " : "",
             pinned ? n->version : "");
}

/* An error answer about n as a fetch error. */
static int status_error(const struct gcp_name *n, const struct http_response *r,
                        const char *identity, struct fetch_result *out, char *err, size_t errlen)
{
    char what[GCP_SECRET_MAX + 64], status[64], msg[300];
    long st = r->status;
    const char *who = identity[0] ? identity : "an unknown identity";
    what_of(n, what, sizeof(what));
    gcp_error_fields(r, status, sizeof(status), msg, sizeof(msg));
    out->retryable = st == 408 || http_status_retryable(st) ||
                     strcmp(status, "UNAVAILABLE") == 0 ||
                     strcmp(status, "RESOURCE_EXHAUSTED") == 0;
    out->retry_after_ms = r->retry_after_ms > 0 ? r->retry_after_ms : 0;
    const char *sep = msg[0] ? ": " : "";

    if (st == 404 && strcmp(status, "NOT_FOUND") == 0) {
        snprintf(err, errlen, "%s: not found (HTTP 404 NOT_FOUND%s%s)", what, sep, msg);
        return -ENOENT;
    }
    if (st == 404) {
        /* Not Google's word that the secret is gone (an HTML 404 for a
         * path it does not route, a proxy): an error, so a wrong endpoint
         * does not delete every secret at once. */
        snprintf(err, errlen, "%s: HTTP 404 without NOT_FOUND (is endpoint Secret Manager?)",
                 what);
        out->retryable = false;
        return -EIO;
    }
    if (strcmp(status, "FAILED_PRECONDITION") == 0) {
        snprintf(err, errlen, "%s is not accessible (HTTP %ld FAILED_PRECONDITION%s%s)", what, st,
                 sep, msg);
        out->retryable = false;
        return -EACCES;
    }
    if (st == 403 || st == 401) {
        /* Google's message names the permission (or the missing scope);
         * when it does not, we do. */
        bool named = strstr(msg, "secretmanager.versions.access") || strstr(msg, "scope");
        snprintf(err, errlen, "%s: access denied to %s (HTTP %ld %s%s%s)%s", what, who, st,
                 status[0] ? status : "error", sep, msg,
                 named ? "" : ": needs the secretmanager.versions.access permission");
        out->retryable = false;
        return -EACCES;
    }
    snprintf(err, errlen, "%s: HTTP %ld %s%s%s", what, st, status[0] ? status : "error", sep,
             msg);
    if (out->retryable)
        return -EAGAIN;
    return st == 400 ? -EINVAL : -EIO;
}

/* The version number of an answer's name
 * ("projects/<p>/[locations/<l>/]secrets/<s>/versions/<n>"): 0 when it
 * names n's secret (the project may be the number where the reference
 * used the id) and a number. */
static int version_of(const char *name, const struct gcp_name *n, char *version)
{
    const char *s = strstr(name, "/secrets/");
    size_t k = strlen(n->secret);
    if (strncmp(name, "projects/", 9) != 0 || !s)
        return -EPROTO;
    s += strlen("/secrets/");
    if (strncmp(s, n->secret, k) != 0 || strncmp(s + k, "/versions/", 10) != 0)
        return -EPROTO;
    s += k + 10;
    size_t d = strlen(s);
    if (d == 0 || d > GCP_VERSION_MAX || s[0] == '0' || strspn(s, "0123456789") != d)
        return -EPROTO;
    memcpy(version, s, d + 1);
    return 0;
}

/* dataCrc32c: an int64 in a JSON string (proto3's JSON mapping); a number
 * is taken too. 0 and *crc, 1 when absent, -EPROTO when malformed. */
static int crc_of(const json_t *v, uint32_t *crc)
{
    long long x;
    if (!v)
        return 1;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *p = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0 || n > 10 || strspn(p, "0123456789") != n)
            return -EPROTO;
        x = strtoll(p, NULL, 10);
    } else {
        return -EPROTO;
    }
    if (x < 0 || x > 0xffffffffLL)
        return -EPROTO;
    *crc = (uint32_t)x;
    return 0;
}

/* payload.data (base64) decoded into out->value. */
static int take_data(const json_t *data, const char *what, struct fetch_result *out, char *err,
                     size_t errlen)
{
    size_t len = json_string_length(data), n = 0;
    if (!data)
        return 0;   /* proto3 leaves empty bytes out */
    if (!json_is_string(data)) {
        snprintf(err, errlen, "%s: payload.data is not a string", what);
        return -EPROTO;
    }
    if (len / 4 * 3 > out->value.max + 2) {
        snprintf(err, errlen, "%s: value larger than %zu bytes (max_size)", what, out->value.max);
        out->retryable = false;
        return -E2BIG;
    }
    size_t cap = len / 4 * 3 + 3;
    if (cap > out->value.max)
        cap = out->value.max;
    if (len == 0)
        return 0;
    int rc = secbuf_reserve(&out->value, cap);
    if (rc < 0) {
        snprintf(err, errlen, "%s: out of memory", what);
        return rc;
    }
    if (sodium_base642bin(out->value.data, out->value.cap, json_string_value(data), len, NULL,
                          &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
        snprintf(err, errlen, "%s: payload.data is not valid base64 (or larger than max_size)",
                 what);
        return -EPROTO;
    }
    out->value.len = n;
    return 0;
}

UNITTEST_STATIC int gcp_access_answer(const struct gcp_name *n, const struct http_response *r,
                                      const char *identity, struct fetch_result *out,
                                      char *version, char *err, size_t errlen)
{
    char what[GCP_SECRET_MAX + 64];
    json_t *root = NULL;
    uint32_t want = 0;
    int rc, has_crc;

    version[0] = '\0';
    if (r->status != 200)
        return status_error(n, r, identity, out, err, errlen);
    what_of(n, what, sizeof(what));
    if (!(root = http_body_object(r))) {
        snprintf(err, errlen, "%s: HTTP 200 with a body that is not a JSON object", what);
        return -EPROTO;
    }
    const json_t *name = json_object_get(root, "name");
    const json_t *payload = json_object_get(root, "payload");
    rc = -EPROTO;
    if (!json_is_string(name) || version_of(json_string_value(name), n, version) < 0) {
        snprintf(err, errlen, "%s: the answer's name does not name this secret and a version",
                 what);
        version[0] = '\0';
        goto out;
    }
    if (strcmp(n->version, "latest") != 0 && strcmp(version, n->version) != 0) {
        snprintf(err, errlen, "%s: the answer is for version %s", what, version);
        goto out;
    }
    if (!json_is_object(payload)) {
        snprintf(err, errlen, "%s: no payload object in the answer", what);
        goto out;
    }
    if ((has_crc = crc_of(json_object_get(payload, "dataCrc32c"), &want)) < 0) {
        snprintf(err, errlen, "%s: payload.dataCrc32c is not a 32-bit number", what);
        goto out;
    }
    if ((rc = take_data(json_object_get(payload, "data"), what, out, err, errlen)) < 0)
        goto out;
    if (has_crc == 0 && crc32c(0, out->value.data, out->value.len) != want) {
        /* Corrupted on the way or at rest: never served. Neither checksum
         * is logged (a CRC of a short value narrows a guess). */
        snprintf(err, errlen, "%s%s%s: checksum mismatch (payload.dataCrc32c does not match "
                 "the data): value refused", what, strcmp(n->version, "latest") == 0 ?
                 " version " : "", strcmp(n->version, "latest") == 0 ? version : "");
        out->retryable = true;
        rc = -EBADMSG;
        goto out;
    }
    /* version_of checked it: a number without a leading 0 */
    fetch_result_set_version(out, version, strlen(version));
    rc = 0;
out:
    if (rc < 0)
        secbuf_cleanup(&out->value);
    json_decref(root);
    return rc;
}

/* The authenticated GET of path: a token, and after a 401 one new token
 * and one retry. 0 with the response (any status), or the error. */
static int sm_get(struct gcp *g, const char *what, const char *path, struct http_response *r,
                  struct fetch_result *out, char *err, size_t errlen)
{
    char msg[GCP_MSG_MAX] = "";
    int rc;
    for (int attempt = 0;; attempt++) {
        char *hdr = NULL;
        unsigned long gen = 0;
        msg[0] = '\0';
        if ((rc = gcp_token_header(g, &hdr, &gen, msg, sizeof(msg))) < 0) {
            snprintf(err, errlen, "%s: cannot get a token: %s", what, msg);
            out->retryable = rc == -EAGAIN || http_errno_retryable(rc);
            return rc;
        }
        const char *headers[] = {hdr, "Accept: application/json", NULL};
        struct http_request req = {.method = "GET", .path = path, .headers = headers};
        http_response_cleanup(r);
        http_response_init(r);
        rc = http_perform(g->sm, &req, r, msg, sizeof(msg));
        secmem_free(hdr);
        if (rc < 0) {
            snprintf(err, errlen, "%s: %s", what, msg);
            out->retryable = http_errno_retryable(rc);
            return rc;
        }
        if (r->status != 401 || attempt > 0)
            return 0;
        /* The token was refused (expired early, revoked): one new token
         * and one more try; a 401 after that is the answer. */
        if ((rc = gcp_relogin(g, gen, msg, sizeof(msg))) < 0) {
            snprintf(err, errlen, "%s: HTTP 401, and a new token failed: %s", what, msg);
            out->retryable = rc == -EAGAIN || http_errno_retryable(rc);
            return rc;
        }
    }
}

int gcp_access(struct gcp *g, const struct gcp_name *n, struct fetch_result *out, char *version,
               char *err, size_t errlen)
{
    char path[GCP_PROJECT_MAX + GCP_LOCATION_MAX + GCP_SECRET_MAX + GCP_VERSION_MAX + 64];
    char what[GCP_SECRET_MAX + 64], identity[GCP_ID_MAX];
    struct http_response r;
    int rc;

    version[0] = '\0';
    what_of(n, what, sizeof(what));
    if (gcp_access_path(n, path, sizeof(path)) < 0) {
        snprintf(err, errlen, "%s: name too long", what);
        out->retryable = false;
        return -ENAMETOOLONG;
    }
    http_response_init(&r);
    rc = sm_get(g, what, path, &r, out, err, errlen);
    if (rc == 0) {
        gcp_identity(g, identity, sizeof(identity));
        rc = gcp_access_answer(n, &r, identity, out, version, err, errlen);
    }
    http_response_cleanup(&r);
    return rc;
}
