/* admin.h - the operations endpoint: a small HTTP server (GNU libmicrohttpd,
 * its own thread pool of ADMIN_THREADS) on a local socket, answering
 *   GET /health       200/503, JSON
 *   GET /health/live  200/503, JSON (the watchdog below)
 *   GET /metrics      Prometheus text format 0.0.4
 *   GET /status       JSON
 * and nothing else: 404 for another path, 405 (Allow: GET, HEAD) for
 * another method, 400 for a request with a body, 401 without the bearer
 * token when one is configured (compared in constant time). Every
 * connection has a total deadline (ADMIN_REQUEST_MS) from accept to the
 * end of the answer, however slowly its bytes come.
 *
 * The pages themselves come from the caller (admin_page_fn): this module
 * knows HTTP, sockets and the watchdog, not what a secret is. Nothing here
 * runs on a FUSE or fetch thread, and the page callbacks must never block
 * on a lock a FUSE reader or a fetch holds (broker/stats.c says how it
 * keeps that promise).
 *
 * The watchdog: a thread of its own calls probe() every ADMIN_PROBE_MS
 * (the broker's probe asks the mount something only the FUSE loop can
 * answer). /health/live is 200 while the last probe succeeded within
 * ADMIN_LIVE_MS and none has been stuck longer than ADMIN_PROBE_STUCK_MS;
 * a probe that hangs (a wedged loop) therefore turns it 503 without
 * holding an HTTP thread.
 *
 * Threads: ADMIN_THREADS HTTP workers (libmicrohttpd's pool, epoll), the
 * sweeper that shuts down connections past their deadline, the watchdog.
 * Every answer closes its connection (the deadline counts from accept).
 * docs/internals/admin.md says why each piece is as it is.
 */
#ifndef RS_ADMIN_H
#define RS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include "engine/config.h"
#include "lib/listen.h"

#define ADMIN_THREADS 2
#define ADMIN_REQUEST_MS 5000
#define ADMIN_MAX_CONNECTIONS 64
#define ADMIN_PROBE_MS 1000
#define ADMIN_PROBE_STUCK_MS 2000
#define ADMIN_LIVE_MS 5000
/* The nice value /metrics and /status are built at (admin.c: build_main). */
#define ADMIN_PAGE_NICE 19
/* The socket a root broker listens on when the configuration names none
 * (`mount` for the host's main broker, `exec` as PID 1): see admin_default. */
#define ADMIN_DEFAULT_SOCKET "/run/runsecrets/admin.sock"
#define ADMIN_DEFAULT_LISTEN "unix:" ADMIN_DEFAULT_SOCKET

enum admin_page { ADMIN_PAGE_HEALTH, ADMIN_PAGE_METRICS, ADMIN_PAGE_STATUS };

/* One answer: body is malloc'd (NULL when len is 0) and freed by the
 * server; content_type is static. */
struct admin_reply {
    int status;                /* 200, 503, ... */
    const char *content_type;
    char *body;
    size_t len;
};

struct admin_handlers {
    /* Build a page, on an HTTP thread. 0, or -ENOMEM (the server answers
     * 500). Must not block on a lock a FUSE reader or fetch worker holds. */
    int (*page)(void *arg, enum admin_page page, struct admin_reply *out);
    /* One liveness probe on the watchdog thread; may block (a hung mount):
     * true when the mount answered. NULL: /health/live reports only that
     * the process answers. A probe still blocked when admin_stop runs is
     * abandoned (its thread detached) and may return after the broker is
     * gone: once its blocking call returns it must touch nothing of arg. */
    bool (*probe)(void *arg);
    void *arg;
};

/* A parsed listen address: struct listen_addr (lib/listen.h), so the
 * configuration can check one at load without knowing this module. */

/* Parse "unix:/abs/path", "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464"
 * or "none", as --admin gives it: listen_addr_parse with LISTEN_ANY_PORT
 * (port 0: any free port, logged and given by admin_bound). 0, or -EINVAL
 * with err saying what is wrong (no file position: the caller adds it).
 * Numeric hosts only: no name lookup. */
int admin_addr_parse(const char *text, struct listen_addr *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* What to listen on: override (--admin ADDR; may be NULL), else the
 * configuration's "admin", else ADMIN_DEFAULT_LISTEN when want_default
 * (the caller decides: root, and the host's main broker or PID 1), else
 * none. *from_default is set when the default was taken (a default
 * socket another broker holds is a warning, not an error). 0 or -EINVAL
 * with err. */
int admin_resolve(const struct cfg_admin *conf, const char *override, bool want_default,
                  struct listen_addr *out, bool *from_default, char *err, size_t errlen)
    __attribute__((warn_unused_result));

struct admin;

/* Listen on addr and serve. For LISTEN_UNIX: the socket's folder is
 * created 0755 when only the last level is missing and refused when
 * group- or world-writable without the sticky bit or owned by another
 * user than us or root; a stale socket (nobody answers) is replaced; a
 * live one is -EADDRINUSE; the socket gets conf's mode and group. A
 * non-loopback address without conf->allow_remote, or allow_remote
 * without token_file, is -EINVAL. The token file (conf->token_file) is
 * read once here into secure memory: one line, 16..4096 bytes. conf is
 * borrowed for this call only. *out is new; LISTEN_NONE gives *out NULL
 * and 0. 0 or a negative errno with err. */
/* Load libmicrohttpd (admin_start does, first): 0 or -ELIBACC (err). */
int admin_load(char *err, size_t errlen) __attribute__((warn_unused_result));
int admin_start(const struct listen_addr *addr, const struct cfg_admin *conf,
                const struct admin_handlers *h, struct admin **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The address actually bound ("unix:/run/...", "127.0.0.1:40123" when the
 * port was 0), for the log line and tests. */
const char *admin_bound(const struct admin *a);
/* Stop serving (waits for requests in flight, at most ADMIN_REQUEST_MS),
 * join the sweeper and the watchdog (or leave a watchdog whose probe hangs
 * behind, detached, after 200 ms), remove the socket if it is still ours,
 * wipe the token. NULL: no-op. */
void admin_stop(struct admin *a);

/* The client side (`runsecrets status`, `runsecrets health`; after
 * hardening_init_http): GET path from addr with an optional bearer token
 * (borrowed), at most timeout_ms overall, no proxy, a body of at most
 * 16 MiB (-E2BIG). *status is the HTTP status, *body new (NUL-terminated; free).
 * 0, or a negative errno with err (cannot connect: -ECONNREFUSED,
 * -ENOENT; timeout: -ETIMEDOUT). */
int admin_get(const struct listen_addr *addr, const char *path, const char *token,
              long timeout_ms, int *status, char **body, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
