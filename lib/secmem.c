/* secmem.c - secret memory and the wiping allocators. */
#include "lib/secmem.h"
#include "lib/regs.h"
#include "lib/secheap.h"
#include "lib/log.h"
#include "rs_config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sodium.h>

/* Blocks handed out and not yet freed, by every allocator below
 * (secmem_outstanding). Part of the allocator hooks' state, like secheap's
 * (ARCHITECTURE.md, "Process-wide state"); relaxed: it is only read once
 * every other thread is gone. */
static atomic_size_t outstanding;

static void count_alloc(const void *p)
{
    if (p)
        atomic_fetch_add_explicit(&outstanding, 1, memory_order_relaxed);
}

static void count_free(const void *p)
{
    if (p)
        atomic_fetch_sub_explicit(&outstanding, 1, memory_order_relaxed);
}

size_t secmem_outstanding(void)
{
    return atomic_load_explicit(&outstanding, memory_order_relaxed);
}

#if RS_PLAIN_ALLOC
/* Sanitizer builds: malloc with a size prefix, wiped on free, so ASan
 * still sees every library allocation. The prefix keeps the returned
 * pointer max_align_t aligned. */
#define PREFIX_BYTES (sizeof(max_align_t) > sizeof(size_t) ? sizeof(max_align_t) : sizeof(size_t))

static void *lib_alloc(size_t len)
{
    if (len > SIZE_MAX - PREFIX_BYTES)
        return NULL;
    unsigned char *p = malloc(len + PREFIX_BYTES);
    if (!p)
        return NULL;
    memcpy(p, &len, sizeof(len));
    return p + PREFIX_BYTES;
}

static size_t lib_usable(void *ptr)
{
    size_t len;
    memcpy(&len, (unsigned char *)ptr - PREFIX_BYTES, sizeof(len));
    return len;
}

static void lib_free(void *ptr)
{
    if (!ptr)
        return;
    unsigned char *p = (unsigned char *)ptr - PREFIX_BYTES;
    sodium_memzero(p, lib_usable(ptr) + PREFIX_BYTES);
    free(p);
}

static void *lib_realloc(void *ptr, size_t len)
{
    if (!ptr)
        return lib_alloc(len);
    size_t old = lib_usable(ptr);
    void *n = lib_alloc(len);
    if (!n)
        return NULL;
    memcpy(n, ptr, old < len ? old : len);
    lib_free(ptr);
    return n;
}
#else
/* Everything the libraries allocate is secheap memory: never in a core
 * dump, locked, wiped on free (secheap.h says why wiping alone is not
 * enough). */
static void *lib_alloc(size_t len)
{
    return secheap_alloc(len);
}

static void lib_free(void *ptr)
{
    secheap_free(ptr);
}

static void *lib_realloc(void *ptr, size_t len)
{
    return secheap_realloc(ptr, len);
}
#endif

void *secmem_lib_alloc(size_t len)
{
    void *p = lib_alloc(len);
    count_alloc(p);
    return p;
}

void secmem_lib_free(void *ptr)
{
    count_free(ptr);
    lib_free(ptr);
}

void *secmem_lib_realloc(void *ptr, size_t len)
{
    void *n = lib_realloc(ptr, len);
    if (!ptr)
        count_alloc(n);   /* a move keeps the count: one block out, one in */
    return n;
}

void *secmem_json_malloc(size_t len)
{
    return secmem_lib_alloc(len);
}

void secmem_json_free(void *p)
{
    secmem_lib_free(p);
}

void *secmem_alloc(size_t len)
{
#if RS_PLAIN_ALLOC
    return secmem_lib_alloc(len ? len : 1);
#else
    void *p = sodium_malloc(len ? len : 1);
    count_alloc(p);
    return p;
#endif
}

void secmem_free(void *p)
{
#if RS_PLAIN_ALLOC
    secmem_lib_free(p);
#else
    count_free(p);
    sodium_free(p);
#endif
}

void secmem_wipe(void *p, size_t len)
{
    if (p && len)
        sodium_memzero(p, len);
}

/* Per-thread hygiene state, like the allocator hooks: whether this
 * thread's stack is already hidden. */
static __thread bool stack_hidden;

