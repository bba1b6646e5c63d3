/* backend.c - the backend registry, the common settings, and the generic
 * fetch path. Adding a provider is one folder and one line in
 * backend_types. */
#include "backends/backend.h"
#include "backends/extract.h"
#include "backends/file/file.h"
#include "backends/vault/vault.h"
#include "backends/aws/aws.h"
#include "backends/azure/azure.h"
#include "backends/gcp/gcp.h"
#include "lib/backoff.h"
#include "lib/duration.h"
#include "lib/log.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Static and const: types are fixed at build time. */
static const struct backend_ops *const backend_types[] = {
    &backend_file_ops,
    &backend_vault_ops,
    &backend_aws_ops,
    &backend_azure_ops,
    &backend_gcp_ops,
};

#define N_TYPES (sizeof(backend_types) / sizeof(backend_types[0]))

struct backend_conf {
    const struct backend_ops *ops;  /* static */
    size_t max_value;
    struct backoff backoff;
    void *conf;                     /* the provider's; freed by ops->conf_free */
    /* BLAKE2b of the object's canonical JSON (keys sorted, compact): a
     * reload keeps the live backend of an object whose fingerprint is the
     * same. The hash, not the JSON: an object may hold a secret id. */
    unsigned char fingerprint[crypto_generichash_BYTES];
};

struct backend {
    char *name;                     /* owned */
    const struct backend_ops *ops;  /* static */
    void *ctx;                      /* owned, freed by ops->destroy */
    size_t max_value;
    struct backoff backoff;         /* after failed fetches: full jitter */
};

static const struct backend_ops *find_type(const char *type)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (strcmp(backend_types[i]->type, type) == 0)
            return backend_types[i];
    return NULL;
}

/* "file, vault, aws": from the table, so a message never lists a type
 * that is not there. */
static const char *type_list(char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_TYPES && off < len; i++) {
        int n = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", backend_types[i]->type);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    return buf;
}

const char *backend_type_list(char *buf, size_t len)
{
    return type_list(buf, len);
}

static const struct backend_ops *conf_ops(json_t *conf, char *err, size_t errlen)
{
    const json_t *t = json_object_get(conf, "type");
    char types[128];
    if (!t) {
        snprintf(err, errlen, "type: missing (one of: %s)", type_list(types, sizeof(types)));
        return NULL;
    }
    if (!json_is_string(t)) {
        snprintf(err, errlen, "type: expected a string (one of: %s)",
                 type_list(types, sizeof(types)));
        return NULL;
    }
    const struct backend_ops *ops = find_type(json_string_value(t));
    if (!ops) {
        /* Any string may stand here: escaped, so the message stays one line. */
        char cut[65], shown[sizeof(cut) * 6];
        snprintf(cut, sizeof(cut), "%s", json_string_value(t));
        log_json_escape(shown, sizeof(shown), cut);
        snprintf(err, errlen, "type: unknown backend type '%s' (known: %s)", shown,
                 type_list(types, sizeof(types)));
    }
    return ops;
}

static int conf_retry(json_t *conf, struct backoff *bo, char *err, size_t errlen)
{
    static const char *const keys[] = {"retry_base", "retry_max"};
    long long *outs[] = {&bo->base_ms, &bo->max_ms};
    char msg[200];
    bo->base_ms = BACKEND_DEFAULT_RETRY_BASE_MS;
    bo->max_ms = BACKEND_DEFAULT_RETRY_MAX_MS;
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(conf, keys[i]);
        long long ms;
        if (!v)
            continue;
        if (duration_parse(v, &ms, msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "%s: %s", keys[i], msg);
            return -EINVAL;
        }
        *outs[i] = ms;
    }
    if (bo->base_ms > bo->max_ms) {
        if (json_object_get(conf, "retry_max"))
            snprintf(err, errlen, "retry_max: shorter than retry_base");
        else
            snprintf(err, errlen, "retry_base: longer than retry_max (default 5m)");
        return -EINVAL;
    }
    return 0;
}

