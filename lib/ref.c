/* ref.c - secret references: <backend>:<path>[?version=<v>|?stage=<s>][#<field>]. */
#include "lib/ref.h"
#include "lib/name.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_SYNTAX "<backend>:<path>[?version=<v>|?stage=<s>][#<field>]"

/* Pieces of a reference go back into one-line messages: show anything that
 * is not printable ASCII as \xNN and keep them short. */
static void escape_part(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0, i;

    for (i = 0; i < n && i < 64 && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    if (i < n && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o < cap ? o : cap - 1] = '\0';
}

/* ?version=<v> or ?stage=<s>: one of them, once. */
static int parse_query(const char *q, size_t n, char **version, char **stage, char *err,
                       size_t errlen)
{
    static const char *const keys[] = {"version", "stage"};
    char **outs[] = {version, stage};
    char shown[512];
    size_t i = 0;

    if (n == 0) {
        snprintf(err, errlen, "empty parameter list after '?' (supported: version, stage)");
        return -EINVAL;
    }
    if (memchr(q, '?', n)) {
        snprintf(err, errlen, "'?' may appear only once in a reference, before its parameters");
        return -EINVAL;
    }
    while (i <= n) {
        const char *p = q + i;
        const char *amp = memchr(p, '&', n - i);
        size_t m = amp ? (size_t)(amp - p) : n - i;
        const char *eq = memchr(p, '=', m);
        size_t klen = eq ? (size_t)(eq - p) : m;
        size_t k = 2;

        if (m == 0) {
            snprintf(err, errlen, "empty reference parameter (stray '&')");
            return -EINVAL;
        }
        for (size_t j = 0; j < 2; j++)
            if (klen == strlen(keys[j]) && memcmp(p, keys[j], klen) == 0)
                k = j;
        if (k == 2) {
            escape_part(shown, sizeof(shown), p, klen);
            snprintf(err, errlen, "unknown reference parameter '%s' (supported: version, stage)",
                     shown);
            return -EINVAL;
        }
        if (!eq || m - klen - 1 == 0) {
            snprintf(err, errlen, "reference parameter '%s' needs a value (?%s=<v>)", keys[k],
                     keys[k]);
            return -EINVAL;
        }
        if (*outs[k]) {
            snprintf(err, errlen, "reference parameter '%s' given twice", keys[k]);
            return -EINVAL;
        }
        if (*outs[1 - k]) {
            snprintf(err, errlen, "?version= and ?stage= exclude each other");
            return -EINVAL;
        }
        *outs[k] = strndup(eq + 1, m - klen - 1);
        if (!*outs[k]) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        i += m + 1;
    }
    return 0;
}

/* RFC 6901 syntax only: whether the tokens exist is up to the value. */
static int check_pointer(const char *f, char *err, size_t errlen)
{
    char shown[512];

    for (size_t i = 0; f[i] != '\0'; i++) {
        if (f[i] == '~' && f[i + 1] != '0' && f[i + 1] != '1') {
            escape_part(shown, sizeof(shown), f, strlen(f));
            snprintf(err, errlen,
                     "invalid JSON pointer '%s': '~' must be followed by '0' or '1' "
                     "(write '~0' for '~' and '~1' for '/')", shown);
            return -EINVAL;
        }
    }
    return 0;
}

int ref_parse(const char *s, struct secret_ref *ref, char *err, size_t errlen)
{
    struct secret_ref r = {0};
    char msg[256], shown[512];
    const char *colon, *p, *q;
    size_t len, plen;
    int rc = -EINVAL;

    memset(ref, 0, sizeof(*ref));
    len = strnlen(s, REF_MAX_LEN + 1);
    if (len == 0) {
        snprintf(err, errlen, "empty reference; expected " REF_SYNTAX);
        goto out;
    }
    if (len > REF_MAX_LEN) {
        snprintf(err, errlen, "reference is longer than %d characters", REF_MAX_LEN);
        goto out;
    }
    /* Control characters would reach backend URLs and log lines. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            snprintf(err, errlen, "control character 0x%02x is not allowed in a reference", c);
            goto out;
        }
    }
    colon = memchr(s, ':', len);
    if (!colon) {
        escape_part(shown, sizeof(shown), s, len);
        snprintf(err, errlen, "reference '%s' has no ':'; expected " REF_SYNTAX, shown);
        goto out;
    }

    rc = -ENOMEM;
    r.backend = strndup(s, (size_t)(colon - s));
    if (!r.backend) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = name_validate_backend(r.backend, msg, sizeof(msg));
    if (rc < 0) {
        snprintf(err, errlen, "invalid backend in reference: %s", msg);
        goto out;
    }

    p = colon + 1;
    plen = strcspn(p, "?#");
    if (plen == 0) {
        rc = -EINVAL;
        snprintf(err, errlen, "empty path after '%s:'; expected " REF_SYNTAX, r.backend);
        goto out;
    }
    rc = -ENOMEM;
    r.path = strndup(p, plen);
    if (!r.path) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }

    q = p + plen;
    if (*q == '?') {
        size_t qlen = strcspn(q + 1, "#");
        rc = parse_query(q + 1, qlen, &r.version, &r.stage, err, errlen);
        if (rc < 0)
            goto out;
        q += 1 + qlen;
    }
    if (*q == '#') {
        /* Everything after the first '#' is the field, '#' and '?' included:
         * JSON keys may contain anything. */
        rc = -EINVAL;
        if (q[1] == '\0') {
            snprintf(err, errlen, "empty field after '#'");
            goto out;
        }
        if (q[1] == '/') {
            rc = check_pointer(q + 1, err, errlen);
            if (rc < 0)
                goto out;
        }
        rc = -ENOMEM;
        r.field = strdup(q + 1);
        if (!r.field) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }

    *ref = r;
    memset(&r, 0, sizeof(r));   /* ownership moved */
    rc = 0;
out:
    ref_cleanup(&r);
    return rc;
}

