/* jwt.c - a service account's jwt-bearer assertion (RFC 7523), RS256 with
 * OpenSSL's libcrypto (docs/internals/gcp.md says why libcrypto).
 *
 *   header  {"alg":"RS256","typ":"JWT","kid":<private_key_id>}
 *   claims  {"iss":<client_email>,"scope":<cloud-platform>,"aud":<token_uri>,
 *            "iat":now,"exp":now+3600}
 *
 * What is secret here: the PEM key (secret memory, from cred.c), what
 * OpenSSL decodes it into (the DER and the key's bignums: OpenSSL's secure
 * heap when it is set up, else its allocator, which broker/hardening.c
 * routes to the wiping, never-dumped secheap), and the signed assertion,
 * a bearer credential for an hour (secret memory, wiped by the caller
 * after the token request). The key is decoded for each assertion and
 * freed right after signing: logins are hourly and a decode costs well
 * under a millisecond, so a resident EVP_PKEY would buy nothing but a key
 * in memory between logins.
 */
#include "backends/gcp/gcp_i.h"
#include "backends/http/json.h"
#include "backends/http/libs.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define GCP_RSA_MIN_BITS 2048
#define GCP_SIG_MAX 1024     /* an RSA signature of up to 8192 bits */

void gcp_jwt_secure_heap(struct gcp *g)
{
    char err[256];
    if (http_libs_crypto(err, sizeof(err)) < 0) {
        gcp_log(g, LOG_WARN, NULL, "gcp: %s", err);   /* the assertion will say it again */
        return;
    }
    if (sym_CRYPTO_secure_malloc_initialized())
        return;
    /* 1: locked; 2: there but not locked (RLIMIT_MEMLOCK); 0: none, and
     * OpenSSL's secure allocations fall back to its (hooked) allocator. */
    int rc = sym_CRYPTO_secure_malloc_init(GCP_SECURE_HEAP_BYTES, GCP_SECURE_HEAP_MIN);
    if (rc == 0)
        gcp_log(g, LOG_WARN, NULL, "gcp: no OpenSSL secure heap; the private key is decoded in "
                "the broker's wiping heap instead");
    else if (rc == 2)
        gcp_log(g, LOG_WARN, NULL, "gcp: OpenSSL's secure heap could not be locked in memory "
                "(RLIMIT_MEMLOCK)");
}

/* Append the base64url (no padding) of n bytes at p to b. */
static int b64url(struct secbuf *b, const void *p, size_t n)
{
    size_t need = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    int rc = secbuf_reserve(b, b->len + need);
    if (rc < 0)
        return rc;
    sodium_bin2base64((char *)b->data + b->len, need, p, n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    b->len += need - 1;   /* without the NUL */
    return 0;
}

/* The compact JSON of o, base64url'd onto b. */
static int part(struct secbuf *b, json_t *o)
{
    struct secbuf j;
    int rc = o ? http_json_body(o, GCP_CRED_MAX, &j) : -ENOMEM;
    if (rc == 0)
        rc = b64url(b, j.data, j.len);
    if (o)
        secbuf_cleanup(&j);
    return rc;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;   /* an encrypted key is refused, never prompted for */
}

/* Sign the n bytes at in with the PEM key: the signature into sig. */
static int rs256(const char *pem, const void *in, size_t n, unsigned char *sig, size_t *siglen,
                 char *err, size_t errlen)
{
    int rc = http_libs_crypto(err, errlen);
    if (rc < 0)
        return rc;
    BIO *bio = sym_BIO_new_mem_buf(pem, -1);   /* reads the secret buffer in place */
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *md = NULL;

    rc = -ENOMEM;
    if (!bio)
        goto out;
    key = sym_PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (!key || sym_EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        snprintf(err, errlen, "private_key: not an unencrypted PEM RSA private key");
        rc = -EINVAL;
        goto out;
    }
    if (sym_EVP_PKEY_get_bits(key) < GCP_RSA_MIN_BITS || (size_t)sym_EVP_PKEY_get_size(key) > GCP_SIG_MAX) {
        snprintf(err, errlen, "private_key: an RSA key of %d bits (%d to 8192 expected)",
                 sym_EVP_PKEY_get_bits(key), GCP_RSA_MIN_BITS);
        rc = -EINVAL;
        goto out;
    }
    *siglen = GCP_SIG_MAX;
    if (!(md = sym_EVP_MD_CTX_new()) ||
        sym_EVP_DigestSignInit(md, NULL, sym_EVP_sha256(), NULL, key) != 1 ||
        sym_EVP_DigestSign(md, sig, siglen, in, n) != 1) {
        snprintf(err, errlen, "private_key: signing failed");
        rc = -EINVAL;
        goto out;
    }
    rc = 0;
out:
    sym_EVP_MD_CTX_free(md);
    sym_EVP_PKEY_free(key);
    sym_BIO_free(bio);
    sym_ERR_clear_error();   /* nothing of this call left in the thread's queue */
    return rc;
}

int gcp_jwt_assertion(const struct gcp_cred *c, time_t now, char **out, char *err, size_t errlen)
{
    struct secbuf b;
    unsigned char sig[GCP_SIG_MAX];
    size_t siglen = 0;
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid",
                            c->private_key_id);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", c->client_email, "scope",
                               GCP_SCOPE, "aud", c->token_uri, "iat", (json_int_t)now, "exp",
                               (json_int_t)now + GCP_JWT_LIFETIME_S);
    int rc;

    *out = NULL;
    secbuf_init(&b, 64 * 1024);
    if ((rc = part(&b, hdr)) < 0 || (rc = secbuf_append(&b, ".", 1)) < 0 ||
        (rc = part(&b, claims)) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if ((rc = rs256(c->private_key, b.data, b.len, sig, &siglen, err, errlen)) < 0)
        goto out;
    if ((rc = secbuf_append(&b, ".", 1)) < 0 || (rc = b64url(&b, sig, siglen)) < 0 ||
        (rc = secbuf_append(&b, "", 1)) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* A secbuf's bytes are secheap memory; the caller frees with secmem_free. */
    if (!(*out = secmem_strndup((const char *)b.data, b.len - 1))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    rc = 0;
out:
    secmem_wipe(sig, sizeof(sig));
    secbuf_cleanup(&b);
    json_decref(hdr);
    json_decref(claims);
    return rc;
}
