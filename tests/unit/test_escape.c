/* test_escape.c - the one escaper for untrusted bytes in messages. */
#include "lib/escape.h"

#include <check.h>
#include <string.h>
#include "ck_main.h"

static const char *esc(const char *s, size_t n, unsigned flags)
{
    static char out[256];
    size_t len = escape_bytes(out, sizeof(out), s, n, flags);
    ck_assert_uint_eq(len, strlen(out));
    return out;
}

#define E(lit, flags) esc((lit), sizeof(lit) - 1, (flags))

START_TEST(printable_ascii_unchanged)
{
    ck_assert_str_eq(E("db/pass-word_1.x ~{}[]'\"", 0), "db/pass-word_1.x ~{}[]'\"");
    ck_assert_str_eq(E("", 0), "");
}
END_TEST

START_TEST(controls_escaped)
{
    ck_assert_str_eq(E("a\nb", 0), "a\\nb");
    ck_assert_str_eq(E("a\rb\tc", 0), "a\\rb\\tc");
    ck_assert_str_eq(E("\x1b[31mred", 0), "\\x1b[31mred");
    ck_assert_str_eq(E("nul\0byte", 0), "nul\\x00byte");
    ck_assert_str_eq(E("del\x7f", 0), "del\\x7f");
    ck_assert_str_eq(E("back\\slash", 0), "back\\\\slash");
    ck_assert_str_eq(E("\x01\x1f", 0), "\\x01\\x1f");
}
END_TEST

START_TEST(utf8)
{
    /* é, €, U+1F600: printable, kept */
    ck_assert_str_eq(E("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0),
                     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* C1 control U+009B (CSI), a lone continuation byte, a truncated
     * sequence, an overlong '/', a surrogate, Latin-1 bytes */
    ck_assert_str_eq(E("\xc2\x9b", 0), "\\xc2\\x9b");
    ck_assert_str_eq(E("\x80", 0), "\\x80");
    ck_assert_str_eq(E("\xe2\x82", 0), "\\xe2\\x82");
    ck_assert_str_eq(E("\xc0\xaf", 0), "\\xc0\\xaf");
    ck_assert_str_eq(E("\xed\xa0\x80", 0), "\\xed\\xa0\\x80");
    ck_assert_str_eq(E("\xe9t\xe9", 0), "\\xe9t\\xe9");
}
END_TEST

START_TEST(flags)
{
    ck_assert_str_eq(E("say \"hi\"", ESCAPE_DQUOTE), "say \\x22hi\\x22");
    ck_assert_str_eq(E("it's", ESCAPE_SQUOTE), "it\\x27s");
    /* an already composed message: its escapes stay, raw controls do not */
    ck_assert_str_eq(E("field 'a\\x01b'\n", ESCAPE_KEEP_BACKSLASH), "field 'a\\x01b'\\n");
}
END_TEST

START_TEST(truncation)
{
    char out[8];
    /* never a split escape or character; "..." when cut */
    ck_assert_uint_eq(escape_str(out, sizeof(out), "abcdefghij", 0), 7);
    ck_assert_str_eq(out, "abcd...");
    ck_assert_uint_eq(escape_str(out, sizeof(out), "abcdefg", 0), 7);
    ck_assert_str_eq(out, "abcdefg");
    escape_str(out, sizeof(out), "ab\ncdefgh", 0);
    ck_assert_str_eq(out, "ab\\n...");
    escape_str(out, sizeof(out), "abc\x1b" "defgh", 0);
    ck_assert_str_eq(out, "abc...");
    escape_str(out, sizeof(out), "ab\xe2\x82\xac\xe2\x82\xac", 0);
    ck_assert_str_eq(out, "ab...");   /* "ab€..." needs 9 bytes */
    escape_str(out, 1, "abc", 0);
    ck_assert_str_eq(out, "");
}
END_TEST

static Suite *escape_suite(void)
{
    Suite *s = suite_create("escape");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, printable_ascii_unchanged);
    tcase_add_test(tc, controls_escaped);
    tcase_add_test(tc, utf8);
    tcase_add_test(tc, flags);
    tcase_add_test(tc, truncation);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(escape_suite)
