/* test_aws.c - the Secrets Manager answer parsers (aws_i.h): error bodies,
 * GetSecretValue and the XML of authentication failures, as the answers
 * come from the HTTP layer (secret memory, not NUL-terminated, no buffer at
 * all when empty). Inputs the fuzz target found are kept here. And the
 * cold start's batches (batch.c) without HTTP: how references are cut
 * into BatchGetSecretValue requests, which entry serves which reference,
 * and what a failed or refused batch leaves to single calls. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backends/aws/aws_i.h"
#include "lib/secmem.h"
#include "ck_helpers.h"
#include "ck_main.h"


START_TEST(error_json_and_xml)
{
    struct http_response r;
    char type[128], msg[256];

    ckh_response(&r, 400, "{\"__type\": \"com.amazonaws#ResourceNotFoundException\", "
                      "\"Message\": \"not found\"}");
    aws_error(&r, type, sizeof(type), msg, sizeof(msg));
    ck_assert_str_eq(type, "ResourceNotFoundException");
    ck_assert_str_eq(msg, "not found");
    http_response_cleanup(&r);

    ckh_response(&r, 403, "<ErrorResponse><Error><Code>RequestExpired</Code>"
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
    ckh_response(&r, 200, "{\"Name\": \"prod/db\", \"SecretBinary\": \"czNjcjN0\"}");
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

/* aws_take_value of a GetSecretValue answer with VersionId vid (JSON
 * text, NULL: none): rc, out->version into version. */
static int take_version(const char *vid, char *version, size_t cap)
{
    struct fetch_result out;
    struct secret_ref ref;
    char err[256] = "", body[512];
    ck_assert_int_eq(ref_parse("aws:prod/db", &ref, err, sizeof(err)), 0);
    snprintf(body, sizeof(body), "{\"Name\": \"prod/db\", \"SecretString\": \"pw\"%s%s}",
             vid ? ", \"VersionId\": " : "", vid ? vid : "");
    json_t *root = json_loads(body, JSON_ALLOW_NUL, NULL);   /* a NUL inside must not cut */
    ck_assert_ptr_nonnull(root);
    fetch_result_init(&out, 4096);
    int rc = aws_take_value(root, &ref, &out, err, sizeof(err));
    snprintf(version, cap, "%s", out.version);
    fetch_result_cleanup(&out);
    json_decref(root);
    ref_cleanup(&ref);
    return rc;
}

START_TEST(version_ids)
{
    char v[128];
    ck_assert_int_eq(take_version("\"EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE\"", v, sizeof(v)), 0);
    ck_assert_str_eq(v, "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE");
    ck_assert_int_eq(take_version(NULL, v, sizeof(v)), 0);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(take_version("42", v, sizeof(v)), 0);
    ck_assert_str_eq(v, "");
    /* a server's bytes that are not printable ASCII are never shown */
    ck_assert_int_eq(take_version("\"v1\\u001b[31m\"", v, sizeof(v)), 0);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(take_version("\"v\\u00e9\"", v, sizeof(v)), 0);
    ck_assert_str_eq(v, "");
    ck_assert_int_eq(take_version("\"v1\\u0000x\"", v, sizeof(v)), 0);
    ck_assert_str_eq(v, "");
    /* longer than fetch_result.version holds: cut, NUL-terminated */
    ck_assert_int_eq(take_version("\"0123456789012345678901234567890123456789012345678901234567890123"
                                  "456789\"", v, sizeof(v)), 0);
    ck_assert_str_eq(v, "012345678901234567890123456789012345678901234567890123456789012");

    /* the helper itself */
    struct fetch_result out;
    fetch_result_init(&out, 16);
    ck_assert(fetch_result_set_version(&out, "7", 1));
    ck_assert_str_eq(out.version, "7");
    ck_assert(!fetch_result_set_version(&out, "a\tb", 3));
    ck_assert_str_eq(out.version, "");
    ck_assert(fetch_result_set_version(&out, "a b~", 4));   /* printable, space included */
    ck_assert_str_eq(out.version, "a b~");
    ck_assert(fetch_result_set_version(&out, "xyz", 2));    /* n bytes, not to the NUL */
    ck_assert_str_eq(out.version, "xy");
    ck_assert(fetch_result_set_version(&out, NULL, 0));
    ck_assert_str_eq(out.version, "");
    fetch_result_cleanup(&out);
}
END_TEST

/* Parsed references from texts, for the batch tests. */
struct refs {
    struct secret_ref r[64];
    const struct secret_ref *p[64];
    size_t n;
};

static void refs_add(struct refs *rs, const char *text)
{
    char err[256] = "";
    ck_assert_uint_lt(rs->n, 64);
    ck_assert_msg(ref_parse(text, &rs->r[rs->n], err, sizeof(err)) == 0, "%s: %s", text, err);
    rs->p[rs->n] = &rs->r[rs->n];
    rs->n++;
}

