/* test_scheduler.c - sched_decide, the scheduler's decisions after one fetch
 * of a group: the next delay (refresh ±10%, lease, 90% of max_stale,
 * full-jitter backoff, SCHED_MIN_RETRY_MS, Retry-After) and what happens
 * to the members (success, unchanged, held back, failure, removed,
 * nothing). Random delays are checked over many draws: every draw within
 * its bounds, and the draws spread over the range. */
#include <check.h>
#include <errno.h>
#include <sodium.h>

#include "engine/sched_policy.h"
#include "ck_main.h"

#define DRAWS 5000

static int serving_calls;

static bool serving_yes(void *arg)
{
    (void)arg;
    serving_calls++;
    return true;
}

static bool serving_no(void *arg)
{
    (void)arg;
    serving_calls++;
    return false;
}

static const struct backoff retry = {.base_ms = 1000, .max_ms = 8000};

static struct sched_policy policy(long long refresh, long long max_stale)
{
    return (struct sched_policy){.refresh_ms = refresh, .max_stale_ms = max_stale, .backoff = &retry};
}

static struct sched_outcome ok_value(void)
{
    return (struct sched_outcome){.rc = 0, .retryable = true, .serving = serving_yes};
}

static struct sched_outcome failed(int rc, bool retryable)
{
    return (struct sched_outcome){.rc = rc, .retryable = retryable, .serving = serving_yes};
}

static void setup(void)
{
    ck_assert_int_ge(sodium_init(), 0);
    serving_calls = 0;
}

/* Every draw of o under p in [lo, hi]; the draws reach within `slack` of
 * both ends (so the range is really used, not one point of it). */
static void check_spread(const struct sched_policy *p, const struct sched_outcome *o,
                         unsigned failures, enum sched_action want, long long lo, long long hi,
                         long long slack)
{
    long long min = hi + 1, max = lo - 1;
    for (int i = 0; i < DRAWS; i++) {
        struct sched_state st = {.failures = failures};
        struct sched_decision d = sched_decide(p, o, &st);
        ck_assert_int_eq(d.action, want);
        ck_assert_msg(d.delay_ms >= lo && d.delay_ms <= hi, "draw %d: %lld not in [%lld, %lld]", i,
                      d.delay_ms, lo, hi);
        min = d.delay_ms < min ? d.delay_ms : min;
        max = d.delay_ms > max ? d.delay_ms : max;
    }
    ck_assert_msg(min <= lo + slack, "lowest draw %lld, want <= %lld", min, lo + slack);
    ck_assert_msg(max >= hi - slack, "highest draw %lld, want >= %lld", max, hi - slack);
}

static void check_fixed(const struct sched_policy *p, const struct sched_outcome *o,
                        unsigned failures, enum sched_action want, long long delay)
{
    for (int i = 0; i < 200; i++) {
        struct sched_state st = {.failures = failures};
        struct sched_decision d = sched_decide(p, o, &st);
        ck_assert_int_eq(d.action, want);
        ck_assert_int_eq(d.delay_ms, delay);
    }
}

/* ±10%: refresh - refresh/10 plus a uniform draw below refresh/5. */
START_TEST(success_refresh_jitter)
{
    struct sched_policy p = policy(60000, 3600000);
    struct sched_outcome o = ok_value();
    check_spread(&p, &o, 0, SCHED_SUCCESS, 54000, 65999, 100);

    long long sum = 0;
    for (int i = 0; i < DRAWS; i++) {
        struct sched_state st = {0};
        sum += sched_decide(&p, &o, &st).delay_ms;
    }
    long long mean = sum / DRAWS;
    ck_assert_msg(mean > 59700 && mean < 60300, "mean %lld", mean);

    p = policy(100, 3600000);   /* the smallest refresh a config allows */
    check_spread(&p, &o, 0, SCHED_SUCCESS, 90, 109, 0);
    p = policy(4, 3600000);     /* too small to spread */
    check_fixed(&p, &o, 0, SCHED_SUCCESS, 4);
}
END_TEST

