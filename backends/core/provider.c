/* provider.c - the helpers every provider shares (provider.h). */
#include "backends/core/provider.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Keys every backend accepts. */
static const char *const common_keys[] = {"type", "max_size", "retry_base", "retry_max", NULL};

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

