/* test_store.c - value lifecycle: new, unchanged, rotated, snapshot,
 * removal, stale, fail closed past max_stale, recovery. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "engine/config.h"
#include "engine/store.h"
#include "lib/secmem.h"
#include "broker/hardening.h"
#include "ck_main.h"

static struct config *cfg;
static struct cache *cache;
static struct store *st;

static void setup(void)
{
    char e[512];
    static const char json[] =
        "{\"backends\": {\"l\": {\"type\": \"file\", \"path\": \"/\"}},"
        " \"secrets\": {\"db\": {\"from\": \"l:x\", \"refresh\": \"1m\", \"max_stale\": \"10m\"}}}";
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
    ck_assert_int_eq(cfg_load_buffer(json, strlen(json), "t.json", &cfg, e, sizeof(e)), 0);
    cache = cache_new();
    ck_assert_int_eq(store_new(cfg, NULL, cache, &st), 0);
}

static void teardown(void)
{
    store_free(st);
    cache_free(cache);
    cfg_free(cfg);
}

static void read_value(struct cache_value *v, const char *want)
{
    char out[64];
    ck_assert_uint_eq(cache_value_len(v), strlen(want));
    ck_assert_int_eq(cache_unseal(cache, "db", v, out), 0);
    ck_assert_mem_eq(out, want, strlen(want));
}

/* Pretend the last success was secs ago. */
static void age(long secs)
{
    store_backdate(st, 0, secs * 1000);
}

START_TEST(lifecycle)
{
    struct cache_value *v = NULL, *snap = NULL;
    enum store_change ch;
    struct secret_view view;

    ck_assert_int_eq(store_acquire(st, 0, &v), -ENOENT);
    store_view(st, 0, &view);
    ck_assert(!view.present);

    ck_assert_int_eq(store_update(st, 0, "v1", 2, &ch), 0);
    ck_assert_int_eq(ch, STORE_NEW);
    store_view(st, 0, &view);
    ck_assert(view.present);
    ck_assert_uint_eq(view.size, 2);
    struct timespec first = view.changed;

    ck_assert_int_eq(store_update(st, 0, "v1", 2, &ch), 0);
    ck_assert_int_eq(ch, STORE_UNCHANGED);
    store_view(st, 0, &view);
    ck_assert(view.changed.tv_sec == first.tv_sec && view.changed.tv_nsec == first.tv_nsec);

    ck_assert_int_eq(store_acquire(st, 0, &snap), 0);
    ck_assert_int_eq(store_update(st, 0, "v2-longer", 9, &ch), 0);
    ck_assert_int_eq(ch, STORE_ROTATED);
    read_value(snap, "v1");                 /* the open file keeps its version */
    ck_assert_int_eq(store_acquire(st, 0, &v), 0);
    read_value(v, "v2-longer");             /* a new open sees the new one */
    cache_value_unref(v);

    ck_assert(store_remove(st, 0));
    ck_assert(!store_remove(st, 0));
    ck_assert_int_eq(store_acquire(st, 0, &v), -ENOENT);
    read_value(snap, "v1");                 /* still readable after removal */
    cache_value_unref(snap);
}
END_TEST

START_TEST(stale_then_fail_closed_then_recover)
{
    struct cache_value *v = NULL;
    enum store_change ch;

    ck_assert_int_eq(store_fail(st, 0), SECRET_ABSENT);   /* nothing to serve yet */
    ck_assert_int_eq(store_update(st, 0, "good", 4, &ch), 0);
    ck_assert_int_eq(store_fail(st, 0), SECRET_STALE);
    ck_assert_int_eq(store_acquire(st, 0, &v), 0);        /* stale but within max_stale */
    read_value(v, "good");
    cache_value_unref(v);
    ck_assert(!store_check_expiry(st, 0));

    age(10 * 60 + 1);
    ck_assert_int_eq(store_acquire(st, 0, &v), -EIO);     /* fail closed */
    ck_assert(store_check_expiry(st, 0));                 /* transition reported once */
    ck_assert(!store_check_expiry(st, 0));
    ck_assert_int_eq(store_fail(st, 0), SECRET_EXPIRED);

    ck_assert_int_eq(store_update(st, 0, "good", 4, &ch), 0);
    ck_assert_int_eq(ch, STORE_RECOVERED);
    ck_assert_int_eq(store_acquire(st, 0, &v), 0);
    read_value(v, "good");
    cache_value_unref(v);
}
END_TEST

START_TEST(stuck_refresh_fails_closed)
{
    /* Even with no failure recorded, a value older than max_stale is refused. */
    struct cache_value *v = NULL;
    enum store_change ch;
    ck_assert_int_eq(store_update(st, 0, "x", 1, &ch), 0);
    age(10 * 60 + 1);
    ck_assert_int_eq(store_acquire(st, 0, &v), -EIO);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, lifecycle);
    tcase_add_test(tc, stale_then_fail_closed_then_recover);
    tcase_add_test(tc, stuck_refresh_fails_closed);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(store_suite)
