/* fuzz_vault.c - Vault's answers as backends/vault/ parses them
 * (vault_i.h): login, token lookup and renewal, the mounts probe, KV v1/v2
 * and dynamic-secret reads with their lease, lease renewal.
 *
 * Input: byte 0 picks the answer, byte 1 the HTTP status (low 3 bits) and
 * the secret path asked for (next 2 bits); the rest is the body. */
#include "fuzz.h"

#include <errno.h>
#include "backends/http/http.h"
#include "backends/vault/vault_i.h"

static const char *const paths[] = {"secret/db", "kv/app/config", "database/creds/ro", "a/b"};

enum { LOGIN, LOOKUP, RENEW_SELF, MOUNT, READ_KV1, READ_KV2, LEASE_RENEW, N_ANSWERS };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_response r;
    struct fetch_result out;
    char err[BACKEND_ERR_MAX] = "";
    json_t *root = NULL;
    long long ttl = -1, inc = -1;
    bool renewable = false;
    int rc = 0;

    if (size < 2)
        return 0;
    const char *path = paths[(data[1] >> 3) & 3];
    http_response_init(&r);
    r.status = fuzz_status(data[1]);
    /* The body as http.c hands it over: secret memory, not NUL-terminated. */
    secbuf_init(&r.body, size);
    FUZZ_ASSERT(secbuf_append(&r.body, data + 2, size - 2) == 0);
    fetch_result_init(&out, 4096);

    switch (data[0] % N_ANSWERS) {
    case LOGIN: {
        char *tok = NULL;
        rc = vault_login_answer("approle login", &r, &tok, &ttl, &renewable, err, sizeof(err));
        if (rc == 0)
            FUZZ_ASSERT(tok && tok[0] && ttl >= 0);
        else
            FUZZ_ASSERT(tok == NULL);
        secmem_free(tok);
        break;
    }
    case LOOKUP:
        rc = vault_lookup_answer(&r, &ttl, &inc, &renewable, err, sizeof(err));
        if (rc == 0)
            FUZZ_ASSERT(ttl >= 0 && inc >= 0);
        break;
    case RENEW_SELF:
        rc = vault_renew_self_answer(&r, &ttl, &renewable, err, sizeof(err));
        if (rc == 0)
            FUZZ_ASSERT(ttl >= 0);
        break;
    case MOUNT: {
        const char *mp = NULL;
        size_t mplen = 0;
        enum mount_kind kind = 0;
        rc = vault_mount_answer(&r, path, &out, &root, &mp, &mplen, &kind, err, sizeof(err));
        if (rc == 0)
            FUZZ_ASSERT(mp && mplen <= strlen(mp) && strncmp(path, mp, mplen) == 0 &&
                        kind >= MOUNT_KV1 && kind <= MOUNT_OTHER);
        break;
    }
    case READ_KV1:
    case READ_KV2: {
        const char *id = NULL;
        long long dur = 0;
        rc = vault_read_answer(path, &r, data[0] % N_ANSWERS == READ_KV2, &out, &root, err,
                               sizeof(err));
        if (rc == 0) {
            FUZZ_ASSERT(out.value.len > 0 && out.value.len <= out.value.max);
            if (vault_lease_of(root, &id, &dur, &renewable) == 0)
                FUZZ_ASSERT(id && id[0] && dur > 0);
        }
        break;
    }
    case LEASE_RENEW:
        rc = vault_lease_renew_answer(&r, &out, &ttl, err, sizeof(err));
        if (rc == 0)
            FUZZ_ASSERT(ttl >= 0);
        break;
    }
    fuzz_check_answer_message(rc, r.status, err);
    json_decref(root);
    fetch_result_cleanup(&out);
    http_response_cleanup(&r);
    return 0;
}
