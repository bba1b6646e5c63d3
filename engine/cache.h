/* cache.h - the encrypted in-memory value cache.
 *
 * One random key per process, in secret memory. Each value version is sealed
 * with XChaCha20-Poly1305 under a fresh random nonce, with the secret's name
 * as associated data (a ciphertext cannot be served under another name).
 * Sealed values are immutable and reference-counted: an open file holds its
 * own reference, so rotation never tears what a reader sees.
 */
#ifndef RS_CACHE_H
#define RS_CACHE_H

#include <stddef.h>
#include <stdbool.h>
#include <sodium.h>

#define CACHE_KEYBYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define CACHE_NONCEBYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define CACHE_MACBYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define CACHE_HASHBYTES crypto_generichash_BYTES

struct cache;
struct cache_value;

/* New cache with fresh random keys, or NULL. */
struct cache *cache_new(void);
/* Wipes the keys. NULL is a no-op. */
void cache_free(struct cache *c);

/* Seal len bytes of plaintext; *out is new (one reference). 0 or -ENOMEM. */
int cache_seal(struct cache *c, const char *ad, const void *pt, size_t len,
               struct cache_value **out) __attribute__((warn_unused_result));
/* Decrypt v into out (at least cache_value_len(v) bytes of secret memory).
 * 0, or -EBADMSG when the ciphertext or associated data do not verify. */
int cache_unseal(const struct cache *c, const char *ad, const struct cache_value *v, void *out)
    __attribute__((warn_unused_result));

size_t cache_value_len(const struct cache_value *v);
/* The memory a sealed value of len plaintext bytes takes (ciphertext, MAC,
 * nonce, hash and header), for runsecrets_cache_bytes. */
size_t cache_sealed_size(size_t len);
/* The sealed bytes (ciphertext and MAC), borrowed; for tests and diagnostics. */
const unsigned char *cache_value_sealed(const struct cache_value *v, size_t *len);
/* True when both hold the same plaintext (keyed hash; no decryption). */
bool cache_value_equal(const struct cache_value *a, const struct cache_value *b);
/* Takes one more reference; returns v. */
struct cache_value *cache_value_ref(struct cache_value *v);
/* Drops one reference; the last frees. NULL is a no-op. */
void cache_value_unref(struct cache_value *v);

#endif
