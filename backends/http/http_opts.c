/* http_opts.c - see http_opts.h. */
#include "backends/http/http_opts.h"
#include "backends/http/url.h"
#include "backends/core/provider.h"
#include "lib/duration.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep in step with docs/config.md. */
#define HTTP_MAX_PARALLEL_LIMIT 1024
#define HTTP_MAX_RESPONSE_LIMIT (64 * 1024 * 1024)

const char *const http_conf_keys[] = {
    "ca_file", "ca_path", "cert_file", "key_file", "tls_server_name",
    "connect_timeout", "timeout", "max_parallel", "max_response_size", NULL,
};

static int conf_ms(json_t *conf, const char *key, long long dflt, long long *out, char *err,
                   size_t errlen)
{
    const json_t *v = json_object_get(conf, key);
    char msg[200];
    long long ms;
    *out = dflt;
    if (!v)
        return 0;
    if (duration_parse(v, &ms, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "%s: %s", key, msg);
        return -EINVAL;
    }
    if (ms > 3600 * 1000LL) {
        snprintf(err, errlen, "%s: at most 1h", key);
        return -EINVAL;
    }
    *out = ms;
    return 0;
}

static int conf_int(json_t *conf, const char *key, long long lo, long long hi, long long dflt,
                    long long *out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(conf, key);
    *out = dflt;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "%s: expected an integer between %lld and %lld", key, lo, hi);
        return -EINVAL;
    }
    *out = json_integer_value(v);
    return 0;
}

static bool valid_hostname(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return false;
    return true;
}

void http_opts_default(struct http_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
    o->timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
    o->max_parallel = HTTP_DEFAULT_MAX_PARALLEL;
    o->max_response = HTTP_DEFAULT_MAX_RESPONSE;
}

int http_url_check(const char *url, char *err, size_t errlen)
{
    struct http_url u;
    int rc = http_url_parse(url, &u, err, errlen);
    if (rc == 0)
        http_url_cleanup(&u);
    return rc;
}

int http_opts_parse(json_t *conf, const char *address_key, bool required, struct http_opts *o,
                    char *err, size_t errlen)
{
    static const char *const tls_keys[] = {"ca_file", "ca_path", "cert_file", "key_file",
                                           "tls_server_name", NULL};
    const json_t *a = json_object_get(conf, address_key);
    char msg[200];
    long long n;
    int rc;

    http_opts_default(o);
    if (!a && required) {
        snprintf(err, errlen, "%s: missing (e.g. \"https://vault.internal:8200\")", address_key);
        return -EINVAL;
    }
    if (a && !json_is_string(a)) {
        snprintf(err, errlen, "%s: expected a URL string", address_key);
        return -EINVAL;
    }
    if (a) {
        struct http_url u;
        if (http_url_parse(json_string_value(a), &u, msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "%s: %s", address_key, msg);
            return -EINVAL;
        }
        o->plain = strcmp(u.scheme, "http") == 0;
        http_url_cleanup(&u);
        if (!(o->address = strdup(json_string_value(a))))
            return -ENOMEM;
    }
    for (size_t i = 0; tls_keys[i]; i++)
        if (o->plain && json_object_get(conf, tls_keys[i])) {
            snprintf(err, errlen, "%s: the %s is plain http; TLS settings need https",
                     tls_keys[i], address_key);
            rc = -EINVAL;
            goto fail;
        }
    if ((rc = backend_conf_path(conf, "", "ca_file", CONF_PATH_FILE, &o->ca_file, err, errlen)) < 0 ||
        (rc = backend_conf_path(conf, "", "ca_path", CONF_PATH_DIR, &o->ca_path, err, errlen)) < 0 ||
        (rc = backend_conf_path(conf, "", "cert_file", CONF_PATH_FILE, &o->cert_file, err,
                                errlen)) < 0 ||
        (rc = backend_conf_path(conf, "", "key_file", CONF_PATH_FILE, &o->key_file, err,
                                errlen)) < 0)
        goto fail;
    if (o->key_file && !o->cert_file) {
        snprintf(err, errlen, "key_file: needs cert_file (the client certificate)");
        rc = -EINVAL;
        goto fail;
    }
    const json_t *sn = json_object_get(conf, "tls_server_name");
    if (sn && (!json_is_string(sn) || !valid_hostname(json_string_value(sn)))) {
        snprintf(err, errlen, "tls_server_name: expected a host name");
        rc = -EINVAL;
        goto fail;
    }
    if (sn && !(o->tls_server_name = strdup(json_string_value(sn)))) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = conf_ms(conf, "connect_timeout", HTTP_DEFAULT_CONNECT_TIMEOUT_MS,
                      &o->connect_timeout_ms, err, errlen)) < 0 ||
        (rc = conf_ms(conf, "timeout", HTTP_DEFAULT_TIMEOUT_MS, &o->timeout_ms, err, errlen)) < 0)
        goto fail;
    if ((rc = conf_int(conf, "max_parallel", 1, HTTP_MAX_PARALLEL_LIMIT, HTTP_DEFAULT_MAX_PARALLEL,
                       &n, err, errlen)) < 0)
        goto fail;
    o->max_parallel = (unsigned)n;
    if ((rc = conf_int(conf, "max_response_size", 1024, HTTP_MAX_RESPONSE_LIMIT,
                       HTTP_DEFAULT_MAX_RESPONSE, &n, err, errlen)) < 0)
        goto fail;
    o->max_response = (size_t)n;
    return 0;
fail:
    http_opts_cleanup(o);
    return rc;
}

static int dup_opt(const char *s, char **out)
{
    *out = NULL;
    return s && !(*out = strdup(s)) ? -ENOMEM : 0;
}

int http_opts_copy(const struct http_opts *src, struct http_opts *dst)
{
    *dst = *src;
    dst->address = dst->ca_file = dst->ca_path = dst->cert_file = dst->key_file = NULL;
    dst->tls_server_name = NULL;
    if (dup_opt(src->address, &dst->address) < 0 || dup_opt(src->ca_file, &dst->ca_file) < 0 ||
        dup_opt(src->ca_path, &dst->ca_path) < 0 || dup_opt(src->cert_file, &dst->cert_file) < 0 ||
        dup_opt(src->key_file, &dst->key_file) < 0 ||
        dup_opt(src->tls_server_name, &dst->tls_server_name) < 0) {
        http_opts_cleanup(dst);
        return -ENOMEM;
    }
    return 0;
}

void http_opts_cleanup(struct http_opts *o)
{
    free(o->address);
    free(o->ca_file);
    free(o->ca_path);
    free(o->cert_file);
    free(o->key_file);
    free(o->tls_server_name);
    memset(o, 0, sizeof(*o));
}
