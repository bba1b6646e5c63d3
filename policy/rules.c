/* rules.c - the access policy's rules: parse (from the "policy" JSON
 * object) and decide (rules.h, docs/internals/policy.md). */
#include "policy/rules.h"
#include "policy/glob.h"
#include "lib/ids.h"
#include "lib/jsonpos.h"
#include "lib/duration.h"
#include "lib/escape.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ID 4294967294LL   /* (uid_t)-1 means "no change" to the kernel: never an id */
#define SHOWN 256             /* a configured string as quoted in a message */
#define CONTAINER_ID_LEN 64

static const char *const policy_keys[] = {"default", "rules", "audit", "missing_ok", NULL};
static const char *const rule_keys[] = {"secrets", "allow", "deny", "missing_ok", NULL};
static const char *const match_keys[] = {"uids", "gids", "exe", "cgroups", "containers",
                                         "pids_ns", NULL};
static const char *const audit_keys[] = {"sink", "repeat_after", NULL};

/* The parse's place in the object, for messages. */
struct pctx {
    unsigned flags;
    struct policy_rules *p;
    struct policy_error *e;
    const char *key[POLICY_PATH_MAX];
    size_t idx[POLICY_PATH_MAX];
    size_t n;
};

static void push_key(struct pctx *c, const char *key)
{
    if (c->n < POLICY_PATH_MAX) {
        c->key[c->n] = key;
        c->idx[c->n] = 0;
    }
    c->n++;
}

static void push_idx(struct pctx *c, size_t i)
{
    if (c->n < POLICY_PATH_MAX) {
        c->key[c->n] = NULL;
        c->idx[c->n] = i;
    }
    c->n++;
}

static void pop(struct pctx *c)
{
    c->n--;
}

static void where(const struct pctx *c, struct policy_error *e, bool at_key)
{
    e->n = c->n < POLICY_PATH_MAX ? c->n : POLICY_PATH_MAX;
    memcpy(e->key, c->key, e->n * sizeof(e->key[0]));
    memcpy(e->idx, c->idx, e->n * sizeof(e->idx[0]));
    e->at_key = at_key;
}

