/* test_encode.c - the one percent-encoder (lib/encode.c): the RFC 3986
 * rule, '/' kept for paths, the size limits, and the decode-then-encode
 * normalisation SigV4 signs (tests/unit/test_sigv4.c checks the signer's
 * output itself). */
#include "lib/encode.h"

#include <check.h>
#include <errno.h>
#include <string.h>
#include "broker/hardening.h"
#include "ck_main.h"

static void setup(void)
{
    char e[256];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
}

#define UNRESERVED "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

static const char *enc(const char *s, size_t n, unsigned flags)
{
    static char out[1024];
    struct secbuf b;
    secbuf_init(&b, sizeof(out) - 1);
    ck_assert_int_eq(encode_percent(&b, s, n, flags), 0);
    memcpy(out, b.data ? (const char *)b.data : "", b.len);
    out[b.len] = '\0';
    secbuf_cleanup(&b);
    return out;
}

#define ENC(lit, flags) enc((lit), sizeof(lit) - 1, (flags))

START_TEST(form_fields)
{
    struct secbuf b;
    secbuf_init(&b, 256);
    ck_assert_int_eq(encode_form_field(&b, "grant_type", "client_credentials"), 0);
    ck_assert_int_eq(encode_form_field(&b, "scope", "https://vault.azure.net/.default"), 0);
    ck_assert_int_eq(encode_form_field(&b, "k", "a b&c=d+"), 0);
    const char want[] = "grant_type=client_credentials&scope=https%3A%2F%2Fvault.azure.net%2F.default"
                        "&k=a%20b%26c%3Dd%2B";
    ck_assert_uint_eq(b.len, sizeof(want) - 1);
    ck_assert_int_eq(memcmp(b.data, want, b.len), 0);
    secbuf_cleanup(&b);
    /* the maximum reached: an error, never a silent cut */
    secbuf_init(&b, 8);
    ck_assert_int_eq(encode_form_field(&b, "key", "value-too-long"), -E2BIG);
    secbuf_cleanup(&b);
}
END_TEST

START_TEST(unreserved_kept)
{
    ck_assert_str_eq(ENC(UNRESERVED, 0), UNRESERVED);
    ck_assert_str_eq(ENC("", 0), "");
}
END_TEST

START_TEST(everything_else_upper_hex)
{
    ck_assert_str_eq(ENC("a b+c=d&e", 0), "a%20b%2Bc%3Dd%26e");
    ck_assert_str_eq(ENC("/%?#[]@!$'()*,;:", 0),
                     "%2F%25%3F%23%5B%5D%40%21%24%27%28%29%2A%2C%3B%3A");
    ck_assert_str_eq(ENC("\xc3\xbc\xe1\x88\xb4", 0), "%C3%BC%E1%88%B4");   /* ü, U+1234 */
    ck_assert_str_eq(ENC("nul\0\x7f\xff", 0), "nul%00%7F%FF");
}
END_TEST

START_TEST(slash_kept_for_paths)
{
    ck_assert_str_eq(ENC("secret/a b/x", ENCODE_KEEP_SLASH), "secret/a%20b/x");
    ck_assert_str_eq(ENC("secret/a b/x", 0), "secret%2Fa%20b%2Fx");
}
END_TEST

/* The fixed-buffer form is what http_escape_path was: same output, and
 * -E2BIG unless the NUL fits too. */
START_TEST(string_form_and_limits)
{
    char out[64];
    ck_assert_int_eq(encode_percent_str("secret/a b/\xc3\xbc?#%", out, sizeof(out),
                                        ENCODE_KEEP_SLASH), 0);
    ck_assert_str_eq(out, "secret/a%20b/%C3%BC%3F%23%25");
    ck_assert_int_eq(encode_percent_str("abc", out, 4, 0), 0);
    ck_assert_str_eq(out, "abc");
    ck_assert_int_eq(encode_percent_str("abcd", out, 4, 0), -E2BIG);
    ck_assert_int_eq(encode_percent_str("ab ", out, 5, 0), -E2BIG);   /* "ab%20" + NUL = 6 */
    ck_assert_int_eq(encode_percent_str("ab ", out, 6, 0), 0);
    ck_assert_int_eq(encode_percent_str("", out, 1, 0), 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(encode_percent_str("", out, 0, 0), -E2BIG);

    struct secbuf b;
    secbuf_init(&b, 4);
    ck_assert_int_eq(encode_percent(&b, "a b", 3, 0), -E2BIG);   /* the secbuf's maximum */
    secbuf_cleanup(&b);
}
END_TEST

static const char *dec(const char *s)
{
    static char out[256];
    size_t n = encode_percent_decode(s, strlen(s), out);
    out[n] = '\0';
    return out;
}

START_TEST(decode)
{
    ck_assert_str_eq(dec("a%20b%2fc%2F"), "a b/c/");
    ck_assert_str_eq(dec("%E1%88%b4"), "\xe1\x88\xb4");
    /* not an escape: copied as it is */
    ck_assert_str_eq(dec("100%"), "100%");
    ck_assert_str_eq(dec("%4"), "%4");
    ck_assert_str_eq(dec("%zz%4g"), "%zz%4g");
    ck_assert_str_eq(dec("%%41"), "%A");
    ck_assert_str_eq(dec(""), "");
}
END_TEST

/* SigV4 canonical URIs: the path as sent is decoded, then encoded once
 * (with '/'), so "/a b", "/a%20b" and "/a%2520b"'s once-decoded form
 * differ as they should, and an already-encoded path is not encoded twice
 * ("%20" must not become "%2520"). */
START_TEST(sigv4_single_encoding_rule)
{
    static const struct {
        const char *sent, *canonical;
    } v[] = {
        {"/", "/"},
        {"/a b", "/a%20b"},
        {"/a%20b", "/a%20b"},
        {"/a%2520b", "/a%2520b"},
        {"/%E1%88%B4", "/%E1%88%B4"},
        {"/\xe1\x88\xb4", "/%E1%88%B4"},
        {"/-._~/x", "/-._~/x"},
        {"/a%2Fb", "/a/b"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char tmp[256];
        size_t n = encode_percent_decode(v[i].sent, strlen(v[i].sent), tmp);
        ck_assert_str_eq(enc(tmp, n, ENCODE_KEEP_SLASH), v[i].canonical);
    }
    /* encoding what is already encoded is the double encoding to avoid */
    ck_assert_str_eq(ENC("/a%20b", ENCODE_KEEP_SLASH), "/a%2520b");
}
END_TEST

static Suite *encode_suite(void)
{
    Suite *s = suite_create("encode");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, unreserved_kept);
    tcase_add_test(tc, everything_else_upper_hex);
    tcase_add_test(tc, slash_kept_for_paths);
    tcase_add_test(tc, string_form_and_limits);
    tcase_add_test(tc, decode);
    tcase_add_test(tc, sigv4_single_encoding_rule);
    tcase_add_test(tc, form_fields);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(encode_suite)
