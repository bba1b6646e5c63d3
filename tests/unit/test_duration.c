/* test_duration.c - duration_parse, duration_parse_str, duration_format. */
#include "lib/duration.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "ck_main.h"

#define TEN_YEARS (10LL * 365 * 86400 * 1000)
#define S(n) ((n) * 1000LL)

#define ck_assert_err_has(err, sub) \
    ck_assert_msg(strstr((err), (sub)) != NULL, "error \"%s\" lacks \"%s\"", (err), (sub))

static const struct {
    const char *in;
    long long ms;
} good[] = {
    {"90s", S(90)},
    {"5m", S(300)},
    {"1h30m", S(5400)},
    {"2d", S(172800)},
    {"1h30m15s", S(5415)},
    {"300", S(300)},
    {"1", S(1)},
    {"5", S(5)},
    {"1d2h3m4s", S(93784)},
    {"1d4s", S(86404)},
    {"1h0m", S(3600)},
    {"0h1s", S(1)},
    {"007s", S(7)},
    {"3650d", TEN_YEARS},
    {"315360000", TEN_YEARS},
    {"3649d23h59m59s", TEN_YEARS - S(1)},
    {"250ms", 250},
    {"1ms", 1},
    {"1s500ms", 1500},
    {"1m1ms", S(60) + 1},
    {"3649d23h59m59s999ms", TEN_YEARS - 1},
};

START_TEST(parse_str_good)
{
    char err[256] = "";
    long long secs = -1;
    int rc = duration_parse_str(good[_i].in, &secs, err, sizeof(err));

    ck_assert_msg(rc == 0, "\"%s\": rc %d: %s", good[_i].in, rc, err);
    ck_assert_int_eq(secs, good[_i].ms);
}
END_TEST

static const struct {
    const char *in;
    const char *msg;
} bad[] = {
    {"", "empty duration"},
    {"-5", "must be positive"},
    {"-5m", "must be positive"},
    {"0", "must be greater than zero"},
    {"0s", "must be greater than zero"},
    {"0h0m", "must be greater than zero"},
    {"1.5h", "fractions are not allowed"},
    {"1,5h", "fractions are not allowed"},
    {"5 m", "character ' ' (0x20) is not allowed"},
    {" 5m", "character ' ' (0x20) is not allowed"},
    {"5m ", "character ' ' (0x20) is not allowed"},
    {"5x", "unknown unit 'x' (use d, h, m, s or ms)"},
    {"5mss", "unknown unit 'mss'"},
    {"0ms", "must be greater than zero"},
    {"1ms1s", "units must go from largest to smallest"},
    {"1ms2ms", "unit 'ms' appears twice"},
    {"5min", "unknown unit 'min'"},
    {"5H", "unknown unit 'H'"},
    {"2w", "unknown unit 'w'"},
    {"30m1h", "units must go from largest to smallest"},
    {"1s1d", "units must go from largest to smallest"},
    {"1m2m", "unit 'm' appears twice"},
    {"1h5", "missing unit after 5"},
    {"1h30m15", "missing unit after 15"},
    {"h", "expected a number before 'h'"},
    {"m5", "expected a number before 'm'"},
    {"+5m", "character '+' (0x2b) is not allowed"},
    {"5m\t", "character 0x09 is not allowed"},
    {"5\xc3\xa9", "character 0xc3 is not allowed"},
    {"3651d", "longer than 10 years"},
    {"3650d1s", "longer than 10 years"},
    {"315360001", "longer than 10 years"},
    {"292310368385d2917385d", "longer than 10 years"},   /* n * 1 day overflowed (fuzz) */
    {"99999999999999999999999s", "longer than 10 years"},
    {"9223372036854775808", "longer than 10 years"},
    {"1e3", "unknown unit 'e'"},
    {"0x10", "unknown unit 'x'"},
};

START_TEST(parse_str_bad)
{
    char err[256] = "";
    long long secs = 4242;
    int rc = duration_parse_str(bad[_i].in, &secs, err, sizeof(err));

    ck_assert_msg(rc == -EINVAL, "\"%s\" accepted (rc %d, %lld)", bad[_i].in, rc, secs);
    ck_assert_err_has(err, bad[_i].msg);
    ck_assert_int_eq(secs, 4242);   /* untouched on error */
}
END_TEST

START_TEST(bad_input_is_quoted_safely)
{
    char err[256] = "";
    long long secs;

    ck_assert_int_eq(duration_parse_str("1\x01h", &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "\"1\\x01h\"");
    ck_assert_ptr_null(strchr(err, '\x01'));
    ck_assert_int_eq(duration_parse_str("5\"x", &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "\"5\\x22x\"");
}
END_TEST

START_TEST(syntax_errors_carry_the_hint)
{
    char err[256] = "";
    long long secs;

    ck_assert_int_eq(duration_parse_str("5 m", &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "expected a duration such as \"90s\", \"5m\", \"1h30m\", \"250ms\" or a number "
                           "of seconds");
    ck_assert_int_eq(duration_parse_str("", &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "expected a duration such as");
}
END_TEST

START_TEST(small_error_buffer)
{
    char err[8];
    long long secs;

    memset(err, 'X', sizeof(err));
    ck_assert_int_eq(duration_parse_str("5 m", &secs, err, sizeof(err)), -EINVAL);
    ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
}
END_TEST

START_TEST(parse_json)
{
    char err[256] = "";
    long long secs = 0;
    json_t *v;

    v = json_integer(90);
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), 0);
    ck_assert_int_eq(secs, S(90));
    json_decref(v);

    v = json_string("1h30m");
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), 0);
    ck_assert_int_eq(secs, S(5400));
    json_decref(v);

    v = json_string("300");
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), 0);
    ck_assert_int_eq(secs, S(300));
    json_decref(v);

    v = json_integer(TEN_YEARS / 1000);
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), 0);
    ck_assert_int_eq(secs, TEN_YEARS);
    json_decref(v);
}
END_TEST

