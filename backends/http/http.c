/* http.c - one curl multi handle, driven by one thread, shared by every
 * HTTP backend.
 *
 * Workers never touch the multi handle: they build an easy handle, queue it
 * and sleep on their own condition variable; the driver thread adds it,
 * runs the transfers and wakes the worker when it completes. libcurl's
 * multi interface is not thread-safe, so this hand-off is the whole
 * concurrency story; curl_multi_wakeup() is the one call allowed from any
 * thread.
 */
#include "backends/http/http.h"
#include "backends/http/libs.h"
#include "backends/http/url.h"
#include "lib/encode.h"
#include "lib/regs.h"
#include "rs_config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define HTTP_POLL_MS 1000

struct xfer {
    CURL *easy;
    struct xfer *next;
    pthread_cond_t *cond;          /* its caller's, on the engine lock */
    bool done, reported;
    CURLcode result;
    struct secbuf *body;
    bool too_big;
    /* What the easy handle borrows, freed with it (xfer_cleanup). */
    char *url;
    struct curl_slist *hdrs, *connect_to;
    char errbuf[CURL_ERROR_SIZE];
};

struct http_engine {
    CURLM *multi;
    CURLSH *share;
    pthread_mutex_t lock;
    struct xfer *pending;          /* queued by workers, protected by lock */
    struct xfer *active;           /* in the multi handle; driver thread only */
    bool stop, cancelled;          /* protected by lock */
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    pthread_t thread;
    bool running;
    bool openssl;                  /* curl's TLS library is OpenSSL */
};

struct http_client {
    struct http_engine *e;
    char *base;                    /* scheme://host[:port][/prefix], no trailing '/' */
    char *authority;               /* host[:port] as sent in Host (port only if not default) */
    char *base_path;               /* the /prefix part of base, "" when none */
    char *connect_to;              /* "name:port:host:port" when tls_server_name is set */
    char *ca_file, *ca_path, *cert_file, *key_file;
    long long connect_timeout_ms, timeout_ms;
    size_t max_response;
    unsigned max_parallel;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned inflight;             /* protected by lock */
};

/* ---- engine ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access a, void *arg)
{
    struct http_engine *e = arg;
    (void)h;
    (void)a;
    pthread_mutex_lock(&e->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
    struct http_engine *e = arg;
    (void)h;
    pthread_mutex_unlock(&e->share_locks[data]);
}

/* OpenSSL keeps a connection's read buffer, holding the last decrypted
 * record (a secret), for as long as the connection lives; with
 * RELEASE_BUFFERS it frees it once drained, and secmem.c wipes on free. */
static CURLcode ssl_ctx_setup(CURL *h, void *ssl_ctx, void *arg)
{
    (void)h;
    (void)arg;
    (void)sym_SSL_CTX_ctrl((SSL_CTX *)ssl_ctx, SSL_CTRL_MODE, SSL_MODE_RELEASE_BUFFERS, NULL);
    return CURLE_OK;
}

/* Called with e->lock held. */
static void finish_locked(struct xfer *x, CURLcode result)
{
    x->done = true;
    x->result = result;
    pthread_cond_signal(x->cond);
}

static void unlink_active(struct http_engine *e, struct xfer *x)
{
    for (struct xfer **pp = &e->active; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            x->next = NULL;
            return;
        }
}

static void abort_active_locked(struct http_engine *e)
{
    while (e->active) {
        struct xfer *x = e->active;
        e->active = x->next;
        sym_curl_multi_remove_handle(e->multi, x->easy);
        finish_locked(x, CURLE_ABORTED_BY_CALLBACK);
    }
}

