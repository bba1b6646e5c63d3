/* fuzz_aws_creds.c - credential answers as backends/aws_creds.c parses
 * them (aws_i.h): the JSON of the container endpoint, instance metadata and
 * credential_process; STS's XML; the instance metadata role listing.
 *
 * Input: byte 0 picks the answer, byte 1 the HTTP status (STS); the rest
 * is the body. */
#include "fuzz.h"

#include <errno.h>
#include "backends/aws/aws_i.h"

enum { CREDS_JSON, STS, IMDS_ROLE, N_ANSWERS };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_response r;
    struct aws_creds cr = {0};
    char err[512] = "";
    int rc = 0;

    if (size < 2)
        return 0;
    http_response_init(&r);
    r.status = fuzz_status(data[1]);
    secbuf_init(&r.body, size);
    FUZZ_ASSERT(secbuf_append(&r.body, data + 2, size - 2) == 0);

    switch (data[0] % N_ANSWERS) {
    case CREDS_JSON:
        rc = aws_creds_from_json(&r.body, "credential_process", &cr, err, sizeof(err));
        if (rc == 0)
            FUZZ_ASSERT(cr.akid && cr.akid[0] && cr.secret && cr.secret[0]);
        /* "Code" is quoted on purpose (it says why there are no keys). */
        if (r.body.len == 0 || !memmem(r.body.data, r.body.len, "Code", 4))
            FUZZ_ASSERT(strstr(err, FUZZ_SECRET_MARKER) == NULL);
        break;
    case STS:
        rc = aws_sts_answer(&r, "STS AssumeRole", &cr, err, sizeof(err));
        if (rc == 0)
            FUZZ_ASSERT(cr.akid && cr.secret && cr.token);
        if (r.status == 200)
            FUZZ_ASSERT(strstr(err, FUZZ_SECRET_MARKER) == NULL);
        break;
    case IMDS_ROLE: {
        char role[256];
        if (aws_imds_role(&r.body, role, sizeof(role)) == 0)
            FUZZ_ASSERT(role[0] && strlen(role) < sizeof(role) && !strpbrk(role, "\r\n"));
        break;
    }
    }
    if (rc < 0)
        FUZZ_ASSERT(err[0] != '\0' && cr.akid == NULL);
    aws_creds_clear(&cr);
    http_response_cleanup(&r);
    return 0;
}
