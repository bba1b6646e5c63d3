/* provider.c - the helpers every provider shares (provider.h). */
#include "backends/core/provider.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

bool fetch_result_set_version(struct fetch_result *r, const char *s, size_t n)
{
    r->version[0] = '\0';
    if (!s)
        return n == 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    if (n > sizeof(r->version) - 1)
        n = sizeof(r->version) - 1;   /* longer than any provider's ids: cut, never overflow */
    memcpy(r->version, s, n);
    r->version[n] = '\0';
    return true;
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


int backend_conf_path(json_t *obj, const char *prefix, const char *key, unsigned flags,
                      char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(obj, key);
    struct stat st;
    const char *p;
    *out = NULL;
    if (!v) {
        if (flags & CONF_REQUIRED) {
            snprintf(err, errlen, "%s%s: missing", prefix, key);
            return -EINVAL;
        }
        return 0;
    }
    if (!json_is_string(v) || (p = json_string_value(v))[0] != '/') {
        snprintf(err, errlen, "%s%s: expected an absolute %s", prefix, key,
                 flags & CONF_PATH_DIR ? "directory path" : "path");
        return -EINVAL;
    }
    if (stat(p, &st) != 0) {
        snprintf(err, errlen, "%s%s: %.200s: %s", prefix, key, p, strerror(errno));
        return -EINVAL;
    }
    if ((flags & CONF_PATH_DIR) && !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s%s: %.200s: not a directory", prefix, key, p);
        return -EINVAL;
    }
    if ((flags & CONF_PATH_FILE) && !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s%s: %.200s: not a regular file", prefix, key, p);
        return -EINVAL;
    }
    if ((flags & CONF_PATH_READABLE) && access(p, R_OK) != 0) {
        snprintf(err, errlen, "%s%s: %.200s: %s", prefix, key, p, strerror(errno));
        return -EINVAL;
    }
    if (!(*out = strdup(p)))
        return -ENOMEM;
    return 0;
}
