/* scheduler.h - fetch every secret at start, in parallel, then keep each
 * fresh: refresh at its interval (±10% jitter) or when its lease says,
 * retry failures with backoff, run backend upkeep, log every transition.
 *
 * Secrets that name the same backend object (same backend, path and
 * version; only the #field differs) form one group and share every fetch:
 * one request, whatever the number of secrets or readers.
 */
#ifndef RS_SCHEDULER_H
#define RS_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include "engine/store.h"

struct backend;

/* Called after a secret's value changed or disappeared, without any store
 * lock held, so the filesystem can invalidate kernel caches. */
struct sched_hooks {
    void (*changed)(void *arg, size_t idx, bool removed);
    /* The first fetch attempt of secret idx has finished (whatever its
     * outcome); called once per secret, without scheduler locks held. */
    void (*settled)(void *arg, size_t idx);
    void *arg;
};

struct scheduler;

/* New scheduler over st and the nb backends (all borrowed). */
int scheduler_new(struct store *st, struct backend **backends, size_t nb, struct scheduler **out)
    __attribute__((warn_unused_result));
void scheduler_set_hooks(struct scheduler *sc, const struct sched_hooks *hooks);
/* Fetch every secret once, now, in parallel; returns when every attempt has
 * finished. Returns the number of secrets that failed. Not while started. */
size_t scheduler_fetch_all(struct scheduler *sc);
/* Copies secret idx's last error text ("" when none) into buf (len bytes,
 * cut to fit) and returns buf. Safe while workers run. */
char *scheduler_last_error(struct scheduler *sc, size_t idx, char *buf, size_t len);
/* Background work: fetches every secret at once (the cold start, logged as
 * "cold start done" when every first attempt has finished), then keeps
 * them fresh. Start once; stop joins every thread. */
int scheduler_start(struct scheduler *sc) __attribute__((warn_unused_result));
void scheduler_stop(struct scheduler *sc);
void scheduler_free(struct scheduler *sc);

/* A reload (docs/internals/reload.md). scheduler_pause stops the workers
 * from taking items and returns once none is busy (its fetch and hooks
 * done): from then on nothing writes the store or calls a hook.
 * scheduler_resume lets them go again and starts the workers new items
 * want. Reload thread only, never while scheduler_start or scheduler_stop
 * runs. */
void scheduler_pause(struct scheduler *sc);
void scheduler_resume(struct scheduler *sc);
/* While paused: serve st and the nb backends (borrowed; the old ones are no
 * longer used when this returns). carry[i] >= 0 names the secret of the
 * current store that secret i of st was copied from (store_new_from).
 * Groups whose members were all carried keep their due time (capped by the
 * new refresh), failure count and settled flag; backends kept (same
 * instance) keep their upkeep time; everything else is due now. 0, or
 * -ENOMEM with nothing changed. */
int scheduler_apply(struct scheduler *sc, struct store *st, struct backend **backends, size_t nb,
                    const long *carry) __attribute__((warn_unused_result));

#endif
