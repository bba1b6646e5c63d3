/* broker.c - assemble config, backends, cache, store and scheduler, and
 * take them through mount, run and stop (broker.h). */
#include "broker/broker.h"
#include "broker/admin.h"
#include "broker/hardening.h"
#include "broker/signals.h"
#include "backends/backend.h"
#include "engine/cache.h"
#include "engine/scheduler.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/secmem.h"
#include "engine/store.h"
#include "fuse/fs.h"
#include "fuse/mountns.h"
#include "fuse/mountpoint.h"
#include "policy/audit.h"
#include "backends/http/http.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Plaintext scratch for reads: one slot per concurrent read covers values up
 * to a page without touching the allocator; larger ones use secmem_alloc. */
#define BROKER_POOL_SLOT 4096
#define BROKER_POOL_SLOTS 32

int broker_open(struct broker *b, const char *config_path, char *err, size_t errlen)
{
    int rc;

    memset(b, 0, sizeof(*b));
    b->started_real_ms = clock_real_ms();
    b->started_mono_ms = clock_mono_ms();
    b->cfg_flags = 0;
    b->config_path = strdup(config_path);
    if (!b->config_path) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    rc = cfg_load_opts(config_path, b->cfg_flags, &b->cfg, err, errlen);
    if (rc < 0) {
        free(b->config_path);
        b->config_path = NULL;
        return rc;
    }
    for (size_t i = 0; i < b->cfg->n_warnings; i++)
        log_warn("%s", b->cfg->warnings[i]);
    b->backends = calloc(b->cfg->n_backends + 1, sizeof(*b->backends));
    if (!b->backends)
        goto nomem;
    /* No HTTP engine, and so no libcurl or OpenSSL initialisation, when
     * every backend is local (hardening.h says what that saves). */
    bool need_http = false;
    for (size_t i = 0; i < b->cfg->n_backends; i++)
        need_http = need_http || !backend_conf_has_cap(b->cfg->backends[i].conf, BACKEND_CAP_LOCAL);
    if (need_http) {
        rc = hardening_init_http(err, errlen);
        if (rc == 0)
            rc = http_engine_new(&b->http, err, errlen);
        if (rc < 0)
            goto fail;
    }
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
    b->metrics = metrics_new();
    if (!b->metrics || store_bind_metrics(b->store, b->metrics) < 0 ||
        store_publish_metrics(b->store, b->metrics) < 0)
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
    admin_stop(b->admin);   /* normally gone with broker_stop already */
    b->admin = NULL;
    scheduler_free(b->sched);   /* first: its hooks reach the filesystem */
    fs_free(b->fs);
    policy_audit_log_free(b->audit);   /* after the last open's line */
    store_free(b->store);
    metrics_free(b->metrics);   /* after every store that wrote to it */
    secpool_free(b->pool);
    cache_free(b->cache);
    if (b->backends && b->cfg)
        for (size_t i = 0; i < b->cfg->n_backends; i++)
            backend_free(b->backends[i]);
    free(b->backends);
    http_engine_free(b->http);   /* after the backends' clients */
    cfg_free(b->cfg);
    free(b->config_path);
    mountns_free(b->mount_ns);   /* after fs_free: its unmount needs it */
    memset(b, 0, sizeof(*b));
}

static void on_changed(void *arg, size_t idx, bool removed)
{
    struct broker *b = arg;
    fs_notify(b->fs, idx, removed);
    /* After fs_notify: what `exec` does on a change (signal the app) must
     * come once the kernel can no longer serve the old value. */
    if (b->changed)
        b->changed(b->changed_arg, idx, removed);
    if (!removed && b->ext)
        b->ext->event(b, idx);
}

static void on_settled(void *arg, size_t idx)
{
    struct broker *b = arg;
    fs_settled(b->fs, idx);
    if (b->ext)
        b->ext->event(b, idx);
}

