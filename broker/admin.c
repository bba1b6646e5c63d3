/* admin.c - the operations endpoint (admin.h): GNU libmicrohttpd on a
 * socket we bind ourselves, a sweeper that enforces each connection's
 * total deadline, and the liveness watchdog (docs/internals/admin.md). */
#include "broker/admin.h"
#include "broker/signals.h"
#include "backends/http/libs.h"
#include "lib/dynlib.h"
#include "lib/clock.h"
#include "lib/escape.h"
#include "lib/log.h"
#include "lib/secfile.h"
#include "lib/secmem.h"
#include "rs_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* libmicrohttpd, loaded by the first admin_start (lib/dynlib.h): a
 * broker without the endpoint, and every other command, never map it or
 * the GnuTLS it is built with. Process-wide, written once (dynlib.h). */
#define ADMIN_MHD(X)                                                                        \
    X(MHD_add_response_header) X(MHD_create_response_from_buffer) X(MHD_destroy_response)   \
    X(MHD_get_connection_info) X(MHD_lookup_connection_value) X(MHD_queue_response)         \
    X(MHD_resume_connection) X(MHD_start_daemon) X(MHD_stop_daemon)                         \
    X(MHD_suspend_connection)
#define ADMIN_MHD_DEFINE(fn) static __typeof__(fn) *sym_##fn;
ADMIN_MHD(ADMIN_MHD_DEFINE)
#define ADMIN_MHD_ENTRY(fn) DYNLIB_SYM(fn),
static const struct dynlib_sym mhd_syms[] = {ADMIN_MHD(ADMIN_MHD_ENTRY)};
static struct dynlib mhd_lib = DYNLIB_INIT(RS_SONAME_MHD, "libmicrohttpd, for the admin endpoint",
                                           mhd_syms);

#define ADMIN_BACKLOG 64
#define ADMIN_SWEEP_MS 250           /* how often the sweeper looks for late connections */
#define ADMIN_TOKEN_MIN 16
#define ADMIN_TOKEN_MAX 4096
#define ADMIN_STOP_PROBE_MS 200      /* longest wait for a probe in flight at the stop */
#define ADMIN_CLIENT_MAX_BODY (16u * 1024 * 1024)
#define ADMIN_BOUND_MAX (LISTEN_PATH_MAX + 16)
/* Each connection's memory (request line, headers: a presented token) in
 * libmicrohttpd's pool: above 32 KiB the pool is an anonymous mapping of
 * its own, unmapped when the connection ends, instead of a malloc block
 * whose bytes would stay in the heap after free (memorypool.c). */
#define ADMIN_CONN_MEMORY (48 * 1024)

/* One accepted connection, from MHD's STARTED notification to its CLOSED
 * one: MHD sends CLOSED before it closes the fd (daemon.c, both in the
 * cleanup of a connection and on a failed start), and CLOSED takes
 * conn_lock to unlink the entry, so while the sweeper holds conn_lock
 * every fd on the list is still the connection's own. */
struct admin_conn {
    struct admin_conn *prev, *next;
    int fd;
    long long start_ms;          /* accept, CLOCK_MONOTONIC */
    bool cut;                    /* shutdown(2) sent */
};

/* The watchdog's state, shared with its thread by reference count: a probe
 * that hangs (a wedged FUSE loop) keeps its thread, which admin_stop then
 * leaves behind (detached) instead of joining forever; the last of the two
 * to let go frees this. */
struct admin_watch {
    pthread_mutex_t lock;        /* protects everything below; a leaf */
    pthread_cond_t wake;         /* stop, or a probe ended */
    int refs;
    bool stop;
    bool in_flight;              /* a probe is running */
    long long started_ms;        /* of the probe in flight */
    long long last_ok_ms;        /* last success (the start counts as one) */
    long long failing_ms;        /* first failure since the last success; 0: none */
    bool (*probe)(void *arg);
    void *arg;
};

struct admin {
    struct MHD_Daemon *mhd;
    struct listen_addr addr;
    char bound[ADMIN_BOUND_MAX];
    struct admin_handlers h;
    char *token;                 /* secmem; NULL: no token asked */
    size_t token_len;
    /* The socket file we bound (LISTEN_UNIX), removed at the stop only if
     * it is still that file. */
    bool own_socket;
    dev_t sock_dev;
    ino_t sock_ino;
    /* Connections and the sweeper. */
    pthread_mutex_t conn_lock;   /* protects conns and sweep_stop; a leaf */
    pthread_cond_t sweep_wake;   /* CLOCK_MONOTONIC */
    struct admin_conn *conns;
    bool sweep_stop;
    bool locks_ready;
    pthread_t sweeper;
    bool sweeper_started;
    /* The watchdog (NULL without a probe). */
    struct admin_watch *watch;
    pthread_t watcher;
    bool watcher_started;
    int listen_fd;               /* ours; MHD works on a dup it closes itself */
    /* The page builder (build_page). */
    pthread_mutex_t build_lock;  /* protects jobs, build_stop, builder_started; a leaf
                                    (MHD's suspend is called under it) */
    pthread_cond_t build_wake;   /* the builder waits here for a job */
    struct build_job *jobs;      /* FIFO */
    bool build_stop;
    pthread_t builder;
    bool builder_started;
};

