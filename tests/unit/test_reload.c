/* test_reload.c - broker_apply without a mount: the diff (what is kept,
 * changed, added, removed; which backends live on), and applies racing the scheduler's workers (the TSan
 * target of docs/internals/reload.md). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/hardening.h"
#include "broker/reload.h"
#include "engine/scheduler.h"
#include "engine/store.h"
#include "ck_main.h"

static char dir[64];
static char cfg_path[128];

static void put(const char *name, const char *value)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(value, f);
    fclose(f);
}

static void setup(void)
{
    char e[512];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
    snprintf(dir, sizeof(dir), "/tmp/rs-reload-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cfg_path, sizeof(cfg_path), "%s/m", dir);
    ck_assert_int_eq(mkdir(cfg_path, 0700), 0);
    snprintf(cfg_path, sizeof(cfg_path), "%s/m/config.json", dir);
    put("a", "value-a");
    put("b", "value-b");
    put("c", "value-c");
    put("d", "value-d");
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A config whose backends l and m are file backends of dir; m_extra is
 * spliced into m's object; secrets is the "secrets" object's body. */
static struct config *make_cfg(const char *m_extra, const char *secrets, bool to_file)
{
    char text[4096], e[512];
    struct config *c = NULL;
    snprintf(text, sizeof(text),
             "{\"backends\": {\"l\": {\"type\": \"file\", \"path\": \"%s\"},"
             " \"m\": {\"type\": \"file\", \"path\": \"%s\"%s}},"
             " \"defaults\": {\"refresh\": \"1h\", \"max_stale\": \"2h\"},"
             " \"secrets\": {%s}}", dir, dir, m_extra, secrets);
    if (to_file) {
        FILE *f = fopen(cfg_path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
        return NULL;
    }
    ck_assert_msg(cfg_load_buffer(text, strlen(text), "next.json", &c, e, sizeof(e)) == 0, "%s", e);
    return c;
}

static long idx(const struct broker *b, const char *name)
{
    return cfg_secret_index(b->cfg, name);
}

static bool present(struct broker *b, const char *name)
{
    struct secret_view v;
    long i = idx(b, name);
    ck_assert_int_ge(i, 0);
    store_view(b->store, (size_t)i, &v);
    return v.present;
}

START_TEST(diff)
{
    struct broker b;
    char err[1024];
    make_cfg("", "\"keep\": \"l:a\", \"attrs\": {\"from\": \"l:b\", \"mode\": \"0400\"},"
                 " \"src\": \"l:c\", \"gone\": \"l:d\", \"viam\": \"m:a\"", true);
    ck_assert_int_eq(broker_open(&b, cfg_path, err, sizeof(err)), 0);
    ck_assert_uint_eq(scheduler_fetch_all(b.sched), 0);
    struct backend *bl = b.backends[cfg_backend_index(b.cfg, "l")];
    struct backend *bm = b.backends[cfg_backend_index(b.cfg, "m")];

    /* attrs: settings only; src: another reference; viam: its backend's
     * settings changed; gone: removed; fresh: added. */
    struct config *next = make_cfg(", \"max_size\": 4096",
                                   "\"fresh\": \"l:b\", \"keep\": \"l:a\","
                                   " \"attrs\": {\"from\": \"l:b\", \"mode\": \"0440\"},"
                                   " \"src\": \"l:d\", \"viam\": \"m:a\"", false);
    ck_assert_int_eq(broker_apply(&b, next, err, sizeof(err)), 0);
    ck_assert_ptr_eq(b.cfg, next);
    ck_assert_uint_eq(b.last_apply.added, 1);
    ck_assert_uint_eq(b.last_apply.removed, 1);
    ck_assert_uint_eq(b.last_apply.changed, 3);
    ck_assert_uint_eq(b.last_apply.kept, 1);
    ck_assert_uint_eq(b.last_apply.backends_kept, 1);
    ck_assert_uint_eq(b.last_apply.backends_new, 1);
    ck_assert_uint_eq(b.last_apply.backends_retired, 1);
    ck_assert_ptr_eq(b.backends[cfg_backend_index(b.cfg, "l")], bl);
    ck_assert_ptr_ne(b.backends[cfg_backend_index(b.cfg, "m")], bm);
    /* Values move with kept sources only; the others wait for a fetch. */
    ck_assert(present(&b, "keep"));
    ck_assert(present(&b, "attrs"));
    ck_assert(!present(&b, "src"));
    ck_assert(!present(&b, "viam"));
    ck_assert(!present(&b, "fresh"));
    ck_assert(store_settled(b.store, (size_t)idx(&b, "keep")));
    ck_assert(!store_settled(b.store, (size_t)idx(&b, "src")));
    ck_assert_uint_eq(store_cfg(b.store, (size_t)idx(&b, "attrs"))->attrs.mode, 0440);
    /* The kept value is the same sealed value, not a copy fetched again. */
    struct cache_value *v = NULL;
    char out[16];
    ck_assert_int_eq(store_acquire(b.store, (size_t)idx(&b, "keep"), &v), 0);
    ck_assert_int_eq(cache_unseal(b.cache, "keep", v, out), 0);
    ck_assert_mem_eq(out, "value-a", 7);
    cache_value_unref(v);
    /* Same settings in another key order, and nothing else: all kept. */
    next = make_cfg(", \"max_size\": 4096",
                    "\"viam\": \"m:a\", \"src\": \"l:d\", \"keep\": \"l:a\", \"fresh\": \"l:b\","
                    " \"attrs\": {\"mode\": \"0440\", \"from\": \"l:b\"}", false);
    struct backend *bm2 = b.backends[cfg_backend_index(b.cfg, "m")];
    ck_assert_int_eq(broker_apply(&b, next, err, sizeof(err)), 0);
    ck_assert_uint_eq(b.last_apply.kept, 5);
    ck_assert_uint_eq(b.last_apply.changed + b.last_apply.added + b.last_apply.removed, 0);
    ck_assert_uint_eq(b.last_apply.backends_kept, 2);
    ck_assert_ptr_eq(b.backends[cfg_backend_index(b.cfg, "m")], bm2);
    broker_close(&b);
}
END_TEST

/* Applies while the workers refresh every 100 ms: pause, apply and resume
 * against the timer and the workers (what TSan looks at). */
START_TEST(applies_race_workers)
{
    struct broker b;
    char err[1024], body[2048];
    size_t o = 0;
    for (int i = 0; i < 20; i++)
        o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"s%d\": {\"from\": \"l:%c\","
                              " \"refresh\": \"100ms\"}", i ? "," : "", i, "abcd"[i % 4]);
    make_cfg("", body, true);
    ck_assert_int_eq(broker_open(&b, cfg_path, err, sizeof(err)), 0);
    ck_assert_int_eq(scheduler_start(b.sched), 0);
    for (int k = 0; k < 30; k++) {
        o = 0;
        for (int i = 0; i < 20; i++)
            if ((i + k) % 5)
                o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"s%d\": {\"from\": "
                                      "\"%c:%c\", \"refresh\": \"100ms\"}", o ? "," : "", i,
                                      (i + k) % 3 ? 'l' : 'm', "abcd"[(i + k) % 4]);
        struct config *next = make_cfg(k % 2 ? ", \"max_size\": 1000" : "", body, false);
        ck_assert_msg(broker_apply(&b, next, err, sizeof(err)) == 0, "%s", err);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Every secret of the last configuration gets its value. */
    bool all = false;
    for (int t = 0; t < 300 && !all; t++) {
        all = true;
        for (size_t i = 0; i < b.cfg->n_secrets; i++) {
            struct secret_view v;
            store_view(b.store, i, &v);
            all = all && v.present;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    ck_assert(all);
    broker_close(&b);
}
END_TEST

static Suite *reload_suite(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("apply");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, diff);
    tcase_add_test(tc, applies_race_workers);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(reload_suite)