START_TEST(parse_json_bad)
{
    char err[256] = "";
    long long secs = 7;
    json_t *v;

    v = json_integer(0);
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "invalid duration 0: must be greater than zero");
    json_decref(v);

    v = json_integer(-30);
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "invalid duration -30: must be greater than zero");
    json_decref(v);

    v = json_integer(TEN_YEARS / 1000 + 1);
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "longer than 10 years");
    json_decref(v);

    v = json_real(1.5);
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "expected a duration such as \"90s\", \"5m\", \"1h30m\", \"250ms\" or a number "
                           "of seconds, got a real number");
    json_decref(v);

    v = json_true();
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "or a number of seconds, got true");

    v = json_false();
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "got false");

    v = json_null();
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "got null");

    v = json_object();
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "got an object");
    json_decref(v);

    v = json_array();
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "got an array");
    json_decref(v);

    ck_assert_int_eq(duration_parse(NULL, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "got nothing");

    v = json_string("1.5h");
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "fractions are not allowed");
    json_decref(v);

    /* "5m\0junk" must not pass as "5m". */
    v = json_stringn("5m\0junk", 7);
    ck_assert_int_eq(duration_parse(v, &secs, err, sizeof(err)), -EINVAL);
    ck_assert_err_has(err, "NUL character");
    json_decref(v);

    ck_assert_int_eq(secs, 7);
}
END_TEST

START_TEST(parse_json_from_text)
{
    char err[256] = "";
    long long secs = 0;
    json_error_t jerr;
    json_t *doc = json_loads("{\"a\": 60, \"b\": \"2d\", \"c\": 60.0}", 0, &jerr);

    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(duration_parse(json_object_get(doc, "a"), &secs, err, sizeof(err)), 0);
    ck_assert_int_eq(secs, S(60));
    ck_assert_int_eq(duration_parse(json_object_get(doc, "b"), &secs, err, sizeof(err)), 0);
    ck_assert_int_eq(secs, S(172800));
    ck_assert_int_eq(duration_parse(json_object_get(doc, "c"), &secs, err, sizeof(err)),
                     -EINVAL);
    ck_assert_err_has(err, "got a real number");
    json_decref(doc);
}
END_TEST

START_TEST(format)
{
    static const struct {
        long long secs;
        const char *out;
    } cases[] = {
        {S(0), "0s"},
        {S(1), "1s"},
        {S(59), "59s"},
        {S(60), "1m"},
        {S(90), "1m30s"},
        {S(3600), "1h"},
        {S(5400), "1h30m"},
        {S(5415), "1h30m15s"},
        {S(86400), "1d"},
        {S(172800), "2d"},
        {S(93784), "1d2h3m4s"},
        {S(86404), "1d4s"},
        {TEN_YEARS, "3650d"},
        {250, "250ms"},
        {1500, "1s500ms"},
        {S(60) + 1, "1m1ms"},
        {S(-90), "-1m30s"},
    };
    char out[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        duration_format(cases[i].secs, out, sizeof(out));
        ck_assert_str_eq(out, cases[i].out);
    }
    /* Truncates, always terminated. */
    duration_format(S(93784), out, 4);
    ck_assert_uint_lt(strlen(out), 4);
    out[0] = 'X';
    duration_format(5, out, 0);
    ck_assert_int_eq(out[0], 'X');
    /* Does not overflow on the most negative value. */
    duration_format(-9223372036854775807LL - 1, out, sizeof(out));
    ck_assert_int_eq(out[0], '-');
}
END_TEST

START_TEST(format_round_trips)
{
    static const long long samples[] = {1, 999, S(1), S(59), S(61) + 7, S(3599), S(3601), S(86399),
                                        S(86401), S(90061), S(1000000), TEN_YEARS - 1, TEN_YEARS};
    char out[64], err[256];

    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        long long back = 0;
        duration_format(samples[i], out, sizeof(out));
        ck_assert_msg(duration_parse_str(out, &back, err, sizeof(err)) == 0, "%s: %s", out, err);
        ck_assert_int_eq(back, samples[i]);
    }
}
END_TEST

static Suite *duration_suite(void)
{
    Suite *s = suite_create("duration");
    TCase *tc = tcase_create("parse_str");

    tcase_add_loop_test(tc, parse_str_good, 0, sizeof(good) / sizeof(good[0]));
    tcase_add_loop_test(tc, parse_str_bad, 0, sizeof(bad) / sizeof(bad[0]));
    tcase_add_test(tc, bad_input_is_quoted_safely);
    tcase_add_test(tc, syntax_errors_carry_the_hint);
    tcase_add_test(tc, small_error_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse_json");
    tcase_add_test(tc, parse_json);
    tcase_add_test(tc, parse_json_bad);
    tcase_add_test(tc, parse_json_from_text);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_test(tc, format);
    tcase_add_test(tc, format_round_trips);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(duration_suite)
