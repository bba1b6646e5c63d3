/* secheap.c - size classes over never-dumped, locked, wiped pages. */
#include "lib/secheap.h"
#include "lib/regs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sodium.h>

#define SLAB_BYTES (256 * 1024)     /* a multiple of every class size: no tail waste */
#define MIN_SHIFT 5                 /* 32-byte blocks */
#define MAX_SHIFT 16                /* 64 KiB blocks */
#define N_CLASSES (MAX_SHIFT - MIN_SHIFT + 1)
#define CLASS_LARGE 0xffffu
#define HDR_MAGIC 0x5ec4ea95u

struct slab;

/* 16 bytes in front of every block: keeps payloads max_align_t aligned. */
struct hdr {
    uint32_t magic;        /* HDR_MAGIC while allocated; 0 once wiped */
    uint32_t cls;          /* size class, or CLASS_LARGE */
    union {
        size_t cap;        /* CLASS_LARGE: usable bytes after the header */
        struct slab *slab; /* a size class's block: the slab it was carved from */
    } u;
};
_Static_assert(sizeof(struct hdr) == 16, "the header keeps payloads 16-byte aligned");

struct free_block {
    struct free_block *next;
};

/* One slab of a size class. Each slab keeps its own free blocks and a
 * count of live ones, so a slab whose blocks are all free again can go
 * back to the system: the heap's size follows what is live, not its peak
 * (a 10,000-secret config's JSON tree left 7 MiB of locked slabs behind:
 * docs/internals/memory.md). Ordinary malloc memory: it holds only
 * pointers and counts, never a secret byte. All under its class's lock. */
struct slab {
    struct slab *prev, *next;          /* the class's list of slabs with room */
    unsigned char *base;
    struct free_block *free;
    unsigned char *bump;               /* never-used rest: bump..base+SLAB_BYTES */
    unsigned live;                     /* blocks handed out */
    bool listed;                       /* on the class's list */
};

struct size_class {
    pthread_mutex_t lock;
    struct slab *room;                 /* protected by lock: slabs with a free or unused block */
    unsigned empty;                    /* protected by lock: slabs with no live block (at most 1) */
};

/* Allocator-hook state (see secheap.h): set up once, then only through
 * each class's lock. */
static struct size_class classes[N_CLASSES];
static pthread_once_t classes_once = PTHREAD_ONCE_INIT;
static atomic_size_t mapped_bytes;

static void classes_init(void)
{
    for (size_t i = 0; i < N_CLASSES; i++)
        pthread_mutex_init(&classes[i].lock, NULL);
}

/* A size class's lock. Its callers are libcurl, OpenSSL and jansson in
 * the middle of handling secret bytes: a thread that has to sleep on the
 * lock first clears the vector registers, which a core of a sleeping
 * thread would show (docs/reliability.md). Uncontended, nothing extra. */
static void lock_class(struct size_class *sc)
{
    if (pthread_mutex_trylock(&sc->lock) == 0)
        return;
    regs_scrub();
    pthread_mutex_lock(&sc->lock);
}

/* Fresh pages that no core dump includes. mlock is best effort: without
 * the privilege or the limit the pages can be swapped, which hardening_init
 * already warns about. No MADV_WIPEONFORK: a forked child (a credential
 * helper between fork and exec) must still find the libraries' heap
 * intact, and until exec it shares these pages rather than copying them.
 *
 * MLOCK_ONFAULT: a page is locked the moment it is first touched, so
 * nothing ever written here can be swapped out, but a new slab is not
 * faulted in whole: the first allocation of each size class (config
 * loading touches most of them) populated 64 pages for a few blocks, a
 * measurable part of every start (docs/performance.md, exec). Kernels
 * before 4.4 have no mlock2: the plain mlock then, as on any refusal that
 * is not a limit. */
static void *map_pages(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (madvise(p, len, MADV_DONTDUMP) != 0) {
        munmap(p, len);
        return NULL;
    }
    /* Any refusal but a limit (ENOMEM, EAGAIN: mlock would hit it too),
     * e.g. a seccomp filter that knows mlock but not mlock2 (EPERM). */
    if (mlock2(p, len, MLOCK_ONFAULT) != 0 && errno != ENOMEM && errno != EAGAIN)
        (void)mlock(p, len);
    atomic_fetch_add_explicit(&mapped_bytes, len, memory_order_relaxed);
    return p;
}

static void unmap_pages(void *p, size_t len)
{
    munmap(p, len);
    atomic_fetch_sub_explicit(&mapped_bytes, len, memory_order_relaxed);
}

static void room_unlink(struct size_class *sc, struct slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        sc->room = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->listed = false;
}

/* at_head: a slab with live blocks goes first, so the empty one (the one
 * that may be released) is used last. */