/* One page to build for a suspended connection (its con_cls until the
 * answer is queued, or MHD's completion callback frees it). */
struct build_job {
    struct MHD_Connection *conn;
    enum admin_page page;
    struct admin_reply out;
    int rc;
    bool done;
    struct build_job *next;
};

/* ------------------------------------------------------------------ */
/* addresses */

int admin_addr_parse(const char *text, struct listen_addr *out, char *err, size_t errlen)
{
    return listen_addr_parse(text, LISTEN_ANY_PORT, out, err, errlen);
}

static int remote_check(const struct listen_addr *addr, const struct cfg_admin *conf,
                        char *err, size_t errlen)
{
    char shown[ADMIN_BOUND_MAX];
    if (addr->family != LISTEN_TCP || addr->loopback)
        return 0;
    listen_addr_format(addr, shown, sizeof(shown));
    if (!conf || !conf->allow_remote) {
        snprintf(err, errlen, "%s is not a loopback address: the configuration's "
                 "\"admin\" needs \"allow_remote\": true and a \"token_file\" to serve other "
                 "hosts", shown);
        return -EINVAL;
    }
    if (!conf->token_file) {
        snprintf(err, errlen, "%s is not a loopback address and \"admin\" has no "
                 "\"token_file\": remote clients must present a bearer token", shown);
        return -EINVAL;
    }
    return 0;
}

int admin_resolve(const struct cfg_admin *conf, const char *override, bool want_default,
                  struct listen_addr *out, bool *from_default, char *err, size_t errlen)
{
    char msg[256];
    const char *text = NULL;
    unsigned flags = 0;

    *from_default = false;
    if (override) {
        text = override;
        flags = LISTEN_ANY_PORT;
    } else if (conf && conf->given && conf->listen) {
        text = conf->listen;
    } else if (want_default) {
        text = ADMIN_DEFAULT_LISTEN;
        *from_default = true;
    } else {
        text = "none";
    }
    if (listen_addr_parse(text, flags, out, msg, sizeof(msg)) < 0) {
        char shown[256];
        escape_str(shown, sizeof(shown), text, ESCAPE_SQUOTE);
        snprintf(err, errlen, "'%s': %s", shown, msg);
        return -EINVAL;
    }
    return remote_check(out, conf, err, errlen);
}

const char *admin_bound(const struct admin *a)
{
    return a ? a->bound : "none";
}

/* ------------------------------------------------------------------ */
/* the listening socket */

/* The socket's folder: made (0755) when only its last level is missing;
 * refused when others may write to it without the sticky bit (they could
 * swap the socket for their own), or when it belongs to someone else than
 * us or root. */
static int check_folder(const char *sock, char *err, size_t errlen)
{
    char dir[LISTEN_PATH_MAX];
    struct stat st;
    size_t n = (size_t)(strrchr(sock, '/') - sock);

    if (n == 0)
        n = 1;   /* "/x.sock": the root folder */
    memcpy(dir, sock, n);
    dir[n] = '\0';
    if (stat(dir, &st) < 0 && errno == ENOENT) {
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            int saved = errno;
            snprintf(err, errlen, "cannot create the socket's folder %s: %s", dir,
                     strerror(saved));
            return -saved;
        }
        /* The umask may have taken bits that clients need to get in. */
        if (chmod(dir, 0755) < 0) {
            int saved = errno;
            snprintf(err, errlen, "cannot set the mode of %s: %s", dir, strerror(saved));
            return -saved;
        }
    }
    if (stat(dir, &st) < 0) {
        int saved = errno;
        snprintf(err, errlen, "socket folder %s: %s", dir, strerror(saved));
        return -saved;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "socket folder %s is not a folder", dir);
        return -ENOTDIR;
    }
    if ((st.st_mode & 0022) && !(st.st_mode & S_ISVTX)) {
        snprintf(err, errlen, "socket folder %s is writable by %s (mode %04o) without the "
                 "sticky bit: anyone could replace the socket; refused", dir,
                 (st.st_mode & 0002) ? "every user" : "its group",
                 (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(err, errlen, "socket folder %s belongs to uid %ld, neither us nor root; refused",
                 dir, (long)st.st_uid);
        return -EPERM;
    }
    return 0;
}

/* Something at the socket's path: a socket nobody answers on is a crashed
 * broker's and goes; one that answers is -EADDRINUSE; anything else
 * stays, and so do we. */
static int clear_stale(const struct sockaddr_un *sa, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(sa->sun_path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket; refused", sa->sun_path);
        return -EEXIST;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int saved = errno;
        snprintf(err, errlen, "socket: %s", strerror(saved));
        return -saved;
    }
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    int e = errno;
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "unix:%s is in use by another process (a running broker?)",
                 sa->sun_path);
        return -EADDRINUSE;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "cannot tell whether unix:%s is in use: %s", sa->sun_path,
                 strerror(e));
        return -e;
    }
    if (unlink(sa->sun_path) < 0 && errno != ENOENT) {
        int saved = errno;
        snprintf(err, errlen, "cannot remove the stale socket %s: %s", sa->sun_path,
                 strerror(saved));
        return -saved;
    }
    log_f(LOG_INFO, &(struct log_fields){.path = sa->sun_path}, "stale admin socket removed");
    return 0;
}

