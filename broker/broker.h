/* broker.h - the daemon's state, in one place (no mutable globals), and
 * its lifecycle.
 *
 * main() owns one struct broker (ARCHITECTURE.md, "Process-wide state");
 * the scheduler's hooks reach it as their argument.
 *
 * The lifecycle is the same for every command that serves a mount (`mount`
 * now, `exec` next); the CLI parses options and calls it:
 *
 *   broker_open   load the configuration; build backends, cache, store and
 *                 scheduler. Nothing fetched, nothing mounted.
 *   broker_mount  prepare the mountpoint, mount, install the signal table,
 *                 connect the scheduler's hooks to the filesystem.
 *   broker_run    start the refresh threads, serve until a stop signal or a
 *                 failure ends the loop, then broker_stop.
 *   broker_start  `exec` instead of broker_run: start the refresh threads
 *                 and the FUSE loop on a thread of its own, and return, so
 *                 the main thread can supervise the application; the
 *                 caller ends with broker_stop, which ends that thread.
 *   broker_stop   tear down in one order (broker.c says why each step comes
 *                 where it does):
 *                   0. stop the admin endpoint (admin.h), if any;
 *                   1. block asynchronous signals: the stop is underway;
 *                   2. cancel HTTP: in-flight and new requests fail at once;
 *                   3. stop the scheduler: its workers return promptly (2)
 *                      and nothing fetches or notifies the filesystem;
 *                   4. let HTTP through again, for the revocations of 6;
 *                   5. unmount, then the signal actions back to default;
 *                   6. shut the backends down: revoke leases, give back
 *                      tokens.
 *   broker_close  free everything.
 */
#ifndef RS_BROKER_H
#define RS_BROKER_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include "broker/pidfile.h"
#include "engine/config.h"
#include "lib/notify.h"

struct backend;
struct cache;
struct policy_audit_log;
struct store;
struct scheduler;
struct secpool;
struct fs;
struct http_engine;
struct admin;
struct broker;
struct metrics;

/* What a command adds to the lifecycle at fixed points (the host service,
 * service.h, is the one user): set by the command between broker_open and
 * broker_mount; every slot is filled. */
struct broker_ext {
    void (*mounted)(struct broker *b);              /* end of broker_mount */
    int (*started)(struct broker *b);               /* broker_run, after the scheduler starts;
                                                       a failure stops the broker */
    void (*event)(struct broker *b, size_t idx);    /* a secret's first attempt ended or
                                                       its value changed (fetch workers) */
    void (*stopping)(struct broker *b);             /* first step of broker_stop */
};

/* What the last broker_apply changed (broker/reload.h), for its caller's
 * log line. */
struct broker_applied {
    size_t added, removed, changed, kept;   /* secrets */
    size_t backends_new, backends_kept, backends_retired;
    long ms;                                /* from the call to the swap */
};

struct broker {
    struct config *cfg;            /* the one served; a reload replaces it */
    struct http_engine *http;      /* shared by the HTTP backends */
    struct backend **backends;     /* one per cfg->backends */
    struct cache *cache;
    struct store *store;
    struct scheduler *sched;
    struct secpool *pool;          /* scratch plaintext for reads */
    struct fs *fs;                 /* while mounted */
    /* The access policy's audit trail (policy/audit.h), opened by
     * broker_mount; a reload reconfigures it, SIGHUP and SIGUSR1 reopen it
     * (service.c). */
    struct policy_audit_log *audit;
    /* The admin endpoint (admin.h), started by the command once mounted;
     * NULL: none. Stopped first by broker_stop: its pages read the store
     * and the scheduler the rest of the stop tears down. Main thread. */
    struct admin *admin;
    /* The resolved mountpoint (the path mountinfo shows), set by
     * broker_mount for the log lines up to the end of broker_run; "" before.
     * Main thread only. */
    char mountpoint[PATH_MAX];
    /* `exec` (set by the caller between broker_open and broker_mount, read
     * on the main thread): mount with allow_other, and leave the stop
     * signals to the supervisor (signals.h, SIGNALS_EXEC). */
    bool supervised;
    /* `mount --mount-namespace` (set by the caller between broker_open and
     * broker_mount; owned, freed by broker_close): the mountpoint is
     * prepared, mounted and unmounted in that namespace (fuse/mountns.h).
     * NULL: in ours. */
    struct mountns *mount_ns;
    /* Called after the filesystem was told of a change (the scheduler's
     * changed hook), on a fetch worker, with no scheduler or store lock
     * held; NULL: nothing. Set before broker_start, never changed after. */
    void (*changed)(void *arg, size_t idx, bool removed);
    void *changed_arg;
    /* broker_start's FUSE loop thread (main thread only). */
    pthread_t loop;
    bool loop_started;
    /* Set by the loop thread when fs_run returned; read by the main thread. */
    atomic_bool loop_ended;
    int loop_rc;   /* fs_run's result; read after loop_ended or the join */
    void (*loop_ended_cb)(void *arg);  /* called by the loop thread as it ends */
    void *loop_ended_arg;