static void refs_plain(struct refs *rs, size_t n)
{
    char t[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(t, sizeof(t), "aws:app/s%zu", i);
        refs_add(rs, t);
    }
}

static void refs_cleanup(struct refs *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        ref_cleanup(&rs->r[i]);
    rs->n = 0;
}

START_TEST(batch_plan_pinned_refs_go_alone)
{
    struct refs rs = {0};
    int b[64];
    refs_add(&rs, "aws:prod/db");
    refs_add(&rs, "aws:prod/tls?version=0e2b5e4c-1111-4222-8333-944445555666");
    refs_add(&rs, "aws:prod/api");
    refs_add(&rs, "aws:prod/old?stage=AWSPREVIOUS");
    refs_add(&rs, "aws:arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/x");
    ck_assert_uint_eq(aws_batch_plan(rs.p, rs.n, 20, true, b), 1);
    const int want[] = {0, -1, 0, -1, 0};
    for (size_t i = 0; i < rs.n; i++)
        ck_assert_int_eq(b[i], want[i]);
    /* batching off, or refused before: nobody in a batch */
    ck_assert_uint_eq(aws_batch_plan(rs.p, rs.n, 20, false, b), 0);
    for (size_t i = 0; i < rs.n; i++)
        ck_assert_int_eq(b[i], -1);
    ck_assert_uint_eq(aws_batch_plan(rs.p, rs.n, 0, true, b), 0);
    refs_cleanup(&rs);

    /* one plain reference: a batch of one is a single call */
    refs_add(&rs, "aws:prod/db");
    refs_add(&rs, "aws:prod/old?stage=AWSPREVIOUS");
    ck_assert_uint_eq(aws_batch_plan(rs.p, rs.n, 20, true, b), 0);
    ck_assert_int_eq(b[0], -1);
    ck_assert_int_eq(b[1], -1);
    refs_cleanup(&rs);
}
END_TEST

START_TEST(batch_plan_cut_at_batch_max)
{
    struct refs rs = {0};
    int b[64];
    refs_plain(&rs, 20);   /* exactly batch_max: one request */
    ck_assert_uint_eq(aws_batch_plan(rs.p, rs.n, 20, true, b), 1);
    for (size_t i = 0; i < rs.n; i++)
        ck_assert_int_eq(b[i], 0);
    refs_cleanup(&rs);

    refs_plain(&rs, 45);   /* 20 + 20 + 5, in order */
    ck_assert_uint_eq(aws_batch_plan(rs.p, rs.n, 20, true, b), 3);
    for (size_t i = 0; i < rs.n; i++)
        ck_assert_int_eq(b[i], (int)(i / 20));
    refs_cleanup(&rs);

    refs_plain(&rs, 41);   /* 20 + 20, and the last alone is a single call */
    ck_assert_uint_eq(aws_batch_plan(rs.p, rs.n, 20, true, b), 2);
    for (size_t i = 0; i < 40; i++)
        ck_assert_int_eq(b[i], (int)(i / 20));
    ck_assert_int_eq(b[40], -1);
    refs_cleanup(&rs);

    refs_plain(&rs, 7);    /* a small batch_max */
    ck_assert_uint_eq(aws_batch_plan(rs.p, rs.n, 3, true, b), 2);
    const int want[] = {0, 0, 0, 1, 1, 1, -1};
    for (size_t i = 0; i < rs.n; i++)
        ck_assert_int_eq(b[i], want[i]);
    refs_cleanup(&rs);
}
END_TEST

