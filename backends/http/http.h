/* http.h - the HTTP layer every network backend shares.
 *
 * One engine per process: a single curl multi handle (connection pool,
 * keep-alive) plus a share handle (DNS cache, TLS sessions), driven by one
 * thread. Backends call http_perform() from fetch worker threads; it blocks
 * that worker only, so as many requests run in parallel as there are
 * workers, over reused connections; http_perform_many() lets one worker
 * have many requests in flight at once (a cold start's batch).
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
#include "backends/http/http_opts.h"
#include "lib/secmem.h"

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

/* New client with the options o (borrowed; what it keeps is copied). url
 * is the address to use, or NULL for o->address: a backend passes its own
 * for endpoints it derives (STS, instance metadata), with o still giving
 * TLS material and limits. */
int http_client_new(struct http_engine *e, const struct http_opts *o, const char *url,
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
    /* The WWW-Authenticate challenge of a 401 (the Bearer one when the
     * server sent several), NULL when absent or not a 401; new (heap),
     * freed by http_response_cleanup. Not secret: it names the server's
     * authorization server and resource, never a credential. */
    char *www_authenticate;
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

/* Perform n requests at once and wait for them all: rcs[i], and the
 * reason of a failure in errs + i * errlen, as http_perform returns them
 * for reqs[i] into resps[i] (initialised by the caller). They go out
 * together, up to max_parallel at a time: one round trip for what would
 * take n workers one request each (a cold start's reads). done (may be
 * NULL) is called on the calling thread, no lock held, as each request's
 * outcome is final, in the order they finish. */
void http_perform_many(struct http_client *c, const struct http_request *reqs, size_t n,
                       struct http_response *resps, int *rcs, char *errs, size_t errlen,
                       void (*done)(void *arg, size_t i), void *arg)
    __attribute__((nonnull(1, 2, 4, 5, 6)));

/* The shared retry classification: connection trouble, timeouts, 429 and
 * 5xx other than 501 are worth retrying. */
bool http_errno_retryable(int rc);
bool http_status_retryable(long status);

/* Percent-encode one path segment list (lib/encode.h): '/' kept, everything outside
 * RFC 3986 unreserved escaped. 0 or -E2BIG. */
int http_escape_path(const char *in, char *out, size_t cap) __attribute__((warn_unused_result));

#endif
