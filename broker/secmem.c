/* secmem.c - secret memory, process hardening and the wiping allocators. */
#include "secmem.h"
#include "log.h"
#include "rs_config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <jansson.h>
#include <sodium.h>

/* A size prefix keeps the returned pointer max_align_t aligned. */
#define PREFIX_BYTES (sizeof(max_align_t) > sizeof(size_t) ? sizeof(max_align_t) : sizeof(size_t))

/* Memory the broker expects to lock: key pages plus the read scratch pool. */
#define SECMEM_LOCK_WANTED (1024 * 1024)

static void *prefixed_alloc(size_t len)
{
    if (len > SIZE_MAX - PREFIX_BYTES)
        return NULL;
    unsigned char *p = malloc(len + PREFIX_BYTES);
    if (!p)
        return NULL;
    memcpy(p, &len, sizeof(len));
    return p + PREFIX_BYTES;
}

static void prefixed_free(void *ptr)
{
    if (!ptr)
        return;
    unsigned char *p = (unsigned char *)ptr - PREFIX_BYTES;
    size_t len;
    memcpy(&len, p, sizeof(len));
    sodium_memzero(p, len + PREFIX_BYTES);
    free(p);
}

void *secmem_json_malloc(size_t len)
{
    return prefixed_alloc(len);
}

void secmem_json_free(void *p)
{
    prefixed_free(p);
}

/* libcurl's heap holds request headers (tokens), request bodies (login
 * credentials) and its own copies of response bytes: every byte of it is
 * wiped when curl frees it. */
/* OpenSSL's heap holds decrypted TLS records (response bodies: secrets)
 * and request records before encryption (tokens): wiped on free as well. */
static void *ossl_malloc(size_t len, const char *file, int line)
{
    (void)file;
    (void)line;
    return prefixed_alloc(len);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    prefixed_free(p);
}

static void *curl_wipe_realloc(void *ptr, size_t len);

static void *ossl_realloc(void *p, size_t len, const char *file, int line)
{
    (void)file;
    (void)line;
    if (len == 0) {
        prefixed_free(p);
        return NULL;
    }
    return curl_wipe_realloc(p, len);
}

static void *curl_wipe_realloc(void *ptr, size_t len)
{
    if (!ptr)
        return prefixed_alloc(len);
    size_t old;
    memcpy(&old, (unsigned char *)ptr - PREFIX_BYTES, sizeof(old));
    void *n = prefixed_alloc(len);
    if (!n)
        return NULL;
    memcpy(n, ptr, old < len ? old : len);
    prefixed_free(ptr);
    return n;
}

static char *curl_wipe_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = prefixed_alloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void *curl_wipe_calloc(size_t nmemb, size_t size)
{
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    void *p = prefixed_alloc(nmemb * size);
    if (p)
        memset(p, 0, nmemb * size);
    return p;
}

void *secmem_alloc(size_t len)
{
#if RS_PLAIN_ALLOC
    return prefixed_alloc(len ? len : 1);
#else
    return sodium_malloc(len ? len : 1);
#endif
}

void secmem_free(void *p)
{
#if RS_PLAIN_ALLOC
    prefixed_free(p);
#else
    sodium_free(p);
#endif
}

void secmem_wipe(void *p, size_t len)
{
    if (p && len)
        sodium_memzero(p, len);
}

int secmem_init(char *err, size_t errlen)
{
    struct rlimit rl = {0, 0};

    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -EIO;
    }
    /* Before any other jansson call: every JSON string the broker parses
     * (file contents, HTTP bodies) may be a secret. */
    json_set_alloc_funcs(secmem_json_malloc, secmem_json_free);
    /* Before libcurl initialises OpenSSL; it refuses once anything was
     * allocated (a second secmem_init, in tests), which is harmless. */
    CRYPTO_malloc_fn om;
    (void)CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
    CRYPTO_get_mem_functions(&om, NULL, NULL);
    if (om != ossl_malloc)
        log_warn("cannot hook OpenSSL's allocator: TLS buffers will not be wiped on free");
    if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, prefixed_alloc, prefixed_free, curl_wipe_realloc,
                             curl_wipe_strdup, curl_wipe_calloc) != CURLE_OK) {
        snprintf(err, errlen, "libcurl failed to initialise");
        return -EIO;
    }

    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        log_warn("cannot disable core dumps: %s", strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        log_warn("cannot mark the process non-dumpable: %s", strerror(errno));

    /* sodium_malloc does not fail when mlock does; find out ourselves and
     * raise the soft limit as far as we are allowed. */
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < SECMEM_LOCK_WANTED) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > SECMEM_LOCK_WANTED
                        ? SECMEM_LOCK_WANTED : rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0 || want < SECMEM_LOCK_WANTED)
            log_warn("RLIMIT_MEMLOCK is %llu KiB, below the %d KiB needed: secrets may be "
                     "swapped to disk; raise it (ulimit -l, LimitMEMLOCK=, --ulimit memlock=)",
                     (unsigned long long)want / 1024, SECMEM_LOCK_WANTED / 1024);
    }
    return 0;
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
    unsigned char *p = secmem_alloc(cap);
    if (!p)
        return -ENOMEM;
    if (b->len)
        memcpy(p, b->data, b->len);
    secmem_free(b->data);
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
    secmem_free(b->data);   /* wipes */
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