static int fail(struct pctx *c, bool at_key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct pctx *c, bool at_key, const char *fmt, ...)
{
    va_list ap;
    where(c, c->e, at_key);
    va_start(ap, fmt);
    vsnprintf(c->e->msg, sizeof(c->e->msg), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A warning at the current place: its keys must be literals (they
 * outlive the JSON), which every place below an array index of ours is. */
static int warn(struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int warn(struct pctx *c, const char *fmt, ...)
{
    struct policy_rules *p = c->p;
    struct policy_error *w = realloc(p->warnings, (p->n_warnings + 1) * sizeof(*w));
    va_list ap;
    if (!w)
        return -ENOMEM;
    p->warnings = w;
    w = &p->warnings[p->n_warnings++];
    memset(w, 0, sizeof(*w));
    where(c, w, false);
    va_start(ap, fmt);
    vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
    va_end(ap);
    return 0;
}

/* The key in our table that key is (so a path keeps a literal), or NULL. */
static const char *known_key(const char *const *allowed, const char *key)
{
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(key, allowed[i]) == 0)
            return allowed[i];
    return NULL;
}

/* obj at the current place is an object with only allowed keys. */
static int expect_keys(struct pctx *c, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    if (!json_is_object(obj))
        return fail(c, false, "expected an object, got %s", jsonpos_kind(obj));
    json_object_foreach(obj, key, v) {
        (void)v;
        if (known_key(allowed, key))
            continue;
        char list[256] = "";
        size_t used = 0;
        for (size_t k = 0; allowed[k] && used < sizeof(list); k++) {
            int w = snprintf(list + used, sizeof(list) - used, "%s%s", k ? ", " : "", allowed[k]);
            used += w > 0 ? (size_t)w : 0;
        }
        push_key(c, key);
        return fail(c, true, "unknown key (expected one of: %s)", list);
    }
    return 0;
}

static int expect_bool(struct pctx *c, const json_t *v, bool *out)
{
    if (!json_is_boolean(v))
        return fail(c, false, "expected true or false, got %s", jsonpos_kind(v));
    *out = json_is_true(v);
    return 0;
}

/* A non-empty array at the current place. */
static int expect_list(struct pctx *c, const json_t *v, const char *example)
{
    if (!json_is_array(v))
        return fail(c, false, "expected an array such as %s, got %s", example, jsonpos_kind(v));
    if (json_array_size(v) == 0)
        return fail(c, false, "empty list: it would match nothing (leave the key out instead)");
    return 0;
}

/* A user or group id: an integer, a decimal string, or a name looked up
 * now (a rule is about the account as it is at load; a reload sees a
 * renamed one). */
static int parse_id(struct pctx *c, const json_t *v, bool group, unsigned *out)
{
    const char *what = group ? "group" : "user";
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) > MAX_ID)
            return fail(c, false, "%s id out of range (0 to %lld)", what, MAX_ID);
        *out = (unsigned)json_integer_value(v);
        return 0;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    char shown[SHOWN];
    if (!s || s[0] == '\0')
        return fail(c, false, "expected a %s name or number, got %s", what,
                    s ? "an empty string" : jsonpos_kind(v));
    escape_str(shown, sizeof(shown), s, ESCAPE_SQUOTE);
    if (strspn(s, "0123456789") == strlen(s)) {
        unsigned long long id = strtoull(s, NULL, 10);
        if (strlen(s) > 10 || id > (unsigned long long)MAX_ID)
            return fail(c, false, "%s id '%s' out of range (0 to %lld)", what, shown, MAX_ID);
        *out = (unsigned)id;
        return 0;
    }
    if (c->flags & POLICY_PARSE_FORM_ONLY) {
        *out = (unsigned)-1;
        return 0;
    }
    int e;
    if (group) {
        gid_t g;
        e = ids_group(s, &g);
        if (e == 0)
            *out = g;
    } else {
        uid_t u;
        e = ids_user(s, &u, NULL);
        if (e == 0)
            *out = u;
    }
    if (e == -ENOENT)
        return fail(c, false, "unknown %s '%s'", what, shown);
    if (e < 0)
        return fail(c, false, "cannot look up %s '%s': %s", what, shown, strerror(-e));
    return 0;
}

static int parse_ids(struct pctx *c, const json_t *v, bool group, unsigned **out, size_t *n)
{
    size_t i;
    json_t *x;
    int rc = expect_list(c, v, group ? "[2000, \"wheel\"]" : "[1000, \"app\"]");
    if (rc < 0)
        return rc;
    *out = calloc(json_array_size(v), sizeof(**out));
    if (!*out)
        return -ENOMEM;
    json_array_foreach(v, i, x) {
        push_idx(c, i);
        rc = parse_id(c, x, group, &(*out)[i]);
        if (rc < 0)
            return rc;
        pop(c);
        (*n)++;
    }
    return 0;
}

/* An absolute path, stat'ed now: a rule names the file, and a file is its
 * (device, inode), so the path never needs to be read again at an open. */
static int parse_exes(struct pctx *c, const json_t *v, bool missing_ok, struct policy_match *m)
{
    size_t i;
    json_t *x;
    int rc = expect_list(c, v, "[\"/usr/local/bin/app\"]");
    if (rc < 0)
        return rc;
    m->exes = calloc(json_array_size(v), sizeof(*m->exes));
    if (!m->exes)
        return -ENOMEM;
    json_array_foreach(v, i, x) {
        const char *s = json_is_string(x) ? json_string_value(x) : NULL;
        char shown[SHOWN];
        struct stat st;
        push_idx(c, i);
        if (!s || s[0] != '/')
            return fail(c, false, "expected an absolute path to an executable, got %s",
                        s ? "a relative path" : jsonpos_kind(x));
        if (strlen(s) >= PATH_MAX)
            return fail(c, false, "path too long");
        escape_str(shown, sizeof(shown), s, 0);
        if (!(c->flags & POLICY_PARSE_FORM_ONLY)) {
            if (stat(s, &st) != 0) {
                int e = errno;
                if (!(missing_ok && (e == ENOENT || e == ENOTDIR)))
                    return fail(c, false, "%s: %s", shown, strerror(e));
                rc = warn(c, "%s: %s (missing_ok: this rule matches no executable there until "
                          "a reload finds it)", shown, strerror(e));
                if (rc < 0)
                    return rc;
                pop(c);
                continue;
            }
            if (!S_ISREG(st.st_mode))
                return fail(c, false, "%s: not a regular file", shown);
        } else {
            memset(&st, 0, sizeof(st));
        }
        struct policy_exe *pe = &m->exes[m->n_exes];
        pe->path = strdup(s);
        if (!pe->path)
            return -ENOMEM;
        pe->dev = st.st_dev;
        pe->ino = st.st_ino;
        m->n_exes++;
        pop(c);
    }
    return 0;
}

