/* test_ref.c - ref_parse, ref_cleanup, ref_copy, ref_format. */
#include "lib/ref.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "ck_main.h"

#define ck_assert_err_has(err, sub) \
    ck_assert_msg(strstr((err), (sub)) != NULL, "error \"%s\" lacks \"%s\"", (err), (sub))

#define ck_assert_opt_str_eq(got, want)          \
    do {                                         \
        if ((want) == NULL)                      \
            ck_assert_ptr_null(got);             \
        else                                     \
            ck_assert_pstr_eq((got), (want));    \
    } while (0)

static const struct {
    const char *in;
    const char *backend, *path, *version, *field;
} good[] = {
    {"local:db/password", "local", "db/password", NULL, NULL},
    {"vault:secret/data/db#password", "vault", "secret/data/db", NULL, "password"},
    {"vault:secret/data/db?version=3", "vault", "secret/data/db", "3", NULL},
    {"vault:kv/app?version=3#user", "vault", "kv/app", "3", "user"},
    {"aws:arn:aws:secretsmanager:eu-west-1:1:secret:x", "aws",
     "arn:aws:secretsmanager:eu-west-1:1:secret:x", NULL, NULL},
    {"gcp:projects/p/secrets/s?version=latest", "gcp", "projects/p/secrets/s", "latest", NULL},
    {"f:x#/a/b", "f", "x", NULL, "/a/b"},
    {"f:x#/a~1b/~0c/0", "f", "x", NULL, "/a~1b/~0c/0"},
    {"f:x#/", "f", "x", NULL, "/"},
    {"f:x#a#b?c:d", "f", "x", NULL, "a#b?c:d"},
    {"f:x#weird key", "f", "x", NULL, "weird key"},
    {"f:x#~2", "f", "x", NULL, "~2"},                /* not a pointer: any key */
    {"f:x?version=a=b#k", "f", "x", "a=b", "k"},
    {"f:with space/and:colon", "f", "with space/and:colon", NULL, NULL},
    {"my-backend_2:p", "my-backend_2", "p", NULL, NULL},
    {"f:caf\xc3\xa9", "f", "caf\xc3\xa9", NULL, NULL},
};

START_TEST(parse_good)
{
    struct secret_ref r;
    char err[256] = "";
    int rc = ref_parse(good[_i].in, &r, err, sizeof(err));

    ck_assert_msg(rc == 0, "\"%s\": rc %d: %s", good[_i].in, rc, err);
    ck_assert_str_eq(r.backend, good[_i].backend);
    ck_assert_str_eq(r.path, good[_i].path);
    ck_assert_opt_str_eq(r.version, good[_i].version);
    ck_assert_opt_str_eq(r.field, good[_i].field);
    ref_cleanup(&r);
    ck_assert_ptr_null(r.backend);
    ck_assert_ptr_null(r.path);
    ref_cleanup(&r);   /* idempotent */
}
END_TEST

START_TEST(format_is_canonical)
{
    struct secret_ref r, again;
    char err[256] = "";
    char *s, *s2;

    ck_assert_int_eq(ref_parse(good[_i].in, &r, err, sizeof(err)), 0);
    s = ref_format(&r);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, good[_i].in);
    /* And parsing the canonical form gives the same pieces back. */
    ck_assert_int_eq(ref_parse(s, &again, err, sizeof(err)), 0);
    s2 = ref_format(&again);
    ck_assert_str_eq(s2, s);
    free(s);
    free(s2);
    ref_cleanup(&r);
    ref_cleanup(&again);
}
END_TEST

