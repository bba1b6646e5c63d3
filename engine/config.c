/* config.c - load and validate the JSON configuration (docs/config.md).
 *
 * Every error is one line naming file:line:col, the JSON path and what is
 * wrong; jansson gives positions for syntax errors and jsonpos finds them
 * for everything else.
 */
#include "engine/config.h"
#include "backends/backend.h"
#include "lib/duration.h"
#include "lib/escape.h"
#include "lib/jsonpos.h"
#include "lib/name.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_MAX_FILE (16 * 1024 * 1024)
#define CFG_MAX_PATH 6   /* deepest JSON path an error names */
#define CFG_MAX_UID 4294967294LL
#define CFG_MAX_SHOWN 256   /* a file name or key as shown in a message, escaped */

struct cfg_ctx {
    char label[CFG_MAX_SHOWN];   /* the file name, escaped for messages */
    const char *text;
    size_t len;
    char *err;
    size_t errlen;
};

/* Format a JSON path for people: secrets.db.from, secrets["tls.crt"].mode.
 * Keys come from the file as they are: escaped, so a "\n" or an ESC in one
 * cannot split the line or reach the terminal. */
static void format_path(char *out, size_t cap, const char *const *path, size_t n)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        char key[CFG_MAX_SHOWN];
        bool plain = path[i][0] != '\0' && strspn(path[i], "abcdefghijklmnopqrstuvwxyz"
                                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-/")
                                                == strlen(path[i]);
        escape_str(key, sizeof(key), path[i], ESCAPE_DQUOTE);
        int w = plain ? snprintf(out + o, cap - o, "%s%s", i ? "." : "", key)
                      : snprintf(out + o, cap - o, "[\"%s\"]", key);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static int cfg_fail(struct cfg_ctx *c, bool at_key, const char *const *path, size_t n,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int cfg_fail(struct cfg_ctx *c, bool at_key, const char *const *path, size_t n,
                    const char *fmt, ...)
{
    char where[512], raw[512], what[512];
    int line = 0, col = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    /* Messages from the validators may quote config text: whatever escapes
     * they made stay, any raw control byte does not. */
    escape_str(what, sizeof(what), raw, ESCAPE_KEEP_BACKSLASH);
    format_path(where, sizeof(where), path, n);
    /* Fall back to the closest enclosing value that exists in the text. */
    for (size_t k = n + 1; k-- > 0;) {
        if (jsonpos_find(c->text, c->len, path, k, at_key && k == n, &line, &col) == 0)
            break;
    }
    if (line > 0)
        snprintf(c->err, c->errlen, "%s:%d:%d: %s%s%s", c->label, line, col, where,
                 n ? ": " : "", what);
    else
        snprintf(c->err, c->errlen, "%s: %s%s%s", c->label, where, n ? ": " : "", what);
    return -EINVAL;
}

/* Turn "<key>: <message>" from a backend into a located error. */
static int cfg_fail_sub(struct cfg_ctx *c, const char *const *base, size_t n, const char *sub)
{
    const char *path[CFG_MAX_PATH + 1];
    char key[128];
    const char *colon = strstr(sub, ": ");
    memcpy(path, base, n * sizeof(*path));
    if (colon && (size_t)(colon - sub) < sizeof(key) && !memchr(sub, ' ', (size_t)(colon - sub))) {
        /* "auth.method: ..." names a nested key: one path element per part. */
        size_t m = n;
        memcpy(key, sub, (size_t)(colon - sub));
        key[colon - sub] = '\0';
        for (char *part = key, *dot; part && m < CFG_MAX_PATH; part = dot ? dot + 1 : NULL) {
            dot = strchr(part, '.');
            if (dot)
                *dot = '\0';
            path[m++] = part;
        }
        return cfg_fail(c, strstr(colon, "unknown key") == colon + 2, path, m, "%s", colon + 2);
    }
    return cfg_fail(c, false, path, n, "%s", sub);
}

static const char *json_kind(const json_t *v)
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

static int parse_mode(struct cfg_ctx *c, const json_t *v, const char *const *path, size_t n,
                      unsigned *out)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s || s[0] == '\0' || strlen(s) > 4 || strspn(s, "01234567") != strlen(s))
        return cfg_fail(c, false, path, n, "expected an octal mode string such as \"0440\", got %s",
                        json_is_string(v) ? "an invalid string" : json_kind(v));
    unsigned long m = strtoul(s, NULL, 8);
    if (m > 0777)
        return cfg_fail(c, false, path, n,
                        "mode %s has special bits (setuid, setgid, sticky): only 0000-0777", s);
    *out = (unsigned)m;
    return 0;
}

