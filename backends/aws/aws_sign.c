/* aws_sign.c - SigV4-signed AWS requests over the shared HTTP layer.
 *
 * Signed by sigv4.c rather than libcurl's CURLOPT_AWS_SIGV4: correcting a
 * clock-skew rejection means signing with the server's time, and libcurl
 * 7.88 cannot do that (a user X-Amz-Date is signed, then sent twice). The
 * Host header is sent explicitly so what is signed is what goes out.
 */
#include "backends/aws/aws_sign.h"
#include "backends/aws/sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AWS_AUTH_MAX 2048

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
    return e ? aws_secstr(s, (size_t)(e - s)) : NULL;
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
