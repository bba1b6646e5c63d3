/* token_cache.h - one login token shared by a provider's threads.
 *
 * Vault Agent's split (hashicorp/vault command/agentproxyshared/auth): the
 * provider knows how to log in (a callback); the cache knows when to, and
 * how to back off. It gives every caller the one token it holds, logs in
 * when there is none or it is about to end, lets one thread log in while
 * the others wait for that login's answer (single flight), answers a
 * failed login to everyone until its backoff has passed, and logs in again
 * when the server refuses the token (401/403).
 *
 * The token lives in secret memory and is wiped when replaced or freed.
 * What a provider learns about a token later (a lookup, a renewal) it
 * writes back with token_cache_set_life; how it renews is its own
 * business. The cache logs nothing: messages stay the provider's.
 */
#ifndef RS_TOKEN_CACHE_H
#define RS_TOKEN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include "backends/auth/auth_state.h"
#include "lib/backoff.h"

/* A token this close to its end is not handed out: the request would
 * race its expiry. A fresh login replaces it first. */
#define TOKEN_CACHE_EARLY_MS 1000

struct token_cache;

/* Why the cache asks for a login (a provider may log in differently). */
enum token_login_why {
    TOKEN_LOGIN_NEEDED,   /* no token yet, or the one held has (nearly) ended */
    TOKEN_LOGIN_REPLACE,  /* the token held was refused, or is due for replacement */
};

/* What is known of a token's lifetime. */
struct token_life {
    long long ttl_ms;     /* from when it was obtained; 0: does not expire (or not known yet) */
    long long renew_ms;   /* what a renewal asks for (tokens that renew, such as Vault's) */
    bool renewable;
    unsigned flags;       /* the provider's own bits, kept with the token */
    long long retry_after_ms; /* a failed login only: the server's Retry-After;
                                 the failure stands at least this long */
};

/* A snapshot of the token held. */
struct token_info {
    unsigned long gen;      /* bumped at every new token; 0: none yet */
    long long obtained_ms;  /* when its life was last set, on the cache's clock */
    struct token_life life;
};

struct token_cache_conf {
    /* Log in: *token new (secret memory, NUL-terminated; the cache takes
     * it) with what is known of its life. 0, or a negative errno with a
     * message in err (never the token). Runs with the cache locked, so
     * it must not call back into the cache. */
    int (*login)(void *arg, enum token_login_why why, char **token, struct token_life *life,
                 char *err, size_t errlen);
    void *arg;                     /* for login and now_ms; borrowed */
    struct backoff backoff;        /* a failed login stands for backoff_ceiling(failures) */
    long long (*now_ms)(void *arg); /* NULL: clock_mono_ms (tests pass a fake) */
    long long (*real_ms)(void *arg); /* NULL: clock_real_ms, the wall clock that
                                        token_cache_status's expiry is on */
};

/* A new cache holding no token; conf is copied. 0 or -ENOMEM. */
int token_cache_new(const struct token_cache_conf *conf, struct token_cache **out)
    __attribute__((warn_unused_result));
/* Wipes the token. NULL is a no-op. */
void token_cache_free(struct token_cache *tc);

/* What token_cache_get may do to have a token. */
enum token_want {
    TOKEN_FRESH,  /* log in when there is none or it ends within TOKEN_CACHE_EARLY_MS */
    TOKEN_ANY,    /* log in only when there is none */
    TOKEN_HELD,   /* never log in: -ENOENT when there is none */
};

/* The token held, after a login if want asks for one (single flight: a
 * caller arriving during a login waits for its answer; a login that
 * failed within its backoff is answered again, not retried). *tok (when
 * tok is not NULL) is a new copy in secret memory, after prefix (may be
 * NULL), e.g. "Authorization: Bearer ". *info (may be NULL) is filled
 * even on failure. 0 or a negative errno with a message in err. */
int token_cache_get(struct token_cache *tc, enum token_want want, const char *prefix, char **tok,
                    struct token_info *info, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The token of generation gen was refused by the server (401/403), or is
 * to be replaced: log in again now, unless a newer token has replaced it
 * meanwhile (then 0 at once). say (may be NULL) runs first, cache locked,
 * only when gen is still current, also when a recent failure answers:
 * the provider's log line. The old token stays until a login replaces
 * it. 0 or the login's error. */
int token_cache_relogin(struct token_cache *tc, unsigned long gen, void (*say)(void *), void *say_arg,
                        char *err, size_t errlen) __attribute__((warn_unused_result));

/* Set what is now known of the life of token gen (a lookup or renewal
 * answered); obtained_ms becomes now. 0, or -ESTALE when a newer token
 * has replaced it. */
int token_cache_set_life(struct token_cache *tc, unsigned long gen, const struct token_life *life)
    __attribute__((warn_unused_result));

/* Forget the token held and any failed login standing (the next
 * token_cache_get logs in at once, and so does a relogin of the
 * forgotten generation). For a token obtained on a guess that
 * turned out wrong (Azure's scope before Key Vault's challenge names it). */
void token_cache_forget(struct token_cache *tc);

/* The token held, without logging in (gen 0 when none). */
void token_cache_info(struct token_cache *tc, struct token_info *out);

/* The login's state for the admin endpoint, without the cache's lock
 * (held across a login: this must not wait for one); out->method is left
 * alone. What it reads was published under the lock at each change:
 *
 *   PENDING  no login yet, or the token was forgotten (token_cache_forget)
 *            and none has replaced it
 *   OK       a token is held and the last login worked
 *   FAILING  the last login failed. Also when a token is still held (a
 *            refresh ahead or a re-login failed): the login is what is
 *            broken, and acting before the held token ends is the point
 *            of showing it; expires_unix_ms then still says when that
 *            token ends (how long fetches keep working), 0 when none is
 *            held
 *
 * expires_unix_ms: the wall-clock end of the token held (its TTL from
 * when its life was last set, taken on the real clock at that moment), 0
 * when none is held or its TTL is not known or it does not expire. */
void token_cache_status(struct token_cache *tc, struct backend_auth *out);

/* How long the last failed login stands: backoff_ceiling of the
 * consecutive failures (at least that of one failure), or the server's
 * Retry-After when that is longer. */
long long token_cache_backoff_ms(struct token_cache *tc);

/* Refresh ahead of expiry: milliseconds until t reaches 2/3 of its TTL,
 * when it is due for renewal or replacement (<= 0: due now); LLONG_MAX for
 * a token that does not expire. */
long long token_due_in(const struct token_info *t, long long now_ms);

#endif