static void *driver(void *arg)
{
    pthread_setname_np(pthread_self(), "rs-http");
    struct http_engine *e = arg;
    int running = 0;

    secmem_hide_stack();   /* OpenSSL decrypts responses on this stack */

    pthread_mutex_lock(&e->lock);
    while (!e->stop) {
        while (e->pending) {
            struct xfer *x = e->pending;
            e->pending = x->next;
            if (sym_curl_multi_add_handle(e->multi, x->easy) != CURLM_OK) {
                finish_locked(x, CURLE_OUT_OF_MEMORY);
                continue;
            }
            x->next = e->active;
            e->active = x;
        }
        if (e->cancelled)
            abort_active_locked(e);
        pthread_mutex_unlock(&e->lock);

        sym_curl_multi_perform(e->multi, &running);
        /* TLS records were decrypted in there; the locks below may put
         * this thread to sleep, registers and all. */
        regs_scrub();
        CURLMsg *m;
        int left;
        while ((m = sym_curl_multi_info_read(e->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct xfer *x = NULL;
            CURLcode res = m->data.result;
            sym_curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            sym_curl_multi_remove_handle(e->multi, m->easy_handle);
            pthread_mutex_lock(&e->lock);
            unlink_active(e, x);
            finish_locked(x, res);
            pthread_mutex_unlock(&e->lock);
        }
        regs_scrub();   /* decrypted records and tokens, before waiting */
        sym_curl_multi_poll(e->multi, NULL, 0, HTTP_POLL_MS, NULL);
        pthread_mutex_lock(&e->lock);
    }
    abort_active_locked(e);
    while (e->pending) {
        struct xfer *x = e->pending;
        e->pending = x->next;
        finish_locked(x, CURLE_ABORTED_BY_CALLBACK);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

int http_engine_new(struct http_engine **out, char *err, size_t errlen)
{
    sigset_t all, old;
    int rc = http_libs_load(err, errlen);
    if (rc < 0)
        return rc;
    struct http_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    pthread_mutex_init(&e->lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&e->share_locks[i], NULL);
    e->multi = sym_curl_multi_init();
    e->share = sym_curl_share_init();
    if (!e->multi || !e->share) {
        snprintf(err, errlen, "libcurl: cannot create the transfer engine");
        http_engine_free(e);
        return -ENOMEM;
    }
    /* Connections are pooled by the one multi handle every request goes
     * through; the share handle adds DNS answers and TLS session tickets
     * (resumed handshakes) across them. */
    sym_curl_share_setopt(e->share, CURLSHOPT_LOCKFUNC, share_lock);
    sym_curl_share_setopt(e->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    sym_curl_share_setopt(e->share, CURLSHOPT_USERDATA, e);
    sym_curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    sym_curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    sym_curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, 256L);
    const curl_version_info_data *cv = sym_curl_version_info(CURLVERSION_NOW);
    e->openssl = cv->ssl_version && strncmp(cv->ssl_version, "OpenSSL/", 8) == 0;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&e->thread, NULL, driver, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the HTTP thread: %s", strerror(rc));
        http_engine_free(e);
        return -rc;
    }
    e->running = true;
    *out = e;
    return 0;
}

void http_engine_cancel(struct http_engine *e, bool cancel)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->cancelled = cancel;
    pthread_mutex_unlock(&e->lock);
    sym_curl_multi_wakeup(e->multi);
}

void http_engine_free(struct http_engine *e)
{
    if (!e)
        return;
    if (e->running) {
        pthread_mutex_lock(&e->lock);
        e->stop = true;
        pthread_mutex_unlock(&e->lock);
        sym_curl_multi_wakeup(e->multi);
        pthread_join(e->thread, NULL);
    }
    if (e->multi)
        sym_curl_multi_cleanup(e->multi);
    if (e->share)
        sym_curl_share_cleanup(e->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&e->share_locks[i]);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

/* ---- clients ---- */

int http_client_new(struct http_engine *e, const struct http_opts *o, const char *url,
                    struct http_client **out, char *err, size_t errlen)
{
    struct http_client *c = calloc(1, sizeof(*c));
    struct http_url u = {0};
    int rc;

    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->e = e;
    if (!url)
        url = o->address;
    if (!url) {
        snprintf(err, errlen, "no address");
        rc = -EINVAL;
        goto out;
    }
    rc = http_url_parse(url, &u, err, errlen);
    if (rc < 0)
        goto out;
    bool tls = strcmp(u.scheme, "https") == 0;
    const char *sn = tls ? o->tls_server_name : NULL;
    const char *name = sn ? sn : u.host;
    long port = u.port;
    bool v6 = strchr(name, ':') != NULL && name[0] != '[';   /* curl brackets literals itself */
    size_t plen = strlen(u.path);
    while (plen > 0 && u.path[plen - 1] == '/')
        plen--;
    rc = -ENOMEM;
    if (asprintf(&c->base, "%s://%s%s%s:%ld%.*s", u.scheme, v6 ? "[" : "", name, v6 ? "]" : "",
                 port, (int)plen, u.path) < 0) {
        c->base = NULL;
        goto out;
    }
    bool default_port = (tls && port == 443) || (!tls && port == 80);
    char portbuf[16] = "";
    if (!default_port)
        snprintf(portbuf, sizeof(portbuf), ":%ld", port);
    if (asprintf(&c->authority, "%s%s%s%s", v6 ? "[" : "", name, v6 ? "]" : "", portbuf) < 0) {
        c->authority = NULL;
        goto out;
    }
    if (!(c->base_path = strndup(u.path, plen)))
        goto out;
    /* tls_server_name: the URL (so SNI and certificate checks) names the
     * server as configured, while connections go to the address's host. */
    if (sn && asprintf(&c->connect_to, "%s:%ld:%s:%ld", name, port, u.host, port) < 0) {
        c->connect_to = NULL;
        goto out;
    }
    if (tls) {   /* TLS material only where TLS is spoken */
        if ((o->ca_file && !(c->ca_file = strdup(o->ca_file))) ||
            (o->ca_path && !(c->ca_path = strdup(o->ca_path))) ||
            (o->cert_file && !(c->cert_file = strdup(o->cert_file))) ||
            (o->key_file && !(c->key_file = strdup(o->key_file))))
            goto out;
    }
    c->connect_timeout_ms = o->connect_timeout_ms;
    c->timeout_ms = o->timeout_ms;
    c->max_parallel = o->max_parallel;
    c->max_response = o->max_response;
    *out = c;
    c = NULL;
    rc = 0;
out:
    http_url_cleanup(&u);
    http_client_free(c);
    return rc;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    free(c->base);
    free(c->authority);
    free(c->base_path);
    free(c->connect_to);
    free(c->ca_file);
    free(c->ca_path);
    free(c->cert_file);
    free(c->key_file);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

const char *http_client_authority(const struct http_client *c)
{
    return c->authority;
}

const char *http_client_base_path(const struct http_client *c)
{
    return c->base_path;
}

void http_client_set_timeouts(struct http_client *c, long long connect_ms, long long total_ms)
{
    c->connect_timeout_ms = connect_ms;
    c->timeout_ms = total_ms;
}

/* ---- requests ---- */

void http_response_init(struct http_response *r)
{
    memset(r, 0, sizeof(*r));
    secbuf_init(&r->body, 0);
    r->retry_after_ms = -1;
}

void http_response_cleanup(struct http_response *r)
{
    secbuf_cleanup(&r->body);
    free(r->www_authenticate);
    r->www_authenticate = NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    int rc = secbuf_append(x->body, p, size * n);
    /* The decrypted bytes went through vector registers; curl's next step
     * is a system call (recv, poll) that may put this thread to sleep. */
    regs_scrub();
    if (rc < 0) {
        x->too_big = true;
        return 0;   /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return size * n;
}

/* A 401's challenge: the first WWW-Authenticate whose scheme is Bearer,
 * else the first one (a server may send several, one per scheme). */
static void read_challenge(CURL *easy, struct http_response *r)
{
    struct curl_header *h;
    size_t pick = 0, n;
    if (sym_curl_easy_header(easy, "WWW-Authenticate", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return;
    n = h->amount;
    for (size_t i = 0; i < n && i < 16; i++)
        if (sym_curl_easy_header(easy, "WWW-Authenticate", i, CURLH_HEADER, -1, &h) == CURLHE_OK &&
            strncasecmp(h->value, "Bearer", 6) == 0 && (h->value[6] == ' ' || !h->value[6])) {
            pick = i;
            break;
        }
    if (sym_curl_easy_header(easy, "WWW-Authenticate", pick, CURLH_HEADER, -1, &h) == CURLHE_OK)
        r->www_authenticate = strdup(h->value);
}

static void read_headers(CURL *easy, struct http_response *r)
{
    struct curl_header *h;
    if (r->status == 401)
        read_challenge(easy, r);
    if (sym_curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK) {
        char *end;
        long long s = strtoll(h->value, &end, 10);
        if (end != h->value && *end == '\0' && s >= 0) {
            r->retry_after_ms = (s > 86400 ? 86400 : s) * 1000;
        } else {
            time_t t = sym_curl_getdate(h->value, NULL);
            if (t > 0) {
                long long d = (long long)(t - time(NULL));
                r->retry_after_ms = (d < 0 ? 0 : d > 86400 ? 86400 : d) * 1000;
            }
        }
    }
    if (sym_curl_easy_header(easy, "Date", 0, CURLH_HEADER, -1, &h) == CURLHE_OK) {
        time_t t = sym_curl_getdate(h->value, NULL);
        r->date = t > 0 ? t : 0;
    }
}

static int map_curl_error(CURLcode res, const struct xfer *x, const char *errbuf, size_t cap,
                          char *err, size_t errlen)
{
    const char *why = errbuf[0] ? errbuf : sym_curl_easy_strerror(res);
    switch (res) {
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (x->too_big || res == CURLE_FILESIZE_EXCEEDED) {
            snprintf(err, errlen, "response larger than %zu bytes (max_response_size)", cap);
            return -E2BIG;
        }
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        snprintf(err, errlen, "cannot resolve host: %s", why);
        return -EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT:
        snprintf(err, errlen, "cannot connect: %s", why);
        return -ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(err, errlen, "timed out: %s", why);
        return -ETIMEDOUT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
        snprintf(err, errlen, "TLS: %s", why);
        return -EKEYREJECTED;
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(err, errlen, "TLS handshake failed: %s", why);
        return -ECONNRESET;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        snprintf(err, errlen, "connection lost: %s", why);
        return -ECONNRESET;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
        snprintf(err, errlen, "malformed response: %s", why);
        return -EPROTO;
    case CURLE_ABORTED_BY_CALLBACK:
        snprintf(err, errlen, "cancelled: shutting down");
        return -ECANCELED;
    case CURLE_OUT_OF_MEMORY:
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        snprintf(err, errlen, "bad URL: %s", why);
        return -EINVAL;
    default:
        break;
    }
    snprintf(err, errlen, "%s", why);
    return -EIO;
}

/* Up to want slots. A caller with transfers in flight takes what is free
 * (maybe none: its own transfers give slots back as they finish); one
 * with none in flight (wait) waits for at least one. So nobody waits for
 * slots while holding some that are not in flight: no deadlock. */
static unsigned slot_take(struct http_client *c, unsigned want, bool wait)
{
    pthread_mutex_lock(&c->lock);
    while (wait && c->inflight >= c->max_parallel)
        pthread_cond_wait(&c->cond, &c->lock);
    unsigned avail = c->inflight < c->max_parallel ? c->max_parallel - c->inflight : 0;
    unsigned k = want < avail ? want : avail;
    c->inflight += k;
    pthread_mutex_unlock(&c->lock);
    return k;
}

static void slot_release(struct http_client *c)
{
    pthread_mutex_lock(&c->lock);
    c->inflight--;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Queue x[0..n) for the driver (or fail them at shutdown). */
static void submit(struct http_engine *e, struct xfer *x, size_t n)
{
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < n; i++) {
        if (x[i].done)
            continue;   /* failed before it was sent */
        if (e->stop || e->cancelled) {
            x[i].done = true;
            x[i].result = CURLE_ABORTED_BY_CALLBACK;
            continue;
        }
        x[i].next = e->pending;
        e->pending = &x[i];
    }
    pthread_mutex_unlock(&e->lock);
    sym_curl_multi_wakeup(e->multi);
    regs_scrub();   /* a request body or token built here, before waiting */
}

/* The next of x[0..n) the driver finished and nobody reported yet
 * (waiting for one on cond); n when all are reported. */
static size_t next_done(struct http_engine *e, struct xfer *x, size_t n, pthread_cond_t *cond)
{
    size_t i = n;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        bool left = false;
        for (i = 0; i < n; i++) {
            left = left || !x[i].reported;
            if (x[i].done && !x[i].reported)
                break;
        }
        if (i < n || !left)
            break;
        pthread_cond_wait(cond, &e->lock);
    }
    if (i < n)
        x[i].reported = true;
    pthread_mutex_unlock(&e->lock);
    return i < n ? i : n;
}

static void xfer_cleanup(struct xfer *x)
{
    if (x->easy) {
        sym_curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    sym_curl_slist_free_all(x->hdrs);
    sym_curl_slist_free_all(x->connect_to);
    free(x->url);
    x->hdrs = x->connect_to = NULL;
    x->url = NULL;
}

/* An easy handle for req into x (x zeroed by the caller; xfer_cleanup
 * after, whatever the outcome); resp is reset for the answer. 0 or
 * -ENOMEM. */
static int xfer_setup(struct http_client *c, const struct http_request *req,
                      struct http_response *resp, struct xfer *x)
{
    secbuf_cleanup(&resp->body);
    secbuf_init(&resp->body, c->max_response);
    resp->status = 0;
    resp->retry_after_ms = -1;
    resp->date = 0;
    free(resp->www_authenticate);
    resp->www_authenticate = NULL;

    if (asprintf(&x->url, "%s%s", c->base, req->path) < 0) {
        x->url = NULL;
        return -ENOMEM;
    }
    x->easy = sym_curl_easy_init();
    if (!x->easy)
        return -ENOMEM;
    x->body = &resp->body;
    for (const char *const *h = req->headers; h && *h; h++)
        if (!(x->hdrs = sym_curl_slist_append(x->hdrs, *h)))
            return -ENOMEM;
    /* No 100-continue round trip for small bodies. */
    if (!(x->hdrs = sym_curl_slist_append(x->hdrs, "Expect:")))
        return -ENOMEM;

    CURL *h = x->easy;
    sym_curl_easy_setopt(h, CURLOPT_URL, x->url);
    sym_curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)x);
    sym_curl_easy_setopt(h, CURLOPT_SHARE, c->e->share);
    sym_curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    sym_curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
    sym_curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    sym_curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);   /* never hand a token to another host */
    /* HTTP/1.1 only: over h2, libcurl 7.88's nghttp2 session allocates with
     * plain malloc, and HPACK keeps header values (tokens) in its dynamic
     * table for the connection's life, beyond our wiping allocators. */
    sym_curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    sym_curl_easy_setopt(h, CURLOPT_USERAGENT, "runsecrets/" RS_VERSION);
    sym_curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    sym_curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
    sym_curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    sym_curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response);
    /* Over TLS libcurl copies every request into an upload buffer, 64 KiB
     * by default, allocated per easy handle: with secheap's block header
     * just past its largest size class, so each request mapped, locked,
     * wiped and unmapped a block of its own (an munmap is a TLB shootdown
     * on every CPU). 16 KiB, libcurl's minimum, comes from a size class
     * and is reused; our requests are headers and small forms, and a
     * longer one is simply sent in several pieces. */
    sym_curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    sym_curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    sym_curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    sym_curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs);
    if (c->e->openssl)
        sym_curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_setup);
    if (c->ca_file)
        sym_curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->ca_path)
        sym_curl_easy_setopt(h, CURLOPT_CAPATH, c->ca_path);
    if (c->cert_file)
        sym_curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
    if (c->key_file)
        sym_curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
    if (c->connect_to) {
        if (!(x->connect_to = sym_curl_slist_append(NULL, c->connect_to)))
            return -ENOMEM;
        sym_curl_easy_setopt(h, CURLOPT_CONNECT_TO, x->connect_to);
    }
    if (strcmp(req->method, "GET") != 0) {
        /* The body stays in the caller's (secret) memory: no copy. */
        sym_curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        sym_curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        if (strcmp(req->method, "POST") != 0)
            sym_curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
    return 0;
}

/* The outcome of a finished x into resp, as http_perform returns it. */
static int xfer_finish(struct http_client *c, struct xfer *x, struct http_response *resp,
                       char *err, size_t errlen)
{
    int rc;
    if (x->result == CURLE_OK) {
        sym_curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &resp->status);
        read_headers(x->easy, resp);
        return 0;
    }
    rc = map_curl_error(x->result, x, x->errbuf, c->max_response, err, errlen);
    if (rc != -E2BIG)
        secbuf_cleanup(&resp->body);
    return rc;
}

