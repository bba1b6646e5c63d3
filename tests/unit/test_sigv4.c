/* test_sigv4.c - the hand-written SigV4 signer against the official AWS
 * Signature Version 4 test suite (aws-sig-v4-test-suite, the 2015-08-30
 * set: AKIDEXAMPLE, us-east-1, service "service"). The expected signatures
 * are the suite's published ones; all but get-utf8 were also reproduced with
 * the botocore installed here (botocore double-encodes an already-encoded
 * path, which is not what the suite's raw "/ሴ" request means). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/secmem.h"
#include "broker/hardening.h"
#include "backends/aws/sigv4.h"
#include "ck_main.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE "20150830T123600Z"
#define TOKEN                                                                                    \
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfI" \
    "eoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0" \
    "wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypN" \
    "C9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
#define UNRESERVED "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

static const struct sigv4_header base[] = {
    {"Host", "example.amazonaws.com"}, {"X-Amz-Date", DATE}};
static const struct sigv4_header form[] = {
    {"Content-Type", "application/x-www-form-urlencoded"},
    {"Host", "example.amazonaws.com"}, {"X-Amz-Date", DATE}};
static const struct sigv4_header trim[] = {
    {"Host", "example.amazonaws.com"}, {"My-Header1", " value1"},
    {"My-Header2", " \"a   b   c\""}, {"X-Amz-Date", DATE}};
static const struct sigv4_header sts[] = {
    {"Host", "example.amazonaws.com"}, {"X-Amz-Date", DATE}, {"X-Amz-Security-Token", TOKEN}};
static const struct sigv4_header key_case[] = {
    {"HOST", "example.amazonaws.com"}, {"x-AMZ-date", DATE}};

static const struct {
    const char *name, *method, *path, *query;
    const struct sigv4_header *h;
    size_t nh;
    const char *body, *signed_headers, *signature;
} vectors[] = {
    {"get-vanilla", "GET", "/", NULL, base, 2, "", "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1", base, 2, "",
     "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"get-vanilla-query-unreserved", "GET", "/", UNRESERVED "=" UNRESERVED, base, 2, "",
     "host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
    {"get-utf8", "GET", "/\xe1\x88\xb4", NULL, base, 2, "", "host;x-amz-date",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
    {"get-header-value-trim", "GET", "/", NULL, trim, 4, "", "host;my-header1;my-header2;x-amz-date",
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    {"post-vanilla", "POST", "/", NULL, base, 2, "", "host;x-amz-date",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-header-key-case", "POST", "/", NULL, key_case, 2, "", "host;x-amz-date",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-x-www-form-urlencoded", "POST", "/", NULL, form, 3, "Param1=value1",
     "content-type;host;x-amz-date",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    {"post-sts-header-before", "POST", "/", NULL, sts, 3, "",
     "host;x-amz-date;x-amz-security-token",
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
};

static struct sigv4_input input(size_t i)
{
    return (struct sigv4_input){
        .method = vectors[i].method, .path = vectors[i].path, .query = vectors[i].query,
        .headers = vectors[i].h, .nheaders = vectors[i].nh, .payload = vectors[i].body,
        .payload_len = strlen(vectors[i].body), .region = "us-east-1", .service = "service",
        .akid = "AKIDEXAMPLE", .secret = SECRET, .amz_date = DATE,
    };
}

START_TEST(suite_vector)
{
    char auth[1024], want[1024];
    struct sigv4_input in = input((size_t)_i);
    ck_assert_int_eq(sigv4_authorization(&in, auth, sizeof(auth)), 0);
    snprintf(want, sizeof(want),
             "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
             "SignedHeaders=%s, Signature=%s", vectors[_i].signed_headers, vectors[_i].signature);
    ck_assert_msg(strcmp(auth, want) == 0, "%s:\n got: %s\nwant: %s", vectors[_i].name, auth, want);
}
END_TEST

START_TEST(canonical_request_get_vanilla)
{
    struct sigv4_input in = input(0);
    struct secbuf b;
    secbuf_init(&b, 4096);
    ck_assert_int_eq(sigv4_canonical_request(&in, &b), 0);
    const char *want = "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                       "host;x-amz-date\n"
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    ck_assert_uint_eq(b.len, strlen(want));
    ck_assert_int_eq(memcmp(b.data, want, b.len), 0);
    secbuf_cleanup(&b);
}
END_TEST

START_TEST(query_sorted_and_encoded)
{
    struct sigv4_input in = input(0);
    struct secbuf b;
    in.query = "b=2&a=x%2Fy&A=0&c";
    secbuf_init(&b, 4096);
    ck_assert_int_eq(sigv4_canonical_request(&in, &b), 0);
    ck_assert_msg(memmem(b.data, b.len, "\nA=0&a=x%2Fy&b=2&c=\n", 20) != NULL, "%.*s", (int)b.len,
                  (const char *)b.data);
    secbuf_cleanup(&b);
}
END_TEST

START_TEST(bad_date)
{
    char auth[1024];
    struct sigv4_input in = input(0);
    in.amz_date = "20150830";
    ck_assert_int_eq(sigv4_authorization(&in, auth, sizeof(auth)), -EINVAL);
    in = input(0);
    ck_assert_int_eq(sigv4_authorization(&in, auth, 40), -E2BIG);
}
END_TEST

static void setup(void)
{
    char e[128];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
}

static Suite *sigv4_suite(void)
{
    Suite *s = suite_create("sigv4");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, suite_vector, 0, (int)(sizeof(vectors) / sizeof(vectors[0])));
    tcase_add_test(tc, canonical_request_get_vanilla);
    tcase_add_test(tc, query_sorted_and_encoded);
    tcase_add_test(tc, bad_date);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(sigv4_suite)