static int parse_id(struct cfg_ctx *c, const json_t *v, const char *const *path, size_t n,
                    unsigned *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > CFG_MAX_UID)
        return cfg_fail(c, false, path, n, "expected a numeric id between 0 and %lld, got %s",
                        CFG_MAX_UID, json_is_integer(v) ? "an out-of-range integer" : json_kind(v));
    *out = (unsigned)json_integer_value(v);
    return 0;
}

/* Fill attrs from the keys of obj that are attributes; other keys are
 * left to the caller. Which keys were set is reported through *set. */
enum { SET_REFRESH = 1, SET_MAX_STALE = 2 };

static int parse_attrs(struct cfg_ctx *c, json_t *obj, const char *const *base, size_t n,
                       struct cfg_attrs *a, unsigned *set)
{
    const char *path[CFG_MAX_PATH + 1];
    const char *key;
    json_t *v;
    char msg[256];
    int rc;

    memcpy(path, base, n * sizeof(*path));
    json_object_foreach(obj, key, v) {
        path[n] = key;
        if (strcmp(key, "refresh") == 0 || strcmp(key, "max_stale") == 0) {
            long long ms;
            if (duration_parse(v, &ms, msg, sizeof(msg)) < 0)
                return cfg_fail(c, false, path, n + 1, "%s", msg);
            if (key[0] == 'r') {
                /* Faster than this only hammers the backend; tests go as low. */
                if (ms < CFG_MIN_REFRESH_MS)
                    return cfg_fail(c, false, path, n + 1, "refresh must be at least %dms",
                                    CFG_MIN_REFRESH_MS);
                a->refresh = ms;
                *set |= SET_REFRESH;
            } else {
                a->max_stale = ms;
                *set |= SET_MAX_STALE;
            }
        } else if (strcmp(key, "mode") == 0) {
            rc = parse_mode(c, v, path, n + 1, &a->mode);
            if (rc < 0)
                return rc;
        } else if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0) {
            unsigned id = 0;
            rc = parse_id(c, v, path, n + 1, &id);
            if (rc < 0)
                return rc;
            if (key[0] == 'u')
                a->uid = id;
            else
                a->gid = id;
        }
    }
    return 0;
}

