/* test_name.c - name_validate and name_validate_backend. */
#include "lib/name.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "ck_main.h"

#define ck_assert_err_has(err, sub) \
    ck_assert_msg(strstr((err), (sub)) != NULL, "error \"%s\" lacks \"%s\"", (err), (sub))

static const char *const good[] = {
    "db",
    "db/password",
    "prod/db/password",
    "a/b/c/d/e/f/g/h",
    "A-Z_a-z.0-9",
    ".hidden",
    "..dots",
    "dots..",
    "...",
    "x.y/z..w",
    "-leading-dash",
    "_",
    "0",
};

START_TEST(valid_names)
{
    char err[256] = "";
    int rc = name_validate(good[_i], err, sizeof(err));
    ck_assert_msg(rc == 0, "\"%s\" refused: %s", good[_i], err);
}
END_TEST

static const struct {
    const char *in;
    const char *msg;
} bad[] = {
    {"", "name is empty"},
    {"/db", "must not start with '/'"},
    {"/", "must not start with '/'"},
    {"db/", "must not end with '/'"},
    {"db//password", "empty segment"},
    {"..", "segment '..' is not allowed"},
    {"a/../b", "segment '..' is not allowed"},
    {"a/..", "segment '..' is not allowed"},
    {".", "segment '.' is not allowed"},
    {"a/./b", "segment '.' is not allowed"},
    {"my secret", "character ' ' (0x20) is not allowed in a name"},
    {"db:pw", "character ':' (0x3a) is not allowed in a name"},
    {"a\\b", "character '\\' (0x5c) is not allowed in a name"},
    {"a*", "character '*' (0x2a) is not allowed in a name"},
    {"tab\there", "character 0x09 is not allowed in a name"},
    {"nl\n", "character 0x0a is not allowed in a name"},
    {"del\x7f", "character 0x7f is not allowed in a name"},
    {"caf\xc3\xa9", "character 0xc3 is not allowed in a name"},
    {"a/b/c/d/e/f/g/h/i", "more than 8 levels deep"},
};

START_TEST(invalid_names)
{
    char err[256] = "";
    int rc = name_validate(bad[_i].in, err, sizeof(err));
    ck_assert_msg(rc == -EINVAL, "\"%s\" accepted (rc %d)", bad[_i].in, rc);
    ck_assert_err_has(err, bad[_i].msg);
}
END_TEST

START_TEST(no_raw_control_bytes_in_messages)
{
    char err[256] = "";

    ck_assert_int_eq(name_validate("a\x01" "b", err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(strchr(err, '\x01'));
    ck_assert_int_eq(name_validate("a\x1b[31m", err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(strchr(err, '\x1b'));
    ck_assert_err_has(err, "0x1b");
    for (const char *p = err; *p != '\0'; p++)
        ck_assert((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}
END_TEST

START_TEST(length_limits)
{
    char name[NAME_MAX_LEN + 64], err[256] = "";

    /* A segment of exactly NAME_MAX_SEGMENT is fine, one more is not. */
    memset(name, 'a', NAME_MAX_SEGMENT);
    name[NAME_MAX_SEGMENT] = '\0';
    ck_assert_int_eq(name_validate(name, err, sizeof(err)), 0);
    name[NAME_MAX_SEGMENT] = 'a';
    name[NAME_MAX_SEGMENT + 1] = '\0';
    ck_assert_int_eq(name_validate(name, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "segment longer than 255 characters");

    /* Five segments of 204 and four '/': exactly NAME_MAX_LEN. */
    memset(name, 'b', NAME_MAX_LEN);
    for (size_t i = 204; i < NAME_MAX_LEN; i += 205)
        name[i] = '/';
    name[NAME_MAX_LEN] = '\0';
    ck_assert_int_eq(name_validate(name, err, sizeof(err)), 0);
    name[NAME_MAX_LEN] = 'b';
    name[NAME_MAX_LEN + 1] = '\0';
    ck_assert_int_eq(name_validate(name, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "name is longer than 1024 characters");
}
END_TEST

START_TEST(depth_limit)
{
    char err[256] = "";

    ck_assert_int_eq(name_validate("1/2/3/4/5/6/7/8", err, sizeof(err)), 0);
    ck_assert_int_eq(name_validate("1/2/3/4/5/6/7/8/9", err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "more than 8 levels deep");
}
END_TEST

START_TEST(backend_names)
{
    static const char *const ok[] = {"local", "vault-prod", "aws_sm", "A1", "-", "_x"};
    static const struct {
        const char *in;
        const char *msg;
    } no[] = {
        {"", "backend name is empty"},
        {"my.vault", "character '.' (0x2e) is not allowed in a backend name"},
        {"a/b", "character '/' (0x2f) is not allowed in a backend name"},
        {"a:b", "character ':' (0x3a) is not allowed in a backend name"},
        {"a b", "character ' ' (0x20) is not allowed in a backend name"},
        {"a\tb", "character 0x09 is not allowed in a backend name"},
        {"\xff", "character 0xff is not allowed in a backend name"},
    };
    char err[256] = "", name[80];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(name_validate_backend(ok[i], err, sizeof(err)) == 0, "%s: %s", ok[i], err);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        ck_assert_msg(name_validate_backend(no[i].in, err, sizeof(err)) == -EINVAL, "%s accepted",
                      no[i].in);
        ck_assert_err_has(err, no[i].msg);
    }
    memset(name, 'v', 64);
    name[64] = '\0';
    ck_assert_int_eq(name_validate_backend(name, err, sizeof(err)), 0);
    name[64] = 'v';
    name[65] = '\0';
    ck_assert_int_eq(name_validate_backend(name, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "backend name is longer than 64 characters");
}
END_TEST

START_TEST(tiny_error_buffer)
{
    char err[4];

    ck_assert_int_eq(name_validate("a b", err, sizeof(err)), -EINVAL);
    ck_assert_uint_eq(strlen(err), 3);
    ck_assert_int_eq(name_validate("a b", err, 0), -EINVAL);
}
END_TEST

static Suite *name_suite(void)
{
    Suite *s = suite_create("name");
    TCase *tc = tcase_create("secret");

    tcase_add_loop_test(tc, valid_names, 0, sizeof(good) / sizeof(good[0]));
    tcase_add_loop_test(tc, invalid_names, 0, sizeof(bad) / sizeof(bad[0]));
    tcase_add_test(tc, no_raw_control_bytes_in_messages);
    tcase_add_test(tc, length_limits);
    tcase_add_test(tc, depth_limit);
    tcase_add_test(tc, tiny_error_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("backend");
    tcase_add_test(tc, backend_names);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(name_suite)