START_TEST(batch_take_by_name_and_arn)
{
    struct refs rs = {0};
    struct fetch_result outs[4];
    int rcs[4] = {0};
    char errs[4][BACKEND_ERR_MAX];
    const json_t *served[4] = {0};
    refs_add(&rs, "aws:prod/db");
    refs_add(&rs, "aws:arn:aws:secretsmanager:eu-west-1:1:secret:prod/api");
    refs_add(&rs, "aws:arn:aws:secretsmanager:eu-west-1:1:secret:prod");   /* partial ARN */
    refs_add(&rs, "aws:prod/missing");
    for (size_t i = 0; i < rs.n; i++)
        fetch_result_init(&outs[i], 4096);
    json_t *root = json_loads(
        "{\"SecretValues\": ["
        "{\"Name\": \"prod/db\", \"SecretString\": \"pw\", \"VersionId\": \"v1\"},"
        "{\"Name\": \"prod/api\", \"ARN\": \"arn:aws:secretsmanager:eu-west-1:1:secret:prod/api-AbCdEf\","
        " \"SecretString\": \"k\"},"
        "{\"Name\": \"prod-admin\", \"ARN\": \"arn:aws:secretsmanager:eu-west-1:1:secret:prod-admin-AbCdEf\","
        " \"SecretString\": \"no\"},"
        "{\"Name\": \"prod\", \"ARN\": \"arn:aws:secretsmanager:eu-west-1:1:secret:prod-XyZ123\","
        " \"SecretBinary\": \"czNjcjN0\"}]}", 0, NULL);
    ck_assert_ptr_nonnull(root);
    aws_batch_take(root, rs.p, rs.n, outs, rcs, errs, served);
    ck_assert_ptr_nonnull(served[0]);
    ck_assert_uint_eq(outs[0].value.len, 2);
    ck_assert_str_eq(outs[0].version, "v1");   /* the entry's VersionId */
    ck_assert_ptr_nonnull(served[1]);   /* the ARN without its random suffix */
    ck_assert_str_eq(outs[1].version, "");      /* none in the entry */
    ck_assert_uint_eq(outs[1].value.len, 1);
    ck_assert_ptr_nonnull(served[2]);   /* "prod-XyZ123", never "prod-admin-AbCdEf" */
    ck_assert_uint_eq(outs[2].value.len, 6);
    ck_assert_int_eq(memcmp(outs[2].value.data, "s3cr3t", 6), 0);
    ck_assert_ptr_null(served[3]);
    json_decref(root);
    for (size_t i = 0; i < rs.n; i++)
        fetch_result_cleanup(&outs[i]);
    refs_cleanup(&rs);
}
END_TEST

START_TEST(batch_verdicts)
{
    struct aws_batch_verdict v;
    v = aws_batch_judge(-ECONNREFUSED, true, "");        /* unreachable */
    ck_assert(v.fail_all && !v.denied);
    v = aws_batch_judge(-ETIMEDOUT, false, "");          /* any transport error */
    ck_assert(v.fail_all && !v.denied);
    v = aws_batch_judge(0, true, "ThrottlingException");
    ck_assert(v.fail_all && !v.denied);
    v = aws_batch_judge(0, false, "AccessDeniedException");
    ck_assert(!v.fail_all && v.denied);
    v = aws_batch_judge(0, false, "AccessDenied");       /* the XML form */
    ck_assert(!v.fail_all && v.denied);
    v = aws_batch_judge(0, false, "ValidationException");
    ck_assert(!v.fail_all && !v.denied);
}
END_TEST

/* A refused batch falls back one by one; a transient failure gives its
 * error to its own references only; what a batch served is done. */
START_TEST(batch_fallback)
{
    /* refs 0-2 in batch 0 (refused), 3-5 in batch 1 (throttled), 6 pinned,
     * 7-8 in batch 2 (answered, 8 not in the answer) */
    const int batch_of[] = {0, 0, 0, 1, 1, 1, -1, 2, 2};
    const bool served[] = {false, false, false, false, false, false, false, true, false};
    const struct aws_batch_verdict verdicts[] = {
        aws_batch_judge(0, false, "AccessDeniedException"),
        aws_batch_judge(0, true, "ThrottlingException"),
        {0},
    };
    enum aws_fate fate[9];
    aws_batch_fates(9, batch_of, served, verdicts, fate);
    const enum aws_fate want[] = {
        AWS_FATE_SINGLE, AWS_FATE_SINGLE, AWS_FATE_SINGLE,
        AWS_FATE_BATCH_ERROR, AWS_FATE_BATCH_ERROR, AWS_FATE_BATCH_ERROR,
        AWS_FATE_SINGLE, AWS_FATE_DONE, AWS_FATE_SINGLE,
    };
    for (size_t i = 0; i < 9; i++)
        ck_assert_msg(fate[i] == want[i], "ref %zu: %d", i, (int)fate[i]);
}
END_TEST

static Suite *aws_suite(void)
{
    Suite *s = suite_create("aws");
    TCase *tc = tcase_create("answers");
    tcase_add_checked_fixture(tc, ckh_setup_hardening, NULL);
    tcase_add_test(tc, error_json_and_xml);
    tcase_add_test(tc, error_empty_body);
    tcase_add_test(tc, get_value_string_and_binary);
    tcase_add_test(tc, version_ids);
    suite_add_tcase(s, tc);
    tc = tcase_create("batch");
    tcase_add_checked_fixture(tc, ckh_setup_hardening, NULL);
    tcase_add_test(tc, batch_plan_pinned_refs_go_alone);
    tcase_add_test(tc, batch_plan_cut_at_batch_max);
    tcase_add_test(tc, batch_take_by_name_and_arn);
    tcase_add_test(tc, batch_verdicts);
    tcase_add_test(tc, batch_fallback);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(aws_suite)
