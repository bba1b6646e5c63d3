/* dynlib.h - a shared library loaded on first use, with its functions.
 *
 * runsecrets links only what every run needs (libsodium, jansson,
 * libfuse3). libcurl with OpenSSL (network backends), libcrypto alone (the
 * GCP assertion) and libmicrohttpd (the admin endpoint) are loaded with
 * dlopen by the first code that needs them: together with what they pull in
 * (GnuTLS, p11-kit, Kerberos, LDAP, ~30 objects in all) they are half the
 * resident memory of a mount serving local files, and their constructors
 * run at every start (docs/internals/memory.md, "Libraries loaded on
 * use"). The library is named by its soname, which meson reads from the one
 * the headers belong to (rs_config.h), so a newer ABI fails to load instead
 * of being called with the old one.
 *
 * A library's functions are pointers (sym_<name>), filled all at once by
 * dynlib_load; the module that owns a library declares them
 * (backends/http/libs.h, broker/admin.c). Those pointers and the struct
 * dynlib are process-wide (ARCHITECTURE.md, "Process-wide state"): written
 * once, under the struct's lock, before dynlib_load first returns 0, and
 * only read after; a caller uses a sym_ pointer only after its own
 * dynlib_load returned 0 (or after one that happened before it, in the
 * same thread or before the thread started).
 */
#ifndef RS_DYNLIB_H
#define RS_DYNLIB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct dynlib_sym {
    const char *name;
    void **slot;       /* where its address goes: a sym_ pointer */
};

struct dynlib {
    const char *soname;               /* e.g. "libcurl.so.4" */
    const char *what;                 /* for errors: "libcurl (network backends)" */
    const struct dynlib_sym *syms;
    size_t n_syms;
    pthread_mutex_t lock;
    bool tried;                       /* protected by lock */
    int rc;                           /* protected by lock: the first load's */
    char err[256];                    /* protected by lock: its message */
};

#define DYNLIB_INIT(so, what_, table)                                                       \
    {.soname = (so), .what = (what_), .syms = (table),                                     \
     .n_syms = sizeof(table) / sizeof((table)[0]), .lock = PTHREAD_MUTEX_INITIALIZER}

/* One entry of a symbol table: the function's name and its sym_ pointer. */
#define DYNLIB_SYM(fn) {#fn, (void **)&sym_##fn}

/* Load l and every one of its functions, once per process; later calls
 * return the first one's result. 0, or -ELIBACC with "cannot load SONAME
 * (WHAT): REASON" in err (the library or one function missing: nothing
 * half-loaded is used). Thread-safe. */
int dynlib_load(struct dynlib *l, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
