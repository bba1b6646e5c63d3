/* conf.c - the "aws" config object into a struct aws_conf, once: `check`
 * and `mount` both come here, and nothing after reads JSON. */
#include "backends/aws/aws_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const aws_keys[] = {"region", "profile", "endpoint", "sts_endpoint", "batch",
                                       NULL};

/* A region or profile name: a copy in *out (NULL when absent). */
static int conf_name(json_t *conf, const char *key, char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(conf, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 128 ||
        strpbrk(json_string_value(v), " \t\n/[]")) {
        snprintf(err, errlen, "%s: expected a name such as \"%s\"", key,
                 strcmp(key, "region") == 0 ? "eu-west-1" : "prod");
        return -EINVAL;
    }
    return (*out = strdup(json_string_value(v))) ? 0 : -ENOMEM;
}

/* "sts_endpoint": checked as an address; only the URL is kept (STS gets
 * the default TLS settings). */
static int conf_sts(json_t *conf, char **out, char *err, size_t errlen)
{
    const json_t *sts = json_object_get(conf, "sts_endpoint");
    struct http_opts ho;
    *out = NULL;
    if (!sts)
        return 0;
    json_t *tmp = json_pack("{s:O}", "sts_endpoint", sts);
    int rc = tmp ? http_opts_parse(tmp, "sts_endpoint", true, &ho, err, errlen) : -ENOMEM;
    json_decref(tmp);
    if (rc < 0)
        return rc;
    *out = ho.address;
    ho.address = NULL;
    http_opts_cleanup(&ho);
    return 0;
}

void aws_conf_free(void *conf)
{
    struct aws_conf *c = conf;
    if (!c)
        return;
    free(c->region);
    free(c->profile);
    free(c->sts_endpoint);
    http_opts_cleanup(&c->http);
    free(c);
}

int aws_parse(json_t *json, void **conf, char *err, size_t errlen)
{
    struct aws_conf *c = calloc(1, sizeof(*c));
    int rc;
    if (!c)
        return -ENOMEM;
    http_opts_default(&c->http);
    if ((rc = backend_conf_check_keys(json, aws_keys, http_conf_keys, err, errlen)) < 0 ||
        (rc = conf_name(json, "region", &c->region, err, errlen)) < 0 ||
        (rc = conf_name(json, "profile", &c->profile, err, errlen)) < 0 ||
        (rc = http_opts_parse(json, "endpoint", false, &c->http, err, errlen)) < 0 ||
        (rc = conf_sts(json, &c->sts_endpoint, err, errlen)) < 0)
        goto out;
    const json_t *b = json_object_get(json, "batch");
    if (b && !json_is_boolean(b)) {
        snprintf(err, errlen, "batch: expected true or false");
        rc = -EINVAL;
        goto out;
    }
    c->batch = !json_is_false(b);
    *conf = c;
    c = NULL;
out:
    aws_conf_free(c);
    return rc;
}
