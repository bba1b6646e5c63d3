/* backend.c - the backend registry and the generic fetch path. */
#include "backend_i.h"
#include "extract.h"
#include "duration.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Static and const: types are fixed at build time. */
static const struct backend_ops *const backend_types[] = {
    &backend_file_ops,
    &backend_vault_ops,
    &backend_aws_ops,
};

/* Keys every backend accepts. */
static const char *const common_keys[] = {"type", "max_size", "retry_base", "retry_max", NULL};

#define N_TYPES (sizeof(backend_types) / sizeof(backend_types[0]))

const struct backend_ops *backend_find_type(const char *type)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (strcmp(backend_types[i]->type, type) == 0)
            return backend_types[i];
    return NULL;
}

const char *backend_type_list(void)
{
    return "file, vault, aws";
}

void fetch_result_init(struct fetch_result *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    secbuf_init(&r->value, max);
    r->retryable = true;
}

void fetch_result_cleanup(struct fetch_result *r)
{
    secbuf_cleanup(&r->value);
}

static bool in_list(const char *key, const char *const *list)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(key, list[i]) == 0)
            return true;
    return false;
}

int backend_conf_check_keys(json_t *conf, const char *const *allowed, const char *const *more,
                            char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach(conf, key, v) {
        bool ok = in_list(key, common_keys) || in_list(key, allowed) || in_list(key, more);
        (void)v;
        if (!ok) {
            snprintf(err, errlen, "%s: unknown key", key);
            return -EINVAL;
        }
    }
    return 0;
}

int backend_conf_size(json_t *conf, const char *key, size_t dflt, size_t *out,
                      char *err, size_t errlen)
{
    const json_t *v = json_object_get(conf, key);
    *out = dflt;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > 64 * 1024 * 1024) {
        snprintf(err, errlen, "%s: expected a number of bytes between 1 and 67108864", key);
        return -EINVAL;
    }
    *out = (size_t)json_integer_value(v);
    return 0;
}

static const struct backend_ops *conf_ops(json_t *conf, char *err, size_t errlen)
{
    const json_t *t = json_object_get(conf, "type");
    if (!t) {
        snprintf(err, errlen, "type: missing (one of: %s)", backend_type_list());
        return NULL;
    }
    if (!json_is_string(t)) {
        snprintf(err, errlen, "type: expected a string (one of: %s)", backend_type_list());
        return NULL;
    }
    const struct backend_ops *ops = backend_find_type(json_string_value(t));
    if (!ops) {
        /* Any string may stand here: escaped, so the message stays one line. */
        char cut[65], shown[sizeof(cut) * 6];
        snprintf(cut, sizeof(cut), "%s", json_string_value(t));
        log_json_escape(shown, sizeof(shown), cut);
        snprintf(err, errlen, "type: unknown backend type '%s' (known: %s)", shown,
                 backend_type_list());
    }
    return ops;
}

static int conf_retry(json_t *conf, long long *base_ms, long long *max_ms, char *err,
                      size_t errlen)
{
    static const char *const keys[] = {"retry_base", "retry_max"};
    long long *outs[] = {base_ms, max_ms};
    char msg[200];
    *base_ms = BACKEND_DEFAULT_RETRY_BASE_MS;
    *max_ms = BACKEND_DEFAULT_RETRY_MAX_MS;
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
    if (*base_ms > *max_ms) {
        if (json_object_get(conf, "retry_max"))
            snprintf(err, errlen, "retry_max: shorter than retry_base");
        else
            snprintf(err, errlen, "retry_base: longer than retry_max (default 5m)");
        return -EINVAL;
    }
    return 0;
}

int backend_validate(json_t *conf, char *err, size_t errlen)
{
    const struct backend_ops *ops = conf_ops(conf, err, errlen);
    size_t max;
    long long a, b;
    if (!ops)
        return -EINVAL;
    if (backend_conf_size(conf, "max_size", BACKEND_DEFAULT_MAX_VALUE, &max, err, errlen) < 0 ||
        conf_retry(conf, &a, &b, err, errlen) < 0)
        return -EINVAL;
    return ops->validate(conf, err, errlen);
}

int backend_check_ref(json_t *conf, const struct secret_ref *ref, char *err, size_t errlen)
{
    const struct backend_ops *ops = conf_ops(conf, err, errlen);
    if (!ops)
        return -EINVAL;
    if (ref->version && !(ops->caps & BACKEND_CAP_VERSIONS)) {
        snprintf(err, errlen, "the %s backend does not support ?version=", ops->type);
        return -EINVAL;
    }
    if (ref->stage && !(ops->caps & BACKEND_CAP_STAGES)) {
        snprintf(err, errlen, "the %s backend does not support ?stage=", ops->type);
        return -EINVAL;
    }
    return ops->check_ref(ref, err, errlen);
}

int backend_new(const struct backend_env *env, const char *name, json_t *conf,
                struct backend **out, char *err, size_t errlen)
{
    int rc = -ENOMEM;
    struct backend *b = calloc(1, sizeof(*b));
    if (!b)
        goto out;
    b->name = strdup(name);
    if (!b->name)
        goto out;
    rc = -EINVAL;
    b->ops = conf_ops(conf, err, errlen);
    if (!b->ops)
        goto out;
    rc = backend_conf_size(conf, "max_size", BACKEND_DEFAULT_MAX_VALUE, &b->max_value, err, errlen);
    if (rc < 0)
        goto out;
    rc = conf_retry(conf, &b->retry_base_ms, &b->retry_max_ms, err, errlen);
    if (rc < 0)
        goto out;
    struct backend_env e = *env;
    e.name = b->name;
    rc = b->ops->create(&e, conf, &b->ctx, err, errlen);
    if (rc < 0)
        goto out;
    *out = b;
    b = NULL;
    rc = 0;
out:
    backend_free(b);
    return rc;
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
                        struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX])
{
    if (backend_batch_max(b) == 0)
        return false;
    b->ops->fetch_many(b->ctx, refs, n, outs, rcs, errs);
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
