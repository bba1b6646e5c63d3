/* hardening.c - allocator hooks, core dumps and memory locking (hardening.h). */
#include "broker/hardening.h"
#include "backends/http/libs.h"
#include "lib/log.h"
#include "lib/secmem.h"
#include "rs_config.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <jansson.h>
#include <sodium.h>

/* Memory the broker expects to lock: key pages plus the read scratch pool. */
#define HARDENING_LOCK_WANTED (1024 * 1024)

/* libcurl's heap holds request headers (tokens), request bodies (login
 * credentials) and its own copies of response bytes; OpenSSL's holds
 * decrypted TLS records (response bodies: secrets) and request records
 * before encryption (tokens). Both go to the libraries' wiping heap. */
static void *ossl_malloc(size_t len, const char *file, int line)
{
    (void)file;
    (void)line;
    return secmem_lib_alloc(len);
}

static void ossl_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    secmem_lib_free(p);
}

static void *ossl_realloc(void *p, size_t len, const char *file, int line)
{
    (void)file;
    (void)line;
    if (len == 0) {
        secmem_lib_free(p);
        return NULL;
    }
    return secmem_lib_realloc(p, len);
}

static char *curl_wipe_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = secmem_lib_alloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static void *curl_wipe_calloc(size_t nmemb, size_t size)
{
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    void *p = secmem_lib_alloc(nmemb * size);
    if (p)
        memset(p, 0, nmemb * size);
    return p;
}

int hardening_init_http(char *err, size_t errlen)
{
    /* OpenSSL first, and its allocator before anything makes it allocate
     * (libcurl's init, below); it refuses once anything was allocated (a
     * second call, in tests), which is harmless. Loading allocates
     * nothing, and neither does libcurl's URL parser, which may have
     * loaded both already (a config's addresses). */
    int rc = http_libs_crypto(err, errlen);
    if (rc < 0)
        return rc;
    CRYPTO_malloc_fn om;
    (void)sym_CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
    sym_CRYPTO_get_mem_functions(&om, NULL, NULL);
    if (om != ossl_malloc)
        log_warn("cannot hook OpenSSL's allocator: TLS buffers will not be wiped on free");
    if ((rc = http_libs_load(err, errlen)) < 0)
        return rc;
    /* libcurl counts its initialisations: a second call only counts. */
    if (sym_curl_global_init_mem(CURL_GLOBAL_DEFAULT, secmem_lib_alloc, secmem_lib_free,
                                 secmem_lib_realloc, curl_wipe_strdup,
                                 curl_wipe_calloc) != CURLE_OK) {
        snprintf(err, errlen, "libcurl failed to initialise");
        return -EIO;
    }
    return 0;
}

/* sodium_malloc does not fail when mlock does; find out ourselves and
 * raise the soft limit as far as we are allowed. */
static void raise_memlock(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < HARDENING_LOCK_WANTED) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > HARDENING_LOCK_WANTED
                        ? HARDENING_LOCK_WANTED : rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_MEMLOCK, &rl) != 0 || want < HARDENING_LOCK_WANTED)
            log_warn("RLIMIT_MEMLOCK is %llu KiB, below the %d KiB needed: secrets may be "
                     "swapped to disk; raise it (ulimit -l, LimitMEMLOCK=, --ulimit memlock=)",
                     (unsigned long long)want / 1024, HARDENING_LOCK_WANTED / 1024);
    }
}

int hardening_init_process(char *err, size_t errlen)
{
    struct rlimit core;

    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -EIO;
    }
    /* Before any other jansson call: every JSON string the broker parses
     * (file contents, HTTP bodies) may be a secret. */
    json_set_alloc_funcs(secmem_json_malloc, secmem_json_free);

#if defined(__x86_64__)
    __builtin_cpu_init();   /* regs_scrub asks which registers exist */
#endif
    secmem_hide_stack();
#if !RS_PLAIN_ALLOC
    /* One malloc arena, not one per thread: what glibc's malloc holds is
     * names, paths and log lines (plaintext lives in secheap and sodium
     * memory), and each extra arena reserves 64 MiB that a debugger's dump
     * reads in full. tcache keeps the per-request allocations off the lock. */
    (void)mallopt(M_ARENA_MAX, 1);
#endif
    /* No core of ours: the soft limit 0 and not dumpable (below). The hard
     * limit stays as given: lowering it cannot be undone without
     * CAP_SYS_RESOURCE, which containers do not have, and `runsecrets
     * exec` gives the application the container's limit back. Raising our
     * own would take code running in the broker, which sees the plaintext
     * anyway. */
    if (getrlimit(RLIMIT_CORE, &core) != 0 || (core.rlim_cur = 0, setrlimit(RLIMIT_CORE, &core)) != 0)
        log_warn("cannot disable core dumps: %s", strerror(errno));
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        log_warn("cannot mark the process non-dumpable: %s", strerror(errno));
    raise_memlock();
    return 0;
}

void hardening_exit(int code)
{
#if RS_PLAIN_ALLOC || RS_COVERAGE || defined(__SANITIZE_THREAD__)
    /* Instrumented builds keep the full exit: LeakSanitizer checks, and
     * ThreadSanitizer reports (in the exit status) and gcov writes, there. */
    (void)code;
#else
    if (secmem_outstanding() != 0)
        return;
    /* What exit would do that we need: stdio's buffers (stderr is
     * unbuffered; stdout may hold a report). The status is ours either way. */
    (void)fflush(NULL);
    _exit(code);
#endif
}

int hardening_init(char *err, size_t errlen)
{
    int rc = hardening_init_process(err, errlen);
    return rc < 0 ? rc : hardening_init_http(err, errlen);
}
