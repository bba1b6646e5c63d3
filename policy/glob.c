/* glob.c - the policy's globs (glob.h).
 *
 * Two levels of the same loop: within a segment, '*' against characters;
 * across segments, '**' against whole segments. Each is the two-pointer
 * backtrack of fnmatch-like matchers (remember the last star and where the
 * string stood; on a mismatch, let that star eat one more): the last star
 * is the only one worth backtracking to, because whatever an earlier star
 * could have eaten the later one can eat too. So no recursion, and no
 * exponential case ("*a*a*a*b", or many "**" segments, against a long
 * string that does not match).
 */
#include "policy/glob.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The end of the segment that starts at p: the next unescaped '/' or the
 * terminating NUL. A backslash before the NUL is left alone. */
static const char *pat_seg_end(const char *p)
{
    while (*p && *p != '/') {
        if (*p == '\\' && p[1])
            p++;
        p++;
    }
    return p;
}

static const char *str_seg_end(const char *s)
{
    const char *e = strchr(s, '/');
    return e ? e : s + strlen(s);
}

static bool is_globstar(const char *p, const char *pe)
{
    return pe - p == 2 && p[0] == '*' && p[1] == '*';
}

/* The set at p ('[' itself) within [p, pe): *end is set past its ']' and
 * *hit to whether c is in it. false when the set is not closed before pe
 * (the '[' is then a literal character). */
static bool match_set(const char *p, const char *pe, char c, const char **end, bool *hit)
{
    const char *q = p + 1;
    bool neg = false, in = false;
    if (q < pe && (*q == '!' || *q == '^')) {
        neg = true;
        q++;
    }
    for (bool first = true; q < pe; first = false) {
        if (*q == ']' && !first) {
            *end = q + 1;
            *hit = in != neg;
            return true;
        }
        unsigned char lo = (unsigned char)*q;
        if (*q == '\\' && q + 1 < pe)
            lo = (unsigned char)*++q;
        q++;
        unsigned char hi = lo;
        if (q + 1 < pe && *q == '-' && q[1] != ']') {
            q++;
            if (*q == '\\' && q + 1 < pe)
                q++;
            hi = (unsigned char)*q++;
        }
        if ((unsigned char)c >= lo && (unsigned char)c <= hi)
            in = true;
    }
    return false;
}

/* One pattern element at *pp (not '*') against c; advances *pp. */
static bool match_one(const char **pp, const char *pe, char c)
{
    const char *p = *pp;
    if (*p == '?') {
        *pp = p + 1;
        return true;
    }
    if (*p == '[') {
        const char *end;
        bool hit;
        if (match_set(p, pe, c, &end, &hit)) {
            *pp = end;
            return hit;
        }
    } else if (*p == '\\' && p + 1 < pe) {
        p++;
    }
    *pp = p + 1;
    return *p == c;
}

/* One segment of pattern [p, pe) against one of the string [s, se). */
static bool match_segment(const char *p, const char *pe, const char *s, const char *se)
{
    const char *star_p = NULL, *star_s = NULL;
    while (s < se) {
        if (p < pe && *p == '*') {
            while (p < pe && *p == '*')
                p++;
            star_p = p;
            star_s = s;
            continue;
        }
        const char *next = p;
        if (p < pe && match_one(&next, pe, *s)) {
            p = next;
            s++;
            continue;
        }
        if (!star_p)
            return false;
        p = star_p;
        s = ++star_s;
    }
    while (p < pe && *p == '*')
        p++;
    return p == pe;
}

bool policy_glob_match(const char *pattern, const char *string)
{
    /* Cursors at the start of a segment; NULL once the last one is used. */
    const char *p = pattern, *s = string, *star_p = NULL, *star_s = NULL;
    bool starred = false;
    while (s) {
        const char *se = str_seg_end(s);
        const char *pe = p ? pat_seg_end(p) : NULL;
        if (p && is_globstar(p, pe)) {
            /* Zero segments first; each mismatch later gives it one more. */
            p = *pe ? pe + 1 : NULL;
            star_p = p;
            star_s = s;
            starred = true;
            continue;
        }
        if (p && match_segment(p, pe, s, se)) {
            p = *pe ? pe + 1 : NULL;
            s = *se ? se + 1 : NULL;
            continue;
        }
        if (!starred)
            return false;
        const char *sse = str_seg_end(star_s);
        star_s = *sse ? sse + 1 : NULL;
        if (!star_s) {
            /* The star took everything: only a pattern that ends here (or
             * with more "**") matches. */
            s = NULL;
            p = star_p;
            break;
        }
        p = star_p;
        s = star_s;
    }
    while (p) {
        const char *pe = pat_seg_end(p);
        if (!is_globstar(p, pe))
            return false;
        p = *pe ? pe + 1 : NULL;
    }
    return true;
}

static int glob_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int glob_fail(char *err, size_t errlen, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "bad glob: %s", what);
    return -EINVAL;
}

/* The set at p ('['): its end past ']' in *end, or an error. Characters
 * are counted from 1 in messages. */
static int check_set(const char *pattern, const char *p, const char **end, char *err,
                     size_t errlen)
{
    const char *q = p + 1;
    size_t at = (size_t)(p - pattern) + 1;
    if (*q == '!' || *q == '^')
        q++;
    for (bool first = true;; first = false) {
        if (*q == '\0')
            return glob_fail(err, errlen, "'[' at character %zu is not closed by ']'", at);
        if (*q == ']' && !first) {
            *end = q + 1;
            return 0;
        }
        if (*q == '/')
            return glob_fail(err, errlen, "the set at character %zu holds '/', which no set "
                             "matches (a segment has no '/')", at);
        unsigned char lo = (unsigned char)*q;
        if (*q == '\\') {
            if (q[1] == '\0')
                return glob_fail(err, errlen, "'[' at character %zu is not closed by ']'", at);
            lo = (unsigned char)*++q;
        }
        q++;
        if (*q == '-' && q[1] != ']' && q[1] != '\0') {
            q++;
            if (*q == '/')
                return glob_fail(err, errlen, "the set at character %zu holds '/', which no "
                                 "set matches (a segment has no '/')", at);
            if (*q == '\\' && q[1])
                q++;
            unsigned char hi = (unsigned char)*q++;
            if (hi < lo)
                return glob_fail(err, errlen, "the set at character %zu has a reversed range",
                                 at);
        }
    }
}

int policy_glob_check(const char *pattern, char *err, size_t errlen)
{
    const char *seg = pattern;
    if (pattern[0] == '\0')
        return glob_fail(err, errlen, "empty");
    for (const char *p = pattern; *p;) {
        size_t at = (size_t)(p - pattern) + 1;
        if (*p == '/') {
            seg = ++p;
        } else if (*p == '*' && p[1] == '*') {
            if (p != seg || (p[2] != '\0' && p[2] != '/'))
                return glob_fail(err, errlen, "'**' at character %zu must be a whole segment "
                                 "(as in \"a/**/b\"); '*' alone stays within one", at);
            p += 2;
        } else if (*p == '\\') {
            if (p[1] == '\0')
                return glob_fail(err, errlen, "trailing backslash at character %zu", at);
            if (p[1] == '/')
                return glob_fail(err, errlen, "'/' escaped at character %zu: a '/' always "
                                 "separates segments", at);
            p += 2;
        } else if (*p == '[') {
            int rc = check_set(pattern, p, &p, err, errlen);
            if (rc < 0)
                return rc;
        } else {
            p++;
        }
    }
    return 0;
}
