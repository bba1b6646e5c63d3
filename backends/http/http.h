/* http.h - the HTTP layer every network backend shares.
 *
 * One engine per process: a single curl multi handle (connection pool,
 * keep-alive) plus a share handle (DNS cache, TLS sessions), driven by one
 * thread. Backends call http_perform() from fetch worker threads; it blocks
 * that worker only, so as many requests run in parallel as there are
 * workers, over reused connections.
 *
 * One client per configured backend: base address, TLS material, timeouts,
 * a cap on parallel requests and on response size.
 */
#ifndef RS_HTTP_H
#define RS_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "lib/secmem.h"

#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define HTTP_DEFAULT_TIMEOUT_MS 30000
#define HTTP_DEFAULT_MAX_PARALLEL 32
#define HTTP_DEFAULT_MAX_RESPONSE (1024 * 1024)

struct http_engine;
struct http_client;

int http_engine_new(struct http_engine **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Aborts whatever is in flight (callers get -ECANCELED) and joins the thread. */
void http_engine_free(struct http_engine *e);
/* cancel true: abort every request in flight and fail new ones at once
 * (-ECANCELED) until called again with false. At shutdown this stops the
 * fetch workers without waiting out a slow server; the final lease
 * revocations then run with cancel false. */
void http_engine_cancel(struct http_engine *e, bool cancel);

/* The config keys a client understands, NULL-terminated, for a backend's
 * own key check. */
extern const char *const http_conf_keys[];
/* Check the HTTP keys of a backend object (may stat files). address is the
 * value of the backend's "address" key, checked too. 0 or -EINVAL with
 * "<key>: <what>". */
int http_conf_validate(json_t *conf, const char *address_key, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The same, with the address optional (a backend that derives it). */
int http_conf_validate_opt(json_t *conf, const char *address_key, bool required, char *err,
                           size_t errlen) __attribute__((warn_unused_result));
/* New client for a conf that passed http_conf_validate. */
int http_client_new(struct http_engine *e, json_t *conf, const char *address_key,
                    struct http_client **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The same with the address given (conf supplies TLS and limits; it may be
 * NULL for all defaults). For endpoints a backend derives itself (STS,
 * instance metadata). */
int http_client_new_url(struct http_engine *e, json_t *conf, const char *url,
                        struct http_client **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void http_client_free(struct http_client *c);
/* "host[:port]" as the Host header carries it, and the address's path
 * prefix ("" when none): what a request signature covers. */
const char *http_client_authority(const struct http_client *c);
const char *http_client_base_path(const struct http_client *c);
/* Override the timeouts (instance metadata wants short ones). */
void http_client_set_timeouts(struct http_client *c, long long connect_ms, long long total_ms);

struct http_request {
    const char *method;           /* "GET", "POST", "PUT" */
    const char *path;             /* appended to the address; already escaped */
    const char *const *headers;   /* NULL-terminated "Name: value"; may be NULL */
    const void *body;             /* borrowed for the call; may hold secrets */
    size_t body_len;
};

struct http_response {
    long status;                  /* 0 when no response arrived */
    struct secbuf body;           /* secret memory, capped at the client's limit */
    long long retry_after_ms;     /* from Retry-After, -1 when absent */
    time_t date;                  /* server Date header, 0 when absent */
};

void http_response_init(struct http_response *r);
void http_response_cleanup(struct http_response *r);

/* Perform one request and wait for it. 0 when a response arrived (whatever
 * its status); otherwise a negative errno with a one-line reason in err:
 * -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET/-EPROTO (connection dropped,
 * malformed reply), -E2BIG (body over the cap), -EKEYREJECTED (TLS
 * verification), -ECANCELED (shutdown), -EHOSTUNREACH (name resolution). */
int http_perform(struct http_client *c, const struct http_request *req,
                 struct http_response *resp, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The shared retry classification: connection trouble, timeouts, 429 and
 * 5xx other than 501 are worth retrying. */
bool http_errno_retryable(int rc);
bool http_status_retryable(long status);

/* Percent-encode one path segment list: '/' kept, everything outside
 * RFC 3986 unreserved escaped. 0 or -E2BIG. */
int http_escape_path(const char *in, char *out, size_t cap) __attribute__((warn_unused_result));

#endif
