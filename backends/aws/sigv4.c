/* sigv4.c - AWS Signature Version 4 with libsodium's SHA-256 and
 * HMAC-SHA-256. The derived keys live on the stack and are wiped. */
#include "backends/aws/sigv4.h"
#include "lib/encode.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>

#define SIGV4_MAX_HEADERS 32
#define SIGV4_MAX_PARAMS 64

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, p, n);
    hex(h, sizeof(h), out);
}

static void hmac(const unsigned char *key, size_t klen, const void *msg, size_t n,
                 unsigned char out[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, klen);
    crypto_auth_hmacsha256_update(&st, msg, n);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

static int put(struct secbuf *b, const char *s, size_t n)
{
    return secbuf_append(b, s, n);
}

static int puts_(struct secbuf *b, const char *s)
{
    return secbuf_append(b, s, strlen(s));
}

struct param {
    struct secbuf k, v;            /* canonical (encoded) forms */
};

static int cmp_param(const void *a, const void *b)
{
    const struct param *x = a, *y = b;
    size_t n = x->k.len < y->k.len ? x->k.len : y->k.len;
    int c = memcmp(x->k.data, y->k.data, n);
    if (c || x->k.len != y->k.len)
        return c ? c : (x->k.len < y->k.len ? -1 : 1);
    n = x->v.len < y->v.len ? x->v.len : y->v.len;
    c = memcmp(x->v.data, y->v.data, n);
    return c ? c : (x->v.len < y->v.len ? -1 : x->v.len > y->v.len);
}

static int canonical_query(struct secbuf *b, const char *q)
{
    struct param ps[SIGV4_MAX_PARAMS];
    size_t n = 0;
    int rc = 0;
    if (!q || !*q)
        return 0;
    for (const char *p = q; *p && rc == 0;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            if (n == SIGV4_MAX_PARAMS) {
                rc = -E2BIG;
                break;
            }
            const char *eq = memchr(p, '=', len);
            size_t kl = eq ? (size_t)(eq - p) : len;
            char *tmp = malloc(len + 1);
            secbuf_init(&ps[n].k, 8192);
            secbuf_init(&ps[n].v, 8192);
            n++;
            if (!tmp) {
                rc = -ENOMEM;
                break;
            }
            size_t dk = encode_percent_decode(p, kl, tmp);
            rc = encode_percent(&ps[n - 1].k, tmp, dk, 0);
            if (rc == 0 && eq) {
                size_t dv = encode_percent_decode(eq + 1, len - kl - 1, tmp);
                rc = encode_percent(&ps[n - 1].v, tmp, dv, 0);
            }
            free(tmp);
        }
        p = amp ? amp + 1 : p + len;
    }
    if (rc == 0)
        qsort(ps, n, sizeof(ps[0]), cmp_param);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && i > 0)
            rc = put(b, "&", 1);
        if (rc == 0)
            rc = put(b, (const char *)ps[i].k.data, ps[i].k.len);
        if (rc == 0)
            rc = put(b, "=", 1);
        if (rc == 0 && ps[i].v.len)
            rc = put(b, (const char *)ps[i].v.data, ps[i].v.len);
    }
    for (size_t i = 0; i < n; i++) {   /* every path, errors included */
        secbuf_cleanup(&ps[i].k);
        secbuf_cleanup(&ps[i].v);
    }
    return rc;
}

struct hdr {
    char name[128];
    const char *value;
};

static int cmp_hdr(const void *a, const void *b)
{
    return strcmp(((const struct hdr *)a)->name, ((const struct hdr *)b)->name);
}

