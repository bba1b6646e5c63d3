/* test_log.c - JSON lines are valid JSON with the right fields; escaping. */
#include <check.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "ck_main.h"

/* Log one line through a pipe and return it (static buffer). */
static char *capture(enum log_format fmt, enum log_level min, enum log_level level,
                     const struct log_fields *f, const char *msg)
{
    static char buf[8192];
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    log_setup(p[1], fmt, min);
    log_at(level, "fn", f, "%s", msg);
    close(p[1]);
    ssize_t n = read(p[0], buf, sizeof(buf) - 1);
    close(p[0]);
    buf[n < 0 ? 0 : n] = '\0';
    log_setup(2, LOG_FORMAT_JSON, LOG_INFO);
    return buf;
}

START_TEST(json_line_fields)
{
    struct log_fields f = {.secret = "db", .backend = "local", .error = "boom \"quoted\"",
                           .has_caller = true, .uid = 1000, .gid = 100, .pid = 42,
                           .result = "allow"};
    char *line = capture(LOG_FORMAT_JSON, LOG_INFO, LOG_WARN, &f, "refresh failed\nsecond");
    size_t n = strlen(line);
    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(line[n - 1], '\n');
    ck_assert_ptr_null(memchr(line, '\n', n - 1));   /* one line */
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    ck_assert_msg(j != NULL, "not JSON: %s (%s)", line, e.text);
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "warn");
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "refresh failed\nsecond");
    ck_assert_str_eq(json_string_value(json_object_get(j, "secret")), "db");
    ck_assert_str_eq(json_string_value(json_object_get(j, "backend")), "local");
    ck_assert_str_eq(json_string_value(json_object_get(j, "error")), "boom \"quoted\"");
    ck_assert_str_eq(json_string_value(json_object_get(j, "result")), "allow");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "uid")), 1000);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "pid")), 42);
    const char *t = json_string_value(json_object_get(j, "time"));
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(strlen(t), strlen("2026-01-01T00:00:00.000Z"));
    ck_assert_int_eq(t[strlen(t) - 1], 'Z');
    json_decref(j);
}
END_TEST

START_TEST(level_filter)
{
    ck_assert_str_eq(capture(LOG_FORMAT_JSON, LOG_WARN, LOG_INFO, NULL, "quiet"), "");
    ck_assert_str_ne(capture(LOG_FORMAT_JSON, LOG_WARN, LOG_ERROR, NULL, "loud"), "");
}
END_TEST

START_TEST(text_format)
{
    struct log_fields f = {.secret = "db", .error = "no such file"};
    char *line = capture(LOG_FORMAT_TEXT, LOG_INFO, LOG_ERROR, &f, "fetch failed");
    ck_assert_ptr_nonnull(strstr(line, " error fetch failed secret=db error=\"no such file\"\n"));
}
END_TEST

/* Names, paths and errors come from the config: in the text format too, a
 * "\n" must not split the line and an ESC must not reach the terminal. */
START_TEST(text_format_escapes_control_bytes)
{
    struct log_fields f = {.secret = "a\x1b[31mb", .path = "/x/m\nnt",
                           .error = "say \"hi\"=1\\"};
    char *line = capture(LOG_FORMAT_TEXT, LOG_INFO, LOG_ERROR, &f, "bad\ttab\rcr");
    size_t n = strlen(line);
    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(line[n - 1], '\n');
    for (size_t i = 0; i + 1 < n; i++)
        ck_assert_msg((unsigned char)line[i] >= 0x20 && line[i] != 0x7f,
                      "raw byte 0x%02x at %zu in %s", (unsigned char)line[i], i, line);
    ck_assert_ptr_nonnull(strstr(line, " error bad\\ttab\\rcr secret=a\\x1b[31mb "
                                       "path=/x/m\\nnt error=\"say \\x22hi\\x22=1\\\\\"\n"));
}
END_TEST

START_TEST(json_format_escapes_control_bytes)
{
    struct log_fields f = {.secret = "a\x1b[31mb", .path = "/x/m\nnt\x7f"};
    char *line = capture(LOG_FORMAT_JSON, LOG_INFO, LOG_ERROR, &f, "m");
    size_t n = strlen(line);
    for (size_t i = 0; i + 1 < n; i++)
        ck_assert_msg((unsigned char)line[i] >= 0x20 && line[i] != 0x7f,
                      "raw byte 0x%02x at %zu in %s", (unsigned char)line[i], i, line);
    ck_assert_ptr_nonnull(strstr(line, "\"secret\":\"a\\u001b[31mb\""));
    ck_assert_ptr_nonnull(strstr(line, "\"path\":\"/x/m\\nnt\\u007f\""));
}
END_TEST

START_TEST(escape)
{
    char out[64];
    ck_assert_uint_eq(log_json_escape(out, sizeof(out), "a\"b\\c\x01\t"), 15);
    ck_assert_str_eq(out, "a\\\"b\\\\c\\u0001\\t");
    /* Truncation never splits an escape or a UTF-8 character. */
    ck_assert_uint_eq(log_json_escape(out, 4, "ab\"c"), 2);
    ck_assert_str_eq(out, "ab");
    ck_assert_uint_eq(log_json_escape(out, 4, "a\xc3\xa9\xc3\xa9"), 3);
    ck_assert_str_eq(out, "a\xc3\xa9");
    /* Bytes that are not UTF-8 (a path may hold any): U+FFFD each, so a
     * strict JSON reader takes the line; a character cut by the string's
     * end, an overlong form and a surrogate are not UTF-8 either. */
    log_json_escape(out, sizeof(out), "a\xff\xc3");
    ck_assert_str_eq(out, "a\\ufffd\\ufffd");
    log_json_escape(out, sizeof(out), "\xc0\xaf|\xed\xa0\x80|\xf0\x9f\x98\x80");
    ck_assert_str_eq(out, "\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\xf0\x9f\x98\x80");
}
END_TEST

START_TEST(long_message_truncated_still_json)
{
    static char big[6000];
    memset(big, 'q', sizeof(big) - 1);
    char *line = capture(LOG_FORMAT_JSON, LOG_INFO, LOG_INFO, NULL, big);
    json_t *j = json_loads(line, 0, NULL);
    ck_assert_ptr_nonnull(j);
    json_decref(j);
}
END_TEST

START_TEST(parse_options)
{
    enum log_format f;
    enum log_level l;
    ck_assert_int_eq(log_parse_format("text", &f), 0);
    ck_assert_int_eq(f, LOG_FORMAT_TEXT);
    ck_assert_int_lt(log_parse_format("xml", &f), 0);
    ck_assert_int_eq(log_parse_level("debug", &l), 0);
    ck_assert_int_eq(l, LOG_DEBUG);
    ck_assert_int_lt(log_parse_level("loud", &l), 0);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, json_line_fields);
    tcase_add_test(tc, level_filter);
    tcase_add_test(tc, text_format);
    tcase_add_test(tc, text_format_escapes_control_bytes);
    tcase_add_test(tc, json_format_escapes_control_bytes);
    tcase_add_test(tc, escape);
    tcase_add_test(tc, long_message_truncated_still_json);
    tcase_add_test(tc, parse_options);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(log_suite)
