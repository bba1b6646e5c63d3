/* test_http.c - the shared HTTP layer against a real loopback server: status
 * and headers, body cap, Retry-After, keep-alive reuse, every transport
 * failure mapped to its errno, cancellation, and the config checks. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/http/http.h"
#include "lib/secmem.h"
#include "broker/hardening.h"
#include "ck_main.h"

/* ---- a scripted HTTP/1.1 server on 127.0.0.1 ---- */

enum mode { REPLY, CLOSE, SILENT };

struct server {
    int lfd, port, stop_pipe[2];
    pthread_t thread;
    enum mode mode;
    const char *reply;       /* full response text for REPLY */
    size_t reply_len;
    int accepts, requests;   /* read after stop */
    size_t body_len;         /* the last request's body, read after stop */
    bool body_ok;            /* every body byte was body_byte(its offset) */
};

/* What a test's request body holds at offset i. */
static char body_byte(size_t i)
{
    return (char)('a' + i % 26);
}

/* Reads the request head, then Content-Length bytes of body, checked. */
static bool read_request(struct server *s, int fd)
{
    char buf[8192];
    size_t n = 0;
    char *end = NULL;
    while (!end && n < sizeof(buf) - 1) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0)
            return false;
        n += (size_t)r;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return false;
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    size_t want = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
    size_t got = 0, have = n - (size_t)(end + 4 - buf);
    bool ok = true;
    const char *p = end + 4;
    for (;;) {
        for (size_t i = 0; i < have && got < want; i++, got++)
            ok = ok && p[i] == body_byte(got);
        if (got >= want)
            break;
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r <= 0)
            return false;
        p = buf;
        have = (size_t)r;
    }
    s->body_len = got;
    s->body_ok = ok;
    return true;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    int conns[16], nconn = 0;
    for (;;) {
        struct pollfd p[18];
        int np = 0;
        p[np++] = (struct pollfd){.fd = s->stop_pipe[0], .events = POLLIN};
        p[np++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        for (int i = 0; i < nconn; i++)
            p[np++] = (struct pollfd){.fd = conns[i], .events = POLLIN};
        if (poll(p, (nfds_t)np, 10000) <= 0 || p[0].revents)
            break;
        if (p[1].revents && nconn < 16) {
            conns[nconn++] = accept(s->lfd, NULL, NULL);
            s->accepts++;
        }
        for (int i = 2; i < np; i++) {
            if (!p[i].revents)
                continue;
            int fd = p[i].fd;
            bool ok = read_request(s, fd);
            if (ok)
                __atomic_add_fetch(&s->requests, 1, __ATOMIC_SEQ_CST);
            if (ok && s->mode == REPLY && write(fd, s->reply, s->reply_len) == (ssize_t)s->reply_len)
                continue;
            if (ok && s->mode == SILENT)
                continue;   /* never answer */
            close(fd);
            for (int j = 0; j < nconn; j++)
                if (conns[j] == fd)
                    conns[j] = conns[--nconn];
        }
    }
    for (int i = 0; i < nconn; i++)
        close(conns[i]);
    return NULL;
}

static void server_start(struct server *s, enum mode mode, const char *reply)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    s->reply = reply;
    s->reply_len = reply ? strlen(reply) : 0;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s->lfd, 0);
    ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(s->lfd, 16), 0);
    ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    ck_assert_int_eq(pipe(s->stop_pipe), 0);
    ck_assert_int_eq(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
    ck_assert_int_eq(write(s->stop_pipe[1], "x", 1), 1);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
}

/* ---- fixtures ---- */

static struct http_engine *eng;

static void setup(void)
{
    char e[256];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
    ck_assert_int_eq(http_engine_new(&eng, e, sizeof(e)), 0);
}

static void teardown(void)
{
    http_engine_free(eng);
    eng = NULL;
}