/* Globs into *out; cgroup paths (absolute) when cgroup is set. */
static int parse_globs(struct pctx *c, const json_t *v, bool cgroup, char ***out, size_t *n)
{
    size_t i;
    json_t *x;
    int rc = expect_list(c, v, cgroup ? "[\"/system.slice/app.service\"]" : "[\"db/*\"]");
    if (rc < 0)
        return rc;
    *out = calloc(json_array_size(v), sizeof(**out));
    if (!*out)
        return -ENOMEM;
    json_array_foreach(v, i, x) {
        const char *s = json_is_string(x) ? json_string_value(x) : NULL;
        char msg[256];
        push_idx(c, i);
        if (!s)
            return fail(c, false, "expected a glob string, got %s", jsonpos_kind(x));
        if (policy_glob_check(s, msg, sizeof(msg)) < 0)
            return fail(c, false, "%s", msg);
        if (cgroup && s[0] != '/')
            return fail(c, false, "a cgroup path starts with '/' (as in /proc/PID/cgroup)");
        (*out)[i] = strdup(s);
        if (!(*out)[i])
            return -ENOMEM;
        (*n)++;
        pop(c);
    }
    return 0;
}

static const struct {
    const char *name;
    enum policy_runtime runtime;
} runtimes[] = {
    {"docker", POLICY_RUNTIME_DOCKER},
    {"libpod", POLICY_RUNTIME_LIBPOD},
    {"cri-containerd", POLICY_RUNTIME_CRI_CONTAINERD},
    {"crio", POLICY_RUNTIME_CRIO},
};

/* "RUNTIME:*" or "RUNTIME:ID-PREFIX" (hex, at least
 * POLICY_CONTAINER_PREFIX_MIN characters, case folded). */
