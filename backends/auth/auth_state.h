/* auth_state.h - a login's state as the admin endpoint shows it
 * (struct backend_auth), published for readers that must never wait.
 *
 * Whoever changes a login writes the state and the credential's end here,
 * under its own lock; auth_status (provider.h) reads it with no lock at
 * all, since the locks around a login are held across its network round
 * trip. Both live in one atomic word, so a reader never pairs the state
 * of one login with the expiry of another.
 */
#ifndef RS_AUTH_STATE_H
#define RS_AUTH_STATE_H

#include "backends/core/provider.h"

struct auth_state {
    /* expires_unix_ms << 2 | state: a wall-clock millisecond count fits
     * in 62 bits for the next hundred million years. */
    _Atomic unsigned long long word;
};

/* Publish st with the credential's end (wall clock ms; <= 0: unknown or
 * never). */
void auth_state_set(struct auth_state *s, enum backend_auth_state st, long long expires_unix_ms);
/* Fill out->state and out->expires_unix_ms (not out->method) from what
 * was published last; a state never set reads BACKEND_AUTH_NONE. */
void auth_state_read(struct auth_state *s, struct backend_auth *out);

#endif
