/* fuzz_azure.c - what backends/azure/ parses from the wire (azure_i.h):
 * Key Vault's WWW-Authenticate challenge and the resource rule, Entra's
 * and IMDS's token answers, Get Secret answers (value, id, attributes)
 * and Key Vault's error bodies.
 *
 * Input: byte 0 picks the answer, byte 1 the HTTP status (low 3 bits) and
 * the reference asked for (next 2 bits); the rest is the body (for the
 * challenge: the WWW-Authenticate value). */
#include "fuzz.h"

#include <errno.h>
#include <strings.h>
#include "backends/azure/azure_i.h"
#include "backends/http/http.h"
#include "lib/ref.h"

static const char *const refs[] = {"kv:db-password", "kv:DB-Password",
                                   "kv:db-password?version=4387e9f3d6e14c459867679a90fd0f79",
                                   "kv:a"};

enum { CHALLENGE, ENTRA, IMDS, SECRET, KV_ERROR, N_ANSWERS };

/* A token as it goes into a header: something, nothing a header cannot carry. */
static void check_token(const char *tok, long long ttl)
{
    FUZZ_ASSERT(tok && tok[0]);
    for (const char *p = tok; *p; p++)
        FUZZ_ASSERT((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
    FUZZ_ASSERT(ttl >= 1 && ttl <= AZURE_MAX_TTL_S);
}

static void challenge(const char *hdr)
{
    static const char *const hosts[][2] = {{"myvault.vault.azure.net", NULL},
                                           {"127.0.0.1", "vault.azure.net"}};
    struct azure_challenge c;
    char err[BACKEND_ERR_MAX] = "", scope[AZURE_URL_MAX];
    int rc = azure_challenge_parse(hdr, &c, err, sizeof(err));
    if (rc < 0) {
        FUZZ_ASSERT(rc == -EPROTO && err[0]);
        return;
    }
    FUZZ_ASSERT(c.authorization[0] && (c.resource[0] || c.scope[0]));
    FUZZ_ASSERT(strlen(c.authorization) < AZURE_URL_MAX && strlen(c.tenant) <= AZURE_ID_MAX);
    for (size_t i = 0; i < 2; i++) {
        err[0] = '\0';
        rc = azure_challenge_scope(&c, hosts[i][0], hosts[i][1], scope, sizeof(scope), err,
                                   sizeof(err));
        if (rc < 0) {
            FUZZ_ASSERT((rc == -EACCES || rc == -EPROTO || rc == -ENOMEM) && err[0]);
            continue;
        }
        /* Whatever the challenge said, a scope comes back only for an
         * allowed host. */
        char *host = NULL, msg[200];
        FUZZ_ASSERT(azure_url_host(scope, &host, msg, sizeof(msg)) == 0);
        FUZZ_ASSERT(azure_host_allowed(host, hosts[i][0], hosts[i][1]));
        free(host);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_response r;
    struct fetch_result out;
    struct secret_ref ref;
    char err[BACKEND_ERR_MAX] = "", version[AZURE_VERSION_LEN + 1] = "", cid[64] = "";
    char *tok = NULL;
    long long ttl = -1;
    int rc = 0;

    if (size < 2)
        return 0;
    if (data[0] % N_ANSWERS == CHALLENGE) {
        char *hdr = fuzz_cstr(data + 2, size - 2);
        challenge(hdr);
        free(hdr);
        return 0;
    }
    FUZZ_ASSERT(ref_parse(refs[(data[1] >> 3) & 3], &ref, err, sizeof(err)) == 0);
    http_response_init(&r);
    r.status = fuzz_status(data[1]);
    /* The body as http.c hands it over: secret memory, not NUL-terminated. */
    secbuf_init(&r.body, size);
    FUZZ_ASSERT(secbuf_append(&r.body, data + 2, size - 2) == 0);
    fetch_result_init(&out, 4096);

    switch (data[0] % N_ANSWERS) {
    case ENTRA:
        rc = azure_entra_answer(&r, &tok, &ttl, err, sizeof(err));
        if (rc == 0)
            check_token(tok, ttl);
        else
            FUZZ_ASSERT(tok == NULL);
        break;
    case IMDS:
        rc = azure_imds_answer(&r, 1700000000, &tok, &ttl, cid, sizeof(cid), err, sizeof(err));
        if (rc == 0)
            check_token(tok, ttl);
        else
            FUZZ_ASSERT(tok == NULL);
        FUZZ_ASSERT(strlen(cid) < sizeof(cid) && !strchr(cid, '\n'));
        break;
    case SECRET:
        rc = azure_secret_answer(&ref, &r, 1700000000, "client id C", &out, version, err,
                                 sizeof(err));
        if (rc == 0) {
            FUZZ_ASSERT(r.status == 200 && out.value.len <= out.value.max);
            FUZZ_ASSERT(strlen(version) == AZURE_VERSION_LEN &&
                        strspn(version, "0123456789abcdef") == AZURE_VERSION_LEN);
            if (ref.version)
                FUZZ_ASSERT(strcasecmp(version, ref.version) == 0);
        } else {
            FUZZ_ASSERT(out.value.len == 0 || rc == -E2BIG);
            FUZZ_ASSERT(rc != -ENOENT || r.status == 404);
        }
        break;
    case KV_ERROR: {
        char code[64], inner[64], msg[240];
        azure_kv_error_fields(&r, code, sizeof(code), inner, sizeof(inner), msg, sizeof(msg));
        /* One line each, whatever the body held. */
        FUZZ_ASSERT(!strchr(code, '\n') && !strchr(inner, '\n') && !strchr(msg, '\n'));
        FUZZ_ASSERT(!strchr(msg, '\r') && !strchr(msg, '\x1b'));
        break;
    }
    }
    fuzz_check_answer_message(rc, r.status, err);
    FUZZ_ASSERT(!strchr(err, '\n'));
    secmem_free(tok);
    fetch_result_cleanup(&out);
    http_response_cleanup(&r);
    ref_cleanup(&ref);
    return 0;
}
