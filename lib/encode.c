/* encode.c - see encode.h. */
#include "lib/encode.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const char hex_upper[] = "0123456789ABCDEF";

static bool keep(unsigned char c, unsigned flags)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' ||
           ((flags & ENCODE_KEEP_SLASH) && c == '/');
}

int encode_percent(struct secbuf *b, const void *p, size_t n, unsigned flags)
{
    const unsigned char *s = p;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (keep(s[i], flags)) {
            rc = secbuf_append(b, &s[i], 1);
        } else {
            char e[3] = {'%', hex_upper[s[i] >> 4], hex_upper[s[i] & 15]};
            rc = secbuf_append(b, e, 3);
        }
    }
    return rc;
}

int encode_percent_str(const char *in, char *out, size_t cap, unsigned flags)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool k = keep(*p, flags);
        /* room for what this byte becomes and the closing NUL */
        if (o + (k ? 1 : 3) >= cap)
            return -E2BIG;
        if (k) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex_upper[*p >> 4];
            out[o++] = hex_upper[*p & 15];
        }
    }
    if (cap == 0)
        return -E2BIG;
    out[o] = '\0';
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t encode_percent_decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = s[i] == '%' && i + 2 < n ? hex_value(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
        if (lo >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    return o;
}

int encode_form_field(struct secbuf *b, const char *key, const char *value)
{
    int rc = 0;
    if (b->len)
        rc = secbuf_append(b, "&", 1);
    if (rc == 0)
        rc = secbuf_append(b, key, strlen(key));
    if (rc == 0)
        rc = secbuf_append(b, "=", 1);
    if (rc == 0)
        rc = encode_percent(b, value, strlen(value), 0);
    return rc;
}