static struct http_client *client_for(int port, const char *extra)
{
    char text[512], err[256] = "";
    json_error_t je;
    struct http_client *c = NULL;
    snprintf(text, sizeof(text), "{\"address\": \"http://127.0.0.1:%d/prefix/\"%s%s}", port,
             extra ? ", " : "", extra ? extra : "");
    json_t *conf = json_loads(text, 0, &je);
    ck_assert_ptr_nonnull(conf);
    struct http_opts o;
    ck_assert_msg(http_opts_parse(conf, "address", true, &o, err, sizeof(err)) == 0, "%s", err);
    json_decref(conf);
    ck_assert_int_eq(http_client_new(eng, &o, NULL, &c, err, sizeof(err)), 0);
    http_opts_cleanup(&o);
    return c;
}

static int get(struct http_client *c, struct http_response *r, char *err, size_t errlen)
{
    static const char *const hdrs[] = {"X-Test: 1", NULL};
    struct http_request req = {.method = "GET", .path = "/v1/x", .headers = hdrs};
    return http_perform(c, &req, r, err, errlen);
}

/* One GET against a fresh server answering in mode: the result, the
 * response in *r (http_response_cleanup it) and the message in err. */
static int one_get(enum mode mode, const char *reply, const char *extra, struct http_response *r,
                   char *err, size_t errlen)
{
    struct server s;
    server_start(&s, mode, reply);
    struct http_client *c = client_for(s.port, extra);
    http_response_init(r);
    int rc = get(c, r, err, errlen);
    http_client_free(c);
    server_stop(&s);
    return rc;
}

/* ---- tests ---- */

START_TEST(ok_body_status_and_keepalive)
{
    struct server s;
    server_start(&s, REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nDate: Sun, 06 Nov 1994 "
                            "08:49:37 GMT\r\n\r\n{\"a\":\"b c\"}");
    struct http_client *c = client_for(s.port, NULL);
    struct http_response r;
    char err[256] = "";
    http_response_init(&r);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(get(c, &r, err, sizeof(err)), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.body.len, 11);
        ck_assert_int_eq(memcmp(r.body.data, "{\"a\":\"b c\"}", 11), 0);
        ck_assert_int_eq(r.retry_after_ms, -1);
        ck_assert_int_eq(r.date, 784111777);
    }
    http_response_cleanup(&r);
    http_client_free(c);
    server_stop(&s);
    ck_assert_int_eq(s.requests, 3);
    ck_assert_int_eq(s.accepts, 1);   /* one connection, reused */
}
END_TEST

struct many_seen {
    int calls[10];
    const int *rcs;
    const struct http_response *resps;
    bool final_when_told;   /* each outcome was complete when done() heard of it */
};

static void many_done(void *arg, size_t i)
{
    struct many_seen *m = arg;
    m->calls[i]++;
    m->final_when_told = m->final_when_told && m->rcs[i] == 0 && m->resps[i].status == 200 &&
                         m->resps[i].body.len == 11;
}

/* Ten requests at once with max_parallel 4: each reported once, complete,
 * and never more than four connections. */
START_TEST(perform_many_reports_each_within_max_parallel)
{
    struct server s;
    server_start(&s, REPLY, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"a\":\"b c\"}");
    struct http_client *c = client_for(s.port, "\"max_parallel\": 4");
    static const char *const hdrs[] = {"X-Test: 1", NULL};
    struct http_request reqs[10];
    struct http_response resps[10];
    int rcs[10];
    char errs[10][128];
    struct many_seen seen = {.rcs = rcs, .resps = resps, .final_when_told = true};
    for (int i = 0; i < 10; i++) {
        reqs[i] = (struct http_request){.method = "GET", .path = "/v1/x", .headers = hdrs};
        http_response_init(&resps[i]);
    }
    http_perform_many(c, reqs, 10, resps, rcs, errs[0], sizeof(errs[0]), many_done, &seen);
    for (int i = 0; i < 10; i++) {
        ck_assert_msg(rcs[i] == 0, "%d: %s", i, errs[i]);
        ck_assert_int_eq(seen.calls[i], 1);
        http_response_cleanup(&resps[i]);
    }
    ck_assert(seen.final_when_told);
    http_client_free(c);
    server_stop(&s);
    ck_assert_int_eq(s.requests, 10);
    ck_assert_int_le(s.accepts, 4);
}
END_TEST

/* A request body several times libcurl's upload buffer (16 KiB, set to keep
 * it out of secheap's large-block path) arrives whole and in order. */
