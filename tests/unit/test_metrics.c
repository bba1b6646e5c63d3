/* test_metrics.c - lib/metrics (the registry, the text format's escaping,
 * the histogram) and broker/stats.c's pages over a registry filled by
 * hand, as the store and scheduler would. */
#include "lib/metrics.h"
#include "broker/broker.h"
#include "broker/stats.h"
#include "lib/clock.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ck_main.h"

START_TEST(same_name_same_object)
{
    struct metrics *m = metrics_new();
    ck_assert_ptr_nonnull(m);
    struct metrics_secret *a = metrics_secret_get(m, "db/password");
    struct metrics_secret *b = metrics_secret_get(m, "api_key");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    ck_assert_ptr_eq(metrics_secret_get(m, "db/password"), a);
    /* Secrets and backends are separate namespaces. */
    struct metrics_backend *vb = metrics_backend_get(m, "db/password");
    ck_assert_ptr_nonnull(vb);
    ck_assert_ptr_eq(metrics_backend_get(m, "db/password"), vb);
    ck_assert_int_eq(atomic_load(&vb->up), -1);
    ck_assert_int_eq(atomic_load(&a->size), -1);
    metrics_free(m);
}
END_TEST

START_TEST(many_names)
{
    /* The table grows; every name keeps its object. */
    struct metrics *m = metrics_new();
    enum { N = 20000 };
    struct metrics_secret **objs = calloc(N, sizeof(*objs));
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        objs[i] = metrics_secret_get(m, name);
        ck_assert_ptr_nonnull(objs[i]);
        metrics_read(objs[i], METRICS_READ_ALLOW);
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        ck_assert_ptr_eq(metrics_secret_get(m, name), objs[i]);
    }
    ck_assert_int_eq(metrics_publish(m, objs, 3, NULL, 0), 0);
    struct metrics_view v;
    metrics_view_begin(m, &v);
    ck_assert_uint_eq(v.n, 3);
    ck_assert_ptr_eq(v.secrets[2], objs[2]);
    /* Opens count every object ever made, published or not. */
    ck_assert_uint_eq(metrics_view_opens(m), N);
    metrics_view_end(m);
    free(objs);
    metrics_free(m);
}
END_TEST

START_TEST(escape_label)
{
    char buf[64];
    size_t off = 0;
    metrics_escape_label(buf, sizeof(buf), &off, "a\\b\"c\nd");
    ck_assert_str_eq(buf, "a\\\\b\\\"c\\nd");
    ck_assert_uint_eq(off, strlen(buf));
    /* Never past the buffer, never half an escape. */
    char small[4];
    off = 0;
    metrics_escape_label(small, sizeof(small), &off, "ab\"");
    ck_assert_str_eq(small, "ab");
}
END_TEST

START_TEST(histogram_buckets)
{
    struct metrics *m = metrics_new();
    struct metrics_backend *b = metrics_backend_get(m, "vault");
    metrics_fetch(b, METRICS_FETCH_OK, 0.005);   /* le is inclusive */
    metrics_fetch(b, METRICS_FETCH_OK, 0.3);
    metrics_fetch(b, METRICS_FETCH_ERROR, 20);   /* only +Inf */
    metrics_fetch(b, METRICS_FETCH_OK, -1);      /* one of a batch: counted, not timed */
    ck_assert_uint_eq(atomic_load(&b->buckets[0]), 1);
    ck_assert_uint_eq(atomic_load(&b->buckets[6]), 1);   /* 0.5 */
    ck_assert_uint_eq(atomic_load(&b->count), 3);
    ck_assert_uint_eq(atomic_load(&b->fetches[METRICS_FETCH_OK]), 3);
    ck_assert_uint_eq(atomic_load(&b->fetches[METRICS_FETCH_ERROR]), 1);
    ck_assert_uint_eq(atomic_load(&b->sum_us), 20305000);
    metrics_free(m);
}
END_TEST

START_TEST(text_is_printable)
{
    struct metrics *m = metrics_new();
    struct metrics_secret *s = metrics_secret_get(m, "x");
    char err[64], ver[16];
    metrics_secret_text(s, "bad\x01line\nnext", "v\x7f" "1");
    metrics_secret_text_get(s, err, sizeof(err), ver, sizeof(ver));
    ck_assert_str_eq(err, "bad?line?next");
    ck_assert_str_eq(ver, "v?1");
    /* No version given: the last one stays; no error: none. */
    metrics_secret_text(s, "", NULL);
    metrics_secret_text_get(s, err, sizeof(err), ver, sizeof(ver));
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(ver, "v?1");
    metrics_free(m);
}
END_TEST