int http_perform(struct http_client *c, const struct http_request *req,
                 struct http_response *resp, char *err, size_t errlen)
{
    int rc;
    http_perform_many(c, req, 1, resp, &rc, err, errlen, NULL, NULL);
    return rc;
}

void http_perform_many(struct http_client *c, const struct http_request *reqs, size_t n,
                       struct http_response *resps, int *rcs, char *errs, size_t errlen,
                       void (*done)(void *arg, size_t i), void *arg)
{
    pthread_cond_t cond;
    struct xfer *x = calloc(n, sizeof(*x));
    size_t sent = 0, told = 0;

    for (size_t i = 0; i < n; i++)
        errs[i * errlen] = '\0';
    if (!x) {
        for (size_t i = 0; i < n; i++) {
            rcs[i] = -ENOMEM;
            snprintf(errs + i * errlen, errlen, "out of memory");
            if (done)
                done(arg, i);
        }
        return;
    }
    pthread_cond_init(&cond, NULL);
    /* As many go out as there are free slots; each finished one gives
     * its slot back, is reported, and makes room for the next: a slow
     * answer holds up no other, and with max_parallel below n the
     * requests flow through the slots rather than in waves. */
    while (told < n) {
        size_t want = n - sent, first = sent;
        unsigned k = want ? slot_take(c, want > UINT_MAX ? UINT_MAX : (unsigned)want,
                                      sent == told) : 0;
        for (; k > 0; k--, sent++) {
            x[sent].cond = &cond;
            if (xfer_setup(c, &reqs[sent], &resps[sent], &x[sent]) < 0) {
                x[sent].done = true;   /* finished at once, as "out of memory" */
                x[sent].result = CURLE_OUT_OF_MEMORY;
            }
        }
        submit(c->e, &x[first], sent - first);
        size_t i = next_done(c->e, x, sent, &cond);
        if (i >= sent)
            continue;   /* cannot happen: sent > told after slot_take waited */
        slot_release(c);
        rcs[i] = xfer_finish(c, &x[i], &resps[i], errs + i * errlen, errlen);
        xfer_cleanup(&x[i]);
        told++;
        if (done)
            done(arg, i);
    }
    pthread_cond_destroy(&cond);
    free(x);
}

bool http_errno_retryable(int rc)
{
    switch (-rc) {
    case ETIMEDOUT:
    case ECONNREFUSED:
    case ECONNRESET:
    case EPROTO:
    case EHOSTUNREACH:
    case EIO:
    case EAGAIN:
        return true;
    default:
        return false;
    }
}

bool http_status_retryable(long status)
{
    return status == 429 || (status >= 500 && status != 501);
}

int http_escape_path(const char *in, char *out, size_t cap)
{
    return encode_percent_str(in, out, cap, ENCODE_KEEP_SLASH);
}