static int parse_container(struct pctx *c, const json_t *x, struct policy_container *out)
{
    static const char hint[] = "expected \"RUNTIME:*\" or \"RUNTIME:ID-PREFIX\" with RUNTIME one "
                               "of docker, libpod, cri-containerd, crio";
    const char *s = json_is_string(x) ? json_string_value(x) : NULL;
    char shown[SHOWN];
    if (!s)
        return fail(c, false, "%s, got %s", hint, jsonpos_kind(x));
    escape_str(shown, sizeof(shown), s, ESCAPE_SQUOTE);
    const char *colon = strchr(s, ':');
    size_t k;
    for (k = 0; colon && k < sizeof(runtimes) / sizeof(runtimes[0]); k++)
        if (strlen(runtimes[k].name) == (size_t)(colon - s)
            && strncmp(s, runtimes[k].name, (size_t)(colon - s)) == 0)
            break;
    if (!colon || k == sizeof(runtimes) / sizeof(runtimes[0]))
        return fail(c, false, "'%s': %s", shown, hint);
    const char *id = colon + 1;
    size_t len = strlen(id);
    if (strcmp(id, "*") != 0) {
        if (len == 0 || strspn(id, "0123456789abcdefABCDEF") != len)
            return fail(c, false, "'%s': a container id is hexadecimal; %s", shown, hint);
        if (len < POLICY_CONTAINER_PREFIX_MIN)
            return fail(c, false, "'%s': an id prefix of fewer than %d characters could match "
                        "containers nobody meant", shown, POLICY_CONTAINER_PREFIX_MIN);
        if (len > CONTAINER_ID_LEN)
            return fail(c, false, "'%s': longer than a container id (%d characters)", shown,
                        CONTAINER_ID_LEN);
    } else {
        len = 0;
    }
    out->runtime = runtimes[k].runtime;
    out->prefix = strndup(id, len);
    if (!out->prefix)
        return -ENOMEM;
    for (char *p = out->prefix; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    return 0;
}

static int parse_containers(struct pctx *c, const json_t *v, struct policy_match *m)
{
    size_t i;
    json_t *x;
    int rc = expect_list(c, v, "[\"docker:*\"]");
    if (rc < 0)
        return rc;
    m->containers = calloc(json_array_size(v), sizeof(*m->containers));
    if (!m->containers)
        return -ENOMEM;
    json_array_foreach(v, i, x) {
        push_idx(c, i);
        rc = parse_container(c, x, &m->containers[i]);
        if (rc < 0)
            return rc;
        m->n_containers++;
        pop(c);
    }
    return 0;
}

/* The allow or deny object at the current place. */
static int parse_match(struct pctx *c, json_t *obj, bool missing_ok, struct policy_match *m)
{
    const char *key;
    json_t *v;
    int rc = expect_keys(c, obj, match_keys);
    if (rc < 0)
        return rc;
    if (json_object_size(obj) == 0)
        return fail(c, false, "empty: it would match every caller by accident; name at least "
                    "one of uids, gids, exe, cgroups, containers, pids_ns");
    json_object_foreach(obj, key, v) {
        const char *k = known_key(match_keys, key);
        push_key(c, k);
        if (k == match_keys[0]) {
            m->keys |= POLICY_KEY_UIDS;
            rc = parse_ids(c, v, false, &m->uids, &m->n_uids);
        } else if (k == match_keys[1]) {
            m->keys |= POLICY_KEY_GIDS;
            rc = parse_ids(c, v, true, &m->gids, &m->n_gids);
        } else if (k == match_keys[2]) {
            m->keys |= POLICY_KEY_EXE;
            rc = parse_exes(c, v, missing_ok, m);
        } else if (k == match_keys[3]) {
            m->keys |= POLICY_KEY_CGROUPS;
            rc = parse_globs(c, v, true, &m->cgroups, &m->n_cgroups);
        } else if (k == match_keys[4]) {
            m->keys |= POLICY_KEY_CONTAINERS;
            rc = parse_containers(c, v, m);
        } else {
            m->keys |= POLICY_KEY_PIDS_NS;
            if (!json_is_string(v) || strcmp(json_string_value(v), "same") != 0)
                rc = fail(c, false, "expected \"same\" (the caller is in the broker's pid "
                          "namespace), got %s", json_is_string(v) ? "another string" : jsonpos_kind(v));
        }
        if (rc < 0)
            return rc;
        pop(c);
    }
    return 0;
}

static int parse_rule(struct pctx *c, json_t *obj, bool missing_ok, struct policy_rule *r)
{
    json_t *allow, *deny, *secrets, *mo;
    int rc = expect_keys(c, obj, rule_keys);
    if (rc < 0)
        return rc;
    mo = json_object_get(obj, "missing_ok");
    if (mo) {
        push_key(c, "missing_ok");
        rc = expect_bool(c, mo, &missing_ok);
        if (rc < 0)
            return rc;
        pop(c);
    }
    secrets = json_object_get(obj, "secrets");
    if (!secrets)
        return fail(c, false, "missing \"secrets\" (an array of globs over secret names, such "
                    "as [\"db/*\"])");
    push_key(c, "secrets");
    rc = parse_globs(c, secrets, false, &r->secrets, &r->n_secrets);
    if (rc < 0)
        return rc;
    pop(c);
    allow = json_object_get(obj, "allow");
    deny = json_object_get(obj, "deny");
    if (allow && deny) {
        push_key(c, "deny");
        return fail(c, true, "a rule has one of \"allow\" and \"deny\", not both: write two "
                    "rules");
    }
    if (!allow && !deny)
        return fail(c, false, "missing \"allow\" or \"deny\" (an object of uids, gids, exe, "
                    "cgroups, containers, pids_ns)");
    r->effect = allow ? POLICY_ALLOW : POLICY_DENY;
    push_key(c, allow ? "allow" : "deny");
    rc = parse_match(c, allow ? allow : deny, missing_ok, &r->match);
    if (rc < 0)
        return rc;
    pop(c);
    return 0;
}

static int parse_audit(struct pctx *c, json_t *obj, struct policy_audit *a)
{
    const json_t *v;
    char msg[256];
    int rc = expect_keys(c, obj, audit_keys);
    if (rc < 0)
        return rc;
    v = json_object_get(obj, "sink");
    if (v) {
        static const char hint[] = "expected \"stderr\", \"syslog\", \"syslog:/socket/path\" "
                                   "or \"file:/absolute/path\"";
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        push_key(c, "sink");
        if (!s)
            return fail(c, false, "%s, got %s", hint, jsonpos_kind(v));
        const char *path = NULL;
        bool known = true;
        if (strcmp(s, "stderr") == 0) {
            a->sink = POLICY_AUDIT_STDERR;
        } else if (strcmp(s, "syslog") == 0) {
            a->sink = POLICY_AUDIT_SYSLOG;
        } else if (strncmp(s, "syslog:", 7) == 0) {
            a->sink = POLICY_AUDIT_SYSLOG;
            path = s + 7;
        } else if (strncmp(s, "file:", 5) == 0) {
            a->sink = POLICY_AUDIT_FILE;
            path = s + 5;
        } else {
            known = false;
        }
        if (path) {
            if (path[0] != '/')
                return fail(c, false, "the audit %s must be an absolute path",
                            a->sink == POLICY_AUDIT_FILE ? "file" : "syslog socket");
            /* sun_path's size, for the socket. */
            if (strlen(path) >= (a->sink == POLICY_AUDIT_FILE ? PATH_MAX : 108))
                return fail(c, false, "path too long");
            a->path = strdup(path);
            if (!a->path)
                return -ENOMEM;
        } else if (!known) {
            char shown[SHOWN];
            escape_str(shown, sizeof(shown), s, ESCAPE_SQUOTE);
            return fail(c, false, "unknown sink '%s'; %s", shown, hint);
        }
        pop(c);
    }
    v = json_object_get(obj, "repeat_after");
    if (v) {
        push_key(c, "repeat_after");
        /* 0: every decision on its own line (durations are otherwise > 0). */
        bool zero = (json_is_integer(v) && json_integer_value(v) == 0) ||
                    (json_is_string(v) && (strcmp(json_string_value(v), "0") == 0 ||
                                           strcmp(json_string_value(v), "0s") == 0));
        if (zero)
            a->repeat_after = 0;
        else if (duration_parse(v, &a->repeat_after, msg, sizeof(msg)) < 0)
            return fail(c, false, "%s", msg);
        pop(c);
    }
    return 0;
}

static int parse_policy(struct pctx *c, json_t *conf)
{
    struct policy_rules *p = c->p;
    json_t *v, *rules;
    bool missing_ok = false;
    size_t i;
    int rc = expect_keys(c, conf, policy_keys);
    if (rc < 0)
        return rc;
    v = json_object_get(conf, "missing_ok");
    if (v) {
        push_key(c, "missing_ok");
        rc = expect_bool(c, v, &missing_ok);
        if (rc < 0)
            return rc;
        pop(c);
    }
    v = json_object_get(conf, "default");
    if (v) {
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        push_key(c, "default");
        if (strcmp(s, "allow") != 0 && strcmp(s, "deny") != 0)
            return fail(c, false, "expected \"allow\" or \"deny\", got %s",
                        json_is_string(v) ? "another string" : jsonpos_kind(v));
        p->dflt = s[0] == 'a' ? POLICY_ALLOW : POLICY_DENY;
        pop(c);
    }
    v = json_object_get(conf, "audit");
    if (v) {
        push_key(c, "audit");
        rc = parse_audit(c, v, &p->audit);
        if (rc < 0)
            return rc;
        pop(c);
    }
    rules = json_object_get(conf, "rules");
    if (!rules)
        return fail(c, false, "missing \"rules\" (an array of {\"secrets\": [...], \"allow\" or "
                    "\"deny\": {...}}; [] for the default alone)");
    push_key(c, "rules");
    if (!json_is_array(rules))
        return fail(c, false, "expected an array of rules, got %s", jsonpos_kind(rules));
    if (json_array_size(rules) > INT_MAX)
        return fail(c, false, "too many rules");
    p->rules = calloc(json_array_size(rules) + 1, sizeof(*p->rules));
    if (!p->rules)
        return -ENOMEM;
    json_array_foreach(rules, i, v) {
        push_idx(c, i);
        /* Counted before parsing, so a half-parsed rule is freed too. */
        p->n_rules++;
        rc = parse_rule(c, v, missing_ok, &p->rules[i]);
        if (rc < 0)
            return rc;
        pop(c);
    }
    pop(c);
    for (size_t k = 0; k < p->n_rules; k++) {
        unsigned keys = p->rules[k].match.keys;
        if (keys & POLICY_KEY_GIDS)
            p->facts |= POLICY_FACT_GROUPS;
        if (keys & POLICY_KEY_EXE)
            p->facts |= POLICY_FACT_EXE;
        if (keys & (POLICY_KEY_CGROUPS | POLICY_KEY_CONTAINERS))
            p->facts |= POLICY_FACT_CGROUP;
        if (keys & POLICY_KEY_PIDS_NS)
            p->facts |= POLICY_FACT_PID_NS;
    }
    return 0;
}

int policy_rules_parse(json_t *conf, unsigned flags, struct policy_rules **out,
                       struct policy_error *e)
{
    struct policy_rules *p = calloc(1, sizeof(*p));
    struct pctx c = {.flags = flags, .p = p, .e = e};
    int rc;

    memset(e, 0, sizeof(*e));
    if (!p)
        return -ENOMEM;
    p->dflt = POLICY_DENY;
    p->audit.sink = POLICY_AUDIT_STDERR;
    p->audit.repeat_after = POLICY_AUDIT_DEFAULT_REPEAT;
    rc = parse_policy(&c, conf);
    if (rc == -ENOMEM)
        snprintf(e->msg, sizeof(e->msg), "out of memory");
    if (rc < 0) {
        policy_rules_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static void free_match(struct policy_match *m)
{
    free(m->uids);
    free(m->gids);
    for (size_t i = 0; i < m->n_exes; i++)
        free(m->exes[i].path);
    free(m->exes);
    for (size_t i = 0; i < m->n_cgroups; i++)
        free(m->cgroups[i]);
    free(m->cgroups);
    for (size_t i = 0; i < m->n_containers; i++)
        free(m->containers[i].prefix);
    free(m->containers);
}

void policy_rules_free(struct policy_rules *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_rules; i++) {
        for (size_t k = 0; k < p->rules[i].n_secrets; k++)
            free(p->rules[i].secrets[k]);
        free(p->rules[i].secrets);
        free_match(&p->rules[i].match);
    }
    free(p->rules);
    free(p->audit.path);
    free(p->warnings);
    free(p);
}

void policy_error_format(const struct policy_error *e, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < e->n && i < POLICY_PATH_MAX && o < cap; i++) {
        char key[SHOWN];
        int w;
        if (e->key[i]) {
            escape_str(key, sizeof(key), e->key[i], ESCAPE_DQUOTE);
            w = snprintf(out + o, cap - o, "%s%s", i ? "." : "", key);
        } else {
            w = snprintf(out + o, cap - o, "[%zu]", e->idx[i]);
        }
        if (w < 0)
            return;
        o += (size_t)w;
    }
    if (o < cap)
        snprintf(out + o, cap - o, "%s%s", e->n ? ": " : "", e->msg);
}

/* ---- decision ---- */

/* A key's answer: the facts match, do not, or are not known. */
enum tri { NO = POLICY_TRI_NO, YES = POLICY_TRI_YES, UNKNOWN = POLICY_TRI_UNKNOWN };

static enum tri match_gids(const struct policy_match *m, const struct policy_proc *who)
{
    for (size_t i = 0; i < m->n_gids; i++) {
        if (m->gids[i] == who->gid)
            return YES;
        for (size_t k = 0; who->has_pid && k < who->n_groups && k < POLICY_PROC_MAX_GROUPS; k++)
            if (m->gids[i] == who->groups[k])
                return YES;
    }
    /* Without a pid the supplementary groups are unknown; past the first
     * POLICY_PROC_MAX_GROUPS, the rest are. */
    return who->has_pid && !who->groups_truncated ? NO : UNKNOWN;
}

static bool container_is(const struct policy_container *c, const struct policy_proc *who)
{
    return who->runtime == c->runtime && who->runtime != POLICY_RUNTIME_NONE
           && strncmp(who->container, c->prefix, strlen(c->prefix)) == 0;
}

static enum tri match_key(const struct policy_match *m, unsigned key,
                          const struct policy_proc *who)
{
    if ((key & POLICY_KEYS_NEED_PID) && !who->has_pid)
        return UNKNOWN;
    switch (key) {
    case POLICY_KEY_UIDS:
        for (size_t i = 0; i < m->n_uids; i++)
            if (m->uids[i] == who->uid)
                return YES;
        return NO;
    case POLICY_KEY_GIDS:
        return match_gids(m, who);
    case POLICY_KEY_EXE:
        if (!who->has_exe)
            return UNKNOWN;
        for (size_t i = 0; i < m->n_exes; i++)
            if (m->exes[i].dev == who->exe_dev && m->exes[i].ino == who->exe_ino)
                return YES;
        return NO;
    case POLICY_KEY_CGROUPS:
    case POLICY_KEY_CONTAINERS:
        if (who->cgroup[0] == '\0' || !memchr(who->cgroup, '\0', sizeof(who->cgroup)))
            return UNKNOWN;
        for (size_t i = 0; key == POLICY_KEY_CGROUPS && i < m->n_cgroups; i++)
            if (policy_glob_match(m->cgroups[i], who->cgroup))
                return YES;
        for (size_t i = 0; key == POLICY_KEY_CONTAINERS && i < m->n_containers; i++)
            if (container_is(&m->containers[i], who))
                return YES;
        return NO;
    case POLICY_KEY_PIDS_NS:
        /* Unreadable without ptrace access: unknown, not "another". */
        if (!who->has_pid_ns)
            return UNKNOWN;
        return who->same_pid_ns ? YES : NO;
    }
    return NO;
}

/* Every key must match (AND); unknown facts make the answer unknown
 * unless a known one already says no. */
static enum tri match_all(const struct policy_match *m, const struct policy_proc *who)
{
    enum tri all = YES;
    for (unsigned key = 1; key <= POLICY_KEY_PIDS_NS; key <<= 1) {
        if (!(m->keys & key))
            continue;
        enum tri t = match_key(m, key, who);
        if (t == NO)
            return NO;
        if (t == UNKNOWN)
            all = UNKNOWN;
    }
    return all;
}

enum policy_tri policy_match_key(const struct policy_match *m, unsigned key,
                                 const struct policy_proc *who)
{
    return (enum policy_tri)match_key(m, key, who);
}

static bool names(const struct policy_rule *r, const char *secret)
{
    for (size_t i = 0; i < r->n_secrets; i++)
        if (policy_glob_match(r->secrets[i], secret))
            return true;
    return false;
}

enum policy_decision policy_decide(const struct policy_rules *p, const char *secret,
                                   const struct policy_proc *who, int *rule)
{
    int allow = -1;
    for (size_t i = 0; i < p->n_rules; i++) {
        const struct policy_rule *r = &p->rules[i];
        /* An allow after the first that applies changes nothing. */
        if (r->effect == POLICY_ALLOW && allow >= 0)
            continue;
        /* The caller before the name: comparing ids is cheaper than
         * matching globs, and most rules are about other callers. */
        enum tri t = match_all(&r->match, who);
        /* Fail closed: an unknown fact never lets an allow apply and
         * never keeps a deny from applying. */
        if (t == NO || (r->effect == POLICY_ALLOW && t != YES) || !names(r, secret))
            continue;
        if (r->effect == POLICY_DENY) {
            if (rule)
                *rule = (int)i;
            return POLICY_DENY;
        }
        allow = (int)i;
    }
    if (rule)
        *rule = allow;
    return allow >= 0 ? POLICY_ALLOW : p->dflt;
}
