/* sigv4.h - AWS Signature Version 4, by hand.
 *
 * libcurl 7.88's CURLOPT_AWS_SIGV4 cannot sign with a time other than the
 * local clock (a user-supplied X-Amz-Date is signed but then sent twice, curl
 * bug #11738), and correcting clock skew needs exactly that. This signer is
 * checked against the official AWS SigV4 test suite vectors
 * (tests/unit/test_sigv4.c).
 */
#ifndef RS_SIGV4_H
#define RS_SIGV4_H

#include <stddef.h>
#include "lib/secmem.h"

struct sigv4_header {
    const char *name, *value;      /* as sent; names compare case-insensitively */
};

struct sigv4_input {
    const char *method;            /* "GET", "POST" */
    const char *path;              /* the request path as sent, already percent-encoded */
    const char *query;             /* raw query string without '?', or NULL */
    const struct sigv4_header *headers;   /* every header to sign, host and x-amz-date included */
    size_t nheaders;
    const void *payload;
    size_t payload_len;
    const char *region, *service;
    const char *akid, *secret;
    const char *amz_date;          /* "20150830T123600Z": the same as the X-Amz-Date header */
};

/* The canonical request (for tests and debugging), into out. */
int sigv4_canonical_request(const struct sigv4_input *in, struct secbuf *out)
    __attribute__((warn_unused_result));
/* The Authorization header value into out (NUL-terminated). 0 or -E2BIG /
 * -ENOMEM / -EINVAL. */
int sigv4_authorization(const struct sigv4_input *in, char *out, size_t cap)
    __attribute__((warn_unused_result));

#endif
