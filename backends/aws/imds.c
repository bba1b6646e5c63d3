/* imds.c - EC2 instance metadata, IMDSv2 only: a session token (PUT),
 * then the role name and its credentials (or, for region.c, the
 * placement region). */
#include "backends/aws/aws_i.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define AWS_IMDS_DEFAULT "http://169.254.169.254"

/* IMDSv2: a session token (PUT), then the call. path after the host. */
int aws_imds_get(struct aws_chain *c, struct http_client **slot, const char *path,
                    struct http_response *r, char *err, size_t errlen)
{
    const char *base = aws_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    char url[512], msg[384] = "";
    struct http_response t;
    int rc;

    snprintf(url, sizeof(url), "%s", base ? base : AWS_IMDS_DEFAULT);
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    /* Short: off EC2 the address does not answer, and the SDKs wait 1 s. */
    rc = aws_chain_client(c, slot, url, 1000, 2000, err, errlen);
    if (rc < 0)
        return rc;
    static const char *const put_hdrs[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    struct http_request put = {.method = "PUT", .path = "/latest/api/token", .headers = put_hdrs};
    http_response_init(&t);
    rc = http_perform(*slot, &put, &t, msg, sizeof(msg));
    if (rc < 0 || t.status != 200 || t.body.len == 0) {
        if (rc == 0)
            snprintf(msg, sizeof(msg), "HTTP %ld%s for the session token (IMDSv2 only)", t.status,
                     t.status == 200 ? " with an empty body" : "");
        snprintf(err, errlen, "instance metadata %s: %s", url, msg);
        http_response_cleanup(&t);
        return rc < 0 ? rc : -EACCES;
    }
    size_t hl = strlen("X-aws-ec2-metadata-token: ") + t.body.len + 1;
    char *hdr = secmem_alloc(hl);
    if (!hdr) {
        http_response_cleanup(&t);
        return -ENOMEM;
    }
    snprintf(hdr, hl, "X-aws-ec2-metadata-token: %.*s", (int)t.body.len, (const char *)t.body.data);
    http_response_cleanup(&t);
    const char *hdrs[] = {hdr, NULL};
    struct http_request get = {.method = "GET", .path = path, .headers = hdrs};
    rc = http_perform(*slot, &get, r, msg, sizeof(msg));
    secmem_free(hdr);
    if (rc < 0)
        snprintf(err, errlen, "instance metadata %s: %s", path, msg);
    else if (r->status != 200) {
        snprintf(err, errlen, "instance metadata %s: HTTP %ld", path, r->status);
        rc = r->status == 404 ? -ENOENT : -EAGAIN;
    }
    return rc;
}

/* The role name: the first line of the listing (not NUL-terminated),
 * bounded by its length. 0, -ENOENT when there is none that fits, or
 * -EPROTO when it is not an IAM role name: it goes into the next URL. */
UNITTEST_STATIC int aws_imds_role(const struct secbuf *body, char *role, size_t cap)
{
    size_t n = 0;
    while (n < body->len && body->data[n] != '\r' && body->data[n] != '\n')
        n++;
    if (n == 0 || n >= cap)
        return -ENOENT;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = body->data[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("+=,.@_-", c)) || c == '\0')
            return -EPROTO;
    }
    memcpy(role, body->data, n);
    role[n] = '\0';
    return 0;
}

int aws_imds_creds(struct aws_chain *c, struct aws_creds *out, char *err, size_t errlen)
{
    static const char base[] = "/latest/meta-data/iam/security-credentials/";
    struct http_response r;
    char path[512], role[256];
    http_response_init(&r);
    int rc = aws_imds_get(c, &c->meta, base, &r, err, errlen);
    if (rc == 0) {
        rc = aws_imds_role(&r.body, role, sizeof(role));
        if (rc == -EPROTO) {
            snprintf(err, errlen, "instance metadata: the role listing does not hold an IAM "
                     "role name");
        } else if (rc < 0) {
            snprintf(err, errlen, "instance metadata: no IAM role attached to this instance");
        } else {
            snprintf(path, sizeof(path), "%s%s", base, role);
            rc = aws_imds_get(c, &c->meta, path, &r, err, errlen);
            if (rc == 0)
                rc = aws_creds_from_json(&r.body, "instance metadata", out, err, errlen);
        }
    }
    http_response_cleanup(&r);
    return rc;
}