static const struct {
    const char *in;
    const char *msg;
} bad[] = {
    {"", "empty reference; expected <backend>:<path>[?version=<v>|?stage=<s>][#<field>]"},
    {"justapath", "has no ':'"},
    {":path", "invalid backend in reference: backend name is empty"},
    {"my.vault:x", "character '.' (0x2e) is not allowed in a backend name"},
    {"a b:x", "character ' ' (0x20) is not allowed in a backend name"},
    {"local#x:y", "character '#' (0x23) is not allowed in a backend name"},
    {"local:", "empty path after 'local:'"},
    {"local:?version=1", "empty path after 'local:'"},
    {"local:#field", "empty path after 'local:'"},
    {"local:x?", "empty parameter list after '?'"},
    {"local:x?#f", "empty parameter list after '?'"},
    {"local:x?v=1", "unknown reference parameter 'v' (supported: version, stage)"},
    {"local:x?ver=1", "unknown reference parameter 'ver' (supported: version, stage)"},
    {"local:x?versions=1", "unknown reference parameter 'versions' (supported: version, stage)"},
    {"local:x?Version=1", "unknown reference parameter 'Version' (supported: version, stage)"},
    {"local:x?version=1&x=2", "unknown reference parameter 'x' (supported: version, stage)"},
    {"local:x?=1", "unknown reference parameter '' (supported: version, stage)"},
    {"local:x?version", "parameter 'version' needs a value"},
    {"local:x?version=", "parameter 'version' needs a value"},
    {"local:x?version=#f", "parameter 'version' needs a value"},
    {"local:x?version=1&version=2", "parameter 'version' given twice"},
    {"local:x?version=1&", "stray '&'"},
    {"local:x?&version=1", "stray '&'"},
    {"local:x?version=1?version=2", "'?' may appear only once"},
    {"aws:x?stage=", "parameter 'stage' needs a value"},
    {"aws:x?stage=A&stage=B", "parameter 'stage' given twice"},
    {"aws:x?version=1&stage=AWSCURRENT", "?version= and ?stage= exclude each other"},
    {"aws:x?stage=AWSCURRENT&version=1", "?version= and ?stage= exclude each other"},
    {"local:x#", "empty field after '#'"},
    {"local:x?version=2#", "empty field after '#'"},
    {"local:x#/a~2", "invalid JSON pointer '/a~2': '~' must be followed by '0' or '1'"},
    {"local:x#/a~", "'~' must be followed by '0' or '1'"},
    {"local:x#/~/b", "'~' must be followed by '0' or '1'"},
    {"local:x\ty", "control character 0x09 is not allowed in a reference"},
    {"local:x\n", "control character 0x0a is not allowed in a reference"},
    {"local:x#f\x7f", "control character 0x7f is not allowed in a reference"},
    {"local:x?version=\x1b", "control character 0x1b is not allowed in a reference"},
};

START_TEST(parse_stage)
{
    struct secret_ref r;
    char err[256] = "";
    ck_assert_int_eq(ref_parse("aws:arn:aws:secretsmanager:r:1:secret:db?stage=AWSPREVIOUS#pw", &r,
                               err, sizeof(err)), 0);
    ck_assert_str_eq(r.path, "arn:aws:secretsmanager:r:1:secret:db");
    ck_assert_str_eq(r.stage, "AWSPREVIOUS");
    ck_assert_ptr_null(r.version);
    ck_assert_str_eq(r.field, "pw");
    char *f = ref_format(&r);
    ck_assert_str_eq(f, "aws:arn:aws:secretsmanager:r:1:secret:db?stage=AWSPREVIOUS#pw");
    free(f);
    struct secret_ref c;
    ck_assert_int_eq(ref_copy(&c, &r), 0);
    ck_assert_str_eq(c.stage, "AWSPREVIOUS");
    ref_cleanup(&c);
    ref_cleanup(&r);
}
END_TEST

START_TEST(parse_bad)
{
    struct secret_ref r;
    char err[256] = "";

    memset(&r, 0xA5, sizeof(r));   /* garbage in: must come out all NULL */
    ck_assert_msg(ref_parse(bad[_i].in, &r, err, sizeof(err)) == -EINVAL, "\"%s\" accepted",
                  bad[_i].in);
    ck_assert_err_has(err, bad[_i].msg);
    ck_assert_ptr_null(r.backend);
    ck_assert_ptr_null(r.path);
    ck_assert_ptr_null(r.version);
    ck_assert_ptr_null(r.field);
    ref_cleanup(&r);
}
END_TEST