/* A broker with just a registry: what the pages read. */
static void fill(struct broker *b)
{
    memset(b, 0, sizeof(*b));
    b->metrics = metrics_new();
    b->started_mono_ms = clock_mono_ms() - 10000;
    b->started_real_ms = clock_real_ms() - 10000;
    struct metrics_backend *vb = metrics_backend_get(b->metrics, "vault");
    atomic_store(&vb->type, "vault");
    atomic_store(&vb->up, 1);
    atomic_store(&vb->auth_state, 2);
    atomic_store(&vb->auth_expires_unix_ms, 1893456000000LL);   /* 2030-01-01 */
    metrics_backend_method(vb, "approle");
    metrics_fetch(vb, METRICS_FETCH_OK, 0.02);
    metrics_fetch(vb, METRICS_FETCH_ERROR, 0.2);

    long long now = clock_mono_ms();
    struct metrics_secret *ok = metrics_secret_get(b->metrics, "db/pass\"word");
    atomic_store(&ok->backend, vb);
    atomic_store(&ok->required, true);
    atomic_store(&ok->settled, true);
    atomic_store(&ok->state, METRICS_FRESH);
    atomic_store(&ok->size, 12);
    atomic_store(&ok->last_success_ms, now - 3000);
    atomic_store(&ok->last_attempt_ms, now - 3000);
    atomic_store(&ok->next_ms, now + 60000);
    atomic_store(&ok->max_stale_ms, 3600000);
    metrics_secret_text(ok, NULL, "7");
    metrics_read(ok, METRICS_READ_ALLOW);
    metrics_read(ok, METRICS_READ_ALLOW);
    metrics_read(ok, METRICS_READ_DENY);

    struct metrics_secret *gone = metrics_secret_get(b->metrics, "api");
    atomic_store(&gone->backend, vb);
    atomic_store(&gone->required, true);
    atomic_store(&gone->settled, true);
    atomic_store(&gone->max_stale_ms, 3600000);
    metrics_secret_text(gone, "permission denied", NULL);

    struct metrics_secret *opt = metrics_secret_get(b->metrics, "optional");
    atomic_store(&opt->backend, vb);
    atomic_store(&opt->max_stale_ms, 3600000);

    struct metrics_secret *list[] = {ok, gone, opt};
    ck_assert_int_eq(metrics_publish(b->metrics, list, 3, &vb, 1), 0);
}

/* A page that must be JSON, with the status expected. */
static json_t *page_json(struct broker *b, enum admin_page page, int status)
{
    struct admin_reply r;
    json_error_t je;
    ck_assert_int_eq(stats_page(b, page, &r), 0);
    ck_assert_int_eq(r.status, status);
    ck_assert_str_eq(r.content_type, "application/json");
    json_t *j = json_loadb(r.body, r.len, 0, &je);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", je.text, r.body);
    free(r.body);
    return j;
}

START_TEST(health_page)
{
    struct broker b;
    struct admin_reply r;
    fill(&b);
    json_t *j = page_json(&b, ADMIN_PAGE_HEALTH, 503);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "degraded");
    json_t *secrets = json_object_get(j, "secrets");
    ck_assert_str_eq(json_string_value(json_object_get(secrets, "api")),
                     "missing: permission denied");
    /* Fresh, and not required: neither is listed. */
    ck_assert_int_eq((int)json_object_size(secrets), 1);
    json_decref(j);

    /* The value comes: healthy. */
    struct metrics_secret *gone = metrics_secret_get(b.metrics, "api");
    atomic_store(&gone->state, METRICS_FRESH);
    atomic_store(&gone->size, 3);
    atomic_store(&gone->last_success_ms, clock_mono_ms());
    ck_assert_int_eq(stats_page(&b, ADMIN_PAGE_HEALTH, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"status\":\"ok\"}\n");
    free(r.body);

    /* Stale for 5 minutes: the age and the error. */
    atomic_store(&gone->state, METRICS_STALE);
    atomic_store(&gone->last_success_ms, clock_mono_ms() - 312000);
    metrics_secret_text(gone, "connection refused", NULL);
    ck_assert_int_eq(stats_page(&b, ADMIN_PAGE_HEALTH, &r), 0);
    ck_assert_int_eq(r.status, 503);
    ck_assert_msg(strstr(r.body, "\"api\":\"stale 5m12s: connection refused\""), "%s", r.body);
    free(r.body);

    /* Past max_stale without anyone asking the store: failing. */
    atomic_store(&gone->max_stale_ms, 1000);
    ck_assert_int_eq(stats_page(&b, ADMIN_PAGE_HEALTH, &r), 0);
    ck_assert_msg(strstr(r.body, "\"api\":\"failing 5m12s: connection refused\""), "%s", r.body);
    free(r.body);
    metrics_free(b.metrics);
}
END_TEST

