/* token.c - Vault's login token on top of the token cache
 * (backends/auth/token_cache.h): the token for each request, the check of
 * a token Vault answered 403 to, and the scheduler's upkeep — the first
 * login, the lookup of a file token, renewal at 2/3 of the TTL, a fresh
 * login when renewal is refused or the token is not renewable.
 *
 * Old tokens are left to expire, not revoked: Vault would revoke the
 * leases created under them, which may still be served (they are re-read
 * before it expires).
 */
#include "backends/vault/vault_i.h"
#include "lib/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define VAULT_MAINTAIN_MAX_MS (60 * 1000LL)

char *vault_token_hdr(const char *token)
{
    static const char prefix[] = VAULT_TOKEN_PREFIX;
    size_t n = strlen(token);
    char *h = secmem_alloc(sizeof(prefix) + n);
    if (h) {
        memcpy(h, prefix, sizeof(prefix) - 1);
        memcpy(h + sizeof(prefix) - 1, token, n + 1);
    }
    return h;
}

/* Every token, whatever login made it, belongs to the token auth method
 * ("token" unless the token method's own mount says otherwise). */
const char *vault_token_mount(const struct vault *v)
{
    return v->method == AUTH_TOKEN ? v->auth_mount : "token";
}

/* A lookup-self answer: the token's remaining TTL (0: never expires), what
 * to renew it by and whether it is renewable. */
UNITTEST_STATIC int vault_lookup_answer(const struct http_response *r, long long *ttl,
                                        long long *increment, bool *renewable, char *err,
                                        size_t errlen)
{
    json_t *root = NULL;
    int rc = vault_json_reply("token lookup", r, NULL, &root, err, errlen);
    if (rc == 0) {
        const json_t *d = json_object_get(root, "data");
        *ttl = vault_ttl_of(json_object_get(d, "ttl"));
        /* Renew by what the token was created with (or its period), not
         * by what is left of it. */
        *increment = vault_ttl_of(json_object_get(d, "period"));
        if (*increment == 0)
            *increment = vault_ttl_of(json_object_get(d, "creation_ttl"));
        *renewable = json_is_true(json_object_get(d, "renewable"));
    }
    json_decref(root);
    return rc;
}

int vault_lookup_self(struct vault *v, const char *hdr, long long *ttl, long long *increment,
                      bool *renewable, char *err, size_t errlen)
{
    struct http_response r;
    char path[VAULT_PATH_MAX];
    int rc;

    http_response_init(&r);
    snprintf(path, sizeof(path), "auth/%s/lookup-self", vault_token_mount(v));
    rc = vault_raw_call(v, "GET", path, NULL, hdr, &r, err, errlen);
    if (rc == 0)
        rc = vault_lookup_answer(&r, ttl, increment, renewable, err, errlen);
    http_response_cleanup(&r);
    return rc;
}

int vault_token_header(struct vault *v, char **hdr, unsigned long *gen, char *err, size_t errlen)
{
    struct token_info ti;
    int rc = token_cache_get(v->tokens, TOKEN_FRESH, VAULT_TOKEN_PREFIX, hdr, &ti, err, errlen);
    *gen = ti.gen;
    return rc;
}

/* Vault answers 403 both for a dead token and for a path the token may not
 * read. Ask Vault about the token itself (lookup-self is in every token's
 * default policy): only a token Vault rejects there is worth a new login. */
bool vault_token_rejected(struct vault *v, const char *hdr)
{
    long long ttl, inc;
    bool renewable;
    char err[384];
    int rc = vault_lookup_self(v, hdr, &ttl, &inc, &renewable, err, sizeof(err));
    return rc == -EACCES;
}

static void say_rejected(void *arg)
{
    vault_log(arg, LOG_WARN, NULL, "vault token rejected, logging in again");
}

int vault_relogin(struct vault *v, unsigned long gen, char *err, size_t errlen)
{
    return token_cache_relogin(v->tokens, gen, say_rejected, v, err, errlen);
}

unsigned long vault_token_gen(struct vault *v)
{
    struct token_info ti;
    token_cache_info(v->tokens, &ti);
    return ti.gen;
}

/* Vault revokes a token's leases when the token goes: 85% of what is left
 * of the token, or limit when the token does not expire. */
long long vault_token_bound_ms(struct vault *v, long long limit)
{
    struct token_info ti;
    token_cache_info(v->tokens, &ti);
    bool expires = ti.life.ttl_ms > 0;
    long long left = expires ? ti.obtained_ms + ti.life.ttl_ms - clock_mono_ms() : 0;
    if (!expires)
        return limit;
    left = left * 85 / 100;
    if (left < 1000)
        left = 1000;
    return left < limit ? left : limit;
}

/* A renew-self answer: 0 and the new TTL; 1 when Vault refused; <0 for a
 * transient status or a malformed answer. */
UNITTEST_STATIC int vault_renew_self_answer(const struct http_response *r, long long *ttl,
                                            bool *renewable, char *err, size_t errlen)
{
    json_t *root = NULL;
    if (r->status != 200 && !http_status_retryable(r->status)) {
        vault_status_error("token renewal", r, NULL, err, errlen);
        return 1;
    }
    int rc = vault_json_reply("token renewal", r, NULL, &root, err, errlen);
    if (rc == 0) {
        const json_t *a = json_object_get(root, "auth");
        *ttl = vault_ttl_of(json_object_get(a, "lease_duration"));
        *renewable = json_is_true(json_object_get(a, "renewable"));
    }
    json_decref(root);
    return rc;
}

/* POST renew-self with hdr. 0 and the new TTL; 1 when Vault refused (the
 * token cannot be renewed: log in afresh); <0 on transport trouble or a
 * transient status (keep the token, try again soon). */
