/* broker.c - assemble config, backends, cache, store and scheduler. */
#include "broker/broker.h"
#include "backends/backend.h"
#include "engine/cache.h"
#include "engine/scheduler.h"
#include "lib/secmem.h"
#include "engine/store.h"
#include "fuse/fs.h"
#include "backends/http/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Plaintext scratch for reads: one slot per concurrent read covers values up
 * to a page without touching the allocator; larger ones use secmem_alloc. */
#define BROKER_POOL_SLOT 4096
#define BROKER_POOL_SLOTS 32

int broker_open(struct broker *b, const char *config_path, char *err, size_t errlen)
{
    int rc;

    memset(b, 0, sizeof(*b));
    rc = cfg_load(config_path, &b->cfg, err, errlen);
    if (rc < 0)
        return rc;
    b->backends = calloc(b->cfg->n_backends + 1, sizeof(*b->backends));
    if (!b->backends)
        goto nomem;
    rc = http_engine_new(&b->http, err, errlen);
    if (rc < 0)
        goto fail;
    struct backend_env env = {.http = b->http};
    for (size_t i = 0; i < b->cfg->n_backends; i++) {
        char msg[512] = "";
        const struct cfg_backend *cb = &b->cfg->backends[i];
        rc = backend_new(&env, cb->name, cb->conf, &b->backends[i], msg, sizeof(msg));
        if (rc < 0) {
            snprintf(err, errlen, "%s: backends.%s: %s", config_path, cb->name, msg);
            goto fail;
        }
    }
    b->cache = cache_new();
    b->pool = secpool_new(BROKER_POOL_SLOT, BROKER_POOL_SLOTS);
    if (!b->cache || !b->pool)
        goto nomem;
    rc = store_new(b->cfg, b->backends, b->cache, &b->store);
    if (rc < 0)
        goto nomem;
    rc = scheduler_new(b->store, b->backends, b->cfg->n_backends, &b->sched);
    if (rc < 0)
        goto nomem;
    return 0;
nomem:
    rc = -ENOMEM;
    snprintf(err, errlen, "out of memory");
fail:
    broker_close(b);
    return rc;
}

void broker_close(struct broker *b)
{
    scheduler_free(b->sched);   /* first: its hooks reach the filesystem */
    fs_free(b->fs);
    store_free(b->store);
    secpool_free(b->pool);
    cache_free(b->cache);
    if (b->backends && b->cfg)
        for (size_t i = 0; i < b->cfg->n_backends; i++)
            backend_free(b->backends[i]);
    free(b->backends);
    http_engine_free(b->http);   /* after the backends' clients */
    cfg_free(b->cfg);
    memset(b, 0, sizeof(*b));
}
