/* oauth.h - reading a token endpoint's answer (RFC 6749 section 5.1), as
 * every bearer-token provider gets one: Entra and IMDS (Azure), Google's
 * token endpoints, STS, iamcredentials and the metadata server (GCP).
 * Pure functions over a parsed body; messages name the member, never its
 * value. */
#ifndef RS_OAUTH_H
#define RS_OAUTH_H

#include <jansson.h>
#include <stddef.h>

/* A count of seconds from a JSON number or a string of digits (IMDS sends
 * strings), clamped to max. 0 when absent, malformed or not positive. */
long long oauth_seconds(const json_t *v, long long max);

/* The bearer token in member key of an answer (e.g. "access_token"): a new
 * copy in secret memory, or NULL with a message in err when it is absent,
 * empty, longer than max bytes, holds a byte a header cannot carry (it
 * goes into an Authorization header), or the answer's token_type, when
 * present, is not Bearer. */
char *oauth_bearer(const json_t *root, const char *key, size_t max, char *err, size_t errlen);

struct http_response;
/* A successful (200) token answer {"access_token", "expires_in", "token_type"}:
 * the token (new, secret memory; at most tok_max bytes) and its lifetime in
 * seconds (clamped to ttl_max; a missing or zero one is refused). 0, or
 * -EPROTO (-ENOMEM) with a message in err. The provider reads non-200
 * answers itself: their error shapes differ. */
int oauth_answer(const struct http_response *r, size_t tok_max, long long ttl_max, char **tok,
                 long long *ttl_s, char *err, size_t errlen);

#endif
