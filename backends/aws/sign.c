/* sign.c - SigV4-signed AWS requests over the shared HTTP layer, the
 * clock-skew correction every signed call shares, and AWS's error bodies.
 *
 * Signed by sigv4.c rather than libcurl's CURLOPT_AWS_SIGV4: correcting a
 * clock-skew rejection means signing with the server's time, and libcurl
 * 7.88 cannot do that (a user X-Amz-Date is signed, then sent twice). The
 * Host header is sent explicitly so what is signed is what goes out.
 */
#include "backends/aws/sign.h"
#include "backends/aws/sigv4.h"
#include "lib/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AWS_AUTH_MAX 2048

void aws_creds_clear(struct aws_creds *c)
{
    secmem_free(c->akid);
    secmem_free(c->secret);
    secmem_free(c->token);
    memset(c, 0, sizeof(*c));
}

int aws_creds_copy(struct aws_creds *dst, const struct aws_creds *src)
{
    aws_creds_clear(dst);
    dst->akid = src->akid ? secmem_strndup(src->akid, strlen(src->akid)) : NULL;
    dst->secret = src->secret ? secmem_strndup(src->secret, strlen(src->secret)) : NULL;
    dst->token = src->token ? secmem_strndup(src->token, strlen(src->token)) : NULL;
    dst->expiration = src->expiration;
    dst->obtained = src->obtained;
    if ((src->akid && !dst->akid) || (src->secret && !dst->secret) || (src->token && !dst->token)) {
        aws_creds_clear(dst);
        return -ENOMEM;
    }
    return 0;
}

char *aws_xml_text(const struct secbuf *xml, const char *tag)
{
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    /* An empty body has no buffer at all: memmem must not get NULL. */
    if (xml->len == 0)
        return NULL;
    const char *s = memmem(xml->data, xml->len, open, strlen(open));
    if (!s)
        return NULL;
    s += strlen(open);
    const char *e = memmem(s, xml->len - (size_t)(s - (const char *)xml->data), close, strlen(close));
    return e ? secmem_strndup(s, (size_t)(e - s)) : NULL;
}

bool aws_is_skew_error(const char *type, const char *msg)
{
    return strcmp(type, "RequestTimeTooSkewed") == 0 || strcmp(type, "RequestExpired") == 0 ||
           strstr(msg, "Signature expired") || strstr(msg, "Signature not yet current") ||
           strstr(msg, "RequestTimeTooSkewed") ||
           strstr(msg, "difference between the request time and the current time is too large");
}

long long aws_skew_from(const struct http_response *resp)
{
    return resp->date ? (long long)(resp->date - time(NULL)) : 0;
}

