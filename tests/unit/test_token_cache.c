/* test_token_cache.c - backends/auth/token_cache: one login for many
 * callers, refresh ahead of expiry, backoff after a failed login, a fresh
 * login after the server refuses the token. A fake clock drives time; the
 * login callback counts its calls. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backends/auth/token_cache.h"
#include "broker/hardening.h"
#include "lib/secmem.h"
#include "ck_main.h"

struct fake {
    long long now;                 /* the fake clock */
    int logins;                    /* calls of the login callback */
    enum token_login_why last_why;
    int fail;                      /* 0, or the errno a login fails with */
    long long ttl_ms;              /* of each new token */
    long sleep_ms;                 /* a login's round trip */
    int said;                      /* calls of the say callback */
    long long retry_after_ms;      /* a failed login's Retry-After */
    long long real;                /* the fake wall clock */
    sem_t *entered, *release;      /* non-NULL: a login says it runs, then waits */
};

static long long fake_now(void *arg)
{
    return ((struct fake *)arg)->now;
}

static long long fake_real(void *arg)
{
    return ((struct fake *)arg)->real;
}

static int fake_login(void *arg, enum token_login_why why, char **tok, struct token_life *life,
                      char *err, size_t errlen)
{
    struct fake *f = arg;
    char t[32];
    f->logins++;
    f->last_why = why;
    if (f->entered) {
        sem_post(f->entered);
        while (sem_wait(f->release) < 0 && errno == EINTR)
            ;
    }
    if (f->sleep_ms) {
        struct timespec ts = {0, f->sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (f->fail) {
        snprintf(err, errlen, "login %d refused", f->logins);
        life->retry_after_ms = f->retry_after_ms;
        return -f->fail;
    }
    snprintf(t, sizeof(t), "tok-%d", f->logins);
    *tok = secmem_alloc(strlen(t) + 1);
    ck_assert_ptr_nonnull(*tok);
    memcpy(*tok, t, strlen(t) + 1);
    life->ttl_ms = f->ttl_ms;
    life->renewable = false;
    return 0;
}

static struct token_cache *cache_of(struct fake *f)
{
    struct token_cache_conf c = {
        .login = fake_login, .arg = f, .now_ms = fake_now, .real_ms = fake_real,
        .backoff = {.base_ms = 1000, .max_ms = 60000},
    };
    struct token_cache *tc = NULL;
    ck_assert_int_eq(token_cache_new(&c, &tc), 0);
    return tc;
}

static void setup(void)
{
    char e[256];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
}

/* get(TOKEN_FRESH) and expect tok-<n> of generation gen. */
static void expect_token(struct token_cache *tc, const char *want, unsigned long gen)
{
    char *tok = NULL, err[128] = "";
    struct token_info ti;
    ck_assert_int_eq(token_cache_get(tc, TOKEN_FRESH, "Bearer ", &tok, &ti, err, sizeof(err)), 0);
    ck_assert_str_eq(tok, want);
    ck_assert_uint_eq(ti.gen, gen);
    secmem_free(tok);
}

struct racer {
    struct token_cache *tc;
    pthread_barrier_t *start;
    unsigned long gen;
    int rc;
    char tok[32];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    char *tok = NULL, err[128];
    struct token_info ti;
    pthread_barrier_wait(r->start);
    r->rc = token_cache_get(r->tc, TOKEN_FRESH, NULL, &tok, &ti, err, sizeof(err));
    r->gen = ti.gen;
    if (tok)
        snprintf(r->tok, sizeof(r->tok), "%s", tok);
    secmem_free(tok);
    return NULL;
}

START_TEST(single_flight)
{
    enum { N = 8 };
    struct fake f = {.now = 5000, .ttl_ms = 60000, .sleep_ms = 100};
    struct token_cache *tc = cache_of(&f);
    pthread_barrier_t start;
    pthread_t th[N];
    struct racer r[N];

    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){.tc = tc, .start = &start};
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(r[i].rc, 0);
        ck_assert_uint_eq(r[i].gen, 1);
        ck_assert_str_eq(r[i].tok, "tok-1");
    }
    ck_assert_int_eq(f.logins, 1);
    ck_assert_int_eq(f.last_why, TOKEN_LOGIN_NEEDED);
    pthread_barrier_destroy(&start);
    token_cache_free(tc);
}
END_TEST

