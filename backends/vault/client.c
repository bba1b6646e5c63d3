/* client.c - requests to Vault: the headers every request carries (the
 * namespace, the token), Vault's error answers, JSON replies, and the
 * authenticated request with its one re-login on a 403.
 *
 * Request headers and bodies that carry a token or credentials are wiped
 * after use (curl's and jansson's heaps wipe on free, see lib/secmem.c).
 */
#include "backends/vault/vault_i.h"
#include "backends/http/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vault_errors(const struct http_response *r, char *out, size_t cap)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, &jerr);
    const json_t *errs = root ? json_object_get(root, "errors") : NULL;
    size_t o = 0;
    out[0] = '\0';
    if (json_is_array(errs)) {
        size_t i;
        json_t *e;
        json_array_foreach(errs, i, e)
            if (json_is_string(e) && o + 3 < cap)
                o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "; " : "",
                                      json_string_value(e));
    }
    if (!out[0])
        snprintf(out, cap, root ? "no error text" : "non-JSON body");
    json_decref(root);
    secmem_wipe(&jerr, sizeof(jerr));   /* jansson quotes the input */
}

int vault_status_error(const char *what, const struct http_response *r, struct fetch_result *out,
                       char *err, size_t errlen)
{
    char msg[512];
    vault_errors(r, msg, sizeof(msg));
    snprintf(err, errlen, "%s: HTTP %ld: %s", what, r->status, msg);
    if (out) {
        out->retryable = http_status_retryable(r->status);
        out->retry_after_ms = r->retry_after_ms > 0 ? r->retry_after_ms : 0;
    }
    if (r->status == 404)
        return -ENOENT;
    if (r->status == 403 || r->status == 401)
        return -EACCES;
    return http_status_retryable(r->status) ? -EAGAIN : -EINVAL;
}

int vault_parse_body(const char *what, const struct http_response *r, json_t **root, char *err,
                     size_t errlen)
{
    *root = http_body_object(r);
    if (!*root) {
        snprintf(err, errlen, "%s: HTTP %ld with a body that is not a JSON object", what, r->status);
        return -EPROTO;
    }
    return 0;
}

int vault_json_reply(const char *what, const struct http_response *r, struct fetch_result *out,
                     json_t **root, char *err, size_t errlen)
{
    *root = NULL;
    if (r->status != 200)
        return vault_status_error(what, r, out, err, errlen);
    return vault_parse_body(what, r, root, err, errlen);
}

int vault_dump_json(const json_t *v, struct secbuf *out, char *err, size_t errlen)
{
    size_t need = json_dumpb(v, NULL, 0, JSON_COMPACT);
    int rc;
    if (need == 0) {
        snprintf(err, errlen, "cannot encode JSON");
        return -EIO;
    }
    if ((rc = secbuf_reserve(out, need)) < 0) {
        snprintf(err, errlen, "value larger than %zu bytes (max_size)", out->max);
        return rc;
    }
    out->len = json_dumpb(v, (char *)out->data, need, JSON_COMPACT);
    return 0;
}

int vault_raw_call(struct vault *v, const char *method, const char *path,
                   const struct secbuf *body, const char *hdr_token, struct http_response *resp,
                   char *err, size_t errlen)
{
    const char *headers[5];
    size_t n = 0;
    char url[VAULT_PATH_MAX + 8];
    headers[n++] = "X-Vault-Request: true";
    if (v->ns_header)
        headers[n++] = v->ns_header;
    if (hdr_token)
        headers[n++] = hdr_token;
    if (body)
        headers[n++] = "Content-Type: application/json";
    headers[n] = NULL;
    if ((size_t)snprintf(url, sizeof(url), "/v1/%s", path) >= sizeof(url)) {
        snprintf(err, errlen, "path too long");
        return -ENAMETOOLONG;
    }
    struct http_request req = {
        .method = method, .path = url, .headers = headers,
        .body = body ? body->data : NULL, .body_len = body ? body->len : 0,
    };
    char msg[384] = "";
    int rc = http_perform(v->http, &req, resp, msg, sizeof(msg));
    if (rc < 0)
        snprintf(err, errlen, "%s %s: %s", method, path, msg);
    return rc;
}

/* vault_raw_many's requests: each failure's reason names its request
 * before the caller hears of it. */
struct raw_many {
    const char *const *paths;
    char *errs;
    size_t errlen;
    const int *rcs;
    void (*done)(void *arg, size_t k);
    void *arg;
};

static void raw_many_done(void *arg, size_t k)
{
    struct raw_many *rm = arg;
    if (rm->rcs[k] < 0) {
        char msg[384];
        snprintf(msg, sizeof(msg), "%s", rm->errs + k * rm->errlen);
        snprintf(rm->errs + k * rm->errlen, rm->errlen, "GET %s: %s", rm->paths[k], msg);
    }
    if (rm->done)
        rm->done(rm->arg, k);
}

void vault_raw_many(struct vault *v, const char *const *paths, size_t n, const char *hdr_token,
                    struct http_response *resps, int *rcs, char *errs, size_t errlen,
                    void (*done)(void *arg, size_t k), void *arg)
{
    const char *headers[4];
    size_t nh = 0;
    struct http_request *reqs = calloc(n, sizeof(*reqs));
    char **urls = calloc(n, sizeof(*urls));
    struct raw_many rm = {paths, errs, errlen, rcs, done, arg};
    bool ok = reqs && urls;

    headers[nh++] = "X-Vault-Request: true";
    if (v->ns_header)
        headers[nh++] = v->ns_header;
    if (hdr_token)
        headers[nh++] = hdr_token;
    headers[nh] = NULL;
    for (size_t k = 0; ok && k < n; k++) {
        if (asprintf(&urls[k], "/v1/%s", paths[k]) < 0) {
            urls[k] = NULL;
            ok = false;
        }
        reqs[k] = (struct http_request){.method = "GET", .path = urls[k], .headers = headers};
    }
    if (ok) {
        http_perform_many(v->http, reqs, n, resps, rcs, errs, errlen, raw_many_done, &rm);
    } else {
        for (size_t k = 0; k < n; k++) {
            rcs[k] = -ENOMEM;
            snprintf(errs + k * errlen, errlen, "out of memory");
            if (done)
                done(arg, k);
        }
    }
    for (size_t k = 0; urls && k < n; k++)
        free(urls[k]);
    free(urls);
    free(reqs);
}

int vault_call(struct vault *v, const char *method, const char *path, const struct secbuf *body,
               struct http_response *resp, char *err, size_t errlen)
{
    for (int attempt = 0;; attempt++) {
        char *hdr = NULL;
        unsigned long gen = 0;
        char msg[384] = "";
        int rc = vault_token_header(v, &hdr, &gen, msg, sizeof(msg));
        if (rc < 0) {
            snprintf(err, errlen, "%s %s: cannot log in: %s", method, path, msg);
            return rc;
        }
        rc = vault_raw_call(v, method, path, body, hdr, resp, err, errlen);
        bool retry = rc == 0 && resp->status == 403 && attempt == 0 &&
                     vault_token_rejected(v, hdr);
        secmem_free(hdr);
        if (!retry)
            return rc;
        if ((rc = vault_relogin(v, gen, msg, sizeof(msg))) < 0) {
            snprintf(err, errlen, "%s %s: HTTP 403, and logging in again failed: %s", method,
                     path, msg);
            return rc;
        }
    }
}
