/* test_oauth.c - backends/auth/oauth.c: a token endpoint's answer, the one
 * reader Azure and GCP share: lifetimes as numbers or strings, the token's
 * checks (present, bounded, header-safe, Bearer) and messages that name the
 * member, never the value. */
#include "backends/auth/oauth.h"

#include <check.h>
#include <string.h>
#include "broker/hardening.h"
#include "lib/secmem.h"
#include "ck_main.h"

static void setup(void)
{
    char e[256];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
}

static json_t *parse(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    ck_assert_ptr_nonnull(j);
    return j;
}

START_TEST(seconds)
{
    static const struct {
        const char *json;
        long long want;
    } cases[] = {
        {"{\"v\": 3599}", 3599},        {"{\"v\": \"3599\"}", 3599},   /* IMDS: a string */
        {"{\"v\": 0}", 0},              {"{\"v\": -5}", 0},           {"{\"v\": \"\"}", 0},
        {"{\"v\": \"12x\"}", 0},        {"{\"v\": \"-1\"}", 0},        {"{\"v\": 1.5}", 0},
        {"{\"v\": \"1234567890123\"}", 0},                           /* 13 digits */
        {"{\"v\": 99999999}", 86400},   {"{\"v\": \"99999999\"}", 86400}, /* clamped */
        {"{}", 0},                      {"{\"v\": null}", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = parse(cases[i].json);
        ck_assert_msg(oauth_seconds(json_object_get(j, "v"), 86400) == cases[i].want, "%s",
                      cases[i].json);
        json_decref(j);
    }
}
END_TEST

START_TEST(bearer_tokens)
{
    char err[128];
    json_t *j = parse("{\"access_token\": \"ya29.abc-DEF_123\", \"token_type\": \"Bearer\"}");
    char *t = oauth_bearer(j, "access_token", 64, err, sizeof(err));
    ck_assert_str_eq(t, "ya29.abc-DEF_123");
    secmem_free(t);
    json_decref(j);
    /* token_type is optional (iamcredentials has none) and case-blind */
    j = parse("{\"accessToken\": \"tok\", \"token_type\": \"bearer\"}");
    t = oauth_bearer(j, "accessToken", 64, err, sizeof(err));
    ck_assert_str_eq(t, "tok");
    secmem_free(t);
    json_decref(j);
}
END_TEST

START_TEST(bearer_refusals)
{
    static const struct {
        const char *json, *msg;
    } cases[] = {
        {"{}", "no access_token in the answer"},
        {"{\"access_token\": \"\"}", "no access_token in the answer"},
        {"{\"access_token\": 42}", "no access_token in the answer"},
        {"{\"access_token\": \"0123456789abcdefX\"}", "access_token longer than 16 bytes"},
        {"{\"access_token\": \"se cret\"}", "access_token holds characters a header cannot carry"},
        {"{\"access_token\": \"secret\\r\\nX: 1\"}",
         "access_token holds characters a header cannot carry"},
        {"{\"access_token\": \"secret\\u00e9\"}", "access_token holds characters a header cannot carry"},
        {"{\"access_token\": \"secret\", \"token_type\": \"MAC\"}", "token_type is not Bearer"},
        {"{\"access_token\": \"secret\", \"token_type\": 1}", "token_type is not Bearer"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[128] = "";
        json_t *j = parse(cases[i].json);
        ck_assert_ptr_null(oauth_bearer(j, "access_token", 16, err, sizeof(err)));
        ck_assert_str_eq(err, cases[i].msg);
        ck_assert_ptr_null(strstr(err, "secret"));   /* never the value */
        json_decref(j);
    }
}
END_TEST

static Suite *oauth_suite(void)
{
    Suite *s = suite_create("oauth");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, seconds);
    tcase_add_test(tc, bearer_tokens);
    tcase_add_test(tc, bearer_refusals);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(oauth_suite)