static int bind_unix(struct admin *a, const struct cfg_admin *conf, int *out, char *err,
                     size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    unsigned mode = conf && conf->mode ? conf->mode : CFG_ADMIN_DEFAULT_MODE;
    struct stat st;
    int fd = -1, rc;

    memcpy(sa.sun_path, a->addr.path, strlen(a->addr.path) + 1);
    rc = check_folder(a->addr.path, err, errlen);
    if (rc == 0)
        rc = clear_stale(&sa, err, errlen);
    if (rc < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int saved = errno;
        snprintf(err, errlen, "socket: %s", strerror(saved));
        return -saved;
    }
    /* The file bind creates takes the socket's mode less the umask: set
     * before bind, it is never wider than asked; the chmod after bind puts
     * back what the umask took. Both before listen(2), so nobody connects
     * in between. */
    if (fchmod(fd, mode) < 0 || bind(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot bind unix:%s: %s", sa.sun_path, strerror(errno));
        goto fail;
    }
    a->own_socket = true;
    if (chmod(sa.sun_path, mode) < 0 ||
        (conf && conf->has_group && chown(sa.sun_path, (uid_t)-1, conf->gid) < 0) ||
        lstat(sa.sun_path, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot set the mode or group of %s: %s", sa.sun_path,
                 strerror(errno));
        goto fail;
    }
    a->sock_dev = st.st_dev;
    a->sock_ino = st.st_ino;
    if (listen(fd, ADMIN_BACKLOG) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot listen on unix:%s: %s", sa.sun_path, strerror(errno));
        goto fail;
    }
    snprintf(a->bound, sizeof(a->bound), "unix:%s", sa.sun_path);
    *out = fd;
    return 0;
fail:
    close(fd);
    if (a->own_socket)
        unlink(sa.sun_path);
    a->own_socket = false;
    return rc;
}

static int bind_tcp(struct admin *a, int *out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char shown[ADMIN_BOUND_MAX];
    int one = 1, rc;

    memset(&ss, 0, sizeof(ss));
    listen_addr_format(&a->addr, shown, sizeof(shown));
    if (a->addr.ipv6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)a->addr.port);
        rc = inet_pton(AF_INET6, a->addr.host, &s6->sin6_addr);
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)a->addr.port);
        rc = inet_pton(AF_INET, a->addr.host, &s4->sin_addr);
        len = sizeof(*s4);
    }
    if (rc != 1) {
        snprintf(err, errlen, "%s: not a numeric address", shown);
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        int saved = errno;
        snprintf(err, errlen, "socket: %s", strerror(saved));
        return -saved;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (a->addr.ipv6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, ADMIN_BACKLOG) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot listen on %s: %s", shown, strerror(errno));
        close(fd);
        return rc;
    }
    /* Port 0: the kernel chose; say which. */
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        a->addr.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                      : ((struct sockaddr_in *)&ss)->sin_port);
    listen_addr_format(&a->addr, a->bound, sizeof(a->bound));
    *out = fd;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the token */

static int load_token(struct admin *a, const char *path, char *err, size_t errlen)
{
    char *t = NULL;
    int rc = secfile_token(path, ADMIN_TOKEN_MAX + 2, &t, err, errlen);
    if (rc < 0)
        return rc;
    size_t n = strlen(t);
    bool visible = true;
    for (size_t i = 0; i < n; i++)
        visible = visible && t[i] > 0x20 && t[i] < 0x7f;
    if (n < ADMIN_TOKEN_MIN || n > ADMIN_TOKEN_MAX || !visible) {
        char shown[256];
        escape_str(shown, sizeof(shown), path, 0);
        snprintf(err, errlen, "%s: a token is one line of %d to %d printable characters, no "
                 "spaces", shown, ADMIN_TOKEN_MIN, ADMIN_TOKEN_MAX);
        secmem_free(t);
        return -EINVAL;
    }
    a->token = t;
    a->token_len = n;
    return 0;
}

