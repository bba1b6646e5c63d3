/* region.c - the region to use: the config's, AWS_REGION,
 * AWS_DEFAULT_REGION, the profile's "region", then instance metadata. */
#include "backends/aws/creds.h"
#include "backends/aws/aws_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int region_lookup(struct aws_chain *c, char **out, char *err, size_t errlen)
{
    char known[160];   /* a config region is at most 128 */
    aws_chain_region_now(c, known, sizeof(known));
    const char *r = known[0] ? known : aws_env("AWS_REGION");
    struct aws_files f;
    int rc;
    if (!r)
        r = aws_env("AWS_DEFAULT_REGION");
    if (r)
        return (*out = strdup(r)) ? 0 : -ENOMEM;
    if (aws_files_load(&f, err, errlen) == 0) {
        r = aws_config_get(&f, aws_profile_name(c), "region");
        *out = r ? strdup(r) : NULL;
        aws_files_free(&f);
        if (r)
            return *out ? 0 : -ENOMEM;
    }
    const char *off = aws_env("AWS_EC2_METADATA_DISABLED");
    if (off && strcasecmp(off, "true") == 0) {
        snprintf(err, errlen, "no region: set \"region\" in the backend, AWS_REGION, or the "
                 "profile's region");
        return -EINVAL;
    }
    struct http_response resp;
    char msg[400] = "";
    http_response_init(&resp);
    struct http_client *own = NULL;   /* not c->meta: a refresh may be using it */
    rc = aws_imds_get(c, &own, "/latest/meta-data/placement/region", &resp, msg, sizeof(msg));
    http_client_free(own);
    if (rc == 0 && resp.body.len > 0 && resp.body.len < 64) {
        *out = strndup((const char *)resp.body.data, resp.body.len);
        rc = *out ? 0 : -ENOMEM;
    } else {
        snprintf(err, errlen, "no region: set \"region\" in the backend, AWS_REGION, or the "
                 "profile's region (instance metadata: %s)", msg[0] ? msg : "no answer");
        rc = rc < 0 ? rc : -EINVAL;
    }
    http_response_cleanup(&resp);
    return rc;
}

int aws_chain_region(struct aws_chain *c, char **out, char *err, size_t errlen)
{
    /* Remembered for STS too: its regional endpoint and signing region. */
    int rc = region_lookup(c, out, err, errlen);
    if (rc == 0) {
        pthread_mutex_lock(&c->lock);
        if (!c->region)
            c->region = strdup(*out);
        pthread_mutex_unlock(&c->lock);
    }
    return rc;
}