START_TEST(refresh_ahead_of_expiry)
{
    struct fake f = {.now = 0, .ttl_ms = 10000};
    struct token_cache *tc = cache_of(&f);
    struct token_info ti;
    char err[128];

    expect_token(tc, "Bearer tok-1", 1);
    token_cache_info(tc, &ti);
    ck_assert_int_eq(token_due_in(&ti, 0), 6666);      /* renewal due at 2/3 of the TTL */
    ck_assert_int_eq(token_due_in(&ti, 7000), -334);
    f.now = 10000 - TOKEN_CACHE_EARLY_MS - 1;            /* still good */
    expect_token(tc, "Bearer tok-1", 1);
    ck_assert_int_eq(f.logins, 1);
    f.now = 10000 - TOKEN_CACHE_EARLY_MS;                /* within 1 s of its end */
    expect_token(tc, "Bearer tok-2", 2);
    ck_assert_int_eq(f.logins, 2);
    ck_assert_int_eq(f.last_why, TOKEN_LOGIN_NEEDED);
    /* TOKEN_ANY and TOKEN_HELD never replace a token that exists. */
    f.now = 1000000;
    ck_assert_int_eq(token_cache_get(tc, TOKEN_ANY, NULL, NULL, &ti, err, sizeof(err)), 0);
    ck_assert_int_eq(token_cache_get(tc, TOKEN_HELD, NULL, NULL, &ti, err, sizeof(err)), 0);
    ck_assert_int_eq(f.logins, 2);
    /* A token that does not expire is never due. */
    struct token_life forever = {0};
    ck_assert_int_eq(token_cache_set_life(tc, 2, &forever), 0);
    token_cache_info(tc, &ti);
    ck_assert(token_due_in(&ti, f.now) > 1000000000LL);
    expect_token(tc, "Bearer tok-2", 2);
    token_cache_free(tc);
}
END_TEST

START_TEST(backoff_after_failed_login)
{
    struct fake f = {.now = 100, .ttl_ms = 60000, .fail = ECONNREFUSED};
    struct token_cache *tc = cache_of(&f);
    struct token_info ti;
    char err[128] = "";
    const long long steps[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};

    ck_assert_int_eq(token_cache_get(tc, TOKEN_HELD, NULL, NULL, &ti, err, sizeof(err)), -ENOENT);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        long long t0 = f.now;
        ck_assert_int_eq(token_cache_get(tc, TOKEN_FRESH, NULL, NULL, &ti, err, sizeof(err)),
                         -ECONNREFUSED);
        ck_assert_int_eq(f.logins, (int)i + 1);
        ck_assert_int_eq(token_cache_backoff_ms(tc), steps[i]);
        /* inside the backoff: the same failure, no login */
        f.now = t0 + steps[i] - 1;
        err[0] = '\0';
        ck_assert_int_eq(token_cache_get(tc, TOKEN_ANY, NULL, NULL, &ti, err, sizeof(err)),
                         -ECONNREFUSED);
        char want[32];
        snprintf(want, sizeof(want), "login %zu refused", i + 1);
        ck_assert_str_eq(err, want);
        ck_assert_int_eq(f.logins, (int)i + 1);
        ck_assert_uint_eq(ti.gen, 0);
        f.now = t0 + steps[i];
    }
    /* the next login after the backoff succeeds and clears it */
    f.fail = 0;
    expect_token(tc, "Bearer tok-9", 1);
    ck_assert_int_eq(token_cache_backoff_ms(tc), 1000);
    token_cache_free(tc);
}
END_TEST

START_TEST(forget_a_guessed_token)
{
    /* A token or a failure that turned out to be for the wrong thing is
     * forgotten: the next get logs in at once, backoff or not. */
    struct fake f = {.now = 100, .ttl_ms = 60000};
    struct token_cache *tc = cache_of(&f);
    struct token_info ti;
    char err[128] = "";

    expect_token(tc, "Bearer tok-1", 1);
    token_cache_forget(tc);
    ck_assert_int_eq(token_cache_get(tc, TOKEN_HELD, NULL, NULL, &ti, err, sizeof(err)), -ENOENT);
    ck_assert_int_eq(f.logins, 1);
    expect_token(tc, "Bearer tok-2", 2);

    /* a failed login stands for its backoff ... */
    token_cache_forget(tc);
    f.fail = EACCES;
    ck_assert_int_eq(token_cache_get(tc, TOKEN_ANY, NULL, NULL, &ti, err, sizeof(err)), -EACCES);
    ck_assert_int_eq(token_cache_get(tc, TOKEN_ANY, NULL, NULL, &ti, err, sizeof(err)), -EACCES);
    ck_assert_int_eq(f.logins, 3);
    /* ... unless forgotten */
    token_cache_forget(tc);
    f.fail = 0;
    expect_token(tc, "Bearer tok-4", 3);
    ck_assert_int_eq(f.logins, 4);
    token_cache_free(tc);
}
END_TEST