START_TEST(success_resets_failures)
{
    struct sched_policy p = policy(60000, 3600000);
    struct sched_outcome o = ok_value();
    struct sched_state st = {.failures = 7};
    ck_assert_int_eq(sched_decide(&p, &o, &st).action, SCHED_SUCCESS);
    ck_assert_uint_eq(st.failures, 0);

    o.unchanged = true;
    st.failures = 3;
    ck_assert_int_eq(sched_decide(&p, &o, &st).action, SCHED_UNCHANGED);
    ck_assert_uint_eq(st.failures, 0);
}
END_TEST

/* A lease's valid_ms is taken as is (no jitter), whatever refresh says;
 * Retry-After only matters after a failure. */
START_TEST(success_lease)
{
    struct sched_policy p = policy(60000, 3600000);
    struct sched_outcome o = ok_value();
    o.valid_ms = 5000;
    check_fixed(&p, &o, 0, SCHED_SUCCESS, 5000);
    o.valid_ms = 600000;
    check_fixed(&p, &o, 0, SCHED_SUCCESS, 600000);
    o.unchanged = true;
    check_fixed(&p, &o, 2, SCHED_UNCHANGED, 600000);

    o = ok_value();
    o.retry_after_ms = 1000000;
    check_spread(&p, &o, 0, SCHED_SUCCESS, 54000, 65999, 100);
}
END_TEST

/* A healthy secret never fails closed: its next fetch comes before 90% of
 * max_stale, whatever refresh or the lease say. */
START_TEST(success_never_past_90_percent_of_max_stale)
{
    struct sched_policy p = policy(600000, 300000);
    struct sched_outcome o = ok_value();
    check_fixed(&p, &o, 0, SCHED_SUCCESS, 270000);
    o.valid_ms = 1000000000LL;
    check_fixed(&p, &o, 0, SCHED_SUCCESS, 270000);
    o.valid_ms = 269999;
    check_fixed(&p, &o, 0, SCHED_SUCCESS, 269999);

    /* The cap cuts into the jitter range: draws above it land on it. */
    p = policy(100000, 105000);
    o = ok_value();
    check_spread(&p, &o, 0, SCHED_SUCCESS, 90000, 94500, 100);
    int at_cap = 0;
    for (int i = 0; i < DRAWS; i++) {
        struct sched_state st = {0};
        at_cap += sched_decide(&p, &o, &st).delay_ms == 94500;
    }
    /* 15,500 of the 20,000 values in [90000, 110000) are >= 94500. */
    ck_assert_msg(at_cap > DRAWS * 7 / 10 && at_cap < DRAWS * 85 / 100, "%d at the cap", at_cap);
}
END_TEST

/* Full jitter: uniform in [0, ceiling], the ceiling doubling from
 * retry_base per consecutive failure up to retry_max and the refresh
 * interval, never under SCHED_MIN_RETRY_MS. */
START_TEST(transient_failure_backoff)
{
    struct sched_policy p = policy(60000, 3600000);
    struct sched_outcome o = failed(-EIO, true);
    static const long long ceiling[] = {1000, 2000, 4000, 8000, 8000, 8000, 8000};
    for (unsigned n = 0; n < sizeof(ceiling) / sizeof(ceiling[0]); n++)
        check_spread(&p, &o, n, SCHED_FAILURE, SCHED_MIN_RETRY_MS, ceiling[n], ceiling[n] / 50);

    /* The refresh interval caps the ceiling too. */
    p = policy(3000, 3600000);
    check_spread(&p, &o, 4, SCHED_FAILURE, SCHED_MIN_RETRY_MS, 3000, 60);

    /* The floor: a ceiling under it always waits SCHED_MIN_RETRY_MS. */
    static const struct backoff tiny = {.base_ms = 10, .max_ms = 20};
    p = policy(60000, 3600000);
    p.backoff = &tiny;
    check_fixed(&p, &o, 0, SCHED_FAILURE, SCHED_MIN_RETRY_MS);
    check_fixed(&p, &o, 5, SCHED_FAILURE, SCHED_MIN_RETRY_MS);

    /* The draw is below the ceiling, not at it: about half the draws are
     * under half the ceiling. */
    p = policy(60000, 3600000);
    int low = 0;
    for (int i = 0; i < DRAWS; i++) {
        struct sched_state st = {.failures = 3};
        low += sched_decide(&p, &o, &st).delay_ms < 4000;
    }
    ck_assert_msg(low > DRAWS * 45 / 100 && low < DRAWS * 55 / 100, "%d under half", low);
}
END_TEST

