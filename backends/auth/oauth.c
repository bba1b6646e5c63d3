/* oauth.c - a token endpoint's answer (oauth.h). */
#include "backends/auth/oauth.h"
#include "backends/http/http.h"
#include "backends/http/json.h"
#include "lib/secmem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

long long oauth_seconds(const json_t *v, long long max)
{
    long long s = 0;
    if (json_is_integer(v)) {
        s = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *p = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0 || n > 12 || strspn(p, "0123456789") != n)
            return 0;
        s = strtoll(p, NULL, 10);
    }
    return s <= 0 ? 0 : s > max ? max : s;
}

char *oauth_bearer(const json_t *root, const char *key, size_t max, char *err, size_t errlen)
{
    const json_t *t = json_object_get(root, key);
    const json_t *type = json_object_get(root, "token_type");
    if (!json_is_string(t) || json_string_length(t) == 0) {
        snprintf(err, errlen, "no %s in the answer", key);
        return NULL;
    }
    size_t n = json_string_length(t);
    const char *s = json_string_value(t);
    if (n > max) {
        snprintf(err, errlen, "%s longer than %zu bytes", key, max);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) {
            snprintf(err, errlen, "%s holds characters a header cannot carry", key);
            return NULL;
        }
    }
    if (type && (!json_is_string(type) || strcasecmp(json_string_value(type), "Bearer") != 0)) {
        snprintf(err, errlen, "token_type is not Bearer");
        return NULL;
    }
    char *tok = secmem_strndup(s, n);
    if (!tok)
        snprintf(err, errlen, "out of memory");
    return tok;
}

int oauth_answer(const struct http_response *r, size_t tok_max, long long ttl_max, char **tok,
                 long long *ttl_s, char *err, size_t errlen)
{
    json_t *root = http_body_object(r);
    int rc = -EPROTO;
    *tok = NULL;
    if (!root) {
        snprintf(err, errlen, "HTTP 200 with a body that is not a JSON object");
        return -EPROTO;
    }
    *ttl_s = oauth_seconds(json_object_get(root, "expires_in"), ttl_max);
    if (*ttl_s == 0)
        snprintf(err, errlen, "no usable expires_in in the answer");
    else if ((*tok = oauth_bearer(root, "access_token", tok_max, err, errlen)))
        rc = 0;
    json_decref(root);
    return rc;
}
