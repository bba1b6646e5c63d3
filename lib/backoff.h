/* backoff.h - exponential backoff after consecutive failures.
 *
 * One policy for every retry loop (the scheduler's fetches, token
 * refreshes, credential sources): the ceiling doubles from base_ms per
 * failure up to max_ms; "full jitter" (AWS Architecture Blog, "Exponential
 * Backoff And Jitter") draws the delay uniformly below the ceiling so
 * many clients failing together do not retry together. A server's
 * Retry-After is a floor the caller applies on top.
 */
#ifndef RS_BACKOFF_H
#define RS_BACKOFF_H

struct backoff {
    long long base_ms;  /* ceiling after the first failure */
    long long max_ms;   /* ceiling never passes this */
};

/* The ceiling after `failures` consecutive failures (0 failures: 0),
 * also capped at cap_ms when cap_ms > 0. Never overflows. */
long long backoff_ceiling(const struct backoff *b, unsigned failures, long long cap_ms);
/* Full jitter: uniform in [floor_ms, max(floor_ms, ceiling)]. */
long long backoff_full_jitter(const struct backoff *b, unsigned failures, long long cap_ms,
                              long long floor_ms);

#endif
