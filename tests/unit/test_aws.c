/* test_aws.c - the Secrets Manager answer parsers (aws_i.h): error bodies,
 * GetSecretValue and the XML of authentication failures, as the answers
 * come from the HTTP layer (secret memory, not NUL-terminated, no buffer at
 * all when empty). Inputs the fuzz target found are kept here. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "backends/aws/aws_i.h"
#include "lib/secmem.h"
#include "broker/hardening.h"
#include "ck_main.h"

static void setup(void)
{
    char e[256];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
}

static void response(struct http_response *r, long status, const char *body)
{
    http_response_init(r);
    r->status = status;
    secbuf_init(&r->body, 65536);
    ck_assert_int_eq(secbuf_append(&r->body, body, strlen(body)), 0);
}

START_TEST(error_json_and_xml)
{
    struct http_response r;
    char type[128], msg[256];

    response(&r, 400, "{\"__type\": \"com.amazonaws#ResourceNotFoundException\", "
                      "\"Message\": \"not found\"}");
    aws_error(&r, type, sizeof(type), msg, sizeof(msg));
    ck_assert_str_eq(type, "ResourceNotFoundException");
    ck_assert_str_eq(msg, "not found");
    http_response_cleanup(&r);

    response(&r, 403, "<ErrorResponse><Error><Code>RequestExpired</Code>"
                      "<Message>Request has expired.</Message></Error></ErrorResponse>");
    aws_error(&r, type, sizeof(type), msg, sizeof(msg));
    ck_assert_str_eq(type, "RequestExpired");
    ck_assert_str_eq(msg, "Request has expired.");
    http_response_cleanup(&r);
}
END_TEST

/* Found by fuzz_aws: an answer without a body (a 500 from a proxy) gave
 * memmem a NULL haystack in aws_xml_text (UBSan: nonnull-attribute). */
START_TEST(error_empty_body)
{
    struct http_response r;
    struct fetch_result out;
    struct secret_ref ref;
    char type[128], msg[256], err[256];
    json_t *root = NULL;

    http_response_init(&r);
    r.status = 500;
    ck_assert_ptr_null(r.body.data);
    ck_assert_ptr_null(aws_xml_text(&r.body, "Code"));
    aws_error(&r, type, sizeof(type), msg, sizeof(msg));
    ck_assert_str_eq(type, "");
    ck_assert_str_eq(msg, "body is neither JSON nor XML");

    ck_assert_int_eq(ref_parse("aws:prod/db", &ref, err, sizeof(err)), 0);
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(aws_answer_object("GetSecretValue", &ref, &r, &root, &out, err, sizeof(err)),
                     -EAGAIN);
    ck_assert_ptr_null(root);
    ck_assert_str_eq(err, "prod/db: HTTP 500 error: body is neither JSON nor XML");
    ck_assert(out.retryable);
    fetch_result_cleanup(&out);
    ref_cleanup(&ref);
}
END_TEST

START_TEST(get_value_string_and_binary)
{
    struct http_response r;
    struct fetch_result out;
    struct secret_ref ref;
    char err[256] = "";
    json_t *root = NULL;

    ck_assert_int_eq(ref_parse("aws:prod/db", &ref, err, sizeof(err)), 0);
    response(&r, 200, "{\"Name\": \"prod/db\", \"SecretBinary\": \"czNjcjN0\"}");
    fetch_result_init(&out, 4096);
    ck_assert_int_eq(aws_answer_object("GetSecretValue", &ref, &r, &root, &out, err, sizeof(err)), 0);
    ck_assert_int_eq(aws_take_value(root, &ref, &out, err, sizeof(err)), 0);
    ck_assert_uint_eq(out.value.len, 6);
    ck_assert_int_eq(memcmp(out.value.data, "s3cr3t", 6), 0);
    json_decref(root);
    fetch_result_cleanup(&out);
    http_response_cleanup(&r);
    ref_cleanup(&ref);
}
END_TEST

static Suite *aws_suite(void)
{
    Suite *s = suite_create("aws");
    TCase *tc = tcase_create("answers");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, error_json_and_xml);
    tcase_add_test(tc, error_empty_body);
    tcase_add_test(tc, get_value_string_and_binary);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(aws_suite)
