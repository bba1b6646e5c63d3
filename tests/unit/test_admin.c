/* test_admin.c - the admin server's watchdog and lifecycle (broker/admin.c)
 * with a probe the test controls: a probe that hangs turns /health/live
 * 503 and does not hold up admin_stop. The HTTP surface itself is
 * tests/integration/test_admin_http.py. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/admin.h"
#include "broker/hardening.h"
#include "lib/clock.h"
#include "ck_main.h"

static char dir[] = "/tmp/rs-test-admin-XXXXXX";
static char sock[256];
static int gate[2];

static void setup(void)
{
    char e[128];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/admin.sock", dir);
    ck_assert_int_eq(pipe(gate), 0);
}

static void teardown(void)
{
    unlink(sock);
    rmdir(dir);
    memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

static int page(void *arg, enum admin_page p, struct admin_reply *out)
{
    (void)arg;
    (void)p;
    out->status = 200;
    out->content_type = "text/plain";
    out->body = strdup("page\n");
    out->len = out->body ? 5 : 0;
    return out->body ? 0 : -ENOMEM;
}

/* Blocks on the gate, as a probe of a wedged FUSE loop blocks in the
 * kernel. */
static bool probe_hangs(void *arg)
{
    char c;
    (void)arg;
    return read(gate[0], &c, 1) == 1;
}

static bool probe_ok(void *arg)
{
    (void)arg;
    return true;
}

static struct admin *start(bool (*probe)(void *))
{
    struct listen_addr addr;
    struct cfg_admin conf = {.mode = CFG_ADMIN_DEFAULT_MODE};
    struct admin_handlers h = {.page = page, .probe = probe, .arg = NULL};
    struct admin *a = NULL;
    char err[512] = "", text[300];
    snprintf(text, sizeof(text), "unix:%s", sock);
    ck_assert_int_eq(admin_addr_parse(text, &addr, err, sizeof(err)), 0);
    int rc = admin_start(&addr, &conf, &h, &a, err, sizeof(err));
    ck_assert_msg(rc == 0, "admin_start: %s", err);
    ck_assert_str_eq(admin_bound(a), text);
    return a;
}

static int get(const char *path, char **body)
{
    struct listen_addr addr;
    char err[512] = "", text[300];
    int status = 0;
    snprintf(text, sizeof(text), "unix:%s", sock);
    ck_assert_int_eq(admin_addr_parse(text, &addr, err, sizeof(err)), 0);
    int rc = admin_get(&addr, path, NULL, 3000, &status, body, err, sizeof(err));
    ck_assert_msg(rc == 0, "admin_get %s: %s", path, err);
    return status;
}

START_TEST(live_while_the_probe_answers)
{
    struct admin *a = start(probe_ok);
    char *body = NULL;
    ck_assert_int_eq(get("/health/live", &body), 200);
    ck_assert_str_eq(body, "{\"status\":\"ok\"}\n");
    free(body);
    ck_assert_int_eq(get("/metrics", &body), 200);
    ck_assert_str_eq(body, "page\n");
    free(body);
    admin_stop(a);
    struct stat st;
    ck_assert_int_eq(stat(sock, &st), -1);   /* the socket went with the server */
}
END_TEST

START_TEST(a_hung_probe_is_stuck_and_left_behind)
{
    struct admin *a = start(probe_hangs);
    char *body = NULL;
    /* Within the first ADMIN_PROBE_STUCK_MS a probe in flight is fine. */
    ck_assert_int_eq(get("/health/live", &body), 200);
    free(body);
    struct timespec ts = {.tv_sec = ADMIN_PROBE_STUCK_MS / 1000 + 1, .tv_nsec = 0};
    nanosleep(&ts, NULL);
    ck_assert_int_eq(get("/health/live", &body), 503);
    ck_assert_msg(strstr(body, "\"status\":\"stuck\"") &&
                  strstr(body, "the mount has not answered for"), "%s", body);
    free(body);
    /* Other pages do not wait on the probe. */
    ck_assert_int_eq(get("/status", &body), 200);
    free(body);
    long long t0 = clock_mono_ms();
    admin_stop(a);   /* must not join the hung thread */
    ck_assert_int_lt(clock_mono_ms() - t0, 1000);
    /* Let the abandoned probe return: its thread frees the shared state. */
    ck_assert_int_eq(write(gate[1], "x", 1), 1);
    ts = (struct timespec){.tv_sec = 0, .tv_nsec = 100 * 1000000L};
    nanosleep(&ts, NULL);
}
END_TEST

START_TEST(none_starts_nothing)
{
    struct listen_addr addr;
    struct admin *a = (struct admin *)&addr;
    struct admin_handlers h = {.page = page};
    char err[128];
    ck_assert_int_eq(admin_addr_parse("none", &addr, err, sizeof(err)), 0);
    ck_assert_int_eq(admin_start(&addr, NULL, &h, &a, err, sizeof(err)), 0);
    ck_assert_ptr_null(a);
    admin_stop(NULL);
}
END_TEST

START_TEST(remote_needs_allow_remote_and_a_token)
{
    struct listen_addr addr;
    struct cfg_admin conf = {.mode = CFG_ADMIN_DEFAULT_MODE};
    bool dflt = true;
    char err[512];
    ck_assert_int_eq(admin_resolve(&conf, "10.0.0.1:9464", false, &addr, &dflt, err,
                                   sizeof(err)), -EINVAL);
    ck_assert(!dflt);
    ck_assert_str_eq(err, "10.0.0.1:9464 is not a loopback address: the configuration's "
                     "\"admin\" needs \"allow_remote\": true and a \"token_file\" to serve "
                     "other hosts");
    conf.allow_remote = true;
    ck_assert_int_eq(admin_resolve(&conf, "10.0.0.1:9464", false, &addr, &dflt, err,
                                   sizeof(err)), -EINVAL);
    ck_assert_int_eq(admin_resolve(&conf, NULL, true, &addr, &dflt, err, sizeof(err)), 0);
    ck_assert(dflt);
    ck_assert_str_eq(addr.path, ADMIN_DEFAULT_SOCKET);
    ck_assert_int_eq(admin_resolve(&conf, NULL, false, &addr, &dflt, err, sizeof(err)), 0);
    ck_assert_int_eq(addr.family, LISTEN_NONE);
    conf.given = true;
    conf.listen = (char *)(uintptr_t)"127.0.0.1:9464";
    ck_assert_int_eq(admin_resolve(&conf, NULL, true, &addr, &dflt, err, sizeof(err)), 0);
    ck_assert(!dflt);
    ck_assert_uint_eq(addr.port, 9464);
}
END_TEST

static Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, live_while_the_probe_answers);
    tcase_add_test(tc, a_hung_probe_is_stuck_and_left_behind);
    tcase_add_test(tc, none_starts_nothing);
    tcase_add_test(tc, remote_needs_allow_remote_and_a_token);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(admin_suite)