START_TEST(failures_counted)
{
    struct sched_policy p = policy(60000, 3600000);
    struct sched_outcome fail = failed(-EIO, true), perm = failed(-EACCES, false);
    struct sched_outcome gone = failed(-ENOENT, true), ok = ok_value();
    struct sched_state st = {0};
    for (unsigned n = 1; n <= 40; n++) {
        struct sched_decision d = sched_decide(&p, &fail, &st);
        ck_assert_uint_eq(st.failures, n);
        ck_assert_int_le(d.delay_ms, 8000);   /* no overflow with many failures */
        ck_assert_int_ge(d.delay_ms, SCHED_MIN_RETRY_MS);
    }
    (void)sched_decide(&p, &perm, &st);
    ck_assert_uint_eq(st.failures, 41);
    (void)sched_decide(&p, &gone, &st);
    ck_assert_uint_eq(st.failures, 42);
    (void)sched_decide(&p, &ok, &st);
    ck_assert_uint_eq(st.failures, 0);
}
END_TEST

/* Retry-After is a floor on every failure's delay. */
START_TEST(retry_after_is_a_floor)
{
    struct sched_policy p = policy(60000, 3600000);
    struct sched_outcome o = failed(-EAGAIN, true);
    o.retry_after_ms = 30000;   /* above any ceiling (8000): always it */
    check_fixed(&p, &o, 0, SCHED_FAILURE, 30000);
    check_fixed(&p, &o, 6, SCHED_FAILURE, 30000);

    o.retry_after_ms = 500;     /* inside the range: a floor, not a value */
    check_spread(&p, &o, 3, SCHED_FAILURE, 500, 8000, 200);

    o = failed(-EACCES, false);
    o.retry_after_ms = 120000;
    check_fixed(&p, &o, 0, SCHED_FAILURE, 120000);
    o = failed(-ENOENT, true);
    o.retry_after_ms = 120000;
    check_fixed(&p, &o, 0, SCHED_REMOVED, 120000);
}
END_TEST

/* A permanent failure, or the object gone, waits the refresh interval
 * (±10%) whatever the failure count: no backoff, no hammering. */
START_TEST(permanent_failure_and_enoent_use_refresh)
{
    struct sched_policy p = policy(60000, 3600000);
    struct sched_outcome o = failed(-EACCES, false);
    check_spread(&p, &o, 0, SCHED_FAILURE, 54000, 65999, 100);
    check_spread(&p, &o, 9, SCHED_FAILURE, 54000, 65999, 100);
    o = failed(-ENOENT, true);   /* retryable or not */
    check_spread(&p, &o, 0, SCHED_REMOVED, 54000, 65999, 100);
    o = failed(-ENOENT, false);
    check_spread(&p, &o, 3, SCHED_REMOVED, 54000, 65999, 100);
    /* Not capped by max_stale: there is no healthy value to protect. */
    p = policy(600000, 300000);
    check_spread(&p, &o, 0, SCHED_REMOVED, 540000, 659999, 1000);
}
END_TEST

START_TEST(cancelled_does_nothing)
{
    struct sched_policy p = policy(60000, 3600000);
    struct sched_outcome o = failed(-ECANCELED, true);
    o.retry_after_ms = 99999;
    struct sched_state st = {.failures = 3, .empty_seen = true};
    struct sched_decision d = sched_decide(&p, &o, &st);
    ck_assert_int_eq(d.action, SCHED_NOTHING);
    ck_assert_int_eq(d.delay_ms, 0);
    ck_assert_uint_eq(st.failures, 3);
    ck_assert(!st.empty_seen);   /* still breaks "two consecutive reads" */
}
END_TEST

static enum sched_action step(const struct sched_policy *p, struct sched_outcome o,
                              struct sched_state *st)
{
    struct sched_decision d = sched_decide(p, &o, st);
    /* Held back or not, a read reschedules like a success. */
    if (o.rc == 0)
        ck_assert(d.delay_ms >= 54000 && d.delay_ms <= 65999);
    return d.action;
}

