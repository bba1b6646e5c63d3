/* test_jsonpos.c - jsonpos_find. */
#include "lib/jsonpos.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "ck_main.h"

static int find(const char *text, bool want_key, int *line, int *col, size_t n, ...)
{
    const char *path[16];
    va_list ap;

    ck_assert_uint_le(n, 16);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        path[i] = va_arg(ap, const char *);
    va_end(ap);
    return jsonpos_find(text, strlen(text), path, n, want_key, line, col);
}

#define ck_assert_pos(rc, line, col, want_line, want_col)   \
    do {                                                    \
        ck_assert_int_eq((rc), 0);                          \
        ck_assert_int_eq((line), (want_line));              \
        ck_assert_int_eq((col), (want_col));                \
    } while (0)

static const char config[] =
    "{\n"                                               /* 1 */
    "  \"backends\": {\n"                               /* 2 */
    "    \"local\": {\"type\": \"file\", \"dir\": \"/run\"}\n"  /* 3 */
    "  },\n"                                            /* 4 */
    "  \"secrets\": {\n"                                /* 5 */
    "    \"db\": {\n"                                   /* 6 */
    "      \"from\": \"x:db\",\n"                       /* 7 */
    "      \"refresh\": 30\n"                           /* 8 */
    "    },\n"                                          /* 9 */
    "    \"list\": [1, [2, 3], {\"k\": null}]\n"        /* 10 */
    "  }\n"                                             /* 11 */
    "}\n";

START_TEST(values_and_keys)
{
    int line = 0, col = 0;

    ck_assert_pos(find(config, false, &line, &col, 3, "secrets", "db", "from"), line, col, 7, 15);
    ck_assert_pos(find(config, true, &line, &col, 3, "secrets", "db", "from"), line, col, 7, 7);
    ck_assert_pos(find(config, false, &line, &col, 3, "secrets", "db", "refresh"), line, col, 8,
                  18);
    ck_assert_pos(find(config, false, &line, &col, 2, "secrets", "db"), line, col, 6, 11);
    ck_assert_pos(find(config, true, &line, &col, 2, "secrets", "db"), line, col, 6, 5);
    ck_assert_pos(find(config, false, &line, &col, 3, "backends", "local", "dir"), line, col, 3,
                  38);
    ck_assert_pos(find(config, true, &line, &col, 3, "backends", "local", "type"), line, col, 3,
                  15);
    ck_assert_pos(find(config, false, &line, &col, 1, "secrets"), line, col, 5, 14);
}
END_TEST

START_TEST(root)
{
    int line = 0, col = 0;

    ck_assert_pos(find(config, false, &line, &col, 0), line, col, 1, 1);
    ck_assert_pos(find("\n\n   [1]", false, &line, &col, 0), line, col, 3, 4);
    /* No key to point at: the value is the best answer. */
    ck_assert_pos(find("  {}", true, &line, &col, 0), line, col, 1, 3);
}
END_TEST

START_TEST(arrays)
{
    int line = 0, col = 0;

    ck_assert_pos(find(config, false, &line, &col, 3, "secrets", "list", "0"), line, col, 10, 14);
    ck_assert_pos(find(config, false, &line, &col, 3, "secrets", "list", "1"), line, col, 10, 17);
    ck_assert_pos(find(config, false, &line, &col, 4, "secrets", "list", "1", "1"), line, col, 10,
                  21);
    ck_assert_pos(find(config, false, &line, &col, 4, "secrets", "list", "2", "k"), line, col, 10,
                  31);
    ck_assert_pos(find(config, true, &line, &col, 4, "secrets", "list", "2", "k"), line, col, 10,
                  26);
    /* want_key on an element: elements have no key, the value is given. */
    ck_assert_pos(find(config, true, &line, &col, 3, "secrets", "list", "1"), line, col, 10, 17);
    ck_assert_int_eq(find(config, false, &line, &col, 3, "secrets", "list", "3"), -ENOENT);
    ck_assert_int_eq(find(config, false, &line, &col, 3, "secrets", "list", "01"), -ENOENT);
    ck_assert_int_eq(find(config, false, &line, &col, 3, "secrets", "list", "-1"), -ENOENT);
    ck_assert_int_eq(find(config, false, &line, &col, 3, "secrets", "list", "x"), -ENOENT);
    ck_assert_int_eq(find(config, false, &line, &col, 3, "secrets", "list", ""), -ENOENT);
    ck_assert_int_eq(find(config, false, &line, &col, 3, "secrets", "list",
                          "99999999999999999999999999"), -ENOENT);
    ck_assert_int_eq(find("[]", false, &line, &col, 1, "0"), -ENOENT);
    ck_assert_pos(find("[ [] ,\n {} ]", false, &line, &col, 1, "1"), line, col, 2, 2);
}
END_TEST

