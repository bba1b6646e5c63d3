/* sched_policy.c - see sched_policy.h. */
#include "engine/sched_policy.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>

/* ms ± 10%, uniformly. */
static long long jittered(long long ms)
{
    long long spread = ms / 5;   /* 20% wide: ±10% */
    if (spread <= 0)
        return ms;
    return ms - ms / 10 +
           (long long)randombytes_uniform((uint32_t)(spread < UINT32_MAX ? spread : UINT32_MAX));
}

/* Whether a successful read r is held back (see sched_decide). */
static bool hold_back_empty(const struct sched_policy *p, const struct sched_outcome *o,
                            struct sched_state *state)
{
    if (!p->confirm_empty || o->unchanged || !o->empty) {
        state->empty_seen = false;
        return false;
    }
    if (!o->serving(o->arg) || state->empty_seen) {
        state->empty_seen = false;   /* confirmed (or nothing to protect): take it */
        return false;
    }
    state->empty_seen = true;
    return true;
}

struct sched_decision sched_decide(const struct sched_policy *p, const struct sched_outcome *o,
                                   struct sched_state *state)
{
    struct sched_decision d;
    long long cap = p->max_stale_ms * 9 / 10;

    if (o->rc == 0) {
        state->failures = 0;
        if (hold_back_empty(p, o, state))
            d.action = SCHED_HELD_BACK;
        else
            d.action = o->unchanged ? SCHED_UNCHANGED : SCHED_SUCCESS;
        d.delay_ms = o->valid_ms > 0 ? o->valid_ms : jittered(p->refresh_ms);
        if (d.delay_ms > cap)
            d.delay_ms = cap;
        return d;
    }
    state->empty_seen = false;   /* a failure breaks "two consecutive reads" */
    if (o->rc == -ECANCELED)
        return (struct sched_decision){.action = SCHED_NOTHING, .delay_ms = 0};
    state->failures++;
    d.action = o->rc == -ENOENT ? SCHED_REMOVED : SCHED_FAILURE;
    if (o->rc == -ENOENT || !o->retryable)
        d.delay_ms = jittered(p->refresh_ms);
    else
        d.delay_ms = backoff_full_jitter(p->backoff, state->failures, p->refresh_ms,
                                         SCHED_MIN_RETRY_MS);
    if (o->retry_after_ms > d.delay_ms)
        d.delay_ms = o->retry_after_ms;
    return d;
}
