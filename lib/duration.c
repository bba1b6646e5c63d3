/* duration.c - "90s", "5m", "1h30m", "2d", "250ms" or an integer number of
 * seconds, parsed into milliseconds. */
#include "lib/duration.h"
#include "lib/escape.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Ten years of 365 days. Nothing sane refreshes less often, and the bound
 * keeps every later computation (now + ms, ms * 1000) far from
 * overflowing. */
#define DURATION_MAX_MS (10LL * 365 * 86400 * 1000)

#define DURATION_HINT \
    "expected a duration such as \"90s\", \"5m\", \"1h30m\", \"250ms\" or a number of seconds"

/* Largest first: a duration must list its units in this order. */
static const struct {
    const char *unit;
    long long ms;
} duration_units[] = {
    {"d", 86400000},
    {"h", 3600000},
    {"m", 60000},
    {"s", 1000},
    {"ms", 1},
};
#define N_UNITS (sizeof(duration_units) / sizeof(duration_units[0]))

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int unit_index(const char *u, size_t n)
{
    for (size_t i = 0; i < N_UNITS; i++) {
        if (strlen(duration_units[i].unit) == n && memcmp(duration_units[i].unit, u, n) == 0)
            return (int)i;
    }
    return -1;
}

/* The one message for a character no duration may hold. */
static void bad_char(char *err, size_t errlen, const char *q, unsigned char c)
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(err, errlen,
                 "invalid duration \"%s\": character '%c' (0x%02x) is not allowed; " DURATION_HINT,
                 q, c, c);
    else
        snprintf(err, errlen, "invalid duration \"%s\": character 0x%02x is not allowed; "
                 DURATION_HINT, q, c);
}

int duration_parse_str(const char *s, long long *ms, char *err, size_t errlen)
{
    char q[48];   /* the input, quoted in messages: about 40 characters at most */
    long long total = 0;
    int last = -1;          /* index of the previous unit, for order checks */
    const char *p = s;

    if (s[0] == '\0') {
        snprintf(err, errlen, "empty duration; " DURATION_HINT);
        return -EINVAL;
    }
    escape_str(q, sizeof(q), s, ESCAPE_DQUOTE);
    if (s[0] == '-') {
        snprintf(err, errlen, "invalid duration \"%s\": must be positive", q);
        return -EINVAL;
    }

    while (*p != '\0') {
        long long n = 0;
        const char *num = p, *unit;
        int ui;

        if (!is_digit(*p)) {
            unsigned char c = (unsigned char)*p;
            if (is_alpha(*p))
                snprintf(err, errlen, "invalid duration \"%s\": expected a number before '%c'",
                         q, *p);
            else
                bad_char(err, errlen, q, c);
            return -EINVAL;
        }
        /* Stop accumulating as soon as the bound is crossed: no overflow. */
        while (is_digit(*p)) {
            n = n * 10 + (*p - '0');
            if (n > DURATION_MAX_MS) {
                snprintf(err, errlen, "invalid duration \"%s\": longer than 10 years", q);
                return -EINVAL;
            }
            p++;
        }
        if (*p == '.' || *p == ',') {
            snprintf(err, errlen,
                     "invalid duration \"%s\": fractions are not allowed (write \"1h30m\", "
                     "not \"1.5h\")", q);
            return -EINVAL;
        }
        unit = p;
        while (is_alpha(*p))
            p++;
        if (p == unit) {
            /* Bare digits mean seconds, but only as the whole string: in
             * "1h5" the 5 is more likely a forgotten "m" than seconds. */
            if (*p == '\0' && num == s) {
                if (n > DURATION_MAX_MS / 1000) {
                    snprintf(err, errlen, "invalid duration \"%s\": longer than 10 years", q);
                    return -EINVAL;
                }
                total = n * 1000;
                break;
            }
            if (*p == '\0') {
                snprintf(err, errlen, "invalid duration \"%s\": missing unit after %.*s", q,
                         (int)(p - num), num);
            } else {
                bad_char(err, errlen, q, (unsigned char)*p);
            }
            return -EINVAL;
        }
        ui = unit_index(unit, (size_t)(p - unit));
        if (ui < 0) {
            snprintf(err, errlen, "invalid duration \"%s\": unknown unit '%.*s' (use d, h, m, s or ms)",
                     q, (int)(p - unit) > 8 ? 8 : (int)(p - unit), unit);
            return -EINVAL;
        }
        if (ui == last) {
            snprintf(err, errlen, "invalid duration \"%s\": unit '%s' appears twice", q,
                     duration_units[ui].unit);
            return -EINVAL;
        }
        if (ui < last) {
            snprintf(err, errlen,
                     "invalid duration \"%s\": units must go from largest to smallest (d, h, m, s, ms)",
                     q);
            return -EINVAL;
        }
        last = ui;
        /* n may be up to DURATION_MAX_MS (< 2^39) and a unit up to 86400000
         * (< 2^27): the product need not fit, so compare before multiplying
         * (fuzz_duration found "292310368385d..."). total stays <=
         * DURATION_MAX_MS, so the sum fits. */
        if (n > DURATION_MAX_MS / duration_units[ui].ms ||
            (total += n * duration_units[ui].ms) > DURATION_MAX_MS) {
            snprintf(err, errlen, "invalid duration \"%s\": longer than 10 years", q);
            return -EINVAL;
        }
    }

    if (total <= 0) {
        snprintf(err, errlen, "invalid duration \"%s\": must be greater than zero", q);
        return -EINVAL;
    }
    *ms = total;
    return 0;
}

static const char *json_kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "an unknown JSON value";
}

int duration_parse(const json_t *v, long long *ms, char *err, size_t errlen)
{
    if (!v) {
        snprintf(err, errlen, DURATION_HINT ", got nothing");
        return -EINVAL;
    }
    if (json_is_string(v)) {
        /* A string with an embedded NUL would be cut short by the C-string
         * parser and silently accepted: refuse it here. */
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            snprintf(err, errlen, "invalid duration: contains a NUL character; " DURATION_HINT);
            return -EINVAL;
        }
        return duration_parse_str(json_string_value(v), ms, err, errlen);
    }
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n <= 0) {
            snprintf(err, errlen, "invalid duration %lld: must be greater than zero",
                     (long long)n);
            return -EINVAL;
        }
        if (n > DURATION_MAX_MS / 1000) {
            snprintf(err, errlen, "invalid duration %lld: longer than 10 years", (long long)n);
            return -EINVAL;
        }
        *ms = (long long)n * 1000;
        return 0;
    }
    snprintf(err, errlen, DURATION_HINT ", got %s", json_kind_name(v));
    return -EINVAL;
}

void duration_format(long long ms, char *out, size_t cap)
{
    unsigned long long v;
    size_t o = 0;

    if (!out || cap == 0)
        return;
    out[0] = '\0';
    if (ms == 0) {
        snprintf(out, cap, "0s");
        return;
    }
    /* Negative values are never valid durations, but a caller printing a
     * difference should still see something truthful. */
    if (ms < 0) {
        v = 0ULL - (unsigned long long)ms;
        o = (size_t)snprintf(out, cap, "-");
    } else {
        v = (unsigned long long)ms;
    }
    for (size_t i = 0; i < N_UNITS && o < cap; i++) {
        unsigned long long u = (unsigned long long)duration_units[i].ms;
        unsigned long long q = v / u;
        int w;

        if (q == 0)
            continue;
        w = snprintf(out + o, cap - o, "%llu%s", q, duration_units[i].unit);
        if (w < 0)
            return;
        o += (size_t)w;
        v %= u;
    }
}