static void room_link(struct size_class *sc, struct slab *s, bool at_head)
{
    s->listed = true;
    if (at_head || !sc->room) {
        s->prev = NULL;
        s->next = sc->room;
        if (sc->room)
            sc->room->prev = s;
        sc->room = s;
        return;
    }
    struct slab *t = sc->room;
    while (t->next)
        t = t->next;
    t->next = s;
    s->prev = t;
    s->next = NULL;
}

static bool slab_has_room(const struct slab *s, size_t bs)
{
    return s->free || (size_t)(s->base + SLAB_BYTES - s->bump) >= bs;
}

static unsigned class_of(size_t total)
{
    unsigned shift = MIN_SHIFT;
    while (((size_t)1 << shift) < total)
        shift++;
    return shift - MIN_SHIFT;
}

static void *alloc_large(size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (len > SIZE_MAX - sizeof(struct hdr) - page)
        return NULL;
    size_t total = (len + sizeof(struct hdr) + page - 1) / page * page;
    struct hdr *h = map_pages(total);
    if (!h)
        return NULL;
    h->magic = HDR_MAGIC;
    h->cls = CLASS_LARGE;
    h->u.cap = total - sizeof(*h);
    return h + 1;
}

void *secheap_alloc(size_t len)
{
    if (len > ((size_t)1 << MAX_SHIFT) - sizeof(struct hdr))
        return alloc_large(len);
    pthread_once(&classes_once, classes_init);
    unsigned c = class_of(len + sizeof(struct hdr));
    size_t bs = (size_t)1 << (c + MIN_SHIFT);
    struct size_class *sc = &classes[c];
    unsigned char *b = NULL;

    lock_class(sc);
    struct slab *s = sc->room;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (s && !(s->base = map_pages(SLAB_BYTES))) {
            free(s);
            s = NULL;
        }
        if (!s) {
            pthread_mutex_unlock(&sc->lock);
            return NULL;
        }
        s->bump = s->base;
        sc->empty++;
        room_link(sc, s, true);
    }
    if (s->free) {
        b = (unsigned char *)s->free;
        s->free = s->free->next;
    } else {
        b = s->bump;
        s->bump += bs;
    }
    if (s->live++ == 0)
        sc->empty--;
    if (!slab_has_room(s, bs))
        room_unlink(sc, s);
    pthread_mutex_unlock(&sc->lock);
    struct hdr *h = (struct hdr *)b;
    h->magic = HDR_MAGIC;
    h->cls = c;
    h->u.slab = s;
    return h + 1;
}

static struct hdr *header_of(const void *p)
{
    struct hdr *h = (struct hdr *)((uintptr_t)p - sizeof(struct hdr));
    /* A pointer we did not hand out, or one freed twice: continuing would
     * corrupt the heap that holds plaintext. */
    if (h->magic != HDR_MAGIC || (h->cls >= N_CLASSES && h->cls != CLASS_LARGE))
        abort();
    return h;
}

static size_t cap_of(const struct hdr *h)
{
    if (h->cls == CLASS_LARGE)
        return h->u.cap;
    return ((size_t)1 << (h->cls + MIN_SHIFT)) - sizeof(*h);
}

void secheap_free(void *p)
{
    if (!p)
        return;
    struct hdr *h = header_of(p);
    size_t total = cap_of(h) + sizeof(*h);
    uint32_t c = h->cls;
    struct slab *s = c == CLASS_LARGE ? NULL : h->u.slab;

    sodium_memzero(h, total);          /* the whole block, header included */
    if (c == CLASS_LARGE) {
        unmap_pages(h, total);
        return;
    }
    struct size_class *sc = &classes[c];
    struct free_block *fb = (struct free_block *)h;
    unsigned char *release = NULL;
    lock_class(sc);
    fb->next = s->free;
    s->free = fb;
    if (--s->live == 0) {
        /* Every block of s is free (and wiped). One empty slab per class
         * stays, so a class that goes up and down by a block (a fetch's
         * buffers) does not map and unmap a slab each time; a second goes
         * back to the system. */
        if (sc->empty > 0) {
            if (s->listed)
                room_unlink(sc, s);
            release = s->base;
        } else {
            sc->empty++;
            if (s->listed)
                room_unlink(sc, s);
            room_link(sc, s, false);
        }
    } else if (!s->listed) {
        room_link(sc, s, true);
    }
    pthread_mutex_unlock(&sc->lock);
    if (release) {
        unmap_pages(release, SLAB_BYTES);
        free(s);
    }
}

size_t secheap_usable(const void *p)
{
    return cap_of(header_of(p));
}

void *secheap_realloc(void *p, size_t len)
{
    if (!p)
        return secheap_alloc(len);
    size_t cap = secheap_usable(p);
    if (len <= cap)
        return p;   /* bytes past len are wiped with the block when it is freed */
    void *n = secheap_alloc(len);
    if (!n)
        return NULL;
    memcpy(n, p, cap);
    secheap_free(p);
    return n;
}

size_t secheap_mapped(void)
{
    return atomic_load_explicit(&mapped_bytes, memory_order_relaxed);
}