static int check_keys(struct cfg_ctx *c, json_t *obj, const char *const *allowed,
                      const char *const *base, size_t n)
{
    const char *path[CFG_MAX_PATH + 1];
    const char *key;
    json_t *v;
    memcpy(path, base, n * sizeof(*path));
    json_object_foreach(obj, key, v) {
        size_t i;
        (void)v;
        for (i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                break;
        if (!allowed[i]) {
            char list[256] = "";
            size_t used = 0;
            for (size_t k = 0; allowed[k] && used < sizeof(list); k++) {
                int w = snprintf(list + used, sizeof(list) - used, "%s%s", k ? ", " : "", allowed[k]);
                used += w > 0 ? (size_t)w : 0;
            }
            path[n] = key;
            return cfg_fail(c, true, path, n + 1, "unknown key (expected one of: %s)", list);
        }
    }
    return 0;
}

static int expect_object(struct cfg_ctx *c, const json_t *v, const char *const *path, size_t n)
{
    if (!json_is_object(v))
        return cfg_fail(c, false, path, n, "expected an object, got %s", json_kind(v));
    return 0;
}

static int load_backends(struct cfg_ctx *c, struct config *cfg, json_t *obj)
{
    const char *path[CFG_MAX_PATH] = {"backends"};
    const char *name;
    json_t *v;
    char msg[512];
    int rc = expect_object(c, obj, path, 1);
    if (rc < 0)
        return rc;
    cfg->backends = calloc(json_object_size(obj) + 1, sizeof(*cfg->backends));
    if (!cfg->backends)
        return -ENOMEM;
    json_object_foreach(obj, name, v) {
        path[1] = name;
        if (name_validate_backend(name, msg, sizeof(msg)) < 0)
            return cfg_fail(c, true, path, 2, "invalid backend name: %s", msg);
        rc = expect_object(c, v, path, 2);
        if (rc < 0)
            return rc;
        struct cfg_backend *b = &cfg->backends[cfg->n_backends];
        rc = backend_conf_parse(v, &b->conf, msg, sizeof(msg));
        if (rc == -EINVAL)
            return cfg_fail_sub(c, path, 2, msg);
        if (rc < 0)
            return rc;
        cfg->n_backends++;
        b->name = strdup(name);
        if (!b->name)
            return -ENOMEM;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "a" and "a/b" cannot both exist: a would be a file and a directory. */
static int check_name_conflicts(struct cfg_ctx *c, const struct config *cfg)
{
    int rc = 0;
    const char **sorted = calloc(cfg->n_secrets + 1, sizeof(*sorted));
    if (!sorted)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n_secrets; i++)
        sorted[i] = cfg->secrets[i].name;
    qsort(sorted, cfg->n_secrets, sizeof(*sorted), cmp_str);
    for (size_t i = 0; i < cfg->n_secrets && rc == 0; i++) {
        const char *name = cfg->secrets[i].name;
        char prefix[NAME_MAX_LEN + 1];
        for (const char *s = strchr(name, '/'); s; s = strchr(s + 1, '/')) {
            size_t l = (size_t)(s - name);
            memcpy(prefix, name, l);
            prefix[l] = '\0';
            const char *key = prefix;
            if (bsearch(&key, sorted, cfg->n_secrets, sizeof(*sorted), cmp_str)) {
                const char *path[] = {"secrets", name};
                rc = cfg_fail(c, true, path, 2, "'%s' is also a secret, so it cannot be a directory",
                              prefix);
                break;
            }
        }
    }
    free(sorted);
    return rc;
}

static const char *const secret_keys[] = {"from", "refresh", "max_stale", "mode", "uid", "gid", NULL};

static int load_secret(struct cfg_ctx *c, struct config *cfg, const char *name, json_t *v,
                       struct cfg_secret *s)
{
    const char *path[CFG_MAX_PATH] = {"secrets", name, "from"};
    char msg[512];
    const json_t *from = v;
    unsigned set = 0;
    int rc;

    if (name_validate(name, msg, sizeof(msg)) < 0)
        return cfg_fail(c, true, path, 2, "invalid secret name: %s", msg);
    s->attrs = cfg->defaults;
    if (json_is_object(v)) {
        rc = check_keys(c, v, secret_keys, path, 2);
        if (rc < 0)
            return rc;
        rc = parse_attrs(c, v, path, 2, &s->attrs, &set);
        if (rc < 0)
            return rc;
        from = json_object_get(v, "from");
        if (!from)
            return cfg_fail(c, false, path, 2, "missing \"from\" (a reference such as \"local:%s\")",
                            name);
    } else if (!json_is_string(v)) {
        return cfg_fail(c, false, path, 2, "expected an object or a reference string, got %s",
                        json_kind(v));
    }
    size_t n = json_is_object(v) ? 3 : 2;
    if (!json_is_string(from))
        return cfg_fail(c, false, path, n, "expected a reference string, got %s", json_kind(from));
    if (ref_parse(json_string_value(from), &s->ref, msg, sizeof(msg)) < 0)
        return cfg_fail(c, false, path, n, "%s", msg);
    long bi = cfg_backend_index(cfg, s->ref.backend);
    if (bi < 0)
        return cfg_fail(c, false, path, n, "unknown backend '%s'", s->ref.backend);
    s->backend = (size_t)bi;
    if (backend_conf_check_ref(cfg->backends[bi].conf, &s->ref, msg, sizeof(msg)) < 0)
        return cfg_fail(c, false, path, n, "%s", msg);
    if (s->attrs.max_stale < s->attrs.refresh) {
        char ms[32], rf[32];
        duration_format(s->attrs.max_stale, ms, sizeof(ms));
        duration_format(s->attrs.refresh, rf, sizeof(rf));
        const char *dpath[] = {"defaults", "max_stale"};
        path[2] = (set & SET_MAX_STALE) ? "max_stale" : "refresh";
        return cfg_fail(c, false, (set & (SET_MAX_STALE | SET_REFRESH)) ? path : dpath,
                        (set & (SET_MAX_STALE | SET_REFRESH)) ? 3 : 2,
                        "max_stale (%s) is shorter than refresh (%s): the secret would fail "
                        "closed between two successful refreshes", ms, rf);
    }
    s->name = strdup(name);
    return s->name ? 0 : -ENOMEM;
}

static int load_secrets(struct cfg_ctx *c, struct config *cfg, json_t *obj)
{
    const char *path[CFG_MAX_PATH] = {"secrets"};
    const char *name;
    json_t *v;
    int rc = expect_object(c, obj, path, 1);
    if (rc < 0)
        return rc;
    cfg->secrets = calloc(json_object_size(obj) + 1, sizeof(*cfg->secrets));
    if (!cfg->secrets)
        return -ENOMEM;
    json_object_foreach(obj, name, v) {
        rc = load_secret(c, cfg, name, v, &cfg->secrets[cfg->n_secrets]);
        if (rc < 0) {
            ref_cleanup(&cfg->secrets[cfg->n_secrets].ref);
            return rc;
        }
        cfg->n_secrets++;
    }
    return check_name_conflicts(c, cfg);
}

static const char *const top_keys[] = {"mount", "defaults", "backends", "secrets", NULL};
static const char *const default_keys[] = {"refresh", "max_stale", "mode", "uid", "gid", NULL};

static int load_root(struct cfg_ctx *c, struct config *cfg, json_t *root)
{
    const char *path[CFG_MAX_PATH] = {NULL};
    json_t *v;
    unsigned set = 0;
    int rc;

    if (!json_is_object(root))
        return cfg_fail(c, false, path, 0, "the configuration must be a JSON object, got %s",
                        json_kind(root));
    rc = check_keys(c, root, top_keys, path, 0);
    if (rc < 0)
        return rc;

    v = json_object_get(root, "mount");
    path[0] = "mount";
    if (v && (!json_is_string(v) || json_string_value(v)[0] != '/'))
        return cfg_fail(c, false, path, 1, "expected an absolute path");
    if (v && strlen(json_string_value(v)) >= 4096)
        return cfg_fail(c, false, path, 1, "path too long");
    cfg->mount = strdup(v ? json_string_value(v) : CFG_DEFAULT_MOUNT);
    if (!cfg->mount)
        return -ENOMEM;

    cfg->defaults = (struct cfg_attrs){
        .refresh = CFG_DEFAULT_REFRESH, .max_stale = CFG_DEFAULT_MAX_STALE,
        .mode = CFG_DEFAULT_MODE, .uid = 0, .gid = 0,
    };
    v = json_object_get(root, "defaults");
    path[0] = "defaults";
    if (v) {
        rc = expect_object(c, v, path, 1);
        if (rc == 0)
            rc = check_keys(c, v, default_keys, path, 1);
        if (rc == 0)
            rc = parse_attrs(c, v, path, 1, &cfg->defaults, &set);
        if (rc < 0)
            return rc;
        if (cfg->defaults.max_stale < cfg->defaults.refresh) {
            const char *dpath[] = {"defaults", "max_stale"};
            return cfg_fail(c, false, dpath, 2, "max_stale is shorter than refresh: secrets "
                            "would fail closed between two successful refreshes");
        }
    }

    v = json_object_get(root, "backends");
    if (v) {
        rc = load_backends(c, cfg, v);
        if (rc < 0)
            return rc;
    }
    v = json_object_get(root, "secrets");
    if (v) {
        rc = load_secrets(c, cfg, v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* jansson's own text, except where it names one of its flags instead of
 * the problem; "near '...'" quotes config text, so it is escaped. */
static void syntax_error(struct cfg_ctx *c, const json_error_t *jerr)
{
    char what[JSON_ERROR_TEXT_LENGTH * 4];
    switch (json_error_code(jerr)) {
    case json_error_null_character:
        snprintf(what, sizeof(what), "NUL byte (\\u0000) in a string: not allowed");
        break;
    case json_error_null_byte_in_key:
        snprintf(what, sizeof(what), "NUL byte (\\u0000) in a key: not allowed");
        break;
    default:
        escape_str(what, sizeof(what), jerr->text, ESCAPE_KEEP_BACKSLASH);
    }
    snprintf(c->err, c->errlen, "%s:%d:%d: %s", c->label, jerr->line,
             jerr->column > 0 ? jerr->column : 1, what);
}

int cfg_load_buffer(const char *text, size_t len, const char *label, struct config **out,
                    char *err, size_t errlen)
{
    struct cfg_ctx c = {.text = text, .len = len, .err = err, .errlen = errlen};
    json_error_t jerr;
    int rc = -ENOMEM;
    struct config *cfg = calloc(1, sizeof(*cfg));
    json_t *root = NULL;

    escape_str(c.label, sizeof(c.label), label, 0);
    if (!cfg)
        goto out;
    cfg->path = strdup(label);
    if (!cfg->path)
        goto out;
    size_t ws = 0;
    while (ws < len && (text[ws] == ' ' || text[ws] == '\t' || text[ws] == '\r' || text[ws] == '\n'))
        ws++;
    if (ws == len) {
        /* jansson would say "'[' or '{' expected near end of file" at column 0. */
        snprintf(err, errlen, "%s: empty file (expected a JSON object)", c.label);
        rc = -EINVAL;
        goto out;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        syntax_error(&c, &jerr);
        rc = -EINVAL;
        goto out;
    }
    rc = load_root(&c, cfg, root);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "%s: out of memory", c.label);
    if (rc < 0)
        goto out;
    *out = cfg;
    cfg = NULL;
    rc = 0;
out:
    json_decref(root);
    cfg_free(cfg);
    return rc;
}

int cfg_load(const char *path, struct config **out, char *err, size_t errlen)
{
    int rc;
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    char shown[CFG_MAX_SHOWN];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    escape_str(shown, sizeof(shown), path, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot open: %s", shown, strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CFG_MAX_FILE) {
        snprintf(err, errlen, "%s: not a regular file of at most %d bytes", shown, CFG_MAX_FILE);
        rc = -EINVAL;
        goto out;
    }
    text = malloc((size_t)st.st_size + 1);
    rc = -ENOMEM;
    if (!text)
        goto out;
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, text + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            snprintf(err, errlen, "%s: read failed: %s", shown, strerror(-rc));
            goto out;
        }
        len += (size_t)n;
    }
    text[len] = '\0';
    rc = cfg_load_buffer(text, len, path, out, err, errlen);
out:
    free(text);
    close(fd);
    return rc;
}

void cfg_free(struct config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_backends; i++) {
        free(c->backends[i].name);
        backend_conf_free(c->backends[i].conf);
    }
    for (size_t i = 0; i < c->n_secrets; i++) {
        free(c->secrets[i].name);
        ref_cleanup(&c->secrets[i].ref);
    }
    free(c->backends);
    free(c->secrets);
    free(c->mount);
    free(c->path);
    free(c);
}

long cfg_backend_index(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->n_backends; i++)
        if (strcmp(c->backends[i].name, name) == 0)
            return (long)i;
    return -1;
}

long cfg_secret_index(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->n_secrets; i++)
        if (strcmp(c->secrets[i].name, name) == 0)
            return (long)i;
    return -1;
}
