/* http_opts.h - the HTTP settings of a backend (docs/config.md), parsed once.
 *
 * A provider's parse() fills a struct http_opts from its config object;
 * its create() hands the same struct to http_client_new. Validation and
 * construction read the same fields, so they cannot disagree.
 */
#ifndef RS_HTTP_OPTS_H
#define RS_HTTP_OPTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define HTTP_DEFAULT_TIMEOUT_MS 30000
#define HTTP_DEFAULT_MAX_PARALLEL 128
#define HTTP_DEFAULT_MAX_RESPONSE (1024 * 1024)

struct http_opts {
    char *address;               /* the address key's URL; NULL when absent */
    bool plain;                  /* address is http:// (no TLS settings allowed) */
    char *ca_file, *ca_path, *cert_file, *key_file;   /* NULL: none */
    char *tls_server_name;       /* NULL: the address's host */
    long long connect_timeout_ms, timeout_ms;
    unsigned max_parallel;
    size_t max_response;
};

/* The config keys the options understand, NULL-terminated, for a
 * backend's own key check. */
extern const char *const http_conf_keys[];

/* Parse the HTTP keys of a backend object (stats the TLS files). The
 * address is the value of address_key, missing allowed unless required.
 * 0 or -EINVAL with "<key>: <what>" (or -ENOMEM); out is cleaned up on
 * error. */
int http_opts_parse(json_t *conf, const char *address_key, bool required, struct http_opts *out,
                    char *err, size_t errlen) __attribute__((warn_unused_result));
/* All defaults, no address: for endpoints a backend derives itself. */
void http_opts_default(struct http_opts *o);
/* Deep copy (a live client outlives the config it came from). */
int http_opts_copy(const struct http_opts *src, struct http_opts *dst)
    __attribute__((warn_unused_result));
void http_opts_cleanup(struct http_opts *o);

/* Check a URL as an address: "http[s]://host[:port][/prefix]". */
int http_url_check(const char *url, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