int broker_mount(struct broker *b, const char *mountpoint, bool debug_fuse)
{
    char err[1024] = "";
    struct log_fields lf = {.path = mountpoint};

    bool detached = false;
    if (b->mount_ns)
        log_f(LOG_INFO, &(struct log_fields){.path = mountns_path(b->mount_ns)},
              "mounting in the mount namespace given");
    /* With a mount namespace, the checks must see its mount table, not
     * ours: they run there (mountns.h). */
    int rc = b->mount_ns ? mountns_prepare(b->mount_ns, mountpoint, b->mountpoint,
                                           sizeof(b->mountpoint), &detached, err, sizeof(err))
                         : mountpoint_prepare(mountpoint, b->mountpoint, sizeof(b->mountpoint),
                                              &detached, err, sizeof(err));
    if (detached)
        log_f(LOG_WARN, &lf, "stale mount detached");
    if (rc < 0) {
        b->mountpoint[0] = '\0';
        lf.error = err;
        log_f(LOG_ERROR, &lf, "cannot prepare the mountpoint");
        return rc;
    }
    /* From here on, the resolved path: the one mountinfo will show. */
    lf.path = b->mountpoint;
    /* The audit trail before the mount, so no decision goes unwritten; a
     * sink that cannot be opened is the configuration's error. */
    rc = policy_audit_log_new(policy_audit_of(b->cfg->policy), &b->audit, err, sizeof(err));
    if (rc < 0) {
        lf.error = err;
        log_f(LOG_ERROR, &lf, "cannot open the audit trail");
        b->mountpoint[0] = '\0';
        return rc;
    }
    /* Mount first, then fetch everything in parallel (broker_run): a file
     * appears as soon as its value is cached, and a lookup of one still
     * being fetched waits for that fetch. */
    struct fs_options fo = {
        .mountpoint = b->mountpoint,
        /* exec: the application runs as another user and must get in
         * (the mount fails, and says so, if we may not allow that). */
        .allow_other = b->supervised || geteuid() == 0,
        .debug = debug_fuse,
        .attr_timeout = 1.0,
        .mount_ns = b->mount_ns,
        .audit = b->audit,
    };
    /* Hold asynchronous signals from the mount until their actions are in
     * place: a TERM in between would kill us and leave the mount behind. */
    sigset_t unblocked;
    signals_block_async(&unblocked);
    rc = fs_mount(b->store, b->pool, &fo, &b->fs, err, sizeof(err));
    if (rc == 0)
        rc = signals_install(b->fs, b->mountpoint,
                             b->mount_ns ? mountns_fd(b->mount_ns) : -1,
                             b->supervised ? SIGNALS_EXEC : SIGNALS_MOUNT, err, sizeof(err));
    if (rc < 0) {
        fs_free(b->fs);   /* unmounts */
        b->fs = NULL;
        signals_restore();
        pthread_sigmask(SIG_SETMASK, &unblocked, NULL);
        lf.error = err;
        log_f(LOG_ERROR, &lf, "mount failed");
        b->mountpoint[0] = '\0';
        /* -ENOTDIR is the configuration's mountpoint (above), never this. */
        return rc == -ENOTDIR ? -EIO : rc;
    }
    pthread_sigmask(SIG_SETMASK, &unblocked, NULL);
    scheduler_set_hooks(b->sched, &(struct sched_hooks){.changed = on_changed,
                                                        .settled = on_settled, .arg = b});
    log_f(LOG_INFO, &lf, "mounted");
    if (b->ext)
        b->ext->mounted(b);
    return 0;
}

int broker_run(struct broker *b)
{
    struct log_fields lf = {.path = b->mountpoint};
    int rc = scheduler_start(b->sched);

    if (rc < 0)
        log_f(LOG_ERROR, &lf, "cannot start the refresh threads");
    /* A broker that cannot reload must not pretend it can: stop. */
    if (rc == 0 && b->ext)
        rc = b->ext->started(b);
    int loop_rc = rc == 0 ? fs_run(b->fs) : 0;
    broker_stop(b);
    if (rc < 0)
        return rc;
    if (loop_rc < 0) {
        lf.error = strerror(-loop_rc);
        log_f(LOG_ERROR, &lf, "filesystem loop failed; unmounted");
        return loop_rc;
    }
    log_f(LOG_INFO, &lf, "unmounted");
    return 0;
}

