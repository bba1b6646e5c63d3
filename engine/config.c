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
#include "lib/ids.h"
#include "lib/jsonpos.h"
#include "lib/listen.h"
#include "lib/name.h"
#include "policy/rules.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_MAX_FILE (16 * 1024 * 1024)
#define CFG_MAX_PATH 6   /* deepest JSON path an error names */
#define CFG_MAX_UID 4294967294LL
#define CFG_MAX_SHOWN 256   /* a file name or key as shown in a message, escaped */
#define CFG_MAX_EXEC_MS (60 * 60 * 1000LL)   /* exec.*: longer is a typo, not a plan */
#define CFG_MAX_ENV_NAME 128
#define CFG_RESERVED_ENV "RUNSECRETS_"
#define CFG_MAX_WHERE (CFG_MAX_SHOWN + 32)   /* "file:line:col" */

/* What `defaults` gives every secret besides its attributes: the exec keys
 * that make sense fleet-wide (env does not: it must be unique). */
struct exec_defaults {
    bool required;
    enum cfg_on_change on_change;
    int on_change_signal;
};

struct cfg_ctx {
    char label[CFG_MAX_SHOWN];   /* the file name, escaped for messages */
    const char *text;
    size_t len;
    char *err;
    size_t errlen;
    unsigned flags;              /* CFG_* */
    struct exec_defaults exec_defaults;
    size_t file;                 /* index into config.files */
};

/* Format a JSON path for people: secrets.db.from, secrets["tls.crt"].mode,
 * policy.rules[2].allow (bit i of index_mask: path[i] is an array index).
 * Keys come from the file as they are: escaped, so a "\n" or an ESC in one
 * cannot split the line or reach the terminal. */
