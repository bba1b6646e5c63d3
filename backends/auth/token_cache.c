/* token_cache.c - see token_cache.h. */
#include "backends/auth/token_cache.h"
#include "lib/clock.h"
#include "lib/secmem.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_CACHE_ERR_MAX 512   /* a provider's message, e.g. Azure's default chain */

struct token_cache {
    struct token_cache_conf conf;    /* immutable */
    /* Held across a login (the login callback's network round trip) on
     * purpose: that is the single flight — everyone who needs a token
     * meanwhile waits here, then finds the new token or the failure. */
    pthread_mutex_t lock;
    /* protected by lock: */
    char *token;                     /* secret memory */
    struct token_info info;
    unsigned failures;               /* consecutive failed logins */
    /* The last failed login, answered to everyone who asks until its
     * backoff passes, so an outage costs one login attempt per backoff
     * step rather than one per waiting caller. */
    bool failed;
    long long failed_ms;
    long long failed_wait_ms;        /* how long it stands: backoff or Retry-After */
    int failed_rc;
    char failed_err[TOKEN_CACHE_ERR_MAX];
    long long expires_real_ms;       /* the token's end on the real clock; 0: none known */
    /* Written under lock at each change of the above (publish), read
     * without it (token_cache_status). */
    struct auth_state status;
};

static long long now_of(const struct token_cache *tc)
{
    return tc->conf.now_ms ? tc->conf.now_ms(tc->conf.arg) : clock_mono_ms();
}

static long long real_of(const struct token_cache *tc)
{
    return tc->conf.real_ms ? tc->conf.real_ms(tc->conf.arg) : clock_real_ms();
}

/* The token's life was just set: its end on the real clock. The cache's
 * clock is monotonic (deadlines must not jump with the wall clock), so
 * the end is carried over as the time left from this moment on both
 * clocks. lock held. */
static void life_set(struct token_cache *tc)
{
    tc->info.obtained_ms = now_of(tc);
    tc->expires_real_ms = tc->info.life.ttl_ms > 0 ? real_of(tc) + tc->info.life.ttl_ms : 0;
}

/* Publish the state for token_cache_status. lock held. */
static void publish(struct token_cache *tc)
{
    enum backend_auth_state st = tc->failed ? BACKEND_AUTH_FAILING
                                 : tc->token ? BACKEND_AUTH_OK : BACKEND_AUTH_PENDING;
    auth_state_set(&tc->status, st, tc->token ? tc->expires_real_ms : 0);
}

int token_cache_new(const struct token_cache_conf *conf, struct token_cache **out)
{
    struct token_cache *tc = calloc(1, sizeof(*tc));
    if (!tc)
        return -ENOMEM;
    tc->conf = *conf;
    pthread_mutex_init(&tc->lock, NULL);
    publish(tc);
    *out = tc;
    return 0;
}

void token_cache_free(struct token_cache *tc)
{
    if (!tc)
        return;
    secmem_free(tc->token);
    secmem_wipe(tc->failed_err, sizeof(tc->failed_err));
    pthread_mutex_destroy(&tc->lock);
    free(tc);
}

long long token_cache_backoff_ms(struct token_cache *tc)
{
    pthread_mutex_lock(&tc->lock);
    long long ms = tc->failed ? tc->failed_wait_ms : backoff_ceiling(&tc->conf.backoff, 1, 0);
    pthread_mutex_unlock(&tc->lock);
    return ms;
}

/* Log in unless a login failed within its backoff: then that failure is
 * the answer. lock held. */
