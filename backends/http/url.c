/* url.c - see url.h. */
#include "backends/http/url.h"
#include "backends/http/libs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int http_url_parse(const char *addr, struct http_url *out, char *err, size_t errlen)
{
    char **scheme = &out->scheme, **host = &out->host, **path = &out->path;
    long *port = &out->port;
    char *q = NULL, *frag = NULL, *user = NULL, *portstr = NULL;
    int rc;

    *scheme = *host = *path = NULL;
    if ((rc = http_libs_load(err, errlen)) < 0)
        return rc;
    rc = -EINVAL;
    CURLU *u = sym_curl_url();
    if (!u)
        return -ENOMEM;
    if (sym_curl_url_set(u, CURLUPART_URL, addr, 0) != CURLUE_OK) {
        snprintf(err, errlen, "not a URL (expected https://host[:port])");
        goto out;
    }
    sym_curl_url_get(u, CURLUPART_SCHEME, scheme, 0);
    sym_curl_url_get(u, CURLUPART_HOST, host, 0);
    sym_curl_url_get(u, CURLUPART_PORT, &portstr, CURLU_DEFAULT_PORT);
    sym_curl_url_get(u, CURLUPART_PATH, path, 0);
    sym_curl_url_get(u, CURLUPART_QUERY, &q, 0);
    sym_curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
    sym_curl_url_get(u, CURLUPART_USER, &user, 0);
    if (!*scheme || (strcmp(*scheme, "https") != 0 && strcmp(*scheme, "http") != 0)) {
        snprintf(err, errlen, "scheme must be https or http");
        goto out;
    }
    if (!*host || !**host) {
        snprintf(err, errlen, "no host");
        goto out;
    }
    if (q || frag || user) {
        snprintf(err, errlen, "no query, fragment or user name allowed");
        goto out;
    }
    *port = portstr ? strtol(portstr, NULL, 10) : 0;
    rc = 0;
out:
    sym_curl_free(q);
    sym_curl_free(frag);
    sym_curl_free(user);
    sym_curl_free(portstr);
    if (rc < 0) {
        sym_curl_free(*scheme);
        sym_curl_free(*host);
        sym_curl_free(*path);
        *scheme = *host = *path = NULL;
    }
    sym_curl_url_cleanup(u);
    return rc;
}


void http_url_cleanup(struct http_url *u)
{
    sym_curl_free(u->scheme);
    sym_curl_free(u->host);
    sym_curl_free(u->path);
    u->scheme = u->host = u->path = NULL;
}