static void format_path(char *out, size_t cap, const char *const *path, size_t n,
                        unsigned index_mask)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        char key[CFG_MAX_SHOWN];
        bool plain = path[i][0] != '\0' && strspn(path[i], "abcdefghijklmnopqrstuvwxyz"
                                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-/")
                                                == strlen(path[i]);
        escape_str(key, sizeof(key), path[i], ESCAPE_DQUOTE);
        int w = (index_mask >> i) & 1u ? snprintf(out + o, cap - o, "[%s]", key)
                : plain ? snprintf(out + o, cap - o, "%s%s", i ? "." : "", key)
                        : snprintf(out + o, cap - o, "[\"%s\"]", key);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

/* "<file>:<line>:<col>: <path>: <what>" into out, at the closest
 * enclosing value that exists in the text. */
static void cfg_locate(const struct cfg_ctx *c, bool at_key, const char *const *path, size_t n,
                       unsigned index_mask, const char *raw, char *out, size_t cap)
{
    char where[512], what[512];
    int line = 0, col = 0;

    /* Messages from the validators may quote config text: whatever escapes
     * they made stay, any raw control byte does not. */
    escape_str(what, sizeof(what), raw, ESCAPE_KEEP_BACKSLASH);
    format_path(where, sizeof(where), path, n, index_mask);
    for (size_t k = n + 1; k-- > 0;) {
        if (jsonpos_find(c->text, c->len, path, k, at_key && k == n, &line, &col) == 0)
            break;
    }
    if (line > 0)
        snprintf(out, cap, "%s:%d:%d: %s%s%s", c->label, line, col, where, n ? ": " : "", what);
    else
        snprintf(out, cap, "%s: %s%s%s", c->label, where, n ? ": " : "", what);
}

static int cfg_fail(struct cfg_ctx *c, bool at_key, const char *const *path, size_t n,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int cfg_fail(struct cfg_ctx *c, bool at_key, const char *const *path, size_t n,
                    const char *fmt, ...)
{
    char raw[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    cfg_locate(c, at_key, path, n, 0, raw, c->err, c->errlen);
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

static int parse_mode(struct cfg_ctx *c, const json_t *v, const char *const *path, size_t n,
                      unsigned *out)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s || s[0] == '\0' || strlen(s) > 4 || strspn(s, "01234567") != strlen(s))
        return cfg_fail(c, false, path, n, "expected an octal mode string such as \"0440\", got %s",
                        json_is_string(v) ? "an invalid string" : jsonpos_kind(v));
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
                        CFG_MAX_UID, json_is_integer(v) ? "an out-of-range integer" : jsonpos_kind(v));
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

/* Signals an application may be asked to act on after a change. KILL and
 * STOP are not here: neither can be handled, so neither can mean "reload". */
static const struct {
    const char *name;
    int sig;
} cfg_signals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
    {"USR2", SIGUSR2}, {"TERM", SIGTERM},   {"WINCH", SIGWINCH}, {"ALRM", SIGALRM},
    {"CONT", SIGCONT}, {"ABRT", SIGABRT},   {"PIPE", SIGPIPE}, {"URG", SIGURG},
};

/* The accepted forms, from the table, so the message never drifts from it. */
static void on_change_hint(char *out, size_t cap)
{
    size_t o = 0;
    int w = snprintf(out, cap, "expected \"none\", \"restart\" or \"signal:NAME\" with NAME one of ");
    o = w > 0 ? (size_t)w : 0;
    for (size_t i = 0; i < sizeof(cfg_signals) / sizeof(cfg_signals[0]) && o < cap; i++) {
        w = snprintf(out + o, cap - o, "%s%s", i ? ", " : "", cfg_signals[i].name);
        o += w > 0 ? (size_t)w : 0;
    }
    if (o < cap)
        snprintf(out + o, cap - o, " (the SIG prefix is optional)");
}

static int parse_on_change(struct cfg_ctx *c, const json_t *v, const char *const *path, size_t n,
                           struct exec_defaults *d)
{
    char hint[256], shown[64];
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;

    on_change_hint(hint, sizeof(hint));
    if (!s)
        return cfg_fail(c, false, path, n, "%s, got %s", hint, jsonpos_kind(v));
    /* No "\u0000" gets here: the file is parsed without JSON_ALLOW_NUL. */
    escape_str(shown, sizeof(shown), s, ESCAPE_SQUOTE);
    if (strcmp(s, "none") == 0) {
        d->on_change = CFG_ON_CHANGE_NONE;
        d->on_change_signal = 0;
        return 0;
    }
    if (strcmp(s, "restart") == 0) {
        d->on_change = CFG_ON_CHANGE_RESTART;
        d->on_change_signal = 0;
        return 0;
    }
    if (strncmp(s, "signal:", 7) != 0)
        return cfg_fail(c, false, path, n, "unknown value '%s'; %s", shown, hint);
    /* Case as docker kill --signal takes it: "hup", "SIGHUP", "sigHup". */
    const char *name = s + 7;
    if (strncasecmp(name, "SIG", 3) == 0)
        name += 3;
    if ((strcasecmp(name, "KILL") == 0 || strcasecmp(name, "STOP") == 0))
        return cfg_fail(c, false, path, n, "'%s' is refused: KILL and STOP cannot be caught, so the "
                        "application could not act on them (\"restart\" starts it again); %s",
                        shown, hint);
    for (size_t i = 0; i < sizeof(cfg_signals) / sizeof(cfg_signals[0]); i++) {
        if (strcasecmp(name, cfg_signals[i].name) == 0) {
            d->on_change = CFG_ON_CHANGE_SIGNAL;
            d->on_change_signal = cfg_signals[i].sig;
            return 0;
        }
    }
    return cfg_fail(c, false, path, n, "unknown signal in '%s'; %s", shown, hint);
}

/* A name the child's environment can hold and a shell can expand; never
 * one of ours, and never one the dynamic loader reads: LD_PRELOAD set to a
 * secret's path would run a secret's bytes as code in the application. */
static int parse_env(struct cfg_ctx *c, const json_t *v, const char *const *path, size_t n,
                     const char **out)
{
    char shown[64];
    if (!json_is_string(v))
        return cfg_fail(c, false, path, n, "expected an environment variable name such as "
                        "\"DB_PASSWORD_FILE\", got %s", jsonpos_kind(v));
    const char *s = json_string_value(v);
    size_t len = strlen(s);
    escape_str(shown, sizeof(shown), s, ESCAPE_SQUOTE);
    if (len > CFG_MAX_ENV_NAME)
        return cfg_fail(c, false, path, n, "'%s' is longer than %d characters", shown,
                        CFG_MAX_ENV_NAME);
    if (len == 0 || (s[0] >= '0' && s[0] <= '9')
        || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != len)
        return cfg_fail(c, false, path, n, "'%s' is not an environment variable name (letters, "
                        "digits and '_', not starting with a digit)", shown);
    if (strncmp(s, CFG_RESERVED_ENV, strlen(CFG_RESERVED_ENV)) == 0)
        return cfg_fail(c, false, path, n, "'%s': names starting with %s are reserved for "
                        "runsecrets", shown, CFG_RESERVED_ENV);
    if (strncmp(s, "LD_", 3) == 0)
        return cfg_fail(c, false, path, n, "'%s': the dynamic loader reads LD_ variables, so it "
                        "would load the secret as code", shown);
    *out = s;
    return 0;
}

/* The exec keys of a secret or of defaults (env == NULL: defaults, where
 * check_keys has already refused env). *env is borrowed from obj. */
static int parse_exec_keys(struct cfg_ctx *c, json_t *obj, const char *const *base, size_t n,
                           struct exec_defaults *d, const char **env)
{
    const char *path[CFG_MAX_PATH + 1];
    const char *key;
    json_t *v;
    int rc = 0;

    memcpy(path, base, n * sizeof(*path));
    json_object_foreach(obj, key, v) {
        path[n] = key;
        if (strcmp(key, "required") == 0) {
            if (!json_is_boolean(v))
                return cfg_fail(c, false, path, n + 1, "expected true or false, got %s",
                                jsonpos_kind(v));
            d->required = json_is_true(v);
        } else if (strcmp(key, "on_change") == 0) {
            rc = parse_on_change(c, v, path, n + 1, d);
        } else if (env && strcmp(key, "env") == 0) {
            rc = parse_env(c, v, path, n + 1, env);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* "0", "0s", "0h0m": the zero that duration_parse refuses (a refresh of
 * zero makes no sense; a grace of zero does). The syntax is checked by
 * parsing the same text with every 0 turned into a 1. */
static bool duration_is_zero(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) == 0;
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t len = strlen(s);
    char ones[32], e[8];
    long long ms;
    if (len == 0 || len >= sizeof(ones) || strspn(s, "0dhms") != len
        || !strchr(s, '0'))
        return false;
    for (size_t i = 0; i <= len; i++)
        ones[i] = s[i] == '0' ? '1' : s[i];
    return duration_parse_str(ones, &ms, e, sizeof(e)) == 0;
}

static int parse_exec_duration(struct cfg_ctx *c, const json_t *v, const char *const *path,
                               size_t n, bool zero_ok, long long *out)
{
    char msg[256];
    long long ms = 0;
    if (!(zero_ok && duration_is_zero(v)) && duration_parse(v, &ms, msg, sizeof(msg)) < 0)
        return cfg_fail(c, false, path, n, "%s", msg);
    if (ms > CFG_MAX_EXEC_MS)
        return cfg_fail(c, false, path, n, "at most 1h");
    *out = ms;
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
        return cfg_fail(c, false, path, n, "expected an object, got %s", jsonpos_kind(v));
    return 0;
}

/* An object at path with only the allowed keys. */
static int expect_keys(struct cfg_ctx *c, json_t *obj, const char *const *allowed,
                       const char *const *path, size_t n)
{
    int rc = expect_object(c, obj, path, n);
    return rc < 0 ? rc : check_keys(c, obj, allowed, path, n);
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
    /* cfg->backends has room for every file's backends (load_all). */
    json_object_foreach(obj, name, v) {
        path[1] = name;
        if (name_validate_backend(name, msg, sizeof(msg)) < 0)
            return cfg_fail(c, true, path, 2, "invalid backend name: %s", msg);
        rc = expect_object(c, v, path, 2);
        if (rc < 0)
            return rc;
        struct cfg_backend *b = &cfg->backends[cfg->n_backends];
        b->file = c->file;
        rc = backend_conf_parse(v, c->flags & CFG_BACKEND_TYPES_ONLY ? BACKEND_CONF_TYPE_ONLY : 0,
                                &b->conf, msg, sizeof(msg));
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

/* The files of one load, for messages that name another file than the one
 * being read (set by load_all; NULL for a check within one file). */
struct cfg_files {
    struct cfg_ctx *ctx;         /* one per config.files entry */
    size_t n;
};

/* "file:line:col" of the key kind.name (backends or secrets) in its file. */
static void where_defined(const struct cfg_ctx *c, const char *kind, const char *name, char *out,
                          size_t cap)
{
    const char *path[] = {kind, name};
    int line = 0, col = 0;
    if (jsonpos_find(c->text, c->len, path, 2, true, &line, &col) == 0)
        snprintf(out, cap, "%s:%d:%d", c->label, line, col);
    else
        snprintf(out, cap, "%s", c->label);
}

/* " (in FILE:L:C)" when secret s is defined in another file than the one
 * an error is about, else "". */
static void elsewhere(const struct cfg_files *fs, const struct cfg_ctx *here,
                      const struct cfg_secret *s, char *out, size_t cap)
{
    char where[CFG_MAX_WHERE];
    out[0] = '\0';
    if (!fs || s->file == here->file || s->file >= fs->n)
        return;
    where_defined(&fs->ctx[s->file], "secrets", s->name, where, sizeof(where));
    snprintf(out, cap, " (defined at %s)", where);
}

static int cmp_secret_name(const void *a, const void *b)
{
    const struct cfg_secret *x = *(const struct cfg_secret *const *)a;
    const struct cfg_secret *y = *(const struct cfg_secret *const *)b;
    return strcmp(x->name, y->name);
}

/* "a" and "a/b" cannot both exist: a would be a file and a directory. */
static int check_name_conflicts(const struct cfg_files *fs, const struct config *cfg)
{
    int rc = 0;
    const struct cfg_secret **sorted = calloc(cfg->n_secrets + 1, sizeof(*sorted));
    if (!sorted)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n_secrets; i++)
        sorted[i] = &cfg->secrets[i];
    qsort(sorted, cfg->n_secrets, sizeof(*sorted), cmp_secret_name);
    for (size_t i = 0; i < cfg->n_secrets && rc == 0; i++) {
        const struct cfg_secret *sec = &cfg->secrets[i];
        const char *name = sec->name;
        char prefix[NAME_MAX_LEN + 1];
        for (const char *s = strchr(name, '/'); s; s = strchr(s + 1, '/')) {
            size_t l = (size_t)(s - name);
            memcpy(prefix, name, l);
            prefix[l] = '\0';
            struct cfg_secret key = {.name = prefix};
            const struct cfg_secret *kp = &key;
            const struct cfg_secret **hit = bsearch(&kp, sorted, cfg->n_secrets, sizeof(*sorted),
                                                    cmp_secret_name);
            if (hit) {
                const char *path[] = {"secrets", name};
                struct cfg_ctx *c = &fs->ctx[sec->file];
                char other[CFG_MAX_WHERE + 32];
                elsewhere(fs, c, *hit, other, sizeof(other));
                rc = cfg_fail(c, true, path, 2, "'%s' is also a secret%s, so it cannot be a "
                              "directory", prefix, other);
                break;
            }
        }
    }
    free(sorted);
    return rc;
}

/* Each variable names one file: the second secret to claim one is refused,
 * naming the first. Sorted, so a large config stays cheap to check. */
static int cmp_env(const void *a, const void *b)
{
    const struct cfg_secret *x = *(const struct cfg_secret *const *)a;
    const struct cfg_secret *y = *(const struct cfg_secret *const *)b;
    int r = strcmp(x->env, y->env);
    return r ? r : (x < y ? -1 : x > y);
}

static int check_env_conflicts(const struct cfg_files *fs, const struct config *cfg)
{
    size_t n = 0;
    const struct cfg_secret *dup = NULL, *first = NULL;
    const struct cfg_secret **byenv = calloc(cfg->n_secrets + 1, sizeof(*byenv));
    if (!byenv)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n_secrets; i++)
        if (cfg->secrets[i].env)
            byenv[n++] = &cfg->secrets[i];
    qsort(byenv, n, sizeof(*byenv), cmp_env);
    /* Report the conflict that comes first in the load order. */
    for (size_t i = 1; i < n; i++) {
        if (strcmp(byenv[i - 1]->env, byenv[i]->env) == 0 && (!dup || byenv[i] < dup)) {
            dup = byenv[i];
            first = byenv[i - 1];
        }
    }
    free(byenv);
    if (!dup)
        return 0;
    const char *path[] = {"secrets", dup->name, "env"};
    struct cfg_ctx *c = &fs->ctx[dup->file];
    char other[CFG_MAX_WHERE + 32];
    elsewhere(fs, c, first, other, sizeof(other));
    return cfg_fail(c, false, path, 3, "%s is already the env of secret '%s'%s: each variable "
                    "names one file", dup->env, first->name, other);
}

static const char *const secret_keys[] = {"from", "refresh", "max_stale", "mode", "uid", "gid",
                                          "required", "env", "on_change", NULL};

static int load_secret(struct cfg_ctx *c, struct config *cfg, const char *name, json_t *v,
                       struct cfg_secret *s)
{
    const char *path[CFG_MAX_PATH] = {"secrets", name, "from"};
    char msg[512];
    const json_t *from = v;
    const char *env = NULL;
    struct exec_defaults ex = c->exec_defaults;
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
        rc = parse_exec_keys(c, v, path, 2, &ex, &env);
        if (rc < 0)
            return rc;
        from = json_object_get(v, "from");
        if (!from)
            return cfg_fail(c, false, path, 2, "missing \"from\" (a reference such as \"local:%s\")",
                            name);
    } else if (!json_is_string(v)) {
        return cfg_fail(c, false, path, 2, "expected an object or a reference string, got %s",
                        jsonpos_kind(v));
    }
    size_t n = json_is_object(v) ? 3 : 2;
    if (!json_is_string(from))
        return cfg_fail(c, false, path, n, "expected a reference string, got %s", jsonpos_kind(from));
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
    s->file = c->file;
    s->required = ex.required;
    s->on_change = ex.on_change;
    s->on_change_signal = ex.on_change_signal;
    if (env) {
        s->env = strdup(env);
        if (!s->env)
            return -ENOMEM;
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
    /* cfg->secrets has room for every file's secrets (load_all). */
    json_object_foreach(obj, name, v) {
        rc = load_secret(c, cfg, name, v, &cfg->secrets[cfg->n_secrets]);
        if (rc < 0) {
            ref_cleanup(&cfg->secrets[cfg->n_secrets].ref);
            free(cfg->secrets[cfg->n_secrets].env);
            cfg->secrets[cfg->n_secrets].env = NULL;
            return rc;
        }
        cfg->n_secrets++;
    }
    return 0;
}

static const char *const top_keys[] = {"mount", "defaults", "exec", "admin", "policy",
                                       "include", "backends", "secrets", NULL};
static const char *const fragment_keys[] = {"backends", "secrets", NULL};
static const char *const default_keys[] = {"refresh", "max_stale", "mode", "uid", "gid",
                                           "required", "on_change", NULL};
static const char *const exec_keys[] = {"wait", "stop_grace", "debounce", NULL};
static const char *const admin_keys[] = {"listen", "mode", "group", "allow_remote", "token_file",
                                         NULL};

static int load_exec(struct cfg_ctx *c, struct config *cfg, json_t *obj)
{
    const char *path[CFG_MAX_PATH] = {"exec"};
    const char *key;
    json_t *v;
    int rc;

    cfg->exec = (struct cfg_exec){
        .wait = CFG_DEFAULT_EXEC_WAIT, .stop_grace = CFG_DEFAULT_EXEC_STOP_GRACE,
        .debounce = CFG_DEFAULT_EXEC_DEBOUNCE,
    };
    if (!obj)
        return 0;
    rc = expect_keys(c, obj, exec_keys, path, 1);
    if (rc < 0)
        return rc;
    json_object_foreach(obj, key, v) {
        path[1] = key;
        /* A wait of zero could only fail: nothing has been fetched at the
         * instant exec starts. A grace or a debounce of zero is a choice
         * (SIGKILL at once, restart at every change). */
        if (strcmp(key, "wait") == 0)
            rc = parse_exec_duration(c, v, path, 2, false, &cfg->exec.wait);
        else if (strcmp(key, "stop_grace") == 0)
            rc = parse_exec_duration(c, v, path, 2, true, &cfg->exec.stop_grace);
        else
            rc = parse_exec_duration(c, v, path, 2, true, &cfg->exec.debounce);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* admin.mode: a socket needs read and write to connect; nobody needs
 * execute, and "others" may not write (connect) to it. */
static int parse_admin_mode(struct cfg_ctx *c, const json_t *v, const char *const *path,
                            unsigned *out)
{
    unsigned m = 0;
    int rc = parse_mode(c, v, path, 2, &m);
    if (rc < 0)
        return rc;
    const char *s = json_string_value(v);
    if (m & 0111)
        return cfg_fail(c, false, path, 2, "mode %s has execute bits: a socket needs only read "
                        "and write", s);
    if (m & 0002)
        return cfg_fail(c, false, path, 2, "mode %s lets every user connect (write bit for "
                        "others): give access through \"group\" instead", s);
    if ((m & 0600) != 0600)
        return cfg_fail(c, false, path, 2, "mode %s must let the owner read and write (0600)", s);
    *out = m;
    return 0;
}

/* admin.group: a name (looked up now) or a number. */
static int parse_admin_group(struct cfg_ctx *c, const json_t *v, const char *const *path,
                             gid_t *out)
{
    if (json_is_integer(v)) {
        unsigned id = 0;
        int rc = parse_id(c, v, path, 2, &id);
        if (rc == 0)
            *out = (gid_t)id;
        return rc;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    char shown[CFG_MAX_SHOWN];
    if (!s || s[0] == '\0')
        return cfg_fail(c, false, path, 2, "expected a group name or number, got %s",
                        s ? "an empty string" : jsonpos_kind(v));
    escape_str(shown, sizeof(shown), s, ESCAPE_SQUOTE);
    if (strspn(s, "0123456789") == strlen(s)) {
        unsigned long long id = strtoull(s, NULL, 10);
        if (strlen(s) > 10 || id > CFG_MAX_UID)
            return cfg_fail(c, false, path, 2, "group id '%s' out of range", shown);
        *out = (gid_t)id;
        return 0;
    }
    /* exec --mount-from reads the container's copy of a host
     * configuration: the host's groups are not there, and it serves no
     * admin endpoint. */
    if (c->flags & CFG_BACKEND_TYPES_ONLY) {
        *out = (gid_t)-1;
        return 1;
    }
    int e = ids_group(s, out);
    if (e == -ENOENT)
        return cfg_fail(c, false, path, 2, "unknown group '%s'", shown);
    if (e < 0)
        return cfg_fail(c, false, path, 2, "cannot look up group '%s': %s", shown, strerror(-e));
    return 0;
}

/* admin.token_file: absolute, a regular file we can read, and nobody
 * else's to read (the token is a password). */
static int parse_admin_token_file(struct cfg_ctx *c, const json_t *v, const char *const *path,
                                  char **out)
{
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    char shown[CFG_MAX_SHOWN];
    struct stat st;
    if (!s || s[0] != '/')
        return cfg_fail(c, false, path, 2, "expected an absolute path");
    if (strlen(s) >= PATH_MAX)
        return cfg_fail(c, false, path, 2, "path too long");
    escape_str(shown, sizeof(shown), s, 0);
    if (!(c->flags & CFG_BACKEND_TYPES_ONLY)) {
        int fd = open(s, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
            return cfg_fail(c, false, path, 2, "cannot read %s: %s", shown, strerror(errno));
        int rc = fstat(fd, &st);
        int e = errno;
        close(fd);
        if (rc < 0)
            return cfg_fail(c, false, path, 2, "cannot read %s: %s", shown, strerror(e));
        if (!S_ISREG(st.st_mode))
            return cfg_fail(c, false, path, 2, "%s is not a regular file", shown);
        if (st.st_mode & 0044)
            return cfg_fail(c, false, path, 2, "%s is readable by %s (mode %04o): the token is "
                            "a password; chmod 0600 it", shown,
                            (st.st_mode & 0004) ? "every user" : "its group",
                            (unsigned)(st.st_mode & 07777));
    }
    *out = strdup(s);
    return *out ? 0 : -ENOMEM;
}

/* The "admin" object (main file only): where the operations endpoint
 * listens and who may use it (broker/admin.h). */
static int load_admin(struct cfg_ctx *c, struct config *cfg, json_t *obj)
{
    const char *path[CFG_MAX_PATH] = {"admin"};
    struct cfg_admin *a = &cfg->admin;
    struct listen_addr addr = {.family = LISTEN_NONE};
    char msg[256];
    const char *key;
    json_t *v;
    int rc;

    *a = (struct cfg_admin){.mode = CFG_ADMIN_DEFAULT_MODE};
    if (!obj)
        return 0;
    a->given = true;
    rc = expect_keys(c, obj, admin_keys, path, 1);
    if (rc < 0)
        return rc;
    json_object_foreach(obj, key, v) {
        path[1] = key;
        if (strcmp(key, "listen") == 0) {
            if (!json_is_string(v))
                return cfg_fail(c, false, path, 2, "expected an address such as "
                                "\"unix:/run/runsecrets/admin.sock\" or \"127.0.0.1:9464\", got %s",
                                jsonpos_kind(v));
            if (listen_addr_parse(json_string_value(v), 0, &addr, msg, sizeof(msg)) < 0)
                return cfg_fail(c, false, path, 2, "%s", msg);
            a->listen = strdup(json_string_value(v));
            rc = a->listen ? 0 : -ENOMEM;
        } else if (strcmp(key, "mode") == 0) {
            rc = parse_admin_mode(c, v, path, &a->mode);
        } else if (strcmp(key, "group") == 0) {
            rc = parse_admin_group(c, v, path, &a->gid);
            a->has_group = rc == 0;
            rc = rc > 0 ? 0 : rc;
        } else if (strcmp(key, "allow_remote") == 0) {
            if (!json_is_boolean(v))
                return cfg_fail(c, false, path, 2, "expected true or false, got %s", jsonpos_kind(v));
            a->allow_remote = json_is_true(v);
        } else {
            rc = parse_admin_token_file(c, v, path, &a->token_file);
        }
        if (rc < 0)
            return rc;
    }
    /* At load, naming the key: a broker never starts to find out. */
    if (addr.family == LISTEN_TCP && !addr.loopback && !a->allow_remote) {
        path[1] = "listen";
        return cfg_fail(c, false, path, 2, "%s is not a loopback address: set \"allow_remote\": "
                        "true (and a \"token_file\") to serve other hosts", a->listen);
    }
    if (a->allow_remote && !a->token_file) {
        path[1] = "allow_remote";
        return cfg_fail(c, false, path, 2, "allow_remote needs \"token_file\": remote clients "
                        "must present a bearer token");
    }
    return 0;
}

/* A policy error or warning's path below "policy" as config paths:
 * path[] (n returned) with numbers in num[] and their bits in *mask. */
static size_t policy_path(const struct policy_error *e, const char **path,
                          char num[][24], unsigned *mask)
{
    size_t n = 0;
    *mask = 0;
    path[n++] = "policy";
    for (size_t i = 0; i < e->n && n < CFG_MAX_PATH; i++, n++) {
        if (e->key[i]) {
            path[n] = e->key[i];
        } else {
            snprintf(num[i], sizeof(num[i]), "%zu", e->idx[i]);
            path[n] = num[i];
            *mask |= 1u << n;
        }
    }
    return n;
}

static void policy_message(const struct cfg_ctx *c, const struct policy_error *e, char *out,
                           size_t cap)
{
    const char *path[CFG_MAX_PATH];
    char num[POLICY_PATH_MAX][24];
    unsigned mask;
    size_t n = policy_path(e, path, num, &mask);
    cfg_locate(c, e->at_key, path, n, mask, e->msg, out, cap);
}

/* The "policy" object (main file only): parsed by policy/rules.c, whose
 * errors name a place below "policy" that is located here. Its warnings
 * (an executable missing under missing_ok) become cfg->warnings. */
static int load_policy(struct cfg_ctx *c, struct config *cfg, json_t *obj)
{
    struct policy_error e;
    if (!obj)
        return 0;
    int rc = policy_rules_parse(obj, c->flags & CFG_BACKEND_TYPES_ONLY ? POLICY_PARSE_FORM_ONLY : 0,
                                &cfg->policy, &e);
    if (rc == -EINVAL) {
        policy_message(c, &e, c->err, c->errlen);
        return rc;
    }
    if (rc < 0)
        return rc;
    cfg->warnings = calloc(cfg->policy->n_warnings + 1, sizeof(*cfg->warnings));
    if (!cfg->warnings)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->policy->n_warnings; i++) {
        char line[1024];
        policy_message(c, &cfg->policy->warnings[i], line, sizeof(line));
        cfg->warnings[i] = strdup(line);
        if (!cfg->warnings[i])
            return -ENOMEM;
        cfg->n_warnings++;
    }
    return 0;
}

/* The main file's own settings: mount, defaults, exec, admin. */
static int load_main(struct cfg_ctx *c, struct config *cfg, json_t *root)
{
    const char *path[CFG_MAX_PATH] = {NULL};
    json_t *v;
    unsigned set = 0;
    int rc;

    if (!json_is_object(root))
        return cfg_fail(c, false, path, 0, "the configuration must be a JSON object, got %s",
                        jsonpos_kind(root));
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
    c->exec_defaults = (struct exec_defaults){.required = true, .on_change = CFG_ON_CHANGE_NONE};
    v = json_object_get(root, "defaults");
    path[0] = "defaults";
    if (v) {
        rc = expect_object(c, v, path, 1);
        if (rc == 0 && json_object_get(v, "env")) {
            const char *epath[] = {"defaults", "env"};
            rc = cfg_fail(c, true, epath, 2, "env cannot be a default: each secret names its own "
                          "variable");
        }
        if (rc == 0)
            rc = check_keys(c, v, default_keys, path, 1);
        if (rc == 0)
            rc = parse_attrs(c, v, path, 1, &cfg->defaults, &set);
        if (rc == 0)
            rc = parse_exec_keys(c, v, path, 1, &c->exec_defaults, NULL);
        if (rc < 0)
            return rc;
        if (cfg->defaults.max_stale < cfg->defaults.refresh) {
            const char *dpath[] = {"defaults", "max_stale"};
            return cfg_fail(c, false, dpath, 2, "max_stale is shorter than refresh: secrets "
                            "would fail closed between two successful refreshes");
        }
    }
    rc = load_exec(c, cfg, json_object_get(root, "exec"));
    if (rc == 0)
        rc = load_admin(c, cfg, json_object_get(root, "admin"));
    if (rc == 0)
        rc = load_policy(c, cfg, json_object_get(root, "policy"));
    return rc;
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

/* Parse one file's text into *root; errors name the file (c->label). */
static int parse_text(struct cfg_ctx *c, json_t **root)
{
    json_error_t jerr;
    size_t ws = 0;
    while (ws < c->len && (c->text[ws] == ' ' || c->text[ws] == '\t' || c->text[ws] == '\r' ||
                           c->text[ws] == '\n'))
        ws++;
    if (ws == c->len) {
        /* jansson would say "'[' or '{' expected near end of file" at column 0. */
        snprintf(c->err, c->errlen, "%s: empty file (expected a JSON object)", c->label);
        return -EINVAL;
    }
    *root = json_loadb(c->text, c->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root) {
        syntax_error(c, &jerr);
        return -EINVAL;
    }
    return 0;
}

/* Read a whole regular file of at most CFG_MAX_FILE bytes; *text is new
 * and NUL-terminated. On failure what holds the reason, without the name. */
static int read_text(const char *path, char **text, size_t *len, char *what, size_t cap)
{
    struct stat st;
    size_t got = 0;
    char *buf = NULL;
    int rc;
    /* O_NONBLOCK: a FIFO among the fragments must not hang the broker. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0) {
        rc = -errno;
        snprintf(what, cap, "cannot open: %s", strerror(errno));
        return rc;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CFG_MAX_FILE) {
        snprintf(what, cap, "not a regular file of at most %d bytes", CFG_MAX_FILE);
        rc = -EINVAL;
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    rc = -ENOMEM;
    if (!buf) {
        snprintf(what, cap, "out of memory");
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            snprintf(what, cap, "read failed: %s", strerror(-rc));
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

/* One file of a load: the main one (files[0]), then each fragment. */
struct cfg_file {
    struct cfg_ctx c;
    char *text;     /* owned for fragments; the main file's is the caller's */
    json_t *root;   /* owned */
    dev_t dev;
    ino_t ino;
    bool have_id;
};

struct cfg_loader {
    struct cfg_file *f;
    size_t n, cap;
    struct config *cfg;
};

/* An error about include[idx] of the main file. */
static int include_fail(struct cfg_loader *L, size_t idx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int include_fail(struct cfg_loader *L, size_t idx, const char *fmt, ...)
{
    struct cfg_ctx *c = &L->f[0].c;
    char raw[512], what[512], num[24];
    int line = 0, col = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    escape_str(what, sizeof(what), raw, ESCAPE_KEEP_BACKSLASH);
    snprintf(num, sizeof(num), "%zu", idx);
    const char *path[] = {"include", num};
    if (jsonpos_find(c->text, c->len, path, 2, false, &line, &col) == 0)
        snprintf(c->err, c->errlen, "%s:%d:%d: include[%zu]: %s", c->label, line, col, idx, what);
    else
        snprintf(c->err, c->errlen, "%s: include[%zu]: %s", c->label, idx, what);
    return -EINVAL;
}

/* Read the fragment at path (named by include[idx]) unless it is a file
 * already read (matched twice, or the main file itself). */
static int add_fragment(struct cfg_loader *L, const char *path, size_t idx)
{
    char what[256], shown[CFG_MAX_SHOWN];
    struct stat st;
    int rc;

    escape_str(shown, sizeof(shown), path, 0);
    if (stat(path, &st) != 0)
        return include_fail(L, idx, "%s: cannot open: %s", shown, strerror(errno));
    /* Before any open: opening a device can do things (a watchdog). */
    if (!S_ISREG(st.st_mode))
        return include_fail(L, idx, "%s: not a regular file", shown);
    for (size_t i = 0; i < L->n; i++)
        if (L->f[i].have_id && L->f[i].dev == st.st_dev && L->f[i].ino == st.st_ino)
            return 0;
    if (L->n > CFG_MAX_FRAGMENTS)
        return include_fail(L, idx, "more than %d fragments", CFG_MAX_FRAGMENTS);
    if (L->n == L->cap) {
        size_t cap = L->cap * 2;
        struct cfg_file *f = realloc(L->f, cap * sizeof(*f));
        if (!f)
            return -ENOMEM;
        L->f = f;
        L->cap = cap;
    }
    struct cfg_file *f = &L->f[L->n];
    size_t len = 0;
    memset(f, 0, sizeof(*f));
    rc = read_text(path, &f->text, &len, what, sizeof(what));
    if (rc < 0)
        return include_fail(L, idx, "%s: %s", shown, what);
    char *copy = strdup(path);
    char **files = realloc(L->cfg->files, (L->cfg->n_files + 1) * sizeof(*files));
    if (files)
        L->cfg->files = files;
    if (!copy || !files) {
        free(copy);
        free(f->text);
        return -ENOMEM;
    }
    L->cfg->files[L->cfg->n_files++] = copy;
    f->c = L->f[0].c;   /* err, flags, exec defaults */
    f->c.text = f->text;
    f->c.len = len;
    f->c.file = L->n;
    memcpy(f->c.label, shown, sizeof(f->c.label));
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->have_id = true;
    L->n++;
    return parse_text(&f->c, &f->root);
}

static bool has_glob_magic(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* A folder in a glob that exists but cannot be read is an error; one that
 * does not exist is "no match" (conf.d not created yet). Only the folder
 * part without wildcards is checked. */
static int check_glob_dir(struct cfg_loader *L, const char *pattern, size_t idx)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(pattern, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - pattern) + (slash == pattern), pattern);
    if (has_glob_magic(dir))
        return 0;
    if (access(dir, F_OK) != 0 && errno == ENOENT)
        return 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        char shown[CFG_MAX_SHOWN];
        escape_str(shown, sizeof(shown), dir, 0);
        return include_fail(L, idx, "%s: cannot read the folder: %s", shown, strerror(errno));
    }
    close(fd);
    return 0;
}

static int load_includes(struct cfg_loader *L, json_t *inc)
{
    const char *path[] = {"include"};
    char pattern[PATH_MAX];
    size_t idx;
    json_t *v;
    int rc = 0;

    if (!json_is_array(inc))
        return cfg_fail(&L->f[0].c, false, path, 1, "expected an array of file names or globs "
                        "such as [\"conf.d/*.json\"], got %s", jsonpos_kind(inc));
    /* Relative entries are relative to the main file's folder, not the
     * working directory: the same file means the same thing from anywhere. */
    const char *main_path = L->cfg->path;
    const char *slash = strrchr(main_path, '/');
    int dirlen = slash ? (int)(slash - main_path) + 1 : 0;
    json_array_foreach(inc, idx, v) {
        if (!json_is_string(v) || json_string_value(v)[0] == '\0')
            return include_fail(L, idx, "expected a non-empty file name or glob, got %s",
                                json_is_string(v) ? "an empty string" : jsonpos_kind(v));
        const char *e = json_string_value(v);
        int w = e[0] == '/' ? snprintf(pattern, sizeof(pattern), "%s", e)
                            : snprintf(pattern, sizeof(pattern), "%.*s%s", dirlen, main_path, e);
        if (w < 0 || (size_t)w >= sizeof(pattern))
            return include_fail(L, idx, "path too long");
        if (!has_glob_magic(pattern)) {
            rc = add_fragment(L, pattern, idx);
            if (rc < 0)
                return rc;
            continue;
        }
        rc = check_glob_dir(L, pattern, idx);
        if (rc < 0)
            return rc;
        glob_t g;
        memset(&g, 0, sizeof(g));
        int grc = glob(pattern, GLOB_NOSORT, NULL, &g);
        if (grc == GLOB_NOMATCH) {
            globfree(&g);
            continue;
        }
        if (grc != 0) {
            globfree(&g);
            return grc == GLOB_NOSPACE ? -ENOMEM : include_fail(L, idx, "cannot expand the glob");
        }
        /* Byte order whatever the locale: the order is part of the meaning. */
        qsort(g.gl_pathv, g.gl_pathc, sizeof(*g.gl_pathv), cmp_str);
        for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
            rc = add_fragment(L, g.gl_pathv[i], idx);
        globfree(&g);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int check_fragment(struct cfg_loader *L, struct cfg_file *f)
{
    const char *path[CFG_MAX_PATH] = {NULL};
    const char *key;
    json_t *v;

    if (!json_is_object(f->root))
        return cfg_fail(&f->c, false, path, 0, "a fragment must be a JSON object, got %s",
                        jsonpos_kind(f->root));
    json_object_foreach(f->root, key, v) {
        for (size_t i = 0; top_keys[i]; i++) {
            if (strcmp(key, top_keys[i]) == 0 && strcmp(key, "backends") != 0 &&
                strcmp(key, "secrets") != 0) {
                path[0] = key;
                return cfg_fail(&f->c, true, path, 1, "only the main configuration (%s) may "
                                "set \"%s\"; a fragment holds \"backends\" and \"secrets\"",
                                L->f[0].c.label, key);
            }
        }
    }
    return check_keys(&f->c, f->root, fragment_keys, path, 0);
}

static int cmp_backend_name(const void *a, const void *b)
{
    const struct cfg_backend *x = *(const struct cfg_backend *const *)a;
    const struct cfg_backend *y = *(const struct cfg_backend *const *)b;
    int r = strcmp(x->name, y->name);
    return r ? r : (x < y ? -1 : x > y);
}

static int cmp_secret_order(const void *a, const void *b)
{
    const struct cfg_secret *x = *(const struct cfg_secret *const *)a;
    const struct cfg_secret *y = *(const struct cfg_secret *const *)b;
    int r = strcmp(x->name, y->name);
    return r ? r : (x < y ? -1 : x > y);
}

/* A name in two files (one file cannot hold it twice: jansson rejects
 * duplicate keys): the error is at the later definition, in load order,
 * and names the earlier one. */
static int dup_fail(struct cfg_loader *L, const char *kind, const char *name, size_t first_file,
                    size_t dup_file)
{
    char where[CFG_MAX_WHERE];
    const char *path[] = {kind, name};
    where_defined(&L->f[first_file].c, kind, name, where, sizeof(where));
    return cfg_fail(&L->f[dup_file].c, true, path, 2, "%s '%s' is defined twice: first at %s",
                    kind[0] == 'b' ? "backend" : "secret", name, where);
}

static int check_dup_backends(struct cfg_loader *L)
{
    const struct config *cfg = L->cfg;
    const struct cfg_backend *dup = NULL, *first = NULL;
    const struct cfg_backend **v = calloc(cfg->n_backends + 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n_backends; i++)
        v[i] = &cfg->backends[i];
    qsort(v, cfg->n_backends, sizeof(*v), cmp_backend_name);
    for (size_t i = 1; i < cfg->n_backends; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0 && (!dup || v[i] < dup)) {
            dup = v[i];
            first = v[i - 1];
        }
    free(v);
    return dup ? dup_fail(L, "backends", dup->name, first->file, dup->file) : 0;
}

static int check_dup_secrets(struct cfg_loader *L)
{
    const struct config *cfg = L->cfg;
    const struct cfg_secret *dup = NULL, *first = NULL;
    const struct cfg_secret **v = calloc(cfg->n_secrets + 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n_secrets; i++)
        v[i] = &cfg->secrets[i];
    qsort(v, cfg->n_secrets, sizeof(*v), cmp_secret_order);
    for (size_t i = 1; i < cfg->n_secrets; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0 && (!dup || v[i] < dup)) {
            /* The first of a run of equal names is the earliest. */
            size_t j = i - 1;
            while (j > 0 && strcmp(v[j - 1]->name, v[i]->name) == 0)
                j--;
            dup = v[i];
            first = v[j];
        }
    free(v);
    return dup ? dup_fail(L, "secrets", dup->name, first->file, dup->file) : 0;
}

/* Backends of every file first (a secret may use a backend of another
 * file), then secrets, then the checks across files. */
static int load_all(struct cfg_loader *L)
{
    struct config *cfg = L->cfg;
    size_t nb = 0, ns = 0;
    int rc;

    for (size_t i = 0; i < L->n; i++) {
        if (i > 0) {
            rc = check_fragment(L, &L->f[i]);
            if (rc < 0)
                return rc;
        }
        nb += json_object_size(json_object_get(L->f[i].root, "backends"));
        ns += json_object_size(json_object_get(L->f[i].root, "secrets"));
    }
    cfg->backends = calloc(nb + 1, sizeof(*cfg->backends));
    cfg->secrets = calloc(ns + 1, sizeof(*cfg->secrets));
    if (!cfg->backends || !cfg->secrets)
        return -ENOMEM;
    for (size_t i = 0; i < L->n; i++) {
        json_t *v = json_object_get(L->f[i].root, "backends");
        rc = v ? load_backends(&L->f[i].c, cfg, v) : 0;
        if (rc < 0)
            return rc;
    }
    rc = check_dup_backends(L);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < L->n; i++) {
        json_t *v = json_object_get(L->f[i].root, "secrets");
        rc = v ? load_secrets(&L->f[i].c, cfg, v) : 0;
        if (rc < 0)
            return rc;
    }
    rc = check_dup_secrets(L);
    if (rc < 0)
        return rc;
    struct cfg_ctx *ctx = calloc(L->n, sizeof(*ctx));
    if (!ctx)
        return -ENOMEM;
    for (size_t i = 0; i < L->n; i++)
        ctx[i] = L->f[i].c;
    struct cfg_files fs = {.ctx = ctx, .n = L->n};
    rc = check_name_conflicts(&fs, cfg);
    if (rc == 0)
        rc = check_env_conflicts(&fs, cfg);
    free(ctx);
    return rc;
}

static int load_buffer(const char *text, size_t len, const char *label, unsigned flags,
                       struct config **out, char *err, size_t errlen)
{
    struct cfg_loader L = {.n = 0};
    struct stat st;
    int rc = -ENOMEM;
    struct config *cfg = calloc(1, sizeof(*cfg));

    L.cfg = cfg;
    L.cap = 4;
    L.f = calloc(L.cap, sizeof(*L.f));
    if (!cfg || !L.f)
        goto out;
    cfg->path = strdup(label);
    cfg->files = calloc(1, sizeof(*cfg->files));
    if (!cfg->path || !cfg->files)
        goto out;
    cfg->files[0] = strdup(label);
    if (!cfg->files[0])
        goto out;
    cfg->n_files = 1;
    struct cfg_file *m = &L.f[0];
    m->c = (struct cfg_ctx){.text = text, .len = len, .err = err, .errlen = errlen,
                            .flags = flags, .file = 0};
    escape_str(m->c.label, sizeof(m->c.label), label, 0);
    /* So a glob that matches the main file does not read it again. */
    if (stat(label, &st) == 0) {
        m->dev = st.st_dev;
        m->ino = st.st_ino;
        m->have_id = true;
    }
    L.n = 1;
    rc = parse_text(&m->c, &m->root);
    if (rc < 0)
        goto out;
    rc = load_main(&m->c, cfg, m->root);
    if (rc == 0 && json_object_get(m->root, "include"))
        rc = load_includes(&L, json_object_get(m->root, "include"));
    if (rc == 0)
        rc = load_all(&L);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "%s: out of memory", m->c.label);
    if (rc < 0)
        goto out;
    *out = cfg;
    cfg = NULL;
    rc = 0;
out:
    for (size_t i = 0; i < L.n; i++) {
        json_decref(L.f[i].root);
        if (i > 0)
            free(L.f[i].text);
    }
    free(L.f);
    cfg_free(cfg);
    return rc;
}

int cfg_load_buffer(const char *text, size_t len, const char *label, struct config **out,
                    char *err, size_t errlen)
{
    return load_buffer(text, len, label, 0, out, err, errlen);
}

int cfg_load(const char *path, struct config **out, char *err, size_t errlen)
{
    return cfg_load_opts(path, 0, out, err, errlen);
}

int cfg_load_opts(const char *path, unsigned flags, struct config **out, char *err, size_t errlen)
{
    char *text = NULL, what[256];
    size_t len = 0;
    char shown[CFG_MAX_SHOWN];

    escape_str(shown, sizeof(shown), path, 0);
    int rc = read_text(path, &text, &len, what, sizeof(what));
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", shown, what);
        return rc;
    }
    rc = load_buffer(text, len, path, flags, out, err, errlen);
    free(text);
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
        free(c->secrets[i].env);
        ref_cleanup(&c->secrets[i].ref);
    }
    for (size_t i = 0; i < c->n_files; i++)
        free(c->files[i]);
    free(c->files);
    free(c->backends);
    free(c->secrets);
    free(c->mount);
    free(c->admin.listen);
    free(c->admin.token_file);
    policy_rules_free(c->policy);
    for (size_t i = 0; i < c->n_warnings; i++)
        free(c->warnings[i]);
    free(c->warnings);
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