START_TEST(retry_after_of_a_failed_login)
{
    /* The server said when to ask again (Retry-After): the failure stands
     * that long when it is longer than the backoff, never shorter. */
    struct fake f = {.now = 100, .ttl_ms = 60000, .fail = EAGAIN, .retry_after_ms = 4500};
    struct token_cache *tc = cache_of(&f);
    struct token_info ti;
    char err[128] = "";

    ck_assert_int_eq(token_cache_get(tc, TOKEN_FRESH, NULL, NULL, &ti, err, sizeof(err)), -EAGAIN);
    ck_assert_int_eq(token_cache_backoff_ms(tc), 4500);
    f.now = 100 + 4499;
    ck_assert_int_eq(token_cache_get(tc, TOKEN_FRESH, NULL, NULL, &ti, err, sizeof(err)), -EAGAIN);
    ck_assert_int_eq(token_cache_relogin(tc, 0, NULL, NULL, err, sizeof(err)), -EAGAIN);
    ck_assert_int_eq(f.logins, 1);
    f.now = 100 + 4500;
    f.retry_after_ms = 500;          /* shorter than the backoff (2 s now): the backoff */
    ck_assert_int_eq(token_cache_get(tc, TOKEN_FRESH, NULL, NULL, &ti, err, sizeof(err)), -EAGAIN);
    ck_assert_int_eq(f.logins, 2);
    ck_assert_int_eq(token_cache_backoff_ms(tc), 2000);
    f.now += 1999;
    ck_assert_int_eq(token_cache_get(tc, TOKEN_ANY, NULL, NULL, &ti, err, sizeof(err)), -EAGAIN);
    ck_assert_int_eq(f.logins, 2);
    f.now += 1;
    f.fail = 0;
    expect_token(tc, "Bearer tok-3", 1);
    ck_assert_int_eq(token_cache_backoff_ms(tc), 1000);
    token_cache_free(tc);
}
END_TEST

static void say(void *arg)
{
    ((struct fake *)arg)->said++;
}

START_TEST(relogin_after_refusal)
{
    struct fake f = {.now = 0, .ttl_ms = 60000};
    struct token_cache *tc = cache_of(&f);
    struct token_life life = {.ttl_ms = 5000};
    char err[128] = "";

    expect_token(tc, "Bearer tok-1", 1);
    /* the server refused token 1 (401/403): one fresh login */
    ck_assert_int_eq(token_cache_relogin(tc, 1, say, &f, err, sizeof(err)), 0);
    ck_assert_int_eq(f.logins, 2);
    ck_assert_int_eq(f.said, 1);
    ck_assert_int_eq(f.last_why, TOKEN_LOGIN_REPLACE);
    expect_token(tc, "Bearer tok-2", 2);
    /* a second refusal of token 1 (a request sent before the re-login)
     * does not log in again */
    ck_assert_int_eq(token_cache_relogin(tc, 1, say, &f, err, sizeof(err)), 0);
    ck_assert_int_eq(f.logins, 2);
    ck_assert_int_eq(f.said, 1);
    /* what was learnt of token 1 does not apply to token 2 */
    ck_assert_int_eq(token_cache_set_life(tc, 1, &life), -ESTALE);
    ck_assert_int_eq(token_cache_set_life(tc, 2, &life), 0);
    /* a failed re-login keeps the old token and stands for its backoff */
    f.fail = EACCES;
    ck_assert_int_eq(token_cache_relogin(tc, 2, say, &f, err, sizeof(err)), -EACCES);
    ck_assert_str_eq(err, "login 3 refused");
    ck_assert_int_eq(token_cache_relogin(tc, 2, say, &f, err, sizeof(err)), -EACCES);
    ck_assert_int_eq(f.logins, 3);
    ck_assert_int_eq(f.said, 3);
    expect_token(tc, "Bearer tok-2", 2);
    token_cache_free(tc);
}
END_TEST

/* token_cache_status's state and expiry. */
static void expect_status(struct token_cache *tc, enum backend_auth_state st, long long expires)
{
    struct backend_auth a = {.method = "kept"};
    token_cache_status(tc, &a);
    ck_assert_int_eq(a.state, st);
    ck_assert_int_eq(a.expires_unix_ms, expires);
    ck_assert_str_eq(a.method, "kept");
}

