/* name.c - what a gcp reference names.
 *
 *   SECRET                                       the backend's project (and location)
 *   projects/P/secrets/S[/versions/V]            a full resource name
 *   projects/P/locations/L/secrets/S[/versions/V]   a regional one
 *
 * with ?version=N|latest instead of /versions/V (not both). Every part is
 * checked against Google's rules here, at configuration time, so a
 * request path never needs escaping: secret ids ^[A-Za-z0-9_-]{1,255}$,
 * project ids ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ or a project number,
 * locations ^[a-z][a-z0-9-]{0,62}$, versions a number from 1 or "latest".
 */
#include "backends/gcp/gcp_i.h"
#include "lib/escape.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define DIGITS "0123456789"

bool gcp_project_ok(const char *s)
{
    size_t n = strlen(s);
    if (n >= 1 && n <= 20 && strspn(s, DIGITS) == n && s[0] != '0')
        return true;   /* a project number */
    return n >= 6 && n <= GCP_PROJECT_MAX && strchr(LOWER, s[0]) && s[0] &&
           strspn(s, LOWER DIGITS "-") == n && s[n - 1] != '-';
}

bool gcp_location_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= GCP_LOCATION_MAX && s[0] && strchr(LOWER, s[0]) &&
           strspn(s, LOWER DIGITS "-") == n;
}

static bool secret_ok(const char *s, size_t n)
{
    return n >= 1 && n <= GCP_SECRET_MAX &&
           strspn(s, LOWER "ABCDEFGHIJKLMNOPQRSTUVWXYZ" DIGITS "_-") >= n;
}

static bool version_ok(const char *s, size_t n)
{
    if (n == 6 && strncmp(s, "latest", 6) == 0)
        return true;
    return n >= 1 && n <= 19 && s[0] != '0' && strspn(s, DIGITS) >= n;
}

/* Copy segment [s, s+n) into out (cap bytes) when it fits. */
static bool seg_copy(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static int bad(const char *what, const char *s, size_t n, const char *rule, char *err,
               size_t errlen)
{
    char shown[96];
    escape_bytes(shown, sizeof(shown), s, n, ESCAPE_SQUOTE);
    snprintf(err, errlen, "gcp %s '%s': %s", what, shown, rule);
    return -EINVAL;
}

#define SECRET_RULE "expected 1 to 255 letters, digits, '_' and '-'"
#define PROJECT_RULE "expected a project id (6 to 30 of a-z, 0-9, '-', starting with a letter) or " \
                     "a project number"
#define LOCATION_RULE "expected a location such as us-central1"
#define VERSION_RULE "expected a version number (1, 2, ...) or latest"
#define FULL_RULE "expected SECRET or projects/P/[locations/L/]secrets/S[/versions/V]"

/* A full resource name: the segments after "projects/". */
static int parse_full(const char *p, struct gcp_name *n, const char **ver, size_t *vlen,
                      char *err, size_t errlen)
{
    const char *seg[8];
    size_t len[8], k = 0;
    const char *s = p;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (k == 8)
            return bad("resource name", p, strlen(p), FULL_RULE, err, errlen);
        seg[k] = s;
        len[k++] = l;
        if (!e)
            break;
        s = e + 1;
    }
    /* projects P [locations L] secrets S [versions V] */
    size_t i = 0;
    bool regional = k >= 4 && len[2] == 9 && strncmp(seg[2], "locations", 9) == 0;
    size_t base = regional ? 6 : 4;
    if ((k != base && k != base + 2) || len[0] != 8 || strncmp(seg[0], "projects", 8) != 0 ||
        len[base - 2] != 7 || strncmp(seg[base - 2], "secrets", 7) != 0 ||
        (k == base + 2 && (len[base] != 8 || strncmp(seg[base], "versions", 8) != 0)))
        return bad("resource name", p, strlen(p), FULL_RULE, err, errlen);
    i = 1;
    if (!seg_copy(n->project, sizeof(n->project), seg[i], len[i]) || !gcp_project_ok(n->project))
        return bad("project", seg[i], len[i], PROJECT_RULE, err, errlen);
    if (regional) {
        i = 3;
        if (!seg_copy(n->location, sizeof(n->location), seg[i], len[i]) ||
            !gcp_location_ok(n->location))
            return bad("location", seg[i], len[i], LOCATION_RULE, err, errlen);
    }
    i = base - 1;
    if (!secret_ok(seg[i], len[i]) || !seg_copy(n->secret, sizeof(n->secret), seg[i], len[i]))
        return bad("secret id", seg[i], len[i], SECRET_RULE, err, errlen);
    if (k == base + 2) {
        *ver = seg[base + 1];
        *vlen = len[base + 1];
    }
    return 0;
}

int gcp_name_parse(const struct secret_ref *ref, const char *project, const char *location,
                   struct gcp_name *n, char *err, size_t errlen)
{
    const char *p = ref->path, *ver = NULL;
    size_t vlen = 0;
    int rc;

    memset(n, 0, sizeof(*n));
    if (strncmp(p, "projects/", 9) == 0) {
        if ((rc = parse_full(p, n, &ver, &vlen, err, errlen)) < 0)
            return rc;
    } else {
        if (!secret_ok(p, strlen(p)))
            return bad("secret id", p, strlen(p),
                       strchr(p, '/') ? FULL_RULE : SECRET_RULE, err, errlen);
        snprintf(n->secret, sizeof(n->secret), "%s", p);
        if (project)
            snprintf(n->project, sizeof(n->project), "%s", project);
        if (location)
            snprintf(n->location, sizeof(n->location), "%s", location);
    }
    if (ver && ref->version) {
        snprintf(err, errlen, "gcp reference names its version twice (/versions/ and ?version=)");
        return -EINVAL;
    }
    if (!ver && ref->version) {
        ver = ref->version;
        vlen = strlen(ver);
    }
    if (!ver) {
        ver = "latest";
        vlen = 6;
    }
    if (!version_ok(ver, vlen))
        return bad("version", ver, vlen, VERSION_RULE, err, errlen);
    memcpy(n->version, ver, vlen);
    n->version[vlen] = '\0';
    return 0;
}
