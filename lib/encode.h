/* encode.h - the one percent-encoder (RFC 3986) and its decoder.
 *
 * URL paths (Vault's KV paths), form bodies (STS) and SigV4's canonical
 * request all need the same rule: the unreserved characters
 * (A-Z a-z 0-9 - . _ ~) as they are, every other byte as %XX with upper-case
 * hex. Paths keep '/' (ENCODE_KEEP_SLASH). What is encoded may be secret (a
 * web identity token in a form body): the secbuf variant writes straight
 * into secret memory and leaves no copy behind.
 */
#ifndef RS_ENCODE_H
#define RS_ENCODE_H

#include <stddef.h>
#include "lib/secmem.h"

/* Keep '/' as it is: the value is a path. */
#define ENCODE_KEEP_SLASH (1u << 0)

/* Append the encoding of n bytes at p to b. 0 or -E2BIG / -ENOMEM (b's
 * maximum reached: b holds a prefix, the caller discards it). */
int encode_percent(struct secbuf *b, const void *p, size_t n, unsigned flags)
    __attribute__((warn_unused_result));
/* Append "key=value" to a form body (application/x-www-form-urlencoded,
 * as Entra and STS read it), after a '&' unless b is empty; the value is
 * percent-encoded, the key taken as it is. 0 or encode_percent's errors. */
int encode_form_field(struct secbuf *b, const char *key, const char *value)
    __attribute__((warn_unused_result));
/* The encoding of the string in into out (cap bytes, NUL included). 0 or
 * -E2BIG when it does not fit (out is then unspecified). */
int encode_percent_str(const char *in, char *out, size_t cap, unsigned flags)
    __attribute__((warn_unused_result));
/* Decode every well-formed %XX of n bytes at s into out (at least n bytes);
 * anything else, a stray '%' included, is copied as it is. Returns the
 * length written (no NUL). Decoding then encoding gives one canonical form
 * whatever the input's encoding was (SigV4 signs that form). */
size_t encode_percent_decode(const char *s, size_t n, char *out);

#endif
