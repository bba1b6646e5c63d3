/* sched_policy.h - what the scheduler does with one fetch of a group: when
 * to fetch again and what happens to its members.
 *
 * Pure decisions (no threads, no store, no backend): the scheduler gathers
 * the inputs, calls sched_decide, then applies the result and logs. Kept
 * apart so every rule is unit-tested (tests/unit/test_scheduler.c).
 */
#ifndef RS_SCHED_POLICY_H
#define RS_SCHED_POLICY_H

#include <stdbool.h>
#include "lib/backoff.h"

/* No retry sooner than this after a transient failure. */
#define SCHED_MIN_RETRY_MS 50LL

/* A group's settings: the smallest of its members' and its backend's. */
struct sched_policy {
    long long refresh_ms;          /* the members' smallest refresh */
    long long max_stale_ms;        /* the members' smallest max_stale */
    const struct backoff *backoff; /* the backend's retry_base / retry_max (borrowed) */
    bool confirm_empty;            /* BACKEND_CAP_CONFIRM_EMPTY */
};

/* What one fetch of the group returned (rc and struct fetch_result). */
struct sched_outcome {
    int rc;
    bool unchanged;                /* the value served is still valid */
    bool empty;                    /* the value read is empty */
    long long valid_ms;            /* > 0: a lease says when to come back */
    bool retryable;                /* a failure is transient */
    long long retry_after_ms;      /* > 0: the server asked us to wait */
    /* Whether a member serves a non-empty value now. Asked only about an
     * empty read that could be held back (it reads the store). */
    bool (*serving)(void *arg);
    void *arg;
};

/* What a group remembers between its fetches; owned by the worker that
 * runs the group's fetch (one at a time), so it has no lock. */
struct sched_state {
    unsigned failures;             /* consecutive failed fetches */
    bool empty_seen;               /* the last read was empty and held back */
};

enum sched_action {
    SCHED_SUCCESS,     /* a value: apply it to every member */
    SCHED_UNCHANGED,   /* the value served stays valid: touch every member */
    SCHED_HELD_BACK,   /* an empty read over a non-empty value: members untouched */
    SCHED_FAILURE,     /* record the failure on every member */
    SCHED_REMOVED,     /* the object is gone (-ENOENT): drop every member's value */
    SCHED_NOTHING,     /* cancelled (shutting down): nothing failed, nothing to log */
};

struct sched_decision {
    enum sched_action action;
    long long delay_ms;            /* until the group's next fetch */
};

/* Decide what one fetch outcome means for a group and when to fetch it
 * again; updates *state. The delay:
 * - success (held back or not): the refresh interval ±10%, or what the
 *   lease says (valid_ms); never past 90% of max_stale, so a healthy secret
 *   never fails closed;
 * - transient failure: full-jitter exponential backoff from retry_base,
 *   capped at retry_max and at the refresh interval, never under
 *   SCHED_MIN_RETRY_MS, and never sooner than the server's Retry-After;
 * - permanent failure (or the object is gone): the refresh interval ±10%
 *   (Retry-After still a floor), so a fixed policy or a recreated secret is
 *   picked up without hammering;
 * - cancelled: 0, and the failure count stays.
 * An empty value held back (confirm_empty): a file rewritten in place reads
 * empty in between, so an empty read replaces a non-empty served value only
 * when the next read is empty too; a failure, an unchanged or a non-empty
 * read in between starts over. */
struct sched_decision sched_decide(const struct sched_policy *p, const struct sched_outcome *o,
                                   struct sched_state *state);

#endif