START_TEST(messages_escape_odd_bytes)
{
    struct secret_ref r;
    char err[256] = "";

    ck_assert_int_eq(ref_parse("local:x?v\xc3\xa9=1", &r, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "unknown reference parameter 'v\\xc3\\xa9'");
    for (const char *p = err; *p != '\0'; p++)
        ck_assert((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}
END_TEST

START_TEST(length_limit)
{
    struct secret_ref r;
    char *s = malloc(REF_MAX_LEN + 2);
    char err[256] = "";

    ck_assert_ptr_nonnull(s);
    memcpy(s, "local:", 6);
    memset(s + 6, 'p', REF_MAX_LEN - 6);
    s[REF_MAX_LEN] = '\0';
    ck_assert_int_eq(ref_parse(s, &r, err, sizeof(err)), 0);
    ck_assert_uint_eq(strlen(r.path), REF_MAX_LEN - 6);
    ref_cleanup(&r);

    s[REF_MAX_LEN] = 'p';
    s[REF_MAX_LEN + 1] = '\0';
    ck_assert_int_eq(ref_parse(s, &r, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "reference is longer than 4096 characters");
    ck_assert_ptr_null(r.path);
    free(s);
}
END_TEST

START_TEST(copy)
{
    struct secret_ref r, c;
    char err[256] = "";
    char *a, *b;

    ck_assert_int_eq(ref_parse("vault:kv/app?version=7#/creds/0", &r, err, sizeof(err)), 0);
    ck_assert_int_eq(ref_copy(&c, &r), 0);
    ck_assert_ptr_ne(c.backend, r.backend);
    ck_assert_ptr_ne(c.path, r.path);
    ck_assert_ptr_ne(c.version, r.version);
    ck_assert_ptr_ne(c.field, r.field);
    a = ref_format(&r);
    ref_cleanup(&r);   /* the copy does not depend on the original */
    b = ref_format(&c);
    ck_assert_str_eq(a, "vault:kv/app?version=7#/creds/0");
    ck_assert_str_eq(b, a);
    free(a);
    free(b);
    ref_cleanup(&c);

    /* Optional parts stay NULL. */
    ck_assert_int_eq(ref_parse("local:x", &r, err, sizeof(err)), 0);
    ck_assert_int_eq(ref_copy(&c, &r), 0);
    ck_assert_ptr_null(c.version);
    ck_assert_ptr_null(c.field);
    ck_assert_str_eq(c.path, "x");
    ref_cleanup(&r);
    ref_cleanup(&c);
}
END_TEST

START_TEST(format_incomplete)
{
    struct secret_ref r = {0};
    char b[] = "local";

    ck_assert_ptr_null(ref_format(&r));
    ck_assert_ptr_null(ref_format(NULL));
    r.backend = b;
    ck_assert_ptr_null(ref_format(&r));   /* no path */
}
END_TEST

START_TEST(cleanup_zeroed)
{
    struct secret_ref r = {0};

    ref_cleanup(&r);
    ref_cleanup(NULL);
}
END_TEST

static Suite *ref_suite(void)
{
    Suite *s = suite_create("ref");
    TCase *tc = tcase_create("parse");

    tcase_add_loop_test(tc, parse_good, 0, sizeof(good) / sizeof(good[0]));
    tcase_add_test(tc, parse_stage);
    tcase_add_loop_test(tc, parse_bad, 0, sizeof(bad) / sizeof(bad[0]));
    tcase_add_test(tc, messages_escape_odd_bytes);
    tcase_add_test(tc, length_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("format_copy");
    tcase_add_loop_test(tc, format_is_canonical, 0, sizeof(good) / sizeof(good[0]));
    tcase_add_test(tc, copy);
    tcase_add_test(tc, format_incomplete);
    tcase_add_test(tc, cleanup_zeroed);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(ref_suite)