static int login_or_recent_failure(struct token_cache *tc, enum token_login_why why, char *err,
                                   size_t errlen)
{
    if (tc->failed && now_of(tc) - tc->failed_ms < tc->failed_wait_ms) {
        snprintf(err, errlen, "%s", tc->failed_err);
        return tc->failed_rc;
    }
    char *tok = NULL;
    struct token_life life = {0};
    int rc = tc->conf.login(tc->conf.arg, why, &tok, &life, err, errlen);
    if (rc == 0 && !tok) {
        snprintf(err, errlen, "login gave no token");
        rc = -EPROTO;
    }
    if (rc == 0) {
        secmem_free(tc->token);
        tc->token = tok;
        tc->info.gen++;
        tc->info.life = life;
        life_set(tc);
        tc->failures = 0;
        tc->failed = false;
        publish(tc);
        return 0;
    }
    secmem_free(tok);
    tc->failures++;
    tc->failed = true;
    tc->failed_ms = now_of(tc);
    tc->failed_wait_ms = backoff_ceiling(&tc->conf.backoff, tc->failures, 0);
    if (life.retry_after_ms > tc->failed_wait_ms)
        tc->failed_wait_ms = life.retry_after_ms;   /* the server said when */
    tc->failed_rc = rc < 0 ? rc : -EIO;
    snprintf(tc->failed_err, sizeof(tc->failed_err), "%s", err);
    publish(tc);
    return tc->failed_rc;
}

/* A new copy of the token after prefix, in secret memory. lock held. */
static char *copy_token(const struct token_cache *tc, const char *prefix)
{
    size_t p = prefix ? strlen(prefix) : 0, n = strlen(tc->token);
    char *s = secmem_alloc(p + n + 1);
    if (s) {
        if (p)
            memcpy(s, prefix, p);
        memcpy(s + p, tc->token, n + 1);
    }
    return s;
}

int token_cache_get(struct token_cache *tc, enum token_want want, const char *prefix, char **tok,
                    struct token_info *info, char *err, size_t errlen)
{
    int rc = 0;
    if (tok)
        *tok = NULL;
    pthread_mutex_lock(&tc->lock);
    if (want == TOKEN_HELD) {
        if (!tc->token) {
            snprintf(err, errlen, "no token");
            rc = -ENOENT;
        }
    } else if (!tc->token ||
               (want == TOKEN_FRESH && tc->info.life.ttl_ms > 0 &&
                now_of(tc) >= tc->info.obtained_ms + tc->info.life.ttl_ms - TOKEN_CACHE_EARLY_MS)) {
        rc = login_or_recent_failure(tc, TOKEN_LOGIN_NEEDED, err, errlen);
    }
    if (rc == 0 && tok && !(*tok = copy_token(tc, prefix)))
        rc = -ENOMEM;
    if (info)
        *info = tc->info;
    pthread_mutex_unlock(&tc->lock);
    return rc;
}

int token_cache_relogin(struct token_cache *tc, unsigned long gen, void (*say)(void *), void *say_arg,
                        char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&tc->lock);
    if (tc->info.gen == gen) {
        if (say)
            say(say_arg);
        rc = login_or_recent_failure(tc, TOKEN_LOGIN_REPLACE, err, errlen);
    }
    pthread_mutex_unlock(&tc->lock);
    return rc;
}

int token_cache_set_life(struct token_cache *tc, unsigned long gen, const struct token_life *life)
{
    int rc = -ESTALE;
    pthread_mutex_lock(&tc->lock);
    if (tc->token && tc->info.gen == gen) {
        tc->info.life = *life;
        life_set(tc);
        publish(tc);
        rc = 0;
    }
    pthread_mutex_unlock(&tc->lock);
    return rc;
}

void token_cache_forget(struct token_cache *tc)
{
    pthread_mutex_lock(&tc->lock);
    secmem_free(tc->token);
    tc->token = NULL;
    memset(&tc->info.life, 0, sizeof(tc->info.life));
    tc->failures = 0;
    tc->failed = false;
    tc->expires_real_ms = 0;
    publish(tc);
    pthread_mutex_unlock(&tc->lock);
}

void token_cache_info(struct token_cache *tc, struct token_info *out)
{
    pthread_mutex_lock(&tc->lock);
    *out = tc->info;
    pthread_mutex_unlock(&tc->lock);
}

void token_cache_status(struct token_cache *tc, struct backend_auth *out)
{
    auth_state_read(&tc->status, out);
}

long long token_due_in(const struct token_info *t, long long now_ms)
{
    if (t->life.ttl_ms <= 0)
        return LLONG_MAX;
    return t->obtained_ms + t->life.ttl_ms * 2 / 3 - now_ms;
}
