/* aws_sign.h - AWS credentials and SigV4-signed requests over the shared
 * HTTP layer. */
#ifndef RS_AWS_SIGN_H
#define RS_AWS_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "backends/http/http.h"

/* One set of credentials. The three strings are in secret memory. */
struct aws_creds {
    char *akid, *secret, *token;   /* token NULL for long-term keys */
    time_t expiration;             /* wall clock; 0: does not expire */
    time_t obtained;
};

void aws_creds_clear(struct aws_creds *c);
/* Deep copy into dst (cleared first). 0 or -ENOMEM. */
int aws_creds_copy(struct aws_creds *dst, const struct aws_creds *src)
    __attribute__((warn_unused_result));
/* New secret-memory copy of a string, or NULL. */
char *aws_secstr(const char *s, size_t n);

/* One POST to an AWS query or JSON endpoint (path "/"). */
struct aws_call {
    const char *service;           /* signing name: "secretsmanager", "sts" */
    const char *region;
    const struct aws_creds *creds; /* NULL: unsigned (AssumeRoleWithWebIdentity) */
    long long skew_s;              /* server clock minus ours, for the signing date */
    const char *content_type;      /* "application/x-amz-json-1.1", form encoding */
    const char *target;            /* X-Amz-Target, or NULL */
    const void *body;              /* may hold secrets (a web identity token) */
    size_t body_len;
};

/* Sign (SigV4) and perform. Same contract as http_perform. */
int aws_perform(struct http_client *c, const struct aws_call *call, struct http_response *resp,
                char *err, size_t errlen) __attribute__((warn_unused_result));

/* The text of the first <tag>...</tag> in an XML body (what STS and AWS
 * auth errors answer; no attributes, no nesting of that tag), as a new
 * secret-memory string, or NULL. */
char *aws_xml_text(const struct secbuf *xml, const char *tag);

/* Whether an AWS error (type, message) rejects the request's time: signed
 * too long ago or too far ahead. */
bool aws_is_skew_error(const char *type, const char *msg);

/* Server clock minus ours, from a response's Date header (0 if absent). */
long long aws_skew_from(const struct http_response *resp);

#endif
