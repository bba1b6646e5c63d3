/* escape.c - the one escaper for untrusted bytes in messages (escape.h). */
#include "lib/escape.h"

#include <stdbool.h>
#include <string.h>

#define ELLIPSIS "..."

/* Length of the valid UTF-8 sequence of a printable character (U+00A0 and
 * up, no surrogates, no overlong forms) at s, or 0. */
static size_t utf8_printable(const unsigned char *s, size_t n)
{
    unsigned cp;
    size_t len;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1fu;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < 0xa0 || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

/* The escape for byte c, or NULL when it stands for itself. */
static const char *escape_of(unsigned char c, unsigned flags, char buf[5])
{
    static const char hex[] = "0123456789abcdef";
    switch (c) {
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    case '\\': return (flags & ESCAPE_KEEP_BACKSLASH) ? NULL : "\\\\";
    case '"': if (!(flags & ESCAPE_DQUOTE)) return NULL; break;
    case '\'': if (!(flags & ESCAPE_SQUOTE)) return NULL; break;
    default:
        if (c >= 0x20 && c < 0x7f)
            return NULL;
    }
    buf[0] = '\\';
    buf[1] = 'x';
    buf[2] = hex[c >> 4];
    buf[3] = hex[c & 15];
    buf[4] = '\0';
    return buf;
}

size_t escape_bytes(char *out, size_t cap, const char *s, size_t n, unsigned flags)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0, mark = 0;
    bool cut = false;

    if (cap == 0)
        return 0;
    while (i < n) {
        char buf[5];
        const char *esc = NULL;
        size_t take = p[i] >= 0x80 ? utf8_printable(p + i, n - i) : 1;
        size_t len = take;
        if (take == 0 || p[i] < 0x80)
            esc = escape_of(p[i], flags, buf);
        if (esc) {
            take = 1;
            len = strlen(esc);
        }
        /* Where "..." would still fit if the rest does not. */
        if (o + sizeof(ELLIPSIS) <= cap)
            mark = o;
        if (o + len >= cap) {
            cut = true;
            break;
        }
        memcpy(out + o, esc ? esc : (const char *)p + i, len);
        o += len;
        i += take;
    }
    if (cut) {
        o = mark;
        if (o + sizeof(ELLIPSIS) <= cap) {
            memcpy(out + o, ELLIPSIS, sizeof(ELLIPSIS) - 1);
            o += sizeof(ELLIPSIS) - 1;
        }
    }
    out[o] = '\0';
    return o;
}

size_t escape_str(char *out, size_t cap, const char *s, unsigned flags)
{
    return escape_bytes(out, cap, s, strlen(s), flags);
}
