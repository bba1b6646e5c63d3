/* dynlib.c - a shared library loaded on first use (dynlib.h). */
#include "lib/dynlib.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>

static int load_locked(struct dynlib *l)
{
    /* RTLD_NOW: a library whose own dependencies do not resolve fails
     * here, not at some later call; RTLD_LOCAL: its symbols stay out of
     * the global scope, as when it is linked. */
    void *h = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(l->err, sizeof(l->err), "cannot load %s (%s): %s", l->soname, l->what,
                 why ? why : "unknown error");
        return -ELIBACC;
    }
    for (size_t i = 0; i < l->n_syms; i++) {
        (void)dlerror();
        void *p = dlsym(h, l->syms[i].name);
        if (!p) {
            snprintf(l->err, sizeof(l->err), "cannot load %s (%s): no function %s", l->soname,
                     l->what, l->syms[i].name);
            for (size_t k = 0; k < i; k++)
                *l->syms[k].slot = NULL;
            /* The handle stays open: dlclose would run destructors of
             * objects other code may have loaded meanwhile. */
            return -ELIBACC;
        }
        *l->syms[i].slot = p;
    }
    return 0;
}

int dynlib_load(struct dynlib *l, char *err, size_t errlen)
{
    pthread_mutex_lock(&l->lock);
    if (!l->tried) {
        l->tried = true;
        l->rc = load_locked(l);
    }
    int rc = l->rc;
    if (rc < 0 && err && errlen)
        snprintf(err, errlen, "%s", l->err);
    pthread_mutex_unlock(&l->lock);
    return rc;
}