/* "Bearer <token>" against ours, in time that depends only on our token's
 * length: the presented one is copied into a buffer of that length (cut or
 * zero-padded), compared whole by sodium_memcmp, and the lengths' match
 * folded in without a branch. */
static bool token_ok(const struct admin *a, const char *header)
{
    static const char scheme[] = "Bearer ";
    if (!header || strncasecmp(header, scheme, sizeof(scheme) - 1) != 0)
        return false;
    const char *given = header + sizeof(scheme) - 1;
    size_t n = strlen(given);
    unsigned char buf[ADMIN_TOKEN_MAX];
    memset(buf, 0, a->token_len);
    memcpy(buf, given, n < a->token_len ? n : a->token_len);
    int same = sodium_memcmp(buf, a->token, a->token_len) == 0;
    sodium_memzero(buf, a->token_len);
    return (same & (n == a->token_len)) != 0;
}

/* ------------------------------------------------------------------ */
/* the watchdog */

static void watch_unref(struct admin_watch *w)
{
    pthread_mutex_lock(&w->lock);
    bool last = --w->refs == 0;
    pthread_mutex_unlock(&w->lock);
    if (!last)
        return;
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

static void deadline_after(struct timespec *ts, long long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* The costly pages (/metrics, /status: ~0.6 ms of CPU with 1,000
 * secrets) are built by one thread of their own at nice ADMIN_PAGE_NICE,
 * while their connections wait suspended (MHD_suspend_connection): what a
 * scrape costs comes out of the readers' time as little as the scheduler
 * allows, and the HTTP threads stay free, at normal priority, for
 * accepting, parsing, /health and /health/live (tens of microseconds) — a
 * health check stays quick on a busy host, where a probe that times out
 * restarts the container. A thread cannot take its nice value back down
 * without CAP_SYS_NICE (containers lack it), hence a thread that is always
 * low rather than lowering an HTTP thread for the page; SCHED_IDLE
 * starved the pages under load. */
static void *build_main(void *arg)
{
    pthread_setname_np(pthread_self(), "rs-admin-page");
    struct admin *a = arg;
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), ADMIN_PAGE_NICE);
    pthread_mutex_lock(&a->build_lock);
    for (;;) {
        while (!a->jobs && !a->build_stop)
            pthread_cond_wait(&a->build_wake, &a->build_lock);
        struct build_job *j = a->jobs;
        if (!j)
            break;   /* stopped, and nothing left */
        a->jobs = j->next;
        pthread_mutex_unlock(&a->build_lock);
        j->rc = a->h.page(a->h.arg, j->page, &j->out);
        j->done = true;
        /* From here j is the HTTP thread's (it may free it at once). A
         * suspended connection is neither timed out nor freed, and
         * admin_stop drains this queue before it stops MHD. */
        sym_MHD_resume_connection(j->conn);
        pthread_mutex_lock(&a->build_lock);
    }
    pthread_mutex_unlock(&a->build_lock);
    return NULL;
}

/* Queue page for the builder and suspend conn; false when the builder is
 * stopping (the caller builds it at once). */
static bool build_later(struct admin *a, struct MHD_Connection *conn, enum admin_page page,
                        void **con_cls)
{
    struct build_job *j = calloc(1, sizeof(*j));
    if (!j)
        return false;
    j->conn = conn;
    j->page = page;
    pthread_mutex_lock(&a->build_lock);
    bool ok = a->builder_started && !a->build_stop;
    if (ok) {
        struct build_job **tail = &a->jobs;
        while (*tail)
            tail = &(*tail)->next;
        *tail = j;
        *con_cls = j;
        /* Suspended before the builder can see it: it resumes only what is suspended. */
        sym_MHD_suspend_connection(conn);
        pthread_cond_signal(&a->build_wake);
    }
    pthread_mutex_unlock(&a->build_lock);
    if (!ok)
        free(j);
    return ok;
}

