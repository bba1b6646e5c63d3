/* backend.c - the backend registry and the generic fetch path. */
#include "backend_i.h"
#include "extract.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Static and const: types are fixed at build time. */
static const struct backend_ops *const backend_types[] = {
    &backend_file_ops,
};

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
    return "file";
}

void fetch_result_init(struct fetch_result *r, size_t max)
{
    secbuf_init(&r->value, max);
}

void fetch_result_cleanup(struct fetch_result *r)
{
    secbuf_cleanup(&r->value);
}

int backend_conf_check_keys(json_t *conf, const char *const *allowed, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach(conf, key, v) {
        bool ok = false;
        (void)v;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = true;
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
    if (!ops)
        snprintf(err, errlen, "type: unknown backend type '%.64s' (known: %s)",
                 json_string_value(t), backend_type_list());
    return ops;
}

int backend_validate(json_t *conf, char *err, size_t errlen)
{
    const struct backend_ops *ops = conf_ops(conf, err, errlen);
    if (!ops)
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
    return ops->check_ref(ref, err, errlen);
}

int backend_new(const char *name, json_t *conf, struct backend **out, char *err, size_t errlen)
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
    rc = b->ops->create(conf, &b->ctx, err, errlen);
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