int aws_perform(struct http_client *c, const struct aws_call *call, struct http_response *resp,
                char *err, size_t errlen)
{
    char amz_date[32], path[512];
    char h_host[300], h_date[64], h_ctype[160], h_target[160];
    char *h_token = NULL, *h_auth = NULL;
    const char *headers[8];
    struct sigv4_header sh[6];
    size_t n = 0, ns = 0;
    int rc = 0;

    time_t t = time(NULL) + (time_t)call->skew_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(path, sizeof(path), "%s/", http_client_base_path(c));

    snprintf(h_host, sizeof(h_host), "Host: %s", http_client_authority(c));
    snprintf(h_ctype, sizeof(h_ctype), "Content-Type: %s", call->content_type);
    headers[n++] = h_host;
    headers[n++] = h_ctype;
    sh[ns++] = (struct sigv4_header){"host", http_client_authority(c)};
    sh[ns++] = (struct sigv4_header){"content-type", call->content_type};
    if (call->target) {
        snprintf(h_target, sizeof(h_target), "X-Amz-Target: %s", call->target);
        headers[n++] = h_target;
        sh[ns++] = (struct sigv4_header){"x-amz-target", call->target};
    }
    if (call->creds) {
        snprintf(h_date, sizeof(h_date), "X-Amz-Date: %s", amz_date);
        headers[n++] = h_date;
        sh[ns++] = (struct sigv4_header){"x-amz-date", amz_date};
        if (call->creds->token) {
            size_t len = strlen(call->creds->token) + 32;
            if (!(h_token = secmem_alloc(len)))
                return -ENOMEM;
            snprintf(h_token, len, "X-Amz-Security-Token: %s", call->creds->token);
            headers[n++] = h_token;
            sh[ns++] = (struct sigv4_header){"x-amz-security-token", call->creds->token};
        }
        struct sigv4_input in = {
            .method = "POST", .path = path, .headers = sh, .nheaders = ns,
            .payload = call->body, .payload_len = call->body_len,
            .region = call->region, .service = call->service,
            .akid = call->creds->akid, .secret = call->creds->secret, .amz_date = amz_date,
        };
        static const char prefix[] = "Authorization: ";
        if (!(h_auth = secmem_alloc(sizeof(prefix) + AWS_AUTH_MAX))) {
            rc = -ENOMEM;
            goto out;
        }
        memcpy(h_auth, prefix, sizeof(prefix) - 1);
        rc = sigv4_authorization(&in, h_auth + sizeof(prefix) - 1, AWS_AUTH_MAX);
        if (rc < 0) {
            snprintf(err, errlen, "cannot sign the request: %s", strerror(-rc));
            goto out;
        }
        headers[n++] = h_auth;
    }
    headers[n] = NULL;
    struct http_request req = {
        .method = "POST", .path = "/", .headers = headers,
        .body = call->body, .body_len = call->body_len,
    };
    rc = http_perform(c, &req, resp, err, errlen);
out:
    secmem_free(h_token);
    secmem_free(h_auth);
    return rc;
}

void aws_error(const struct http_response *r, char *type, size_t tcap, char *msg, size_t mcap)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, &jerr);
    secmem_wipe(&jerr, sizeof(jerr));
    const char *t = json_string_value(json_object_get(root, "__type"));
    const char *m = json_string_value(json_object_get(root, "message"));
    if (!m)
        m = json_string_value(json_object_get(root, "Message"));
    if (t && strchr(t, '#'))
        t = strchr(t, '#') + 1;
    snprintf(type, tcap, "%s", t ? t : "");
    snprintf(msg, mcap, "%s", m ? m : "");
    if (!root) {
        /* Authentication failures come as an XML ErrorResponse. */
        char *xc = aws_xml_text(&r->body, "Code"), *xm = aws_xml_text(&r->body, "Message");
        snprintf(type, tcap, "%s", xc ? xc : "");
        snprintf(msg, mcap, "%s", xm ? xm : xc ? "" : "body is neither JSON nor XML");
        secmem_free(xc);
        secmem_free(xm);
    }
    json_decref(root);
}

int aws_signed_call(struct http_client *c, const struct aws_call *call, struct aws_clock *clk,
                    const struct aws_skew_log *who, struct http_response *resp,
                    bool *skew_retried, char *err, size_t errlen)
{
    struct aws_call signed_now = *call;
    signed_now.skew_s = clk->skew_s;
    if (skew_retried)
        *skew_retried = false;
    int rc = aws_perform(c, &signed_now, resp, err, errlen);
    if (rc < 0 || !call->creds || (resp->status != 400 && resp->status != 403) || !resp->date)
        return rc;
    char type[128], msg[256];
    aws_error(resp, type, sizeof(type), msg, sizeof(msg));
    if (!aws_is_skew_error(type, msg))
        return 0;
    /* Signed outside the server's clock window: once more with its time,
     * and every later call of this instance signs with it from the start. */
    signed_now.skew_s = aws_skew_from(resp);
    clk->skew_s = signed_now.skew_s;
    struct log_fields lf = {.backend = who->backend, .error = msg};
    log_f(LOG_WARN, &lf, "%s rejected our clock; signing with the server's time (%+llds)",
          who->who, signed_now.skew_s);
    if (skew_retried)
        *skew_retried = true;
    return aws_perform(c, &signed_now, resp, err, errlen);
}