void secmem_hide_stack(void)
{
    pthread_attr_t a;
    void *addr;
    size_t size;

    if (stack_hidden)
        return;
    stack_hidden = true;
    if (pthread_getattr_np(pthread_self(), &a) != 0) {
        log_warn("cannot find this thread's stack: it stays in core dumps");
        return;
    }
    if (pthread_attr_getstack(&a, &addr, &size) == 0) {
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = (uintptr_t)addr & ~(page - 1);
        uintptr_t hi = ((uintptr_t)addr + size + page - 1) & ~(page - 1);
        /* The main thread's range reaches below its mapped stack (it grows
         * on demand): ENOMEM then, but the mapped part is marked, and the
         * mark stays with the mapping as it grows. */
        if (madvise((void *)lo, hi - lo, MADV_DONTDUMP) != 0 && errno != ENOMEM)
            log_warn("cannot keep this thread's stack out of core dumps: %s", strerror(errno));
    }
    pthread_attr_destroy(&a);
}

/* ---- secbuf ---- */

void secbuf_init(struct secbuf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

int secbuf_reserve(struct secbuf *b, size_t n)
{
    if (n > b->max)
        return -E2BIG;
    if (n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < n)
        cap = cap > b->max / 2 ? b->max : cap * 2;
    /* Allocating and freeing secret memory are system calls (mmap, mlock,
     * munmap) that may sleep on the address space's lock; the bytes just
     * copied, or the caller's last ones, are not to sit in vector
     * registers meanwhile (a core of a sleeping thread holds them:
     * docs/reliability.md). */
    regs_scrub();
    unsigned char *p = secmem_lib_alloc(cap);
    if (!p)
        return -ENOMEM;
    if (b->len)
        memcpy(p, b->data, b->len);
    regs_scrub();
    secmem_lib_free(b->data);
    b->data = p;
    b->cap = cap;
    return 0;
}

int secbuf_append(struct secbuf *b, const void *p, size_t n)
{
    if (n > b->max - b->len)
        return -E2BIG;
    int rc = secbuf_reserve(b, b->len + n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void secbuf_cleanup(struct secbuf *b)
{
    secmem_lib_free(b->data);   /* wipes */
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* ---- secpool ---- */

struct secpool {
    pthread_mutex_t lock;
    size_t slot_size;
    unsigned slots;
    unsigned char *mem;       /* slots * slot_size of secret memory */
    unsigned *free_list;      /* protected by lock */
    unsigned n_free;          /* protected by lock */
};

struct secpool *secpool_new(size_t slot_size, unsigned slots)
{
    struct secpool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->slot_size = slot_size;
    p->slots = slots;
    p->mem = secmem_alloc(slot_size * slots);
    p->free_list = calloc(slots ? slots : 1, sizeof(*p->free_list));
    if (!p->mem || !p->free_list || pthread_mutex_init(&p->lock, NULL) != 0) {
        secmem_free(p->mem);
        free(p->free_list);
        free(p);
        return NULL;
    }
    for (unsigned i = 0; i < slots; i++)
        p->free_list[i] = i;
    p->n_free = slots;
    return p;
}

void secpool_free(struct secpool *p)
{
    if (!p)
        return;
    secmem_free(p->mem);
    free(p->free_list);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void *secpool_get(struct secpool *p, size_t len)
{
    void *buf = NULL;
    if (len <= p->slot_size) {
        pthread_mutex_lock(&p->lock);
        if (p->n_free > 0)
            buf = p->mem + (size_t)p->free_list[--p->n_free] * p->slot_size;
        pthread_mutex_unlock(&p->lock);
    }
    return buf ? buf : secmem_alloc(len);
}

void secpool_put(struct secpool *p, void *buf, size_t len)
{
    unsigned char *b = buf;
    if (!buf)
        return;
    if (b >= p->mem && b < p->mem + p->slot_size * p->slots) {
        secmem_wipe(b, len < p->slot_size ? len : p->slot_size);
        pthread_mutex_lock(&p->lock);
        p->free_list[p->n_free++] = (unsigned)((size_t)(b - p->mem) / p->slot_size);
        pthread_mutex_unlock(&p->lock);
    } else {
        secmem_free(buf);
    }
}

char *secmem_strndup(const char *s, size_t n)
{
    char *p = secmem_alloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}
