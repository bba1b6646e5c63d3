/* jsonpos.c - find where a JSON path sits in the source text.
 *
 * The text was already accepted by jansson, so this is a lenient walker: it
 * only needs to tell values apart, not validate them. It still checks every
 * bound, and gives up (-EINVAL) on anything it does not understand rather
 * than guessing a position. Nothing here recurses: containers that are not
 * on the path are skipped by counting brackets, so deep nesting cannot
 * exhaust the stack.
 */
#include "lib/jsonpos.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

struct jp {
    const unsigned char *s;
    size_t len, pos;
    int line, col;   /* col: characters consumed on this line so far */
};

/* Mirrors jansson's utf8_check_first(): its error columns count a character
 * when its first byte is read, so ours must too, or "config.json:3:15"
 * would point elsewhere than jansson's own syntax errors on the same line. */
static int counts_as_char(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c <= 0xC1)   /* continuation bytes and overlong leads */
        return 0;
    return c <= 0xF4;
}

static void advance(struct jp *p)
{
    unsigned char c = p->s[p->pos++];
    if (c == '\n') {
        p->line++;
        p->col = 0;
    } else if (counts_as_char(c)) {
        p->col++;
    }
}

static int peek(const struct jp *p)
{
    return p->pos < p->len ? p->s[p->pos] : -1;
}

/* jansson's whitespace set: no form feed, no vertical tab. */
static void skip_ws(struct jp *p)
{
    for (;;) {
        int c = peek(p);
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        advance(p);
    }
}

static int hex4(struct jp *p, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        int c = peek(p);
        if (c >= '0' && c <= '9')
            v = v * 16 + (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (uint32_t)(c - 'A' + 10);
        else
            return -EINVAL;
        advance(p);
    }
    *out = v;
    return 0;
}

/* Compare decoded bytes against want[0..wlen) as they are produced. */
struct keycmp {
    const char *want;
    size_t wlen, at;
    int mismatch;
};

static void key_byte(struct keycmp *k, unsigned char b)
{
    if (k->at < k->wlen && (unsigned char)k->want[k->at] == b)
        k->at++;
    else
        k->mismatch = 1;
}

