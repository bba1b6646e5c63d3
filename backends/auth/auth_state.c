/* auth_state.c - see auth_state.h. */
#include "backends/auth/auth_state.h"

#include <stdatomic.h>
#include <time.h>

#define AUTH_STATE_BITS 2
#define AUTH_STATE_MASK ((1ull << AUTH_STATE_BITS) - 1)
#define AUTH_EXPIRES_MAX ((long long)(~0ull >> (AUTH_STATE_BITS + 1)))

_Static_assert(BACKEND_AUTH_FAILING <= AUTH_STATE_MASK, "every state fits in AUTH_STATE_BITS");

void auth_state_set(struct auth_state *s, enum backend_auth_state st, long long expires_unix_ms)
{
    unsigned long long e = 0;
    if (expires_unix_ms > 0)
        e = (unsigned long long)(expires_unix_ms < AUTH_EXPIRES_MAX ? expires_unix_ms
                                                                    : AUTH_EXPIRES_MAX);
    atomic_store_explicit(&s->word, e << AUTH_STATE_BITS | ((unsigned long long)st & AUTH_STATE_MASK),
                          memory_order_release);
}

void auth_state_read(struct auth_state *s, struct backend_auth *out)
{
    unsigned long long w = atomic_load_explicit(&s->word, memory_order_acquire);
    out->state = (enum backend_auth_state)(w & AUTH_STATE_MASK);
    out->expires_unix_ms = (long long)(w >> AUTH_STATE_BITS);
}
