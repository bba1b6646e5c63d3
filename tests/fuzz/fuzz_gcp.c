/* fuzz_gcp.c - what backends/gcp/ parses from files and the wire
 * (gcp_i.h): credentials files, the token services' answers (OAuth token
 * endpoint, STS, metadata server; IAM Credentials' generateAccessToken),
 * external accounts' subject token files, AccessSecretVersion answers
 * with their CRC32C and Google's error bodies, and references (NAME: the
 * body after "g:" is a reference; what passes builds a request path that
 * needs no escaping).
 *
 * Input: byte 0 picks the parser, byte 1 the HTTP status (low 3 bits) and
 * the reference asked for (next 2 bits); the rest is the body (the file's
 * content for CRED and SUBJECT). */
#include "fuzz.h"

#include <errno.h>
#include "backends/gcp/gcp_i.h"
#include "backends/http/http.h"
#include "lib/crc32c.h"
#include "lib/ref.h"

static const char *const refs[] = {"g:db-password", "g:db-password?version=3",
                                   "g:projects/123456/locations/us-east1/secrets/db-password",
                                   "g:projects/my-project/secrets/a/versions/latest"};

enum { CRED, OAUTH, IAM, SUBJECT, ACCESS, NAME, N_KINDS };

/* A token as it goes into a header: something, nothing a header cannot carry. */
static void check_token(const char *tok, long long ttl)
{
    FUZZ_ASSERT(tok && tok[0]);
    for (const char *p = tok; *p; p++)
        FUZZ_ASSERT((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
    FUZZ_ASSERT(ttl >= 1 && ttl <= GCP_MAX_TTL_S);
}

static void cred(const uint8_t *data, size_t size)
{
    struct gcp_cred c;
    char err[BACKEND_ERR_MAX] = "", ident[GCP_ID_MAX];
    int rc = gcp_cred_parse("f.json", (const char *)data, size, &c, err, sizeof(err));
    /* The file is a secret: its errors name the file and a JSON path only. */
    FUZZ_ASSERT(!strstr(err, FUZZ_SECRET_MARKER) && !strchr(err, '\n'));
    if (rc < 0) {
        FUZZ_ASSERT((rc == -EINVAL || rc == -ENOMEM) && err[0]);
        FUZZ_ASSERT(!c.private_key && !c.client_secret && !c.refresh_token);
        return;
    }
    switch (c.type) {
    case GCP_SERVICE_ACCOUNT:
        FUZZ_ASSERT(c.client_email && c.private_key_id && c.private_key && c.token_uri);
        FUZZ_ASSERT(strncmp(c.token_uri, "https://", 8) == 0);
        break;
    case GCP_AUTHORIZED_USER:
        FUZZ_ASSERT(c.client_id && c.client_secret && c.refresh_token && c.token_uri);
        break;
    case GCP_EXTERNAL_ACCOUNT:
        FUZZ_ASSERT(c.audience && c.subject_token_type && c.token_url && c.source_file);
        FUZZ_ASSERT(c.source_file[0] == '/');
        break;
    default:
        FUZZ_ASSERT(!"a file type that is no file type");
    }
    gcp_cred_identity(&c, ident, sizeof(ident));
    FUZZ_ASSERT(!strchr(ident, '\n'));
    gcp_cred_cleanup(&c);
}

static void name(const uint8_t *data, size_t size, uint8_t flags)
{
    char *text = malloc(size + 3), err[BACKEND_ERR_MAX] = "", path[1024];
    struct secret_ref ref;
    struct gcp_name n;
    if (!text)
        abort();
    memcpy(text, "g:", 2);
    memcpy(text + 2, data, size);
    text[size + 2] = '\0';
    if (ref_parse(text, &ref, err, sizeof(err)) == 0) {
        int rc = gcp_name_parse(&ref, (flags & 1) ? "my-project" : NULL,
                                (flags & 2) ? "us-east1" : NULL, &n, err, sizeof(err));
        if (rc == 0) {
            FUZZ_ASSERT(n.secret[0] && n.version[0]);
            if (n.project[0]) {
                FUZZ_ASSERT(gcp_access_path(&n, path, sizeof(path)) == 0);
                /* what goes into the URL needs no escaping */
                FUZZ_ASSERT(strspn(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_-/:") == strlen(path));
            }
        } else {
            FUZZ_ASSERT(rc == -EINVAL && err[0] && !strchr(err, '\n'));
        }
        ref_cleanup(&ref);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_response r;
    struct fetch_result out;
    struct secret_ref ref;
    struct gcp_name n;
    char err[BACKEND_ERR_MAX] = "", version[GCP_VERSION_MAX + 1] = "";
    char *tok = NULL;
    long long ttl = -1;
    int rc = 0;

    if (size < 2)
        return 0;
    if (data[0] % N_KINDS == CRED) {
        cred(data + 2, size - 2);
        return 0;
    }
    if (data[0] % N_KINDS == NAME) {
        name(data + 2, size - 2, data[1]);
        return 0;
    }
    FUZZ_ASSERT(ref_parse(refs[(data[1] >> 3) & 3], &ref, err, sizeof(err)) == 0);
    FUZZ_ASSERT(gcp_name_parse(&ref, "my-project", NULL, &n, err, sizeof(err)) == 0);
    http_response_init(&r);
    r.status = fuzz_status(data[1]);
    /* The body as http.c hands it over: secret memory, not NUL-terminated. */
    secbuf_init(&r.body, size);
    FUZZ_ASSERT(secbuf_append(&r.body, data + 2, size - 2) == 0);
    fetch_result_init(&out, 4096);

    switch (data[0] % N_KINDS) {
    case OAUTH:
        rc = gcp_oauth_answer(&r, &tok, &ttl, err, sizeof(err));
        if (rc == 0)
            check_token(tok, ttl);
        else
            FUZZ_ASSERT(tok == NULL);
        break;
    case IAM:
        rc = gcp_iam_answer(&r, 1700000000, &tok, &ttl, err, sizeof(err));
        if (rc == 0)
            check_token(tok, ttl);
        else
            FUZZ_ASSERT(tok == NULL);
        break;
    case SUBJECT:
        rc = gcp_subject_token(&r.body, (data[1] & 0x20) ? "access_token" : NULL, &tok, err,
                               sizeof(err));
        if (rc == 0)
            FUZZ_ASSERT(tok && tok[0] && strlen(tok) <= r.body.len);
        else
            FUZZ_ASSERT(tok == NULL);
        /* the token is the secret here: never in a message */
        r.status = 200;
        break;
    case ACCESS:
        rc = gcp_access_answer(&n, &r, "service account A", &out, version, err, sizeof(err));
        if (rc == 0) {
            FUZZ_ASSERT(r.status == 200 && out.value.len <= out.value.max);
            size_t d = strlen(version);
            FUZZ_ASSERT(d >= 1 && d <= GCP_VERSION_MAX && strspn(version, "0123456789") == d);
            if (strcmp(n.version, "latest") != 0)
                FUZZ_ASSERT(strcmp(version, n.version) == 0);
        } else {
            FUZZ_ASSERT(out.value.len == 0);
            FUZZ_ASSERT(rc != -ENOENT || r.status == 404);
            FUZZ_ASSERT(rc != -EBADMSG || out.retryable);
        }
        break;
    }
    fuzz_check_answer_message(rc, r.status, err);
    FUZZ_ASSERT(!strchr(err, '\n'));
    secmem_free(tok);
    fetch_result_cleanup(&out);
    http_response_cleanup(&r);
    ref_cleanup(&ref);
    return 0;
}
