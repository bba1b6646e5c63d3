/* token.c - the access token on top of the token cache
 * (backends/auth/token_cache.h): the header of each request, the one new
 * token after Key Vault refuses one, and the scheduler's upkeep.
 *
 * The cache itself only logs in when there is no token or the one held
 * ends within a second; refreshing ahead is the provider's rule. Entra
 * tokens cannot be renewed, only replaced, so upkeep replaces the token
 * when 5 minutes are left, or at half its life when that comes first (a
 * token shorter than 10 minutes), as the SDKs' 300-second margin does for
 * the tokens Entra normally gives (60 to 90 minutes, 24 hours from IMDS).
 * token_due_in's 2/3 of the TTL suits Vault's renewals, not this.
 */
#include "backends/azure/azure_i.h"
#include "lib/clock.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>

#define AZURE_MAINTAIN_MAX_MS (60 * 1000LL)
#define AZURE_MAINTAIN_IDLE_MS 1000LL   /* no scope yet: look again soon, no I/O */

long long azure_due_in(const struct token_info *t, long long now_ms)
{
    long long ttl = t->life.ttl_ms;
    if (ttl <= 0)
        return LLONG_MAX;
    long long at = ttl - AZURE_REFRESH_LEFT_MS;
    if (at < ttl / 2)
        at = ttl / 2;
    return t->obtained_ms + at - now_ms;
}

int azure_token_header(struct azure *a, char **hdr, unsigned long *gen, char *err, size_t errlen)
{
    struct token_info ti;
    int rc = token_cache_get(a->tokens, TOKEN_FRESH, AZURE_AUTH_PREFIX, hdr, &ti, err, errlen);
    *gen = ti.gen;
    return rc;
}

static void say_refused(void *arg)
{
    azure_log(arg, LOG_WARN, NULL, "azure token refused by Key Vault (HTTP 401), getting a new one");
}

int azure_relogin(struct azure *a, unsigned long gen, char *err, size_t errlen)
{
    return token_cache_relogin(a->tokens, gen, say_refused, a, err, errlen);
}

/* Token upkeep, run by the scheduler: the first token as soon as the
 * scope is known, then a new one when the current one is due. A failed
 * refresh keeps the current token in use (fetches take it until it ends)
 * and is tried again after the cache's backoff. */
long long azure_maintain(void *ctx)
{
    struct azure *a = ctx;
    char err[AZURE_MSG_MAX] = "";
    struct token_info ti;

    pthread_mutex_lock(&a->lock);
    bool known = a->scope != NULL;
    pthread_mutex_unlock(&a->lock);
    if (!known)
        return AZURE_MAINTAIN_IDLE_MS;
    if (token_cache_get(a->tokens, TOKEN_ANY, NULL, NULL, &ti, err, sizeof(err)) < 0) {
        azure_log(a, LOG_ERROR, err, "azure login failed");
        return token_cache_backoff_ms(a->tokens);
    }
    if (azure_due_in(&ti, clock_mono_ms()) <= 0) {
        if (token_cache_relogin(a->tokens, ti.gen, NULL, NULL, err, sizeof(err)) < 0) {
            azure_log(a, LOG_WARN, err, "azure token refresh failed; the current token stays in "
                      "use until it ends");
            return token_cache_backoff_ms(a->tokens);
        }
        token_cache_info(a->tokens, &ti);
    }
    long long next = azure_due_in(&ti, clock_mono_ms());
    if (next > AZURE_MAINTAIN_MAX_MS)
        next = AZURE_MAINTAIN_MAX_MS;
    return next < 100 ? 100 : next;
}
