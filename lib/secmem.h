/* secmem.h - memory that may hold secret plaintext or key material.
 *
 * Normal builds use sodium_malloc (guard pages, mlock, MADV_DONTDUMP); ASan
 * builds (RS_PLAIN_ALLOC) use malloc with a size prefix. Either way every
 * buffer is wiped when freed.
 */
#ifndef RS_SECMEM_H
#define RS_SECMEM_H

#include <stddef.h>
#include <stdbool.h>
#include <pthread.h>

/* sodium_init and the process-wide setup (the hooks that route jansson's,
 * libcurl's and OpenSSL's heaps here, core dumps off) are the top layer's:
 * hardening_init in broker/hardening.c, once in main before threads start.
 * Everything below needs sodium_init to have run. */

/* Keep the calling thread's stack out of core dumps (MADV_DONTDUMP); a
 * no-op after the first call in a thread. Every thread that handles
 * plaintext calls it before it does: values pass through stack frames we do
 * not control (libsodium's hashing and AEAD, OpenSSL's record layer,
 * jansson's parser, glibc's memcpy spills), and a dump taken mid-call would
 * hold them. hardening_init does it for the main thread. */
void secmem_hide_stack(void);


/* Secret memory. secmem_alloc returns a new buffer or NULL; secmem_free wipes
 * and releases it (NULL is a no-op). */
void *secmem_alloc(size_t len) __attribute__((malloc));
/* A NUL-terminated copy of s[0..n) in secret memory (secmem_free), or NULL. */
char *secmem_strndup(const char *s, size_t n);
void secmem_free(void *p);
void secmem_wipe(void *p, size_t len);

/* The heap handed to the libraries that see plaintext (jansson, libcurl,
 * OpenSSL): secheap memory (never dumped, locked, wiped on free), or in
 * RS_PLAIN_ALLOC builds a size-prefixed malloc, wiped on free, so ASan still
 * sees every allocation. secmem_lib_alloc and _realloc return a new block
 * or NULL (realloc: p may be NULL; the old block is wiped when moved; len 0
 * still gives a block, never a free); secmem_lib_free(NULL) is a no-op. */
void *secmem_lib_alloc(size_t len) __attribute__((malloc));
void *secmem_lib_realloc(void *p, size_t len);
void secmem_lib_free(void *p);

/* Blocks of secret memory allocated and not freed yet: secmem_alloc's
 * and the libraries' heap's together. 0 means every byte of plaintext and
 * key material this process held has been wiped (every free wipes), which
 * is what lets `exec` skip the exit handlers (hardening_exit). Exact only
 * once no other thread allocates. */
size_t secmem_outstanding(void);

/* The allocator handed to jansson (secmem_lib_alloc/free): size-prefixed,
 * wiped on free. */
void *secmem_json_malloc(size_t len);
void secmem_json_free(void *p);

/* A growable secret buffer with a hard maximum fixed at creation (curl's
 * dynbuf): growing past max gives -E2BIG, never more memory. Its bytes are
 * the libraries' heap (secmem_lib_alloc: secheap, locked, never dumped,
 * wiped on free), not a sodium_malloc block: every fetch fills one, and
 * sodium_malloc's guard pages cost each of them two mprotect calls (a TLB
 * shootdown on every CPU each), an mlock and an munlock, which was most of
 * a local cold start's time (docs/internals/memory.md). A secbuf never
 * writes past cap, so the guard pages guarded nothing here; keys stay in
 * secmem_alloc's guarded blocks. */
struct secbuf {
    unsigned char *data;  /* secmem_lib_alloc memory, owned */
    size_t len, cap, max;
};
void secbuf_init(struct secbuf *b, size_t max);
int secbuf_append(struct secbuf *b, const void *p, size_t n) __attribute__((warn_unused_result));
int secbuf_reserve(struct secbuf *b, size_t n) __attribute__((warn_unused_result));
/* Wipe and free the contents; b can be reused after secbuf_init. */
void secbuf_cleanup(struct secbuf *b);

/* A pool of fixed-size scratch buffers for plaintext during a read:
 * sodium_malloc costs several syscalls and pages, too slow for every read.
 * Buffers are wiped when released. Larger requests fall back to secmem_alloc. */
struct secpool;
struct secpool *secpool_new(size_t slot_size, unsigned slots);
void secpool_free(struct secpool *p);
/* Returns a buffer of at least len bytes or NULL; release with secpool_put
 * passing the same len. */
void *secpool_get(struct secpool *p, size_t len);
void secpool_put(struct secpool *p, void *buf, size_t len);

#endif
