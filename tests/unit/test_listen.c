/* test_listen.c - listen addresses (lib/listen.h): the forms accepted and
 * the ones refused, each with its message. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "lib/listen.h"
#include "ck_main.h"

static char err[256];

static struct listen_addr ok(const char *text, unsigned flags)
{
    struct listen_addr a;
    err[0] = '\0';
    int rc = listen_addr_parse(text, flags, &a, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s: expected valid, got: %s", text, err);
    return a;
}

static void bad(const char *text, unsigned flags, const char *want)
{
    struct listen_addr a;
    err[0] = '\0';
    int rc = listen_addr_parse(text, flags, &a, err, sizeof(err));
    ck_assert_msg(rc == -EINVAL, "%s: expected -EINVAL, got %d", text, rc);
    ck_assert_msg(strcmp(err, want) == 0, "%s\n got: %s\nwant: %s", text, err, want);
    ck_assert_int_eq(a.family, LISTEN_NONE);
}

static void round_trip(const char *text, unsigned flags)
{
    char out[LISTEN_PATH_MAX + 16];
    struct listen_addr a = ok(text, flags);
    listen_addr_format(&a, out, sizeof(out));
    ck_assert_str_eq(out, text);
}

START_TEST(good)
{
    struct listen_addr a = ok("unix:/run/runsecrets/admin.sock", 0);
    ck_assert_int_eq(a.family, LISTEN_UNIX);
    ck_assert_str_eq(a.path, "/run/runsecrets/admin.sock");
    ck_assert(a.loopback);

    a = ok("127.0.0.1:9464", 0);
    ck_assert_int_eq(a.family, LISTEN_TCP);
    ck_assert_str_eq(a.host, "127.0.0.1");
    ck_assert_uint_eq(a.port, 9464);
    ck_assert(a.loopback && !a.ipv6);

    a = ok("127.8.9.10:1", 0);
    ck_assert(a.loopback);
    a = ok("[::1]:65535", 0);
    ck_assert(a.loopback && a.ipv6);
    ck_assert_str_eq(a.host, "::1");
    ck_assert_uint_eq(a.port, 65535);
    a = ok("0.0.0.0:9464", 0);
    ck_assert(!a.loopback);
    a = ok("[::]:9464", 0);
    ck_assert(!a.loopback);
    a = ok("10.0.0.1:9464", 0);
    ck_assert(!a.loopback);
    a = ok("[::ffff:127.0.0.1]:80", 0);
    ck_assert(a.loopback);
    a = ok("none", 0);
    ck_assert_int_eq(a.family, LISTEN_NONE);
    /* Port 0 only when asked for (a command line; the bound port is logged). */
    a = ok("127.0.0.1:0", LISTEN_ANY_PORT);
    ck_assert_uint_eq(a.port, 0);

    /* The longest path sun_path holds. */
    char longest[5 + LISTEN_PATH_MAX];
    memcpy(longest, "unix:/", 6);
    memset(longest + 6, 'a', LISTEN_PATH_MAX - 2);
    longest[5 + LISTEN_PATH_MAX - 1] = '\0';
    a = ok(longest, 0);
    ck_assert_uint_eq(strlen(a.path), LISTEN_PATH_MAX - 1);

    round_trip("unix:/run/x.sock", 0);
    round_trip("127.0.0.1:9464", 0);
    round_trip("[::1]:9464", 0);
    round_trip("none", 0);
}
END_TEST

#define PORT_MSG "expected a port number 1-65535 after the last ':'"

START_TEST(bad_forms)
{
    bad("", 0, "empty address");
    bad("127.0.0.1:0", 0, "port out of range (1-65535)");
    bad("127.0.0.1:65536", 0, "port out of range (1-65535)");
    bad("127.0.0.1:65536", LISTEN_ANY_PORT, "port out of range (1-65535)");
    bad("127.0.0.1:99999", 0, "port out of range (1-65535)");
    bad("127.0.0.1:123456", 0, PORT_MSG);
    bad("127.0.0.1:http", 0, PORT_MSG);
    bad("127.0.0.1:", 0, PORT_MSG);
    bad("127.0.0.1:-1", 0, PORT_MSG);
    bad("127.0.0.1:+80", 0, PORT_MSG);
    bad("127.0.0.1: 80", 0, PORT_MSG);
    bad("127.0.0.1", 0, "expected unix:/path, HOST:PORT, [IPv6]:PORT or none");
    bad("localhost:9464", 0, "expected a numeric IP address (host names are not looked up)");
    bad("example.com:80", 0, "expected a numeric IP address (host names are not looked up)");
    bad("127.1:80", 0, "expected a numeric IP address (host names are not looked up)");
    bad(":9464", 0, "expected a numeric IPv4 address before the ':'");
    bad("::1:9464", 0, "an IPv6 address goes in brackets: [::1]:9464");
    bad("[::1]9464", 0, "expected [IPv6]:PORT");
    bad("[::1", 0, "expected [IPv6]:PORT");
    bad("[]:80", 0, "expected an IPv6 address between the brackets");
    bad("[127.0.0.1]:80", 0, "not a numeric IPv6 address between the brackets");
    bad("[localhost]:80", 0, "not a numeric IPv6 address between the brackets");
    bad("unix:", 0, "a unix socket needs an absolute path (unix:/run/x.sock)");
    bad("unix:admin.sock", 0, "a unix socket needs an absolute path (unix:/run/x.sock)");
    bad("unix:./admin.sock", 0, "a unix socket needs an absolute path (unix:/run/x.sock)");
    bad("unix:/run/", 0, "socket path names a folder");
    bad("unix:/run/a\nb", 0, "control character in the socket path");
    bad("NONE", 0, "expected unix:/path, HOST:PORT, [IPv6]:PORT or none");
    bad("/run/x.sock", 0, "expected unix:/path, HOST:PORT, [IPv6]:PORT or none");

    char toolong[8 + LISTEN_PATH_MAX];
    memcpy(toolong, "unix:/", 6);
    memset(toolong + 6, 'a', LISTEN_PATH_MAX - 1);
    toolong[6 + LISTEN_PATH_MAX - 1] = '\0';
    bad(toolong, 0, "socket path too long (at most 107 bytes)");
}
END_TEST

static Suite *listen_suite(void)
{
    Suite *s = suite_create("listen");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, good);
    tcase_add_test(tc, bad_forms);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(listen_suite)