int backend_conf_parse(json_t *json, unsigned flags, struct backend_conf **out, char *err,
                       size_t errlen)
{
    struct backend_conf *c = calloc(1, sizeof(*c));
    int rc = -ENOMEM;
    if (!c)
        return rc;
    rc = -EINVAL;
    c->ops = conf_ops(json, err, errlen);
    if (!c->ops ||
        backend_conf_size(json, "max_size", BACKEND_DEFAULT_MAX_VALUE, &c->max_value, err,
                          errlen) < 0 ||
        conf_retry(json, &c->backoff, err, errlen) < 0)
        goto fail;
    if (!(flags & BACKEND_CONF_TYPE_ONLY)) {
        rc = c->ops->parse(json, &c->conf, err, errlen);
        if (rc < 0)
            goto fail;
    }
    /* jansson allocates through the wiping heap (hardening.c), so the
     * canonical text is wiped when freed. */
    char *canon = json_dumps(json, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
    if (!canon) {
        rc = -ENOMEM;
        goto fail;
    }
    crypto_generichash(c->fingerprint, sizeof(c->fingerprint), (const unsigned char *)canon,
                       strlen(canon), NULL, 0);
    json_free_t jfree = NULL;
    json_get_alloc_funcs(NULL, &jfree);
    (jfree ? jfree : free)(canon);
    *out = c;
    return 0;
fail:
    backend_conf_free(c);
    return rc;
}

void backend_conf_free(struct backend_conf *c)
{
    if (!c)
        return;
    if (c->conf)
        c->ops->conf_free(c->conf);
    free(c);
}

bool backend_conf_same(const struct backend_conf *a, const struct backend_conf *b)
{
    return a->ops == b->ops &&
           sodium_memcmp(a->fingerprint, b->fingerprint, sizeof(a->fingerprint)) == 0;
}

const char *backend_conf_type(const struct backend_conf *c)
{
    return c->ops->type;
}

bool backend_conf_has_cap(const struct backend_conf *c, unsigned cap)
{
    return (c->ops->caps & cap) == cap;
}

int backend_conf_check_ref(const struct backend_conf *c, const struct secret_ref *ref, char *err,
                           size_t errlen)
{
    const struct backend_ops *ops = c->ops;
    if (ref->version && !(ops->caps & BACKEND_CAP_VERSIONS)) {
        snprintf(err, errlen, "the %s backend does not support ?version=", ops->type);
        return -EINVAL;
    }
    if (ref->stage && !(ops->caps & BACKEND_CAP_STAGES)) {
        snprintf(err, errlen, "the %s backend does not support ?stage=", ops->type);
        return -EINVAL;
    }
    int rc = ops->check_ref(ref, err, errlen);
    if (rc == 0 && ops->check_ref_conf && c->conf)
        rc = ops->check_ref_conf(c->conf, ref, err, errlen);
    return rc;
}

int backend_new(const struct backend_env *env, const char *name, const struct backend_conf *conf,
                struct backend **out, char *err, size_t errlen)
{
    int rc = -ENOMEM;
    struct backend *b = NULL;
    if (!conf->conf) {
        snprintf(err, errlen, "its settings were not parsed (BACKEND_CONF_TYPE_ONLY)");
        return -EINVAL;
    }
    b = calloc(1, sizeof(*b));
    if (!b)
        goto out;
    b->name = strdup(name);
    if (!b->name)
        goto out;
    b->ops = conf->ops;
    b->max_value = conf->max_value;
    b->backoff = conf->backoff;
    struct backend_env e = *env;
    e.name = b->name;
    e.max_value = b->max_value;
    rc = b->ops->create(&e, conf->conf, &b->ctx, err, errlen);
    if (rc < 0)
        goto out;
    *out = b;
    b = NULL;
    rc = 0;
out:
    backend_free(b);
    return rc;
}

const char *backend_name(const struct backend *b)
{
    return b->name;
}

bool backend_has_cap(const struct backend *b, unsigned cap)
{
    return (b->ops->caps & cap) != 0;
}

size_t backend_max_value(const struct backend *b)
{
    return b->max_value;
}

const struct backoff *backend_backoff(const struct backend *b)
{
    return &b->backoff;
}

void backend_free(struct backend *b)
{
    if (!b)
        return;
    if (b->ctx)
        b->ops->destroy(b->ctx);
    free(b->name);
    free(b);
}

bool backend_fetch_many(struct backend *b, const struct secret_ref *const *refs, size_t n,
                        struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX],
                        void (*ready)(void *arg, size_t i), void *arg)
{
    if (backend_batch_max(b) == 0)
        return false;
    b->ops->fetch_many(b->ctx, refs, n, outs, rcs, errs, ready, arg);
    return true;
}

size_t backend_batch_max(const struct backend *b)
{
    return b->ops->fetch_many && b->ops->batch_max ? b->ops->batch_max(b->ctx) : 0;
}

long long backend_maintain(struct backend *b)
{
    return b->ops->maintain ? b->ops->maintain(b->ctx) : -1;
}

void backend_auth_status(struct backend *b, struct backend_auth *out)
{
    memset(out, 0, sizeof(*out));
    out->state = BACKEND_AUTH_NONE;
    if (b->ops->auth_status)
        b->ops->auth_status(b->ctx, out);
}

void backend_shutdown(struct backend *b)
{
    if (b->ops->shutdown)
        b->ops->shutdown(b->ctx);
}

int backend_fetch(struct backend *b, const struct secret_ref *ref, struct fetch_result *out,
                  char *err, size_t errlen)
{
    return b->ops->fetch(b->ctx, ref, out, err, errlen);
}

int backend_resolve(struct backend *b, const struct secret_ref *ref, struct fetch_result *out,
                    char *err, size_t errlen)
{
    int rc = b->ops->fetch(b->ctx, ref, out, err, errlen);
    if (rc < 0)
        return rc;
    if (ref->field)
        rc = extract_field(&out->value, ref->field, err, errlen);
    return rc;
}