/* MHD_OPTION_NOTIFY_COMPLETED: a job whose answer was never queued (the
 * client left) is freed here, with its page. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct build_job *j = *con_cls;
    (void)cls;
    (void)conn;
    (void)code;
    if (j) {
        free(j->out.body);
        free(j);
        *con_cls = NULL;
    }
}

static void *watch_main(void *arg)
{
    pthread_setname_np(pthread_self(), "rs-admin-watch");
    struct admin_watch *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        w->in_flight = true;
        w->started_ms = clock_mono_ms();
        pthread_mutex_unlock(&w->lock);
        bool ok = w->probe(w->arg);   /* may block for as long as the mount does */
        pthread_mutex_lock(&w->lock);
        long long now = clock_mono_ms();
        w->in_flight = false;
        if (ok) {
            w->last_ok_ms = now;
            w->failing_ms = 0;
        } else if (!w->failing_ms) {
            w->failing_ms = now;
        }
        pthread_cond_broadcast(&w->wake);
        struct timespec ts;
        deadline_after(&ts, ADMIN_PROBE_MS);
        while (!w->stop && pthread_cond_timedwait(&w->wake, &w->lock, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&w->lock);
    watch_unref(w);
    return NULL;
}

static pthread_condattr_t *mono_condattr(pthread_condattr_t *ca)
{
    pthread_condattr_init(ca);
    pthread_condattr_setclock(ca, CLOCK_MONOTONIC);
    return ca;
}

static int watch_start(struct admin *a)
{
    pthread_condattr_t ca;
    struct admin_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, mono_condattr(&ca));
    pthread_condattr_destroy(&ca);
    w->refs = 2;   /* ours and the thread's */
    w->probe = a->h.probe;
    w->arg = a->h.arg;
    w->last_ok_ms = clock_mono_ms();   /* a grace of ADMIN_LIVE_MS for the first probe */
    int rc = -pthread_create(&a->watcher, NULL, watch_main, w);
    if (rc < 0) {
        w->refs = 1;
        watch_unref(w);
        return rc;
    }
    a->watch = w;
    a->watcher_started = true;
    return 0;
}

/* Stop the watchdog: a probe in flight gets ADMIN_STOP_PROBE_MS to end;
 * one that does not is hung, and its thread is left behind, detached (it
 * frees the shared state when the probe returns, if ever). */
static void watch_stop(struct admin *a)
{
    struct admin_watch *w = a->watch;
    if (!w)
        return;
    struct timespec ts;
    deadline_after(&ts, ADMIN_STOP_PROBE_MS);
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->wake);
    while (w->in_flight && pthread_cond_timedwait(&w->wake, &w->lock, &ts) != ETIMEDOUT)
        ;
    bool hung = w->in_flight;
    pthread_mutex_unlock(&w->lock);
    if (hung) {
        log_warn("the mount's liveness probe is stuck; its thread is left behind");
        pthread_detach(a->watcher);
    } else {
        pthread_join(a->watcher, NULL);
    }
    a->watcher_started = false;
    a->watch = NULL;
    watch_unref(w);
}

/* /health/live, from the watchdog's state (admin.h says the rule). */
static void live_state(struct admin *a, int *status, char *why, size_t cap)
{
    struct admin_watch *w = a->watch;
    *status = 200;
    why[0] = '\0';
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    long long now = clock_mono_ms();
    if (w->in_flight && now - w->started_ms > ADMIN_PROBE_STUCK_MS) {
        *status = 503;
        snprintf(why, cap, "the mount has not answered for %llds",
                 (now - w->started_ms) / 1000);
    } else if (now - w->last_ok_ms > ADMIN_LIVE_MS) {
        *status = 503;
        if (w->failing_ms)
            snprintf(why, cap, "the mount probe has failed for %llds", (now - w->failing_ms) / 1000);
        else
            snprintf(why, cap, "no mount probe has succeeded for %llds",
                     (now - w->last_ok_ms) / 1000);
    }
    pthread_mutex_unlock(&w->lock);
}

/* ------------------------------------------------------------------ */
/* connections and their deadline */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct admin *a = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            sym_MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct admin_conn *c = ci ? calloc(1, sizeof(*c)) : NULL;
        *socket_context = c;
        if (!c) {
            /* Untracked means without a deadline: not served at all. */
            if (ci)
                shutdown(ci->connect_fd, SHUT_RDWR);
            return;
        }
        c->fd = ci->connect_fd;
        c->start_ms = clock_mono_ms();
        pthread_mutex_lock(&a->conn_lock);
        c->next = a->conns;
        if (a->conns)
            a->conns->prev = c;
        a->conns = c;
        pthread_mutex_unlock(&a->conn_lock);
        return;
    }
    struct admin_conn *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&a->conn_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&a->conn_lock);
    *socket_context = NULL;
    free(c);
}

/* Shut down (not close: the fd is MHD's) every connection past its total
 * deadline; MHD sees the end of the stream and closes it. */