static int renew_self(struct vault *v, const char *hdr, long long increment, long long *ttl,
                      bool *renewable, char *err, size_t errlen)
{
    struct http_response r;
    struct secbuf body;
    char path[VAULT_PATH_MAX], inc[64];
    int n = snprintf(inc, sizeof(inc), "{\"increment\":\"%llds\"}", increment);
    int rc;

    http_response_init(&r);
    secbuf_init(&body, sizeof(inc));
    snprintf(path, sizeof(path), "auth/%s/renew-self", vault_token_mount(v));
    rc = secbuf_append(&body, inc, (size_t)n);
    if (rc == 0)
        rc = vault_raw_call(v, "POST", path, &body, hdr, &r, err, errlen);
    if (rc == 0)
        rc = vault_renew_self_answer(&r, ttl, renewable, err, errlen);
    secbuf_cleanup(&body);
    http_response_cleanup(&r);
    return rc;
}

struct refused {
    struct vault *v;
    const char *err;
};

static void say_refused(void *arg)
{
    const struct refused *r = arg;
    vault_log(r->v, LOG_WARN, r->err, "vault token renewal refused, logging in again");
}

/* Token upkeep, run by the scheduler. Lookups and renewals run without the
 * token cache locked, so fetches keep using the current token meanwhile;
 * what they learn applies only to the token they asked about. */
long long vault_maintain(void *ctx)
{
    struct vault *v = ctx;
    char err[512] = "";
    long long next, ttl = 0, inc = 0, soon = 0;
    bool renewable = false;
    struct token_info ti;
    char *hdr = NULL;

    int rc = token_cache_get(v->tokens, TOKEN_ANY, VAULT_TOKEN_PREFIX, &hdr, &ti, err,
                             sizeof(err));
    unsigned long gen = ti.gen;
    bool lookup = rc == 0 && (ti.life.flags & VAULT_TOKEN_NEEDS_LOOKUP);
    bool due = rc == 0 && !lookup && ti.life.ttl_ms > 0 &&
               token_due_in(&ti, clock_mono_ms()) <= 0;
    bool renew = due && ti.life.renewable;

    if (lookup)
        rc = vault_lookup_self(v, hdr, &ttl, &inc, &renewable, err, sizeof(err));
    else if (renew)
        rc = renew_self(v, hdr, ti.life.renew_ms / 1000, &ttl, &renewable, err, sizeof(err));
    secmem_free(hdr);

    struct token_info cur;
    token_cache_info(v->tokens, &cur);
    if (gen != cur.gen) {
        rc = 0;   /* someone installed a new token meanwhile: plan for that one */
    } else if (lookup && rc == 0) {
        struct token_life l = cur.life;
        l.ttl_ms = ttl * 1000;
        l.renew_ms = (inc > 0 ? inc : ttl) * 1000;
        l.renewable = renewable;
        l.flags &= ~VAULT_TOKEN_NEEDS_LOOKUP;
        if (token_cache_set_life(v->tokens, gen, &l) == 0)
            vault_log(v, LOG_INFO, NULL, "vault token looked up");
    } else if (renew && rc == 0) {
        /* A renewal capped by the token's max TTL is respected: renew
         * again at 2/3 of what was granted; a grant too short to be worth
         * renewing leads to a fresh login next time. */
        struct token_life l = cur.life;
        l.ttl_ms = ttl * 1000;
        l.renewable = renewable && ttl >= 3;
        if (token_cache_set_life(v->tokens, gen, &l) == 0)
            vault_log(v, LOG_INFO, NULL, "vault token renewed");
    } else if ((renew && rc == 1) || (due && !renew)) {
        struct refused said = {v, err};
        rc = token_cache_relogin(v->tokens, gen, renew ? say_refused : NULL, &said, err,
                                 sizeof(err));
    } else if (renew && rc < 0) {
        /* Transient: keep the token; try again soon, and log in afresh
         * only once it is about to expire. */
        long long left = cur.obtained_ms + cur.life.ttl_ms - clock_mono_ms();
        vault_log(v, LOG_WARN, err, "vault token renewal failed, will retry");
        if (left < 5000) {
            rc = token_cache_relogin(v->tokens, gen, NULL, NULL, err, sizeof(err));
        } else {
            rc = 0;
            soon = left / 4 < 30000 ? left / 4 : 30000;
        }
    }
    if (rc < 0) {
        vault_log(v, LOG_ERROR, err, lookup ? "vault token lookup failed" : "vault login failed");
        return token_cache_backoff_ms(v->tokens);
    }
    /* At most a minute between checks: a re-login after a 403 may have
     * brought a token with a shorter TTL than the one planned for. */
    token_cache_info(v->tokens, &cur);
    next = soon > 0 ? soon : VAULT_MAINTAIN_MAX_MS;
    if (!soon && cur.life.ttl_ms > 0 && token_due_in(&cur, clock_mono_ms()) < next)
        next = token_due_in(&cur, clock_mono_ms());
    if (next < 100)
        next = 100;
    return next;
}

void vault_token_revoke(struct vault *v, const char *hdr, bool from_login)
{
    /* A token we logged in for is ours to give back; a token from a file
     * belongs to whoever wrote the file. */
    if (!from_login)
        return;
    struct http_response r;
    char path[VAULT_PATH_MAX], err[512];
    http_response_init(&r);
    snprintf(path, sizeof(path), "auth/%s/revoke-self", vault_token_mount(v));
    if (vault_raw_call(v, "POST", path, NULL, hdr, &r, err, sizeof(err)) == 0 &&
        r.status / 100 == 2)
        vault_log(v, LOG_INFO, NULL, "vault token revoked");
    http_response_cleanup(&r);
}