START_TEST(absent)
{
    int line = 0, col = 0;

    ck_assert_int_eq(find(config, false, &line, &col, 1, "nope"), -ENOENT);
    ck_assert_int_eq(find(config, false, &line, &col, 3, "secrets", "db", "fro"), -ENOENT);
    ck_assert_int_eq(find(config, false, &line, &col, 3, "secrets", "db", "fromm"), -ENOENT);
    ck_assert_int_eq(find(config, false, &line, &col, 4, "secrets", "db", "from", "x"), -ENOENT);
    ck_assert_int_eq(find(config, false, &line, &col, 4, "secrets", "db", "refresh", "0"),
                     -ENOENT);
    ck_assert_int_eq(find("{}", false, &line, &col, 1, "a"), -ENOENT);
    ck_assert_int_eq(find("\"str\"", false, &line, &col, 1, "a"), -ENOENT);
    ck_assert_int_eq(find("[1]", false, &line, &col, 1, "a"), -ENOENT);
}
END_TEST

START_TEST(escaped_keys)
{
    int line = 0, col = 0;
    const char *doc = "{\"a\\\"b\": 1, \"\\u00e9t\\u00E9\": 2, \"\\ud83d\\ude00\": 3, "
                      "\"x\\/y\": 4, \"t\\tn\\n\": 5, \"caf\xc3\xa9\": 6, \"\\\\\": 7}";

    ck_assert_pos(find(doc, false, &line, &col, 1, "a\"b"), line, col, 1, 10);
    ck_assert_pos(find(doc, false, &line, &col, 1, "\xc3\xa9t\xc3\xa9"), line, col, 1, 30);
    ck_assert_pos(find(doc, false, &line, &col, 1, "\xf0\x9f\x98\x80"), line, col, 1, 49);
    ck_assert_pos(find(doc, false, &line, &col, 1, "x/y"), line, col, 1, 60);
    ck_assert_pos(find(doc, false, &line, &col, 1, "t\tn\n"), line, col, 1, 73);
    ck_assert_pos(find(doc, false, &line, &col, 1, "caf\xc3\xa9"), line, col, 1, 84);
    ck_assert_pos(find(doc, false, &line, &col, 1, "\\"), line, col, 1, 93);
    /* Escapes are decoded, not compared as written. */
    ck_assert_int_eq(find(doc, false, &line, &col, 1, "\\u00e9t\\u00E9"), -ENOENT);
    ck_assert_int_eq(find(doc, false, &line, &col, 1, "x\\/y"), -ENOENT);
    /* A NUL in a key never matches a C string. */
    ck_assert_int_eq(find("{\"a\\u0000\": 1}", false, &line, &col, 1, "a"), -ENOENT);
}
END_TEST

START_TEST(duplicate_keys_last_wins)
{
    int line = 0, col = 0;
    json_error_t jerr;
    const char *doc = "{\"a\": 1,\n \"a\": 2}";
    json_t *j = json_loads(doc, 0, &jerr);

    /* Same choice as jansson, which keeps the last duplicate. */
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "a")), 2);
    json_decref(j);
    ck_assert_pos(find(doc, false, &line, &col, 1, "a"), line, col, 2, 7);
    ck_assert_pos(find(doc, true, &line, &col, 1, "a"), line, col, 2, 2);
}
END_TEST

