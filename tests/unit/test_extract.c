/* test_extract.c - extract_field: selecting #field from a fetched value. */
#include "backends/extract.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include "ck_main.h"

#define ck_assert_err_has(err, sub) \
    ck_assert_msg(strstr((err), (sub)) != NULL, "error \"%s\" lacks \"%s\"", (err), (sub))

/* Every secret in these documents contains this marker; no error message
 * may ever contain it. */
#define MARK "S3CRET"

static void setup(void)
{
    ck_assert_int_ge(sodium_init(), 0);
    /* As hardening_init does in main: jansson's buffers are wiped on free. */
    json_set_alloc_funcs(secmem_json_malloc, secmem_json_free);
}

static void load(struct secbuf *b, const char *doc, size_t len, size_t max)
{
    secbuf_init(b, max);
    ck_assert_int_eq(secbuf_append(b, doc, len), 0);
}

/* extract field from doc; on success compare with want[0..wlen). */
static void expect_value(const char *doc, const char *field, const char *want, size_t wlen)
{
    struct secbuf b;
    char err[512] = "";
    int rc;

    load(&b, doc, strlen(doc), 4096);
    rc = extract_field(&b, field, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s #%s: rc %d: %s", doc, field, rc, err);
    ck_assert_uint_eq(b.len, wlen);
    if (wlen)
        ck_assert_mem_eq(b.data, want, wlen);
    ck_assert_uint_eq(b.max, 4096);
    secbuf_cleanup(&b);
}

static void expect_error(const char *doc, size_t len, const char *field, size_t max, int want_rc,
                         const char *msg)
{
    struct secbuf b;
    char err[512] = "";
    int rc;

    load(&b, doc, len, max);
    rc = extract_field(&b, field, err, sizeof(err));
    ck_assert_msg(rc == want_rc, "%s #%s: rc %d, wanted %d (%s)", doc, field, rc, want_rc, err);
    ck_assert_err_has(err, msg);
    ck_assert_msg(strstr(err, MARK) == NULL, "error leaks the value: %s", err);
    ck_assert_msg(strstr(err, "near") == NULL, "error has jansson's quoting: %s", err);
    /* On error the buffer is left as it was, for the caller to wipe. */
    ck_assert_uint_eq(b.len, len);
    if (len)
        ck_assert_mem_eq(b.data, doc, len);
    secbuf_cleanup(&b);
}

#define VALUE(doc, field, want) expect_value((doc), (field), (want), sizeof(want) - 1)

static const char creds[] =
    "{\"user\": \"admin\", \"password\": \"hunter2-" MARK "\",\n"
    " \"db\": {\"host\": \"db.internal\", \"port\": 5432, \"tls\": true, \"ca\": null,\n"
    "        \"ratio\": 1.5, \"replicas\": [\"r1\", {\"name\": \"r2\"}]},\n"
    " \"a/b\": {\"m~n\": \"escaped\"}, \"\": \"empty-key\", \"list\": [],\n"
    " \"empty\": \"\", \"nul\": \"a\\u0000b\", \"uni\": \"\\u00e9\\ud83d\\ude00\"}";

START_TEST(top_level_keys)
{
    VALUE(creds, "user", "admin");
    VALUE(creds, "password", "hunter2-" MARK);
    VALUE(creds, "empty", "");
    VALUE(creds, "nul", "a\0b");
    VALUE(creds, "uni", "\xc3\xa9\xf0\x9f\x98\x80");
    VALUE(creds, "list", "[]");
    VALUE(creds, "a/b", "{\"m~n\":\"escaped\"}");   /* not a pointer: no leading '/' */
}
END_TEST

START_TEST(non_strings_are_compact_json)
{
    VALUE(creds, "/db/port", "5432");
    VALUE(creds, "/db/tls", "true");
    VALUE(creds, "/db/ca", "null");
    VALUE(creds, "/db/ratio", "1.5");
    VALUE(creds, "/db/replicas", "[\"r1\",{\"name\":\"r2\"}]");
    VALUE(creds, "db",
          "{\"host\":\"db.internal\",\"port\":5432,\"tls\":true,\"ca\":null,\"ratio\":1.5,"
          "\"replicas\":[\"r1\",{\"name\":\"r2\"}]}");
    VALUE("{\"n\": [1, \"x\\ny\"]}", "n", "[1,\"x\\ny\"]");
}
END_TEST

START_TEST(json_pointers)
{
    VALUE(creds, "/user", "admin");
    VALUE(creds, "/db/host", "db.internal");
    VALUE(creds, "/db/replicas/0", "r1");
    VALUE(creds, "/db/replicas/1/name", "r2");
    VALUE(creds, "/a~1b/m~0n", "escaped");
    VALUE(creds, "/", "empty-key");
    VALUE("[\"zero\", [\"one\"]]", "/0", "zero");
    VALUE("[\"zero\", [\"one\"]]", "/1/0", "one");
    VALUE("{\"~1\": \"tilde-one\"}", "/~01", "tilde-one");
    VALUE("{\"a\": {\"\": {\"\": 7}}}", "/a//", "7");
    VALUE("{\"10\": \"ten\"}", "/10", "ten");   /* digits on an object are keys */
}
END_TEST

START_TEST(not_json)
{
    const char plain[] = "hunter2-" MARK;
    const char later[] = "{\"a\": 1,\n \"b\": 2,\n \"c\": " MARK "}";
    const char cut[] = "{\"a\": \"" MARK;
    const char trailing[] = "{\"a\": 1} " MARK;
    const char bad_utf8[] = "{\"a\": \"\xff" MARK "\"}";
    const char nul[] = "{\"a\": \"x\"}\0" MARK;

    expect_error(plain, strlen(plain), "a", 4096, -EINVAL,
                 "value is not valid JSON (line 1, column ");
    expect_error(later, strlen(later), "a", 4096, -EINVAL, "value is not valid JSON (line 3, ");
    expect_error(cut, strlen(cut), "a", 4096, -EINVAL, "unexpected end of input");
    expect_error(trailing, strlen(trailing), "a", 4096, -EINVAL,
                 "unexpected data after the document");
    expect_error(bad_utf8, strlen(bad_utf8), "a", 4096, -EINVAL, "invalid UTF-8");
    expect_error("", 0, "a", 4096, -EINVAL, "value is empty, not a JSON document");
    expect_error(nul, sizeof(nul) - 1, "a", 4096, -EINVAL, "value is not valid JSON");
}
END_TEST

START_TEST(wrong_shape)
{
    const char str[] = "\"" MARK "\"";
    const char num[] = "12345";
    const char arr[] = "[\"" MARK "\"]";

    expect_error(str, strlen(str), "user", 4096, -EINVAL,
                 "value is a JSON string, not an object; it has no field 'user'");
    expect_error(num, strlen(num), "user", 4096, -EINVAL, "value is a JSON number, not an object");
    expect_error("true", 4, "/0", 4096, -EINVAL, "value is a JSON boolean, not an object or array");
    expect_error("null", 4, "x", 4096, -EINVAL, "value is JSON null, not an object");
    expect_error(arr, strlen(arr), "user", 4096, -EINVAL,
                 "value is a JSON array, not an object; use a JSON pointer such as #/0");
}
END_TEST

START_TEST(missing_fields)
{
    const char *d = creds;
    size_t n = strlen(creds);

    expect_error(d, n, "usr", 4096, -EINVAL, "field 'usr' not found");
    expect_error(d, n, "User", 4096, -EINVAL, "field 'User' not found");
    expect_error(d, n, "/a/b", 4096, -EINVAL, "JSON pointer '/a/b' not found");
    expect_error(d, n, "/db/nope", 4096, -EINVAL, "JSON pointer '/db/nope' not found");
    expect_error(d, n, "/db/replicas/2", 4096, -EINVAL, "JSON pointer '/db/replicas/2' not found");
    expect_error(d, n, "/list/0", 4096, -EINVAL, "JSON pointer '/list/0' not found");
    expect_error(d, n, "/password/x", 4096, -EINVAL,
                 "JSON pointer '/password/x' not found: '/password' is a JSON string");
    expect_error(d, n, "/db/port/0", 4096, -EINVAL, "'/db/port' is a JSON number");
    expect_error(d, n, "/db/replicas/01", 4096, -EINVAL, "'01' is not an array index");
    expect_error(d, n, "/db/replicas/x", 4096, -EINVAL, "'x' is not an array index");
    expect_error(d, n, "/db/replicas/", 4096, -EINVAL, "'' is not an array index");
    expect_error(d, n, "/db/replicas/-1", 4096, -EINVAL, "'-1' is not an array index");
    expect_error(d, n, "/db/replicas/99999999999999999999999", 4096, -EINVAL,
                 "is not an array index");
    expect_error(d, n, "/db/replicas/-", 4096, -EINVAL, "'-' (past the end of an array)");
    expect_error(d, n, "/a~2b", 4096, -EINVAL,
                 "invalid JSON pointer '/a~2b': '~' must be followed by '0' or '1'");
    expect_error(d, n, "/a~", 4096, -EINVAL, "'~' must be followed by '0' or '1'");
    expect_error(d, n, "bad\x01key", 4096, -EINVAL, "field 'bad\\x01key' not found");
}
END_TEST

START_TEST(too_big)
{
    /* 1e300 prints longer than it is written: the result, not the input,
     * hits the limit. */
    const char doc[] = "{\"a\": [1e300]}";
    const char arr[] = "{\"k\": [1, 2]}";

    expect_error(doc, strlen(doc), "a", strlen(doc), -E2BIG,
                 "the field is 24 bytes, more than the maximum of 14");
    {
        /* Exactly at the limit is fine, one byte less is not. */
        struct secbuf b;
        char err[256] = "";
        load(&b, arr, strlen(arr), 4096);
        b.max = 4;
        ck_assert_int_eq(extract_field(&b, "k", err, sizeof(err)), -E2BIG);
        ck_assert_err_has(err, "the field is 5 bytes, more than the maximum of 4");
        b.max = 5;
        ck_assert_int_eq(extract_field(&b, "k", err, sizeof(err)), 0);
        ck_assert_uint_eq(b.len, 5);
        ck_assert_mem_eq(b.data, "[1,2]", 5);
        ck_assert_uint_eq(b.max, 5);
        secbuf_cleanup(&b);
    }
    {
        /* A shrunken limit (as a backend with a smaller cap would have). */
        struct secbuf b;
        char err[256] = "";
        load(&b, creds, strlen(creds), 4096);
        b.max = 8;
        ck_assert_int_eq(extract_field(&b, "password", err, sizeof(err)), -E2BIG);
        ck_assert_err_has(err, "the field is 14 bytes, more than the maximum of 8");
        ck_assert_ptr_null(strstr(err, MARK));
        ck_assert_int_eq(extract_field(&b, "db", err, sizeof(err)), -E2BIG);
        ck_assert_err_has(err, "more than the maximum of 8");
        ck_assert_int_eq(extract_field(&b, "user", err, sizeof(err)), 0);
        ck_assert_uint_eq(b.len, 5);
        ck_assert_mem_eq(b.data, "admin", 5);
        secbuf_cleanup(&b);
    }
}
END_TEST

START_TEST(chained_extracts)
{
    struct secbuf b;
    char err[256] = "";

    /* A JSON-encoded object inside a string field, as some stores do. */
    static const char doc[] = "{\"blob\": \"{\\\"inner\\\": \\\"" MARK "\\\"}\"}";

    load(&b, doc, sizeof(doc) - 1, 4096);
    ck_assert_int_eq(extract_field(&b, "blob", err, sizeof(err)), 0);
    ck_assert_int_eq(extract_field(&b, "inner", err, sizeof(err)), 0);
    ck_assert_uint_eq(b.len, strlen(MARK));
    ck_assert_mem_eq(b.data, MARK, strlen(MARK));
    secbuf_cleanup(&b);
}
END_TEST

static Suite *extract_suite(void)
{
    Suite *s = suite_create("extract");
    TCase *tc = tcase_create("select");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, top_level_keys);
    tcase_add_test(tc, non_strings_are_compact_json);
    tcase_add_test(tc, json_pointers);
    tcase_add_test(tc, chained_extracts);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, not_json);
    tcase_add_test(tc, wrong_shape);
    tcase_add_test(tc, missing_fields);
    tcase_add_test(tc, too_big);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(extract_suite)