    /* ---- the host service (service.h): `mount` only ---- */
    bool service;                  /* service_open ran: the fields below are set */
    const struct broker_ext *ext;  /* NULL, or the service's (set by service_open) */
    /* The configuration as given at start (owned) and cfg_load_opts flags:
     * a reload reads the same files the same way. Set by broker_open. */
    char *config_path;
    unsigned cfg_flags;
    /* The service manager (lib/notify.h); off unless the CLI found
     * $NOTIFY_SOCKET. Set before broker_mount, then only sent to. */
    struct notify notify;
    /* The pid file and reload outcomes (pidfile.h); fd -1 when none. Main
     * thread, and the reload thread writes the status file through it. */
    struct pidfile pidfile;
    /* The reload thread (service.c): woken by SIGHUP through a signalfd,
     * stopped through stop_fd. Main thread only, but for the fds it reads. */
    pthread_t reload_thread;
    bool reload_started;
    int reload_sig_fd, reload_stop_fd;
    /* Reload thread only (read by the main thread after the join): */
    unsigned long long reload_attempts, generation;
    /* Readiness (READY=1 once every required secret has a value): */
    pthread_mutex_t ready_lock;    /* protects the six below; a leaf but for
                                      the notify datagram sent under it */
    bool ready_armed;              /* broker_mount set it up */
    bool ready_sent;               /* READY=1 went out: reloads notify too */
    bool *ready_seen;              /* per secret of cfg: required and served once */
    size_t ready_n;                /* entries of ready_seen */
    bool ready_reloading;          /* a reload runs: events wait for its recount */
    size_t ready_missing;          /* required secrets never served yet */

    /* What the admin endpoint publishes (lib/metrics.h); made by
     * broker_open, lives until broker_close, across reloads. */
    struct metrics *metrics;
    long long started_real_ms;     /* CLOCK_REALTIME at broker_open */
    long long started_mono_ms;     /* CLOCK_MONOTONIC at broker_open */

    /* Written by broker_apply, read by its caller (the same thread). */
    struct broker_applied last_apply;
};

/* Load config_path and build backends, cache, store and scheduler (nothing
 * fetched, nothing mounted). 0, -EINVAL (configuration: exit 2) or another
 * negative errno, with one line in err. */
int broker_open(struct broker *b, const char *config_path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Prepare mountpoint (absolute; created if missing, a stale mount detached)
 * and mount the filesystem on its resolved path, with asynchronous signals
 * held until the signal table is installed (a TERM in between would leave
 * the mount behind); then wire the scheduler's change and settle hooks to
 * the filesystem. After broker_open. Logs "mounted", or its failure. 0, or
 * a negative errno with nothing left mounted: -ENOTDIR when the path is
 * not a directory (a configuration error), another one otherwise. */
int broker_mount(struct broker *b, const char *mountpoint, bool debug_fuse)
    __attribute__((warn_unused_result));
/* Start the refresh threads and serve until a stop signal (or a failure of
 * the loop), then broker_stop. After broker_mount. Logs the outcome
 * ("unmounted", or what failed). 0 after a clean stop, else a negative
 * errno. */
int broker_run(struct broker *b) __attribute__((warn_unused_result));
/* `exec`: start the refresh threads and the FUSE loop on its own thread
 * (which unblocks only SIGNALS_WAKE), then return at once. When the loop
 * ends by itself (the mount was taken away), that thread sets loop_ended
 * and calls ended(arg) if not NULL. After broker_mount with supervised
 * set. 0, or a negative errno with the failure logged and nothing started
 * (the caller still calls broker_stop). */
int broker_start(struct broker *b, void (*ended)(void *arg), void *arg)
    __attribute__((warn_unused_result));
/* The teardown in the order above; a no-op when not mounted. For a caller
 * that mounted but cannot go on to broker_run, and the end of `exec` (it
 * also ends broker_start's loop thread, between steps 4 and 5). */
void broker_stop(struct broker *b);
/* Give back what the backends hold (leases, tokens): step 6 of the stop,
 * and the end of a one-shot fetch (`check --fetch`). */
void broker_shutdown_backends(struct broker *b);
/* Frees everything broker_open built; idempotent. */
void broker_close(struct broker *b);

#endif
