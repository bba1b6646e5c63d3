/* sign.h - AWS credentials and SigV4-signed requests over the shared HTTP
 * layer: the low header of the aws folder. The credential chain (creds.h)
 * produces struct aws_creds, the Secrets Manager client and STS consume it
 * here; nothing here knows where credentials come from.
 */
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

/* The server's clock minus ours, in seconds, as the last clock-skew
 * rejection told it (0 until one came). One per backend instance: the
 * Secrets Manager client and STS sign with the same correction, and the
 * credential chain compares expirations with it. Atomic: read by every
 * signing thread, written by the one that saw the rejection. */
struct aws_clock {
    _Atomic long long skew_s;
};

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

/* Sign (SigV4) with call->skew_s and perform. Same contract as
 * http_perform. */
int aws_perform(struct http_client *c, const struct aws_call *call, struct http_response *resp,
                char *err, size_t errlen) __attribute__((warn_unused_result));

/* Who is signing, for the one log line of a clock correction:
 * "<who> rejected our clock; signing with the server's time (+7200s)". */
struct aws_skew_log {
    const char *who;               /* "aws", "aws STS" */
    const char *backend;           /* the instance's name */
};

/* aws_perform signed with clk's time (call->skew_s is ignored). When the
 * server rejects that time (400 or 403 naming a skew error, with a Date
 * header) clk takes the server's clock, the correction is logged (warn),
 * and the call is made once more. *skew_retried (may be NULL) says whether
 * that happened. Same contract as http_perform. Unsigned calls are never
 * retried: their time is not part of them. */
int aws_signed_call(struct http_client *c, const struct aws_call *call, struct aws_clock *clk,
                    const struct aws_skew_log *who, struct http_response *resp,
                    bool *skew_retried, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* AWS's error type ("ResourceNotFoundException", without the "...#"
 * namespace) and message from an error body: the JSON of API errors
 * (__type, message) or the XML ErrorResponse of authentication errors and
 * STS (Code, Message). */
void aws_error(const struct http_response *r, char *type, size_t tcap, char *msg, size_t mcap);

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