START_TEST(skips_tricky_values)
{
    int line = 0, col = 0;
    const char *doc = "{\"s\": \"}]\\\"{[\\\\\", \"n\": [{\"c\": \"]\"}, [[]], -1.5e+10, true],"
                      " \"o\": {\"}\": \"{\"}, \"z\": false}";

    ck_assert_pos(find(doc, false, &line, &col, 1, "z"), line, col, 1, 82);
    ck_assert_pos(find(doc, false, &line, &col, 2, "n", "2"), line, col, 1, 43);
    ck_assert_pos(find(doc, false, &line, &col, 2, "n", "3"), line, col, 1, 53);
    ck_assert_pos(find(doc, false, &line, &col, 2, "o", "}"), line, col, 1, 71);
}
END_TEST

START_TEST(columns_count_characters)
{
    int line = 0, col = 0;
    /* Three two-byte and one four-byte character before the value. */
    const char *doc = "{\"\xc3\xa9\xc3\xa9\xc3\xa9\": 1, \"\xf0\x9f\x98\x80\": \"v\"}";

    ck_assert_pos(find(doc, false, &line, &col, 1, "\xc3\xa9\xc3\xa9\xc3\xa9"), line, col, 1, 9);
    ck_assert_pos(find(doc, false, &line, &col, 1, "\xf0\x9f\x98\x80"), line, col, 1, 17);
    ck_assert_pos(find(doc, true, &line, &col, 1, "\xf0\x9f\x98\x80"), line, col, 1, 12);
    /* \r is a column for jansson, \t is one column too. */
    ck_assert_pos(find("{\r\n\t\"a\":\t\r 1}", false, &line, &col, 1, "a"), line, col, 2, 9);
}
END_TEST

/* Put "@" where a value goes: jansson's error column for that invalid token
 * is where jsonpos must point once the "@" is replaced by a real value. */
static void agree_with_jansson(const char *tmpl, const char *value, size_t n, const char **path)
{
    json_error_t jerr;
    json_t *j = json_loads(tmpl, 0, &jerr);
    char *doc;
    const char *at = strchr(tmpl, '@');
    int line = 0, col = 0;
    size_t vlen = strlen(value), tlen = strlen(tmpl);

    ck_assert_ptr_null(j);
    ck_assert_ptr_nonnull(at);
    doc = malloc(tlen + vlen);
    ck_assert_ptr_nonnull(doc);
    memcpy(doc, tmpl, (size_t)(at - tmpl));
    memcpy(doc + (at - tmpl), value, vlen);
    memcpy(doc + (at - tmpl) + vlen, at + 1, tlen - (size_t)(at - tmpl));
    j = json_loads(doc, 0, &jerr);
    ck_assert_msg(j != NULL, "%s: %s", doc, jerr.text);
    json_decref(j);
    ck_assert_int_eq(jsonpos_find(doc, strlen(doc), path, n, false, &line, &col), 0);
    free(doc);
    j = json_loads(tmpl, 0, &jerr);
    ck_assert_ptr_null(j);
    ck_assert_int_eq(line, jerr.line);
    ck_assert_int_eq(col, jerr.column);
}

START_TEST(matches_jansson_columns)
{
    const char *p1[] = {"k\xc3\xa9y", "1"};
    const char *p2[] = {"a", "b"};
    const char *p3[] = {"\xe2\x82\xac\xe2\x82\xac"};

    agree_with_jansson("{\"k\xc3\xa9y\": [\"\xe6\x97\xa5\xe6\x9c\xac\", @]}", "\"v\"", 2, p1);
    agree_with_jansson("{\r\n\t\"a\" : {\n  \"x\": \"\xf0\x9f\x98\x80\",  \"b\":\t@ }}", "[1]", 2,
                       p2);
    agree_with_jansson("{\"\\u20ac\xe2\x82\xac\":\n\n      @}", "null", 1, p3);
}
END_TEST

