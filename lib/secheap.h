/* secheap.h - the heap of the libraries that see plaintext.
 *
 * jansson (every JSON document: values, tokens), libcurl (request headers
 * with tokens, its own copies of response bytes) and OpenSSL (decrypted TLS
 * records) allocate through this heap once hardening_init (the top layer's
 * broker/hardening.c) has hooked them, through secmem_lib_alloc; so do our
 * own fetch buffers (struct secbuf, lib/secmem.h).
 * Wiping on free is not enough: while a fetch runs, those buffers are live,
 * and a core dump taken at that moment would hold them. So every page of
 * this heap is excluded from core dumps (MADV_DONTDUMP), locked in memory
 * when the limit allows (mlock2 MLOCK_ONFAULT: each page from its first
 * touch, never swapped), and every block is wiped when freed.
 *
 * Small blocks come from power-of-two size classes carved out of 256 KiB
 * slabs; a freed block goes back to its slab, and a slab whose blocks are
 * all free goes back to the system (one empty slab per class stays), so
 * the heap follows what is live, not its peak. Blocks over 64 KiB are
 * mappings of their own, wiped and unmapped on free.
 *
 * The state is process-wide: it is part of the allocator hooks, which
 * ARCHITECTURE.md ("Process-wide state") lists among the only process-wide
 * state; every function is thread-safe.
 */
#ifndef RS_SECHEAP_H
#define RS_SECHEAP_H

#include <stddef.h>

/* A new block of at least len bytes (16-byte aligned), or NULL. */
void *secheap_alloc(size_t len) __attribute__((malloc));
/* Wipe and release p (its whole capacity). NULL is a no-op. */
void secheap_free(void *p);
/* realloc semantics: p may be NULL; the old block is wiped when moved. */
void *secheap_realloc(void *p, size_t len);
/* Bytes usable in p (at least what was asked for). */
size_t secheap_usable(const void *p);

/* For tests and diagnostics: bytes mapped by the heap so far. */
size_t secheap_mapped(void);

#endif
