/* backoff.c - see backoff.h. */
#include "lib/backoff.h"

#include <sodium.h>
#include <stdint.h>

long long backoff_ceiling(const struct backoff *b, unsigned failures, long long cap_ms)
{
    if (failures == 0)
        return 0;
    long long ceiling = b->base_ms;
    for (unsigned i = 1; i < failures && ceiling < b->max_ms; i++)
        ceiling *= 2;
    if (ceiling > b->max_ms)
        ceiling = b->max_ms;
    if (cap_ms > 0 && ceiling > cap_ms)
        ceiling = cap_ms;
    return ceiling;
}

long long backoff_full_jitter(const struct backoff *b, unsigned failures, long long cap_ms,
                              long long floor_ms)
{
    long long ceiling = backoff_ceiling(b, failures, cap_ms);
    long long d = (long long)randombytes_uniform(
        (uint32_t)(ceiling < UINT32_MAX ? ceiling + 1 : UINT32_MAX));
    return d < floor_ms ? floor_ms : d;
}