/* Sorted, lower-cased names; the signed-headers list into names. */
static int sorted_headers(const struct sigv4_input *in, struct hdr *hs, char *names, size_t cap)
{
    size_t o = 0;
    if (in->nheaders > SIGV4_MAX_HEADERS)
        return -E2BIG;
    for (size_t i = 0; i < in->nheaders; i++) {
        size_t n = strlen(in->headers[i].name);
        if (n >= sizeof(hs[i].name))
            return -E2BIG;
        for (size_t j = 0; j <= n; j++) {
            char c = in->headers[i].name[j];
            hs[i].name[j] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        hs[i].value = in->headers[i].value;
    }
    qsort(hs, in->nheaders, sizeof(*hs), cmp_hdr);
    names[0] = '\0';
    for (size_t i = 0; i < in->nheaders; i++) {
        if (i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0)
            continue;   /* repeated header: one name, values joined below */
        int w = snprintf(names + o, cap - o, "%s%s", o ? ";" : "", hs[i].name);
        if (w < 0 || (size_t)w >= cap - o)
            return -E2BIG;
        o += (size_t)w;
    }
    return 0;
}

/* A header value with leading/trailing space dropped and inner runs of
 * spaces collapsed to one. */
static int trimmed(struct secbuf *b, const char *v)
{
    int rc = 0;
    bool space = false, any = false;
    for (const char *p = v; *p && rc == 0; p++) {
        if (*p == ' ' || *p == '\t') {
            space = any;
            continue;
        }
        if (space)
            rc = put(b, " ", 1);
        space = false;
        any = true;
        if (rc == 0)
            rc = put(b, p, 1);
    }
    return rc;
}

static int build(const struct sigv4_input *in, struct secbuf *out, char *signed_names, size_t cap)
{
    struct hdr hs[SIGV4_MAX_HEADERS];
    char ph[65];
    int rc = sorted_headers(in, hs, signed_names, cap);
    if (rc < 0)
        return rc;
    rc = puts_(out, in->method);
    if (rc == 0)
        rc = put(out, "\n", 1);
    if (rc == 0) {
        /* The path as sent, normalised to one encoding: decode, encode. */
        size_t n = strlen(in->path);
        char *tmp = malloc(n + 1);
        if (!tmp)
            return -ENOMEM;
        size_t d = encode_percent_decode(in->path, n, tmp);
        rc = d ? encode_percent(out, tmp, d, ENCODE_KEEP_SLASH) : put(out, "/", 1);
        free(tmp);
    }
    if (rc == 0)
        rc = put(out, "\n", 1);
    if (rc == 0)
        rc = canonical_query(out, in->query);
    if (rc == 0)
        rc = put(out, "\n", 1);
    for (size_t i = 0; i < in->nheaders && rc == 0; i++) {
        if (i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0) {
            rc = put(out, ",", 1);
        } else {
            if (i > 0)
                rc = put(out, "\n", 1);
            if (rc == 0)
                rc = puts_(out, hs[i].name);
            if (rc == 0)
                rc = put(out, ":", 1);
        }
        if (rc == 0)
            rc = trimmed(out, hs[i].value);
    }
    if (rc == 0)
        rc = put(out, "\n\n", 2);
    if (rc == 0)
        rc = puts_(out, signed_names);
    if (rc == 0)
        rc = put(out, "\n", 1);
    sha256_hex(in->payload ? in->payload : "", in->payload_len, ph);
    if (rc == 0)
        rc = put(out, ph, 64);
    return rc;
}

int sigv4_canonical_request(const struct sigv4_input *in, struct secbuf *out)
{
    char names[2048];
    return build(in, out, names, sizeof(names));
}

int sigv4_authorization(const struct sigv4_input *in, char *out, size_t cap)
{
    char names[2048], creq_hash[65], scope[256], sts[512], sig[65];
    unsigned char k[crypto_auth_hmacsha256_BYTES];
    struct secbuf creq;
    int rc;

    if (strlen(in->amz_date) != 16)
        return -EINVAL;
    secbuf_init(&creq, 256 * 1024);
    rc = build(in, &creq, names, sizeof(names));
    if (rc == 0)
        sha256_hex(creq.data, creq.len, creq_hash);
    secbuf_cleanup(&creq);
    if (rc < 0)
        return rc;
    snprintf(scope, sizeof(scope), "%.8s/%s/%s/aws4_request", in->amz_date, in->region,
             in->service);
    int n = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", in->amz_date, scope,
                     creq_hash);
    if (n < 0 || (size_t)n >= sizeof(sts))
        return -E2BIG;

    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
    size_t sl = strlen(in->secret);
    unsigned char *seed = secmem_alloc(sl + 4);
    if (!seed)
        return -ENOMEM;
    memcpy(seed, "AWS4", 4);
    memcpy(seed + 4, in->secret, sl);
    hmac(seed, sl + 4, in->amz_date, 8, k);
    secmem_free(seed);
    hmac(k, sizeof(k), in->region, strlen(in->region), k);
    hmac(k, sizeof(k), in->service, strlen(in->service), k);
    hmac(k, sizeof(k), "aws4_request", 12, k);
    unsigned char s[crypto_auth_hmacsha256_BYTES];
    hmac(k, sizeof(k), sts, (size_t)n, s);
    sodium_memzero(k, sizeof(k));
    hex(s, sizeof(s), sig);
    n = snprintf(out, cap, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                 in->akid, scope, names, sig);
    return n < 0 || (size_t)n >= cap ? -E2BIG : 0;
}