void ref_cleanup(struct secret_ref *ref)
{
    if (!ref)
        return;
    free(ref->backend);
    free(ref->path);
    free(ref->version);
    free(ref->stage);
    free(ref->field);
    memset(ref, 0, sizeof(*ref));
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -ENOMEM;
}

int ref_copy(struct secret_ref *dst, const struct secret_ref *src)
{
    struct secret_ref r = {0};

    memset(dst, 0, sizeof(*dst));
    if (dup_opt(&r.backend, src->backend) < 0 || dup_opt(&r.path, src->path) < 0 ||
        dup_opt(&r.version, src->version) < 0 || dup_opt(&r.stage, src->stage) < 0 ||
        dup_opt(&r.field, src->field) < 0) {
        ref_cleanup(&r);
        return -ENOMEM;
    }
    *dst = r;
    return 0;
}

char *ref_format(const struct secret_ref *ref)
{
    size_t len;
    char *out;
    int w;

    if (!ref || !ref->backend || !ref->path)
        return NULL;
    len = strlen(ref->backend) + 1 + strlen(ref->path);
    if (ref->version)
        len += strlen("?version=") + strlen(ref->version);
    if (ref->stage)
        len += strlen("?stage=") + strlen(ref->stage);
    if (ref->field)
        len += 1 + strlen(ref->field);
    out = malloc(len + 1);
    if (!out)
        return NULL;
    w = snprintf(out, len + 1, "%s:%s%s%s%s%s%s%s", ref->backend, ref->path,
                 ref->version ? "?version=" : "", ref->version ? ref->version : "",
                 ref->stage ? "?stage=" : "", ref->stage ? ref->stage : "",
                 ref->field ? "#" : "", ref->field ? ref->field : "");
    if (w < 0 || (size_t)w != len) {
        free(out);
        return NULL;
    }
    return out;
}