START_TEST(post_body_larger_than_upload_buffer)
{
    enum { LEN = 100 * 1024 };
    static char body[LEN];
    static const char *const hdrs[] = {"Content-Type: application/octet-stream", NULL};
    for (size_t i = 0; i < LEN; i++)
        body[i] = body_byte(i);
    struct server s;
    server_start(&s, REPLY, "HTTP/1.1 204 No Content\r\n\r\n");
    struct http_client *c = client_for(s.port, NULL);
    struct http_request req = {.method = "POST", .path = "/v1/x", .headers = hdrs, .body = body,
                               .body_len = LEN};
    struct http_response r;
    char err[256] = "";
    http_response_init(&r);
    ck_assert_msg(http_perform(c, &req, &r, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(r.status, 204);
    http_response_cleanup(&r);
    http_client_free(c);
    server_stop(&s);
    ck_assert_int_eq(s.requests, 1);
    ck_assert_uint_eq(s.body_len, LEN);
    ck_assert(s.body_ok);
}
END_TEST

START_TEST(retry_after_seconds)
{
    struct http_response r;
    char err[256] = "";
    ck_assert_int_eq(one_get(REPLY, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n"
                                    "Content-Length: 2\r\n\r\n{}", NULL, &r, err, sizeof(err)), 0);
    ck_assert_int_eq(r.status, 429);
    ck_assert_int_eq(r.retry_after_ms, 3000);
    ck_assert(http_status_retryable(r.status));
    http_response_cleanup(&r);
}
END_TEST

/* A 401's challenge: the Bearer one of several; none kept for other statuses. */
START_TEST(www_authenticate)
{
    struct http_response r;
    char err[256] = "";
    ck_assert_int_eq(one_get(REPLY, "HTTP/1.1 401 Unauthorized\r\n"
                                    "WWW-Authenticate: PoP nonce=\"n1\"\r\n"
                                    "WWW-Authenticate: Bearer authorization=\"https://login/t\", "
                                    "resource=\"https://vault.azure.net\"\r\n"
                                    "Content-Length: 2\r\n\r\n{}", NULL, &r, err, sizeof(err)), 0);
    ck_assert_int_eq(r.status, 401);
    ck_assert_str_eq(r.www_authenticate, "Bearer authorization=\"https://login/t\", "
                                         "resource=\"https://vault.azure.net\"");
    http_response_cleanup(&r);
    ck_assert_ptr_null(r.www_authenticate);

    ck_assert_int_eq(one_get(REPLY, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic "
                                    "realm=\"x\"\r\nContent-Length: 0\r\n\r\n", NULL, &r, err,
                             sizeof(err)), 0);
    ck_assert_str_eq(r.www_authenticate, "Basic realm=\"x\"");
    http_response_cleanup(&r);

    ck_assert_int_eq(one_get(REPLY, "HTTP/1.1 200 OK\r\nWWW-Authenticate: Bearer a=\"b\"\r\n"
                                    "Content-Length: 0\r\n\r\n", NULL, &r, err, sizeof(err)), 0);
    ck_assert_ptr_null(r.www_authenticate);
    http_response_cleanup(&r);
}
END_TEST

START_TEST(body_over_cap)
{
    static char reply[4096];
    struct http_response r;
    char err[256] = "";
    int n = snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n");
    memset(reply + n, 'A', 2000);
    ck_assert_int_eq(one_get(REPLY, reply, "\"max_response_size\": 1024", &r, err, sizeof(err)),
                     -E2BIG);
    ck_assert_str_eq(err, "response larger than 1024 bytes (max_response_size)");
    ck_assert(!http_errno_retryable(-E2BIG));
    http_response_cleanup(&r);
}
END_TEST

START_TEST(body_over_cap_without_length)
{
    static char reply[4096];
    struct http_response r;
    char err[256] = "";
    int n = snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    memset(reply + n, 'B', 3000);
    ck_assert_int_eq(one_get(REPLY, reply, "\"max_response_size\": 1024", &r, err, sizeof(err)),
                     -E2BIG);
    http_response_cleanup(&r);
}
END_TEST

START_TEST(connection_refused)
{
    struct server s;
    server_start(&s, CLOSE, NULL);
    int port = s.port;
    server_stop(&s);   /* nothing listens there now */
    struct http_client *c = client_for(port, NULL);
    struct http_response r;
    char err[256] = "";
    http_response_init(&r);
    int rc = get(c, &r, err, sizeof(err));
    ck_assert_int_eq(rc, -ECONNREFUSED);
    ck_assert(http_errno_retryable(rc));
    ck_assert_msg(strncmp(err, "cannot connect: ", 16) == 0, "%s", err);
    http_response_cleanup(&r);
    http_client_free(c);
}
END_TEST

START_TEST(dropped_connection)
{
    struct http_response r;
    char err[256] = "";
    int rc = one_get(CLOSE, NULL, NULL, &r, err, sizeof(err));
    ck_assert_int_eq(rc, -ECONNRESET);
    ck_assert(http_errno_retryable(rc));
    http_response_cleanup(&r);
}
END_TEST

START_TEST(timeout)
{
    struct http_response r;
    char err[256] = "";
    ck_assert_int_eq(one_get(SILENT, NULL, "\"timeout\": 1", &r, err, sizeof(err)), -ETIMEDOUT);
    ck_assert_msg(strncmp(err, "timed out: ", 11) == 0, "%s", err);
    http_response_cleanup(&r);
}
END_TEST

struct bg_get {
    struct http_client *c;
    int rc;
};

static void *bg(void *arg)
{
    struct bg_get *g = arg;
    struct http_response r;
    char err[256] = "";
    http_response_init(&r);
    g->rc = get(g->c, &r, err, sizeof(err));
    http_response_cleanup(&r);
    return NULL;
}

START_TEST(cancel_aborts_in_flight_and_new)
{
    struct server s;
    server_start(&s, SILENT, NULL);
    struct http_client *c = client_for(s.port, NULL);   /* 30 s timeout */
    struct bg_get g = {.c = c};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, bg, &g), 0);
    for (int i = 0; i < 200 && __atomic_load_n(&s.requests, __ATOMIC_SEQ_CST) == 0; i++)
        usleep(10000);
    http_engine_cancel(eng, true);
    pthread_join(t, NULL);
    ck_assert_int_eq(g.rc, -ECANCELED);
    bg(&g);
    ck_assert_int_eq(g.rc, -ECANCELED);   /* new requests too */
    http_engine_cancel(eng, false);
    http_client_free(c);
    server_stop(&s);
}
END_TEST