static void *sweep_main(void *arg)
{
    pthread_setname_np(pthread_self(), "rs-admin-sweep");
    struct admin *a = arg;
    pthread_mutex_lock(&a->conn_lock);
    while (!a->sweep_stop) {
        long long now = clock_mono_ms();
        unsigned cut = 0;
        for (struct admin_conn *c = a->conns; c; c = c->next)
            if (!c->cut && now - c->start_ms >= ADMIN_REQUEST_MS) {
                shutdown(c->fd, SHUT_RDWR);
                c->cut = true;
                cut++;
            }
        if (cut)
            log_debug("admin: %u connection%s past the %d ms deadline cut", cut,
                      cut == 1 ? "" : "s", ADMIN_REQUEST_MS);
        struct timespec ts;
        deadline_after(&ts, ADMIN_SWEEP_MS);
        while (!a->sweep_stop && pthread_cond_timedwait(&a->sweep_wake, &a->conn_lock, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&a->conn_lock);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* requests */

enum route_kind { ROUTE_PAGE, ROUTE_LIVE };

/* The whole of what is served (STYLE.md: a dispatch table). */
static const struct route {
    const char *path;
    enum route_kind kind;
    enum admin_page page;
} routes[] = {
    {"/health", ROUTE_PAGE, ADMIN_PAGE_HEALTH},
    {"/health/live", ROUTE_LIVE, ADMIN_PAGE_HEALTH},
    {"/metrics", ROUTE_PAGE, ADMIN_PAGE_METRICS},
    {"/status", ROUTE_PAGE, ADMIN_PAGE_STATUS},
};

static const char json_type[] = "application/json";

/* Queue status with body (taken: malloc'd, or static when persistent). */
static enum MHD_Result reply(struct MHD_Connection *conn, int status, const char *type,
                             char *body, size_t len, bool persistent, const char *hname,
                             const char *hvalue)
{
    struct MHD_Response *r = sym_MHD_create_response_from_buffer(
        len, body, persistent ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
    if (!r) {
        if (!persistent)
            free(body);
        return MHD_NO;
    }
    /* One request per connection: the deadline counts from accept, so a
     * kept-alive connection's next request could be cut halfway. */
    bool ok = sym_MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) == MHD_YES &&
              sym_MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_YES &&
              sym_MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES &&
              (!hname || sym_MHD_add_response_header(r, hname, hvalue) == MHD_YES);
    enum MHD_Result rc = ok ? sym_MHD_queue_response(conn, (unsigned)status, r) : MHD_NO;
    sym_MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, int status, const char *json,
                                   const char *hname, const char *hvalue)
{
    return reply(conn, status, json_type, (char *)(uintptr_t)json, strlen(json), true, hname,
                 hvalue);
}

static enum MHD_Result reply_live(struct admin *a, struct MHD_Connection *conn)
{
    char why[128], esc[256], *body;
    int status;
    live_state(a, &status, why, sizeof(why));
    log_json_escape(esc, sizeof(esc), why);
    int n = status == 200 ? asprintf(&body, "{\"status\":\"ok\"}\n")
                          : asprintf(&body, "{\"status\":\"stuck\",\"error\":\"%s\"}\n", esc);
    if (n < 0)
        return reply_error(conn, 500, "{\"error\":\"out of memory\"}\n", NULL, NULL);
    return reply(conn, status, json_type, body, (size_t)n, false, NULL, NULL);
}

static bool has_body(struct MHD_Connection *conn)
{
    const char *cl = sym_MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = sym_MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return te || (cl && strspn(cl, "0") != strlen(cl));
}

/* MHD calls this once the headers are in; we answer at once, so no body
 * is ever read (MHD closes a connection whose body it did not read). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct admin *a = cls;
    struct admin_reply out = {0};
    int rc;
    (void)version;
    (void)upload_data;
    struct build_job *j = *con_cls;
    if (j) {
        /* Resumed: the builder is done with it. */
        *con_cls = NULL;
        out = j->out;
        rc = j->rc;
        free(j);
        goto answer;
    }
    if (*upload_size)
        return MHD_NO;   /* not reached: the answer was queued on the first call */
    if (has_body(conn))
        return reply_error(conn, 400, "{\"error\":\"a request with a body\"}\n", NULL, NULL);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply_error(conn, 405, "{\"error\":\"method not allowed\"}\n",
                           MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (a->token && !token_ok(a, sym_MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                                 MHD_HTTP_HEADER_AUTHORIZATION)))
        return reply_error(conn, 401, "{\"error\":\"a bearer token is required\"}\n",
                           MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    const struct route *rt = NULL;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !rt; i++)
        if (strcmp(url, routes[i].path) == 0)
            rt = &routes[i];
    if (!rt)
        return reply_error(conn, 404, "{\"error\":\"not found\"}\n", NULL, NULL);
    if (rt->kind == ROUTE_LIVE)
        return reply_live(a, conn);
    if (rt->page != ADMIN_PAGE_HEALTH && build_later(a, conn, rt->page, con_cls))
        return MHD_YES;   /* answered when the builder resumes it */
    rc = a->h.page(a->h.arg, rt->page, &out);
answer:
    if (rc < 0) {
        free(out.body);
        return reply_error(conn, 500, "{\"error\":\"out of memory\"}\n", NULL, NULL);
    }
    if (!out.body)
        return reply(conn, out.status, out.content_type, (char *)(uintptr_t)"", 0, true, NULL,
                     NULL);
    return reply(conn, out.status, out.content_type, out.body, out.len, false, NULL, NULL);
}

/* MHD's own complaints (a malformed request, a failed accept), at debug:
 * they are about clients, and never carry a header's value. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    vsnprintf(msg, sizeof(msg), fmt, ap);
#pragma GCC diagnostic pop
    msg[strcspn(msg, "\n")] = '\0';
    log_debug("libmicrohttpd: %s", msg);
}

/* ------------------------------------------------------------------ */
/* start and stop */

static int start_threads(struct admin *a, int fd, char *err, size_t errlen)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&a->conn_lock, NULL);
    pthread_cond_init(&a->sweep_wake, mono_condattr(&ca));
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&a->build_lock, NULL);
    pthread_cond_init(&a->build_wake, NULL);
    a->locks_ready = true;

    /* Every thread started here inherits a mask without the asynchronous
     * signals: they are the main thread's (signals.h). */
    sigset_t old;
    signals_block_async(&old);
    int rc = -pthread_create(&a->sweeper, NULL, sweep_main, a);
    if (rc == 0)
        a->sweeper_started = true;
    if (rc == 0)
        rc = -pthread_create(&a->builder, NULL, build_main, a);
    if (rc == 0)
        a->builder_started = true;
    if (rc == 0 && a->h.probe)
        rc = watch_start(a);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the admin threads: %s", strerror(-rc));
    } else {
        /* MHD closes the listening socket it was given, at the stop and
         * (depending on the version) when it fails to start: it gets a
         * duplicate, and the original stays ours to close exactly once. */
        int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0) {
            rc = -errno;
            snprintf(err, errlen, "cannot duplicate the listening socket: %s", strerror(errno));
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return rc;
        }
        a->mhd = sym_MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                MHD_ALLOW_SUSPEND_RESUME,
            0, NULL, NULL, on_request, a,
            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)dup_fd,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)ADMIN_THREADS,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_CONNECTIONS,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)ADMIN_CONN_MEMORY,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)((ADMIN_REQUEST_MS + 999) / 1000),
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, a,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
            MHD_OPTION_END);
        if (!a->mhd) {
            rc = -EIO;
            snprintf(err, errlen, "cannot start the HTTP server (libmicrohttpd) on %s", a->bound);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int admin_load(char *err, size_t errlen)
{
    return dynlib_load(&mhd_lib, err, errlen);
}

int admin_start(const struct listen_addr *addr, const struct cfg_admin *conf,
                const struct admin_handlers *h, struct admin **out, char *err, size_t errlen)
{
    struct admin *a = NULL;
    int fd = -1, rc;

    *out = NULL;
    if (addr->family == LISTEN_NONE)
        return 0;
    if ((rc = admin_load(err, errlen)) < 0)
        return rc;
    rc = remote_check(addr, conf, err, errlen);
    if (rc < 0)
        return rc;
    a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    a->addr = *addr;
    a->h = *h;
    a->listen_fd = -1;
    if (conf && conf->token_file) {
        rc = load_token(a, conf->token_file, err, errlen);
        if (rc < 0)
            goto fail;
    }
    rc = addr->family == LISTEN_UNIX ? bind_unix(a, conf, &fd, err, errlen)
                                     : bind_tcp(a, &fd, err, errlen);
    if (rc < 0)
        goto fail;
    a->listen_fd = fd;
    fd = -1;   /* admin_stop closes it */
    rc = start_threads(a, a->listen_fd, err, errlen);
    if (rc < 0)
        goto fail;
    log_f(LOG_INFO, &(struct log_fields){.address = a->bound}, "admin endpoint listening");
    *out = a;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    admin_stop(a);
    return rc;
}

/* Raise *flag under lock, wake t through cond, join it. */
static void stop_thread(pthread_mutex_t *lock, pthread_cond_t *cond, bool *flag, pthread_t t)
{
    pthread_mutex_lock(lock);
    *flag = true;
    pthread_cond_broadcast(cond);
    pthread_mutex_unlock(lock);
    pthread_join(t, NULL);
}

void admin_stop(struct admin *a)
{
    if (!a)
        return;
    /* First the builder: it answers what is queued (MHD must not stop
     * with a connection suspended); requests after that build their page
     * at once. Then the server: no page is built after it returns (MHD
     * joins its threads, which finish the request they are in). */
    if (a->builder_started)
        stop_thread(&a->build_lock, &a->build_wake, &a->build_stop, a->builder);
    if (a->mhd)
        sym_MHD_stop_daemon(a->mhd);
    a->mhd = NULL;
    if (a->listen_fd >= 0)
        close(a->listen_fd);
    if (a->sweeper_started)
        stop_thread(&a->conn_lock, &a->sweep_wake, &a->sweep_stop, a->sweeper);
    watch_stop(a);
    if (a->locks_ready) {
        pthread_cond_destroy(&a->sweep_wake);
        pthread_mutex_destroy(&a->conn_lock);
        pthread_cond_destroy(&a->build_wake);
        pthread_mutex_destroy(&a->build_lock);
    }
    /* The socket file, if it is still the one we bound (another broker
     * may have replaced it since, believing it stale). */
    struct stat st;
    if (a->own_socket && lstat(a->addr.path, &st) == 0 && st.st_dev == a->sock_dev &&
        st.st_ino == a->sock_ino)
        unlink(a->addr.path);
    secmem_free(a->token);
    free(a);
}

/* ------------------------------------------------------------------ */
/* the client */

struct get_body {
    char *data;
    size_t len, cap;
    bool too_big;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct get_body *b = arg;
    size_t add = size * n;
    if (add > ADMIN_CLIENT_MAX_BODY - b->len) {
        b->too_big = true;
        return 0;
    }
    if (b->len + add + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + add + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

int admin_get(const struct listen_addr *addr, const char *path, const char *token,
              long timeout_ms, int *status, char **body, char *err, size_t errlen)
{
    char url[ADMIN_BOUND_MAX + 256], shown[ADMIN_BOUND_MAX];
    struct get_body b = {0};
    struct curl_slist *hdrs = NULL;
    char *auth = NULL;
    int rc = -ENOMEM;

    *body = NULL;
    *status = 0;
    err[0] = '\0';
    listen_addr_format(addr, shown, sizeof(shown));
    if (addr->family == LISTEN_NONE || (addr->family == LISTEN_TCP && addr->port == 0)) {
        snprintf(err, errlen, "%s: no address to connect to", shown);
        return -EINVAL;
    }
    if ((rc = http_libs_load(err, errlen)) < 0)
        return rc;
    CURL *c = sym_curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (addr->family == LISTEN_UNIX) {
        snprintf(url, sizeof(url), "http://localhost%s", path);
        sym_curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, addr->path);
    } else {
        snprintf(url, sizeof(url), addr->ipv6 ? "http://[%s]:%u%s" : "http://%s:%u%s",
                 addr->host, addr->port, path);
    }
    if (token) {
        size_t n = strlen(token) + sizeof("Authorization: Bearer ");
        auth = secmem_alloc(n);
        if (!auth)
            goto out;
        snprintf(auth, n, "Authorization: Bearer %s", token);
        hdrs = sym_curl_slist_append(NULL, auth);
        if (!hdrs)
            goto out;
    }
    sym_curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    sym_curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
#endif
    sym_curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    sym_curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    sym_curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    sym_curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    sym_curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    sym_curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode cc = sym_curl_easy_perform(c);
    if (cc == CURLE_OK) {
        long code = 0;
        sym_curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        *status = (int)code;
        *body = b.data ? b.data : calloc(1, 1);
        b.data = NULL;
        rc = *body ? 0 : -ENOMEM;
        if (rc < 0)
            snprintf(err, errlen, "out of memory");
        goto out;
    }
    long os_errno = 0;
    sym_curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        rc = -ETIMEDOUT;
    else if (cc == CURLE_COULDNT_CONNECT)
        rc = os_errno ? -(int)os_errno : -ECONNREFUSED;
    else if (b.too_big)
        rc = -E2BIG;
    else
        rc = -EIO;
    if (rc == -E2BIG)
        snprintf(err, errlen, "%s: the answer is over %u bytes", shown, ADMIN_CLIENT_MAX_BODY);
    else if (cc == CURLE_COULDNT_CONNECT && os_errno)
        snprintf(err, errlen, "cannot connect to %s: %s", shown, strerror((int)os_errno));
    else
        snprintf(err, errlen, "%s: %s", shown, sym_curl_easy_strerror(cc));
out:
    if (rc == -ENOMEM && !err[0])
        snprintf(err, errlen, "out of memory");
    sym_curl_slist_free_all(hdrs);
    secmem_free(auth);
    free(b.data);
    sym_curl_easy_cleanup(c);
    return rc;
}
