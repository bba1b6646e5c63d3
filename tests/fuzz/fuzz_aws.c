/* fuzz_aws.c - Secrets Manager answers as backends/aws.c parses them
 * (aws_i.h): GetSecretValue, BatchGetSecretValue, DescribeSecret, and the
 * error bodies (JSON, or the XML of authentication failures).
 *
 * Input: byte 0 picks the answer, byte 1 the HTTP status (low 3 bits) and
 * the reference asked about (next 2 bits); the rest is the body. */
#include "fuzz.h"

#include <errno.h>
#include "backends/aws/aws_i.h"

static const char *const ref_texts[] = {
    "aws:prod/db",
    "aws:arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/api",
    "aws:prod/tls?version=0e2b5e4c-1111-4222-8333-944445555666",
    "aws:prod/old?stage=AWSPREVIOUS",
};
static struct secret_ref refs[4];   /* parsed once */
#define N_REFS (sizeof(refs) / sizeof(refs[0]))

enum { GET, DESCRIBE, BATCH, ERROR_BODY, N_ANSWERS };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_response r;
    struct fetch_result out;
    char err[BACKEND_ERR_MAX] = "";
    json_t *root = NULL;
    int rc = 0;

    if (!refs[0].backend)
        for (size_t i = 0; i < N_REFS; i++)
            FUZZ_ASSERT(ref_parse(ref_texts[i], &refs[i], err, sizeof(err)) == 0);
    if (size < 2)
        return 0;
    const struct secret_ref *ref = &refs[(data[1] >> 3) % N_REFS];
    http_response_init(&r);
    r.status = fuzz_status(data[1]);
    secbuf_init(&r.body, size);
    FUZZ_ASSERT(secbuf_append(&r.body, data + 2, size - 2) == 0);
    fetch_result_init(&out, 4096);

    switch (data[0] % N_ANSWERS) {
    case GET:
        rc = aws_answer_object("GetSecretValue", ref, &r, &root, &out, err, sizeof(err));
        if (rc == 0)
            rc = aws_take_value(root, ref, &out, err, sizeof(err));
        if (rc == 0)
            FUZZ_ASSERT(out.value.len <= out.value.max);
        break;
    case DESCRIBE: {
        bool changed = false;
        rc = aws_answer_object("DescribeSecret", ref, &r, &root, &out, err, sizeof(err));
        if (rc == 0)
            rc = aws_describe_answer(root, ref, "0e2b5e4c-1111-4222-8333-944445555666", &changed,
                                     err, sizeof(err));
        break;
    }
    case BATCH: {
        /* As aws_fetch_many: a 200's body is parsed leniently. */
        const struct secret_ref *list[N_REFS];
        struct fetch_result outs[N_REFS];
        int rcs[N_REFS] = {0};
        char errs[N_REFS][BACKEND_ERR_MAX];
        const json_t *served[N_REFS] = {NULL};
        json_error_t jerr;
        for (size_t i = 0; i < N_REFS; i++) {
            list[i] = &refs[i];
            fetch_result_init(&outs[i], 4096);
            errs[i][0] = '\0';
        }
        root = json_loadb((const char *)r.body.data, r.body.len, 0, &jerr);
        aws_batch_take(root, list, N_REFS, outs, rcs, errs, served);
        for (size_t i = 0; i < N_REFS; i++) {
            if (served[i])
                FUZZ_ASSERT(rcs[i] == 0 && !refs[i].version && !refs[i].stage);
            if (rcs[i] < 0)
                FUZZ_ASSERT(errs[i][0] != '\0' && outs[i].value.len == 0);
            FUZZ_ASSERT(strstr(errs[i], FUZZ_SECRET_MARKER) == NULL);
            fetch_result_cleanup(&outs[i]);
        }
        break;
    }
    case ERROR_BODY: {
        char type[128], msg[256];
        aws_error(&r, type, sizeof(type), msg, sizeof(msg));
        FUZZ_ASSERT(strlen(type) < sizeof(type) && strlen(msg) < sizeof(msg));
        break;
    }
    }
    fuzz_check_answer_message(rc, r.status, err);
    json_decref(root);
    fetch_result_cleanup(&out);
    http_response_cleanup(&r);
    return 0;
}