START_TEST(escape_path)
{
    char out[64];
    ck_assert_int_eq(http_escape_path("secret/a b/ü?#%", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "secret/a%20b/%C3%BC%3F%23%25");
    ck_assert_int_eq(http_escape_path("abcdef", out, 4), -E2BIG);
}
END_TEST

START_TEST(classification)
{
    ck_assert(http_status_retryable(500));
    ck_assert(http_status_retryable(503));
    ck_assert(http_status_retryable(429));
    ck_assert(!http_status_retryable(501));
    ck_assert(!http_status_retryable(400));
    ck_assert(!http_status_retryable(403));
    ck_assert(!http_status_retryable(404));
    ck_assert(http_errno_retryable(-ETIMEDOUT));
    ck_assert(!http_errno_retryable(-EKEYREJECTED));
    ck_assert(!http_errno_retryable(-ECANCELED));
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, ok_body_status_and_keepalive);
    tcase_add_test(tc, post_body_larger_than_upload_buffer);
    tcase_add_test(tc, perform_many_reports_each_within_max_parallel);
    tcase_add_test(tc, retry_after_seconds);
    tcase_add_test(tc, www_authenticate);
    tcase_add_test(tc, body_over_cap);
    tcase_add_test(tc, body_over_cap_without_length);
    tcase_add_test(tc, connection_refused);
    tcase_add_test(tc, dropped_connection);
    tcase_add_test(tc, timeout);
    tcase_add_test(tc, cancel_aborts_in_flight_and_new);
    tcase_add_test(tc, escape_path);
    tcase_add_test(tc, classification);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(http_suite)