static int key_codepoint(struct keycmp *k, uint32_t cp)
{
    if (cp < 0x80) {
        key_byte(k, (unsigned char)cp);
    } else if (cp < 0x800) {
        key_byte(k, (unsigned char)(0xC0 | (cp >> 6)));
        key_byte(k, (unsigned char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        key_byte(k, (unsigned char)(0xE0 | (cp >> 12)));
        key_byte(k, (unsigned char)(0x80 | ((cp >> 6) & 0x3F)));
        key_byte(k, (unsigned char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x110000) {
        key_byte(k, (unsigned char)(0xF0 | (cp >> 18)));
        key_byte(k, (unsigned char)(0x80 | ((cp >> 12) & 0x3F)));
        key_byte(k, (unsigned char)(0x80 | ((cp >> 6) & 0x3F)));
        key_byte(k, (unsigned char)(0x80 | (cp & 0x3F)));
    } else {
        return -EINVAL;
    }
    return 0;
}

/* At a '"': consume the whole string. With k, also decode it (escapes,
 * \uXXXX and surrogate pairs, as jansson does) and compare. */
static int read_string(struct jp *p, struct keycmp *k)
{
    if (peek(p) != '"')
        return -EINVAL;
    advance(p);
    for (;;) {
        int c = peek(p);
        if (c < 0)
            return -EINVAL;
        advance(p);
        if (c == '"')
            return 0;
        if (c != '\\') {
            if (k)
                key_byte(k, (unsigned char)c);
            continue;
        }
        c = peek(p);
        if (c < 0)
            return -EINVAL;
        advance(p);
        if (c == 'u') {
            uint32_t cp, lo;
            if (hex4(p, &cp) < 0)
                return -EINVAL;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* jansson rejects a lone high surrogate; so do we. */
                if (peek(p) != '\\')
                    return -EINVAL;
                advance(p);
                if (peek(p) != 'u')
                    return -EINVAL;
                advance(p);
                if (hex4(p, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return -EINVAL;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -EINVAL;
            }
            if (k && key_codepoint(k, cp) < 0)
                return -EINVAL;
            continue;
        }
        if (k) {
            unsigned char b;
            switch (c) {
            case '"': b = '"'; break;
            case '\\': b = '\\'; break;
            case '/': b = '/'; break;
            case 'b': b = '\b'; break;
            case 'f': b = '\f'; break;
            case 'n': b = '\n'; break;
            case 'r': b = '\r'; break;
            case 't': b = '\t'; break;
            default: return -EINVAL;
            }
            key_byte(k, b);
        }
    }
}

/* Skip one value of any kind, starting at its first character. */
static int skip_value(struct jp *p)
{
    size_t depth = 0;
    int c = peek(p);

    if (c != '{' && c != '[') {
        if (c == '"')
            return read_string(p, NULL);
        /* Numbers, true, false, null. */
        size_t start = p->pos;
        for (;;) {
            c = peek(p);
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '+' || c == '.'))
                break;
            advance(p);
        }
        return p->pos > start ? 0 : -EINVAL;
    }
    for (;;) {
        c = peek(p);
        if (c < 0)
            return -EINVAL;
        if (c == '"') {
            if (read_string(p, NULL) < 0)
                return -EINVAL;
            continue;
        }
        advance(p);
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return 0;
        }
    }
}

/* Array indexes as jsonpos callers spell them: plain decimal. */
static int parse_index(const char *s, size_t *out)
{
    size_t v = 0;

    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return -ENOENT;
    for (const char *c = s; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return -ENOENT;
        if (v > (SIZE_MAX - 9) / 10)
            return -ENOENT;
        v = v * 10 + (size_t)(*c - '0');
    }
    *out = v;
    return 0;
}

/* At '{': leave p at the value of the last member named key (jansson keeps
 * the last of duplicate keys) and report where that key's quote was. */
static int find_member(struct jp *p, const char *key, struct jp *key_at)
{
    struct jp found_val = {NULL, 0, 0, 0, 0};
    int found = 0;

    advance(p);   /* '{' */
    skip_ws(p);
    if (peek(p) == '}')
        return -ENOENT;
    for (;;) {
        struct keycmp k = {key, strlen(key), 0, 0};
        struct jp here;

        skip_ws(p);
        here = *p;
        if (read_string(p, &k) < 0)
            return -EINVAL;
        skip_ws(p);
        if (peek(p) != ':')
            return -EINVAL;
        advance(p);
        skip_ws(p);
        if (!k.mismatch && k.at == k.wlen) {
            found = 1;
            *key_at = here;
            found_val = *p;
        }
        if (skip_value(p) < 0)
            return -EINVAL;
        skip_ws(p);
        if (peek(p) == ',') {
            advance(p);
            continue;
        }
        if (peek(p) == '}')
            break;
        return -EINVAL;
    }
    if (!found)
        return -ENOENT;
    *p = found_val;
    return 0;
}

/* At '[': leave p at element idx. */
static int find_element(struct jp *p, size_t idx)
{
    advance(p);   /* '[' */
    skip_ws(p);
    if (peek(p) == ']')
        return -ENOENT;
    for (size_t i = 0;; i++) {
        skip_ws(p);
        if (i == idx)
            return 0;
        if (skip_value(p) < 0)
            return -EINVAL;
        skip_ws(p);
        if (peek(p) == ',') {
            advance(p);
            continue;
        }
        if (peek(p) == ']')
            return -ENOENT;
        return -EINVAL;
    }
}

int jsonpos_find(const char *text, size_t len, const char *const *path, size_t n,
                 bool want_key, int *line, int *col)
{
    struct jp p = {(const unsigned char *)text, len, 0, 1, 0};
    struct jp key_at = {NULL, 0, 0, 0, 0};
    int last_was_key = 0;
    int rc;

    skip_ws(&p);
    for (size_t i = 0; i < n; i++) {
        int c = peek(&p);
        if (c == '{') {
            rc = find_member(&p, path[i], &key_at);
            last_was_key = 1;
        } else if (c == '[') {
            size_t idx;
            rc = parse_index(path[i], &idx);
            if (rc == 0)
                rc = find_element(&p, idx);
            last_was_key = 0;
        } else {
            rc = c < 0 ? -EINVAL : -ENOENT;   /* a scalar has no members */
        }
        if (rc < 0)
            return rc;
    }
    if (peek(&p) < 0)
        return -EINVAL;
    /* For an array element or the root there is no key: the value is the
     * nearest thing to point at. */
    if (want_key && n > 0 && last_was_key)
        p = key_at;
    /* The next character is ASCII ('"', '{', a digit...): it is column+1. */
    *line = p.line;
    *col = p.col + 1;
    return 0;
}

const char *jsonpos_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}