static void *loop_main(void *arg)
{
    /* fs_run's caller: it waits for the stop and ends the loop's threads
     * (named rs-fuse), serving nothing itself. */
    pthread_setname_np(pthread_self(), "rs-fuse-stop");
    struct broker *b = arg;
    b->loop_rc = fs_run(b->fs);
    atomic_store(&b->loop_ended, true);
    if (b->loop_ended_cb)
        b->loop_ended_cb(b->loop_ended_arg);
    return NULL;
}

int broker_start(struct broker *b, void (*ended)(void *arg), void *arg)
{
    struct log_fields lf = {.path = b->mountpoint};
    int rc = scheduler_start(b->sched);

    if (rc < 0) {
        log_f(LOG_ERROR, &lf, "cannot start the refresh threads");
        return rc;
    }
    b->loop_ended_cb = ended;
    b->loop_ended_arg = arg;
    atomic_store(&b->loop_ended, false);
    rc = -pthread_create(&b->loop, NULL, loop_main, b);
    if (rc < 0) {
        lf.error = strerror(-rc);
        log_f(LOG_ERROR, &lf, "cannot start the filesystem loop");
        return rc;
    }
    b->loop_started = true;
    return 0;
}

/* End broker_start's loop thread: fs_exit wakes every thread of the loop
 * (fs.c: an eventfd they all wait on, so no wake-up can be lost), and
 * fs_run joins its own before it returns. */
static void loop_join(struct broker *b)
{
    if (!b->loop_started)
        return;
    fs_exit(b->fs);
    pthread_join(b->loop, NULL);
    b->loop_started = false;
}

void broker_stop(struct broker *b)
{
    struct log_fields lf = {.path = b->mountpoint};

    /* First: a scrape during the stop must not read the scheduler, store
     * or backends freed below. Its threads are joined here (a probe hung
     * on the mount is left behind: admin.h). */
    admin_stop(b->admin);
    b->admin = NULL;
    if (!b->fs)
        return;
    /* The stop is underway: a second signal changes nothing. Blocked, not
     * restored: the rest of the process's life is this teardown. */
    signals_block_async(NULL);
    if (signals_stopped_by())
        log_f(LOG_INFO, &lf, "stopping on SIG%s", signals_stopped_by());
    /* STOPPING=1, and no reload from here on (one in progress ends first:
     * it uses the scheduler and the filesystem stopped below). */
    if (b->ext)
        b->ext->stopping(b);
    /* Cancel first so the scheduler's workers, blocked in a fetch from a
     * slow server, return at once and the stop does not wait them out. */
    http_engine_cancel(b->http, true);
    /* Then the workers: after this nothing fetches, and nothing calls the
     * hooks into the filesystem that is about to go. */
    scheduler_stop(b->sched);
    /* Let requests through again: the revocations below need HTTP. */
    http_engine_cancel(b->http, false);
    /* exec: the loop's thread must be gone before fs_free frees its session. */
    loop_join(b);
    fs_free(b->fs);   /* unmounts; parked requests get ENOENT */
    b->fs = NULL;
    /* After the unmount: a crash from now on must not detach a mount that
     * is no longer ours. */
    signals_restore();
    /* Last: the files are gone, so no reader is served a value whose lease
     * is being revoked, and the mount does not outlive its owner while
     * slow revocations run. */
    broker_shutdown_backends(b);
}

void broker_shutdown_backends(struct broker *b)
{
    for (size_t i = 0; b->backends && b->cfg && i < b->cfg->n_backends; i++)
        backend_shutdown(b->backends[i]);
}