/* BACKEND_CAP_CONFIRM_EMPTY: an empty read replaces a non-empty served
 * value only when the next read is empty too. */
START_TEST(empty_value_held_back)
{
    struct sched_policy p = policy(60000, 3600000);
    p.confirm_empty = true;
    struct sched_outcome empty = ok_value(), full = ok_value(), same = ok_value();
    empty.empty = true;
    same.unchanged = true;
    same.empty = true;   /* an unchanged answer carries no value */
    struct sched_state st = {.failures = 2};

    ck_assert_int_eq(step(&p, empty, &st), SCHED_HELD_BACK);
    ck_assert(st.empty_seen);
    ck_assert_uint_eq(st.failures, 0);   /* a read, not a failure */
    ck_assert_int_eq(step(&p, empty, &st), SCHED_SUCCESS);   /* confirmed */
    ck_assert(!st.empty_seen);
    ck_assert_int_eq(step(&p, empty, &st), SCHED_HELD_BACK);   /* still served: again */

    /* Anything in between starts over. */
    ck_assert_int_eq(step(&p, full, &st), SCHED_SUCCESS);
    ck_assert_int_eq(step(&p, empty, &st), SCHED_HELD_BACK);
    ck_assert_int_eq(step(&p, failed(-EIO, true), &st), SCHED_FAILURE);
    ck_assert_int_eq(step(&p, empty, &st), SCHED_HELD_BACK);
    ck_assert_int_eq(step(&p, same, &st), SCHED_UNCHANGED);
    ck_assert_int_eq(step(&p, empty, &st), SCHED_HELD_BACK);
    ck_assert_int_eq(step(&p, failed(-ECANCELED, true), &st), SCHED_NOTHING);
    ck_assert_int_eq(step(&p, empty, &st), SCHED_HELD_BACK);
    ck_assert_int_eq(step(&p, empty, &st), SCHED_SUCCESS);
}
END_TEST

START_TEST(empty_value_taken_when_nothing_to_protect)
{
    struct sched_policy p = policy(60000, 3600000);
    struct sched_outcome empty = ok_value(), full = ok_value();
    empty.empty = true;
    struct sched_state st = {0};

    /* Nothing non-empty served: the empty value is taken at once. */
    p.confirm_empty = true;
    empty.serving = serving_no;
    ck_assert_int_eq(step(&p, empty, &st), SCHED_SUCCESS);
    ck_assert_int_eq(step(&p, empty, &st), SCHED_SUCCESS);
    ck_assert(!st.empty_seen);
    ck_assert_int_eq(serving_calls, 2);

    /* The store is asked only about an empty read that could be held back. */
    serving_calls = 0;
    empty.serving = serving_yes;
    ck_assert_int_eq(step(&p, full, &st), SCHED_SUCCESS);
    ck_assert_int_eq(step(&p, failed(-EIO, true), &st), SCHED_FAILURE);
    ck_assert_int_eq(serving_calls, 0);
    p.confirm_empty = false;   /* a backend whose objects cannot be torn */
    ck_assert_int_eq(step(&p, empty, &st), SCHED_SUCCESS);
    ck_assert_int_eq(step(&p, empty, &st), SCHED_SUCCESS);
    ck_assert(!st.empty_seen);
    ck_assert_int_eq(serving_calls, 0);
}
END_TEST

static Suite *scheduler_suite(void)
{
    Suite *s = suite_create("scheduler");
    TCase *tc = tcase_create("decide");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, success_refresh_jitter);
    tcase_add_test(tc, success_resets_failures);
    tcase_add_test(tc, success_lease);
    tcase_add_test(tc, success_never_past_90_percent_of_max_stale);
    tcase_add_test(tc, transient_failure_backoff);
    tcase_add_test(tc, failures_counted);
    tcase_add_test(tc, retry_after_is_a_floor);
    tcase_add_test(tc, permanent_failure_and_enoent_use_refresh);
    tcase_add_test(tc, cancelled_does_nothing);
    tcase_add_test(tc, empty_value_held_back);
    tcase_add_test(tc, empty_value_taken_when_nothing_to_protect);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(scheduler_suite)
