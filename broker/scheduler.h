/* scheduler.h - fetch every secret at start, then refresh each at its
 * interval (±10% jitter), backing off on failure, and log every transition. */
#ifndef RS_SCHEDULER_H
#define RS_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include "store.h"

/* Called after a secret's value changed or disappeared, without any store
 * lock held, so the filesystem can invalidate kernel caches. */
struct sched_hooks {
    void (*changed)(void *arg, size_t idx, bool removed);
    void *arg;
};

struct scheduler;

/* New scheduler over st (borrowed). */
int scheduler_new(struct store *st, struct scheduler **out) __attribute__((warn_unused_result));
void scheduler_set_hooks(struct scheduler *sc, const struct sched_hooks *hooks);
/* Fetch every secret once, now. Returns the number that failed. */
size_t scheduler_fetch_all(struct scheduler *sc);
/* Fetch one secret now; 0 or the negative errno of the failure (message in
 * err when given). Updates the store and logs like a scheduled refresh. */
int scheduler_refresh(struct scheduler *sc, size_t idx, char *err, size_t errlen);
/* Last error text of a secret ("" when none). Borrowed until the next refresh. */
const char *scheduler_last_error(const struct scheduler *sc, size_t idx);
/* Background refreshing; start once, stop joins the thread. */
int scheduler_start(struct scheduler *sc) __attribute__((warn_unused_result));
void scheduler_stop(struct scheduler *sc);
void scheduler_free(struct scheduler *sc);

#endif
