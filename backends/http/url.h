/* url.h - the one parser of a backend address, "http[s]://host[:port][/prefix]". */
#ifndef RS_HTTP_URL_H
#define RS_HTTP_URL_H

#include <stddef.h>

struct http_url {
    char *scheme;   /* "https" or "http" */
    char *host;
    long port;      /* the scheme's default when absent */
    char *path;     /* "" or "/prefix..." */
};

/* 0, or -EINVAL with a message (no key name) in err, or -ENOMEM. */
int http_url_parse(const char *url, struct http_url *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void http_url_cleanup(struct http_url *u);

#endif
