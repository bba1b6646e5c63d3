/* cache.c - values sealed with XChaCha20-Poly1305 under a per-process key. */
#include "engine/cache.h"
#include "lib/secmem.h"
#include "rs_config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct cache {
    unsigned char *key;      /* CACHE_KEYBYTES, secret memory, read-only */
    unsigned char *hashkey;  /* crypto_generichash_KEYBYTES, same */
};

struct cache_value {
    atomic_uint refs;
    size_t len;                              /* plaintext length */
    unsigned char hash[CACHE_HASHBYTES];     /* keyed: says "same value", reveals nothing */
    unsigned char nonce[CACHE_NONCEBYTES];
    unsigned char ct[];                      /* len + CACHE_MACBYTES */
};

struct cache *cache_new(void)
{
    struct cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->key = secmem_alloc(CACHE_KEYBYTES);
    c->hashkey = secmem_alloc(crypto_generichash_KEYBYTES);
    if (!c->key || !c->hashkey) {
        cache_free(c);
        return NULL;
    }
    crypto_aead_xchacha20poly1305_ietf_keygen(c->key);
    randombytes_buf(c->hashkey, crypto_generichash_KEYBYTES);
#if !RS_PLAIN_ALLOC
    /* A stray write can no longer change the keys. */
    sodium_mprotect_readonly(c->key);
    sodium_mprotect_readonly(c->hashkey);
#endif
    return c;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
#if !RS_PLAIN_ALLOC
    if (c->key)
        sodium_mprotect_readwrite(c->key);
    if (c->hashkey)
        sodium_mprotect_readwrite(c->hashkey);
#endif
    secmem_free(c->key);
    secmem_free(c->hashkey);
    free(c);
}

int cache_seal(struct cache *c, const char *ad, const void *pt, size_t len, struct cache_value **out)
{
    if (len > SIZE_MAX - sizeof(struct cache_value) - CACHE_MACBYTES)
        return -E2BIG;
    struct cache_value *v = malloc(sizeof(*v) + len + CACHE_MACBYTES);
    if (!v)
        return -ENOMEM;
    atomic_init(&v->refs, 1);
    v->len = len;
    randombytes_buf(v->nonce, sizeof(v->nonce));
    crypto_generichash(v->hash, sizeof(v->hash), pt, len, c->hashkey, crypto_generichash_KEYBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(v->ct, NULL, pt, len,
                                               (const unsigned char *)ad, strlen(ad),
                                               NULL, v->nonce, c->key);
    *out = v;
    return 0;
}

int cache_unseal(const struct cache *c, const char *ad, const struct cache_value *v, void *out)
{
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, v->ct, v->len + CACHE_MACBYTES,
                                                   (const unsigned char *)ad, strlen(ad),
                                                   v->nonce, c->key) != 0)
        return -EBADMSG;
    return 0;
}

size_t cache_value_len(const struct cache_value *v)
{
    return v->len;
}

size_t cache_sealed_size(size_t len)
{
    return sizeof(struct cache_value) + len + CACHE_MACBYTES;
}

const unsigned char *cache_value_sealed(const struct cache_value *v, size_t *len)
{
    *len = v->len + CACHE_MACBYTES;
    return v->ct;
}

bool cache_value_equal(const struct cache_value *a, const struct cache_value *b)
{
    return a->len == b->len && sodium_memcmp(a->hash, b->hash, sizeof(a->hash)) == 0;
}

struct cache_value *cache_value_ref(struct cache_value *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    return v;
}

void cache_value_unref(struct cache_value *v)
{
    if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
        free(v);
}
