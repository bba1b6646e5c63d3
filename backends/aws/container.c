/* container.c - the container credentials endpoint (ECS task roles, EKS
 * pod identity): AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on the ECS agent's
 * address, or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
 * AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) as the Authorization header. */
#include "backends/aws/aws_i.h"
#include "lib/secfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define AWS_ECS_HOST "http://169.254.170.2"

static bool full_uri_allowed(const char *uri)
{
    static const char *const hosts[] = {"127.", "[::1]", "localhost", "169.254.170.2",
                                        "169.254.170.23", "[fd00:ec2::23]", NULL};
    if (strncmp(uri, "https://", 8) == 0)
        return true;
    if (strncmp(uri, "http://", 7) != 0)
        return false;
    const char *h = uri + 7;
    size_t hl = strcspn(h, ":/");
    if (h[0] == '[')
        hl = strcspn(h, "]") + 1;
    for (size_t i = 0; hosts[i]; i++) {
        size_t n = strlen(hosts[i]);
        if (hosts[i][n - 1] == '.' ? strncmp(h, hosts[i], n) == 0
                                   : (hl == n && strncmp(h, hosts[i], n) == 0))
            return true;
    }
    return false;
}

int aws_container_creds(struct aws_chain *c, struct aws_creds *out, char *err, size_t errlen)
{
    const char *rel = aws_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = aws_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *tfile = aws_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = aws_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char url[2048], *auth = NULL, *hdr = NULL, msg[384] = "";
    struct http_response r;
    int rc;

    if (rel) {
        snprintf(url, sizeof(url), "%s%s", AWS_ECS_HOST, rel);
    } else if (!full_uri_allowed(full)) {
        /* The SDKs' rule: the authorization token goes over plain http only
         * to the container agents' addresses or loopback. */
        snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI %.200s: plain http is allowed "
                 "only to loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23", full);
        return -EINVAL;
    } else {
        snprintf(url, sizeof(url), "%s", full);
    }
    if (tfile) {
        if ((rc = secfile_token(tfile, AWS_FILE_MAX, &auth, msg, sizeof(msg))) < 0) {
            snprintf(err, errlen, "container credentials token: %s", msg);
            return rc;
        }
    } else if (tok) {
        auth = secmem_strndup(tok, strlen(tok));
    }
    if (auth) {
        size_t n = strlen(auth) + 32;
        hdr = secmem_alloc(n);
        if (hdr)
            snprintf(hdr, n, "Authorization: %s", auth);
        secmem_free(auth);
        if (!hdr)
            return -ENOMEM;
    }
    rc = aws_chain_client(c, &c->meta, url, 2000, 5000, err, errlen);
    if (rc < 0) {
        secmem_free(hdr);
        return rc;
    }
    const char *headers[] = {hdr, NULL};
    struct http_request req = {.method = "GET", .path = "", .headers = hdr ? headers : NULL};
    http_response_init(&r);
    rc = http_perform(c->meta, &req, &r, msg, sizeof(msg));
    secmem_free(hdr);
    if (rc < 0)
        snprintf(err, errlen, "container credentials endpoint: %s", msg);
    else if (r.status != 200) {
        snprintf(err, errlen, "container credentials endpoint: HTTP %ld", r.status);
        rc = r.status >= 500 ? -EAGAIN : -EACCES;
    } else {
        rc = aws_creds_from_json(&r.body, "container credentials endpoint", out, err, errlen);
    }
    http_response_cleanup(&r);
    return rc;
}