START_TEST(status_through_a_token_life)
{
    /* The monotonic and the wall clock far apart, as in life: the expiry
     * is the time left carried over to the wall clock when the life is set. */
    const long long R = 1800000000000LL;
    struct fake f = {.now = 5000, .real = R, .ttl_ms = 60000};
    struct token_cache *tc = cache_of(&f);
    struct token_life life = {.ttl_ms = 120000};
    char err[128] = "";

    expect_status(tc, BACKEND_AUTH_PENDING, 0);
    expect_token(tc, "Bearer tok-1", 1);
    expect_status(tc, BACKEND_AUTH_OK, R + 60000);
    /* a renewal 10 s later: 120 s from then */
    f.now += 10000;
    f.real += 10000;
    ck_assert_int_eq(token_cache_set_life(tc, 1, &life), 0);
    expect_status(tc, BACKEND_AUTH_OK, R + 10000 + 120000);
    /* the wall clock stepped (NTP): the end already published stays */
    f.real += 3600000;
    expect_status(tc, BACKEND_AUTH_OK, R + 10000 + 120000);
    /* its replacement fails: FAILING, and the held token's end still shown */
    f.fail = EIO;
    ck_assert_int_eq(token_cache_relogin(tc, 1, NULL, NULL, err, sizeof(err)), -EIO);
    expect_status(tc, BACKEND_AUTH_FAILING, R + 10000 + 120000);
    /* the next login after the backoff works: OK, the new token's end */
    f.fail = 0;
    f.now += 1000;
    ck_assert_int_eq(token_cache_relogin(tc, 1, NULL, NULL, err, sizeof(err)), 0);
    expect_status(tc, BACKEND_AUTH_OK, f.real + 60000);
    /* forgotten: no token, no failure standing */
    token_cache_forget(tc);
    expect_status(tc, BACKEND_AUTH_PENDING, 0);
    /* a first login that fails: FAILING, nothing held */
    f.fail = EACCES;
    ck_assert_int_eq(token_cache_get(tc, TOKEN_ANY, NULL, NULL, NULL, err, sizeof(err)), -EACCES);
    expect_status(tc, BACKEND_AUTH_FAILING, 0);
    /* a token of unknown life: OK, no expiry */
    f.fail = 0;
    f.ttl_ms = 0;
    f.now += 60000;
    ck_assert_int_eq(token_cache_get(tc, TOKEN_ANY, NULL, NULL, NULL, err, sizeof(err)), 0);
    expect_status(tc, BACKEND_AUTH_OK, 0);
    token_cache_free(tc);
}
END_TEST

struct getter {
    struct token_cache *tc;
    int rc;
};

static void *get_one(void *arg)
{
    struct getter *g = arg;
    char err[128];
    g->rc = token_cache_get(g->tc, TOKEN_ANY, NULL, NULL, NULL, err, sizeof(err));
    return NULL;
}

START_TEST(status_does_not_wait_for_a_login)
{
    /* A login holds the cache's lock across its round trip; the status
     * must answer meanwhile. The login waits until the status has
     * answered, so a status that took the lock would hang (the case's
     * timeout), whatever the machine's load. */
    sem_t entered, release;
    ck_assert_int_eq(sem_init(&entered, 0, 0), 0);
    ck_assert_int_eq(sem_init(&release, 0, 0), 0);
    struct fake f = {.now = 0, .real = 1000000, .ttl_ms = 30000,
                     .entered = &entered, .release = &release};
    struct token_cache *tc = cache_of(&f);
    struct getter g = {.tc = tc};
    pthread_t t;

    ck_assert_int_eq(pthread_create(&t, NULL, get_one, &g), 0);
    while (sem_wait(&entered) < 0 && errno == EINTR)
        ;
    expect_status(tc, BACKEND_AUTH_PENDING, 0);
    sem_post(&release);
    pthread_join(t, NULL);
    ck_assert_int_eq(g.rc, 0);
    expect_status(tc, BACKEND_AUTH_OK, 1000000 + 30000);
    token_cache_free(tc);
    sem_destroy(&entered);
    sem_destroy(&release);
}
END_TEST

static Suite *token_cache_suite(void)
{
    Suite *s = suite_create("token_cache");
    TCase *tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 5);
    tcase_add_test(tc, single_flight);
    tcase_add_test(tc, refresh_ahead_of_expiry);
    tcase_add_test(tc, backoff_after_failed_login);
    tcase_add_test(tc, retry_after_of_a_failed_login);
    tcase_add_test(tc, relogin_after_refusal);
    tcase_add_test(tc, forget_a_guessed_token);
    tcase_add_test(tc, status_through_a_token_life);
    tcase_add_test(tc, status_does_not_wait_for_a_login);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(token_cache_suite)