START_TEST(metrics_page)
{
    struct broker b;
    struct admin_reply r;
    fill(&b);
    ck_assert_int_eq(stats_page(&b, ADMIN_PAGE_METRICS, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    const char *want[] = {
        "runsecrets_reads_total{secret=\"db/pass\\\"word\",result=\"allow\"} 2\n",
        "runsecrets_reads_total{secret=\"db/pass\\\"word\",result=\"deny\"} 1\n",
        "runsecrets_reads_total{secret=\"api\",result=\"allow\"} 0\n",
        "runsecrets_opens_total 3\n",
        "runsecrets_fetches_total{backend=\"vault\",result=\"ok\"} 1\n",
        "runsecrets_fetches_total{backend=\"vault\",result=\"error\"} 1\n",
        "runsecrets_fetch_duration_seconds_bucket{backend=\"vault\",le=\"0.025\"} 1\n",
        "runsecrets_fetch_duration_seconds_bucket{backend=\"vault\",le=\"0.1\"} 1\n",
        "runsecrets_fetch_duration_seconds_bucket{backend=\"vault\",le=\"0.25\"} 2\n",
        "runsecrets_fetch_duration_seconds_bucket{backend=\"vault\",le=\"+Inf\"} 2\n",
        "runsecrets_fetch_duration_seconds_count{backend=\"vault\"} 2\n",
        "runsecrets_secret_stale{secret=\"api\"} 0\n",
        "runsecrets_secret_present{secret=\"api\"} 0\n",
        "runsecrets_secret_present{secret=\"db/pass\\\"word\"} 1\n",
        "runsecrets_backend_up{backend=\"vault\"} 1\n",
        "runsecrets_token_expiry_timestamp_seconds{backend=\"vault\"} 1893456000.000\n",
        "runsecrets_reload_total{result=\"ok\"} 0\n",
        "# TYPE runsecrets_fetch_duration_seconds histogram\n",
        "runsecrets_cache_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(r.body, want[i]), "missing %s in:\n%s", want[i], r.body);
    /* Only secrets with a value have an age. */
    ck_assert_ptr_null(strstr(r.body, "runsecrets_secret_age_seconds{secret=\"api\"}"));
    ck_assert_ptr_nonnull(strstr(r.body, "runsecrets_secret_age_seconds{secret=\"db/pass\\\"word\"} 3."));
    free(r.body);
    metrics_free(b.metrics);
}
END_TEST

START_TEST(status_page)
{
    struct broker b;
    fill(&b);
    json_t *j = page_json(&b, ADMIN_PAGE_STATUS, 200);
    ck_assert(json_is_false(json_object_get(j, "healthy")));
    json_t *ss = json_object_get(j, "secrets");
    ck_assert_int_eq((int)json_array_size(ss), 3);
    json_t *s0 = json_array_get(ss, 0);
    ck_assert_str_eq(json_string_value(json_object_get(s0, "name")), "db/pass\"word");
    ck_assert_str_eq(json_string_value(json_object_get(s0, "state")), "ok");
    ck_assert_str_eq(json_string_value(json_object_get(s0, "version")), "7");
    ck_assert_str_eq(json_string_value(json_object_get(s0, "backend")), "vault");
    ck_assert_int_eq(json_integer_value(json_object_get(s0, "size")), 12);
    double next = json_real_value(json_object_get(s0, "next_fetch_in_seconds"));
    ck_assert_msg(next > 55 && next <= 60, "next %f", next);
    ck_assert(json_is_string(json_object_get(s0, "last_success")));
    ck_assert(json_is_null(json_object_get(s0, "error")));
    json_t *s1 = json_array_get(ss, 1);
    ck_assert_str_eq(json_string_value(json_object_get(s1, "state")), "missing");
    ck_assert_str_eq(json_string_value(json_object_get(s1, "error")), "permission denied");
    ck_assert(json_is_null(json_object_get(s1, "age_seconds")));
    /* Not fetched yet is said so. */
    json_t *s2 = json_array_get(ss, 2);
    ck_assert_str_eq(json_string_value(json_object_get(s2, "error")), "not fetched yet");
    json_t *b0 = json_array_get(json_object_get(j, "backends"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(b0, "auth")), "ok");
    ck_assert_str_eq(json_string_value(json_object_get(b0, "auth_method")), "approle");
    ck_assert_str_eq(json_string_value(json_object_get(b0, "token_expiry")),
                     "2030-01-01T00:00:00.000Z");
    ck_assert_int_eq(json_integer_value(json_object_get(b0, "failures")), 1);
    ck_assert(json_is_true(json_object_get(b0, "up")));
    json_decref(j);
    metrics_free(b.metrics);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, same_name_same_object);
    tcase_add_test(tc, many_names);
    tcase_add_test(tc, escape_label);
    tcase_add_test(tc, histogram_buckets);
    tcase_add_test(tc, text_is_printable);
    tcase_add_test(tc, health_page);
    tcase_add_test(tc, metrics_page);
    tcase_add_test(tc, status_page);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(metrics_suite)