/* Every prefix of a valid document, in a buffer of exactly that size (ASan
 * builds catch any read past len): no crash, and nothing beyond the text is
 * ever reported. */
START_TEST(truncated_text)
{
    const char *paths[][3] = {
        {"secrets", "db", "from"},
        {"secrets", "list", "2"},
        {"backends", "local", "dir"},
    };
    size_t full = strlen(config);

    for (size_t len = 0; len <= full; len++) {
        char *t = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(t);
        memcpy(t, config, len);
        for (size_t p = 0; p < 3; p++) {
            for (size_t n = 0; n <= 3; n++) {
                int line = 0, col = 0;
                int rc = jsonpos_find(t, len, paths[p], n, n == 3, &line, &col);
                ck_assert(rc == 0 || rc == -ENOENT || rc == -EINVAL);
                if (rc == 0) {
                    ck_assert_int_ge(line, 1);
                    ck_assert_int_le(line, 12);
                    ck_assert_int_ge(col, 1);
                }
            }
        }
        free(t);
    }
}
END_TEST

START_TEST(malformed_text)
{
    static const char *const docs[] = {
        "", "   ", "{", "[", "{\"a\"", "{\"a\":", "{\"a\" 1}", "{\"a\\", "{\"\\u12\": 1}",
        "{\"\\ud83d\": 1}", "{\"\\ude00\": 1}", "{\"\\ud83d\\u0041\": 1}", "{\"\\q\": 1}",
        "{1: 2}", "{\"b\": 1 \"a\": 2}", "[1 2]", "{\"b\": }", "{\"b\": [}",
    };
    const char *path[] = {"a", "0"};

    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        int line = 0, col = 0;
        int rc = jsonpos_find(docs[i], strlen(docs[i]), path, 1, false, &line, &col);
        ck_assert_msg(rc == -EINVAL || rc == -ENOENT, "%s: rc %d", docs[i], rc);
    }
}
END_TEST

START_TEST(deep_nesting_is_skipped_without_recursion)
{
    const size_t depth = 200000;
    size_t len = 7 + 2 * depth + 9;
    char *doc = malloc(len + 1);
    int line = 0, col = 0;
    const char *path[] = {"b"};

    ck_assert_ptr_nonnull(doc);
    memcpy(doc, "{\"a\": ", 6);
    memset(doc + 6, '[', depth);
    memset(doc + 6 + depth, ']', depth);
    memcpy(doc + 6 + 2 * depth, ", \"b\": 1}", 10);
    ck_assert_int_eq(jsonpos_find(doc, strlen(doc), path, 1, false, &line, &col), 0);
    ck_assert_int_eq(line, 1);
    ck_assert_int_eq(col, (int)(6 + 2 * depth + 8));
    free(doc);
}
END_TEST

static Suite *jsonpos_suite(void)
{
    Suite *s = suite_create("jsonpos");
    TCase *tc = tcase_create("find");

    tcase_add_test(tc, values_and_keys);
    tcase_add_test(tc, root);
    tcase_add_test(tc, arrays);
    tcase_add_test(tc, absent);
    tcase_add_test(tc, escaped_keys);
    tcase_add_test(tc, duplicate_keys_last_wins);
    tcase_add_test(tc, skips_tricky_values);
    tcase_add_test(tc, columns_count_characters);
    tcase_add_test(tc, matches_jansson_columns);
    suite_add_tcase(s, tc);

    tc = tcase_create("robustness");
    tcase_add_test(tc, truncated_text);
    tcase_add_test(tc, malformed_text);
    tcase_add_test(tc, deep_nesting_is_skipped_without_recursion);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(jsonpos_suite)
