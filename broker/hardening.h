/* hardening.h - the process-wide setup every entry point does first.
 *
 * The only process-wide state besides main's struct broker and the log sink
 * (ARCHITECTURE.md, "Process-wide state"): the allocator hooks that route
 * jansson's, libcurl's and OpenSSL's heaps into wiped, never-dumped memory
 * (lib/secmem.h, secmem_lib_alloc), and the process's dump and memory-lock
 * settings. lib/ provides the secure memory; only this file knows which
 * libraries to hook, so the bottom layer needs no libcurl or OpenSSL header.
 * libcurl and OpenSSL are loaded on use (backends/http/libs.h): hooking them
 * is part of loading them for HTTP, hardening_init_http.
 */
#ifndef RS_HARDENING_H
#define RS_HARDENING_H

#include <stddef.h>

/* Once per process, before any other jansson, libcurl or OpenSSL call and
 * before threads start (main, a unit test's fixture, a fuzz target's
 * initialiser), in this order:
 *   sodium_init;
 *   jansson's allocator (every JSON string may be a secret);
 *   (hardening_init_http:) libcrypto loaded and OpenSSL's allocator hooked,
 *     then libssl and libcurl loaded and libcurl's global init with its
 *     allocator (the OpenSSL hook must come first: libcurl's init makes
 *     OpenSSL allocate, after which OpenSSL refuses a new allocator);
 *   the main thread's stack out of core dumps (secmem_hide_stack);
 *   one glibc malloc arena (normal builds);
 *   no core dumps (RLIMIT_CORE 0), not dumpable (PR_SET_DUMPABLE 0);
 *   RLIMIT_MEMLOCK raised as far as allowed, with a loud warning when it is
 *     too small for secrets to stay locked.
 * A failed hook or limit is a warning; 0, -ELIBACC when libcurl or OpenSSL
 * cannot be loaded, or -EIO when libsodium or libcurl cannot initialise
 * (message in err). A second call (tests) is harmless:
 * OpenSSL keeps its first allocator, the rest is idempotent.
 * hardening_init is hardening_init_process then hardening_init_http. */
int hardening_init(char *err, size_t errlen) __attribute__((warn_unused_result));

/* All of the above but libcurl's global init: what main does first. The
 * libcurl part is hardening_init_http, which broker_open calls only when a
 * configured backend needs HTTP. libcurl's init makes OpenSSL load its
 * configuration and every algorithm table, ~4 ms here, and registers its
 * cleanup for the exit: a config of files only, and exec --mount-from,
 * need neither (docs/performance.md, exec). Until that call libcurl has
 * its default allocator: what runs before it (the URL parser, when a
 * config is loaded) allocates only to check a setting and frees it all
 * before returning; no libcurl object lives across the call. */
int hardening_init_process(char *err, size_t errlen) __attribute__((warn_unused_result));
/* Load libcrypto, hook OpenSSL's allocator, load libssl and libcurl, and
 * libcurl's global init with the wiping allocator. Before the first HTTP
 * engine, before threads start. 0, -ELIBACC or -EIO (err). */
int hardening_init_http(char *err, size_t errlen) __attribute__((warn_unused_result));

/* The end of a process whose every thread but this one is gone and whose
 * broker is closed: when no block of secret memory is left
 * (secmem_outstanding() == 0, so everything that held plaintext or a key
 * was wiped when it was freed), flush stdio and _exit(code), skipping the
 * atexit handlers and the destructors of the ~36 shared objects (GnuTLS,
 * Kerberos, ...; 0.8 ms for `exec` with files only, and OpenSSL's cleanup
 * on top once libcurl was initialised: docs/internals/exec.md). Otherwise
 * (OpenSSL still holds its keys and state in our heap) it returns, and the
 * caller returns from main: OpenSSL's cleanup then frees, so wipes, them.
 * Sanitizer builds always return (LeakSanitizer runs at exit). */
void hardening_exit(int code);

#endif
