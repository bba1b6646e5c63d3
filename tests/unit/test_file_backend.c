/* test_file_backend.c - the file backend against a real directory tree:
 * contents, fields, escapes refused, missing vs unreadable, size caps. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backend.h"
#include "lib/secmem.h"
#include "broker/hardening.h"
#include "ck_main.h"

static char dir[] = "/tmp/rs-test-file-XXXXXX";
static char outside[] = "/tmp/rs-test-outside-XXXXXX";
static struct backend *be;
static char err[512];

static void put(const char *rel, const void *data, size_t len)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void setup(void)
{
    char e[128], p[512];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_ptr_nonnull(mkdtemp(outside));
    put("plain", "hunter2", 7);
    put("bin", "a\0b\xff", 4);
    put("db.json", "{\"user\":\"app\",\"port\":5432,\"o\":{\"k\":[1,2]}}", 42);
    put("empty", "", 0);
    snprintf(p, sizeof(p), "%s/sub", dir);
    mkdir(p, 0700);
    put("sub/inner", "deep", 4);
    snprintf(p, sizeof(p), "%s/link-in", dir);
    ck_assert_int_eq(symlink("sub/inner", p), 0);
    snprintf(p, sizeof(p), "%s/secret", outside);
    FILE *f = fopen(p, "w");
    fputs("outside", f);
    fclose(f);
    char l[512];
    snprintf(l, sizeof(l), "%s/link-out", dir);
    ck_assert_int_eq(symlink(p, l), 0);
    snprintf(l, sizeof(l), "%s/link-up", dir);
    ck_assert_int_eq(symlink("../", l), 0);
    snprintf(p, sizeof(p), "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    snprintf(p, sizeof(p), "%s/loop-a", dir);
    ck_assert_int_eq(symlink("loop-b", p), 0);
    snprintf(p, sizeof(p), "%s/loop-b", dir);
    ck_assert_int_eq(symlink("loop-a", p), 0);

    char conf[600];
    snprintf(conf, sizeof(conf), "{\"type\":\"file\",\"path\":\"%s\",\"max_size\":64}", dir);
    json_t *j = json_loads(conf, 0, NULL);
    struct backend_conf *bc;
    ck_assert_int_eq(backend_conf_parse(j, 0, &bc, err, sizeof(err)), 0);
    json_decref(j);
    ck_assert_int_eq(backend_new(&(struct backend_env){0}, "local", bc, &be, err, sizeof(err)), 0);
    backend_conf_free(bc);
}

static void teardown(void)
{
    char cmd[256];
    backend_free(be);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, outside);
    ck_assert_int_eq(system(cmd), 0);
    memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
    memcpy(outside + strlen(outside) - 6, "XXXXXX", 6);
}

/* Resolve ref text; returns rc and copies the value into got. */
static int get(const char *reftext, char *got, size_t *len)
{
    struct secret_ref ref;
    struct fetch_result r;
    ck_assert_int_eq(ref_parse(reftext, &ref, err, sizeof(err)), 0);
    fetch_result_init(&r, backend_max_value(be));
    err[0] = '\0';
    int rc = backend_resolve(be, &ref, &r, err, sizeof(err));
    if (rc == 0) {
        memcpy(got, r.value.data, r.value.len);
        *len = r.value.len;
    }
    fetch_result_cleanup(&r);
    ref_cleanup(&ref);
    return rc;
}

START_TEST(contents_and_fields)
{
    char got[128];
    size_t n;
    ck_assert_int_eq(get("local:plain", got, &n), 0);
    ck_assert_uint_eq(n, 7);
    ck_assert_mem_eq(got, "hunter2", 7);
    ck_assert_int_eq(get("local:bin", got, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_mem_eq(got, "a\0b\xff", 4);
    ck_assert_int_eq(get("local:empty", got, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(get("local:sub/inner", got, &n), 0);
    ck_assert_mem_eq(got, "deep", 4);
    ck_assert_int_eq(get("local:link-in", got, &n), 0);   /* symlink inside: fine */
    ck_assert_mem_eq(got, "deep", 4);
    ck_assert_int_eq(get("local:db.json#user", got, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(got, "app", 3);
    ck_assert_int_eq(get("local:db.json#port", got, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_mem_eq(got, "5432", 4);
    ck_assert_int_eq(get("local:db.json#/o/k/1", got, &n), 0);
    ck_assert_mem_eq(got, "2", 1);
    ck_assert_int_eq(get("local:db.json#o", got, &n), 0);
    ck_assert_uint_eq(n, 11);
    ck_assert_mem_eq(got, "{\"k\":[1,2]}", 11);
}
END_TEST

/* A loop stays inside the directory: it is not an escape, and saying
 * "resolves outside" sent people looking for the wrong problem. */
START_TEST(symlink_loop_is_a_loop)
{
    char got[128];
    size_t n;
    ck_assert_int_eq(get("local:loop-a", got, &n), -ELOOP);
    ck_assert_msg(strstr(err, "symlink loop (too many levels of symbolic links)") != NULL, "%s", err);
    ck_assert_ptr_null(strstr(err, "outside"));
}
END_TEST

START_TEST(escapes_refused)
{
    char got[128];
    size_t n;
    ck_assert_int_eq(get("local:link-out", got, &n), -EACCES);
    ck_assert_ptr_nonnull(strstr(err, "refused: resolves outside"));
    ck_assert_int_eq(get("local:link-up/x", got, &n), -EACCES);
    ck_assert_ptr_null(strstr(err, "outside\""));   /* never the value */

    struct secret_ref ref;
    json_t *j = json_pack("{s:s, s:s}", "type", "file", "path", dir);
    struct backend_conf *conf;
    ck_assert_int_eq(backend_conf_parse(j, 0, &conf, err, sizeof(err)), 0);
    json_decref(j);
    ck_assert_int_eq(ref_parse("local:../etc/passwd", &ref, err, sizeof(err)), 0);
    ck_assert_int_eq(backend_conf_check_ref(conf, &ref, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "file path '../etc/passwd' leaves the backend directory");
    ref_cleanup(&ref);
    ck_assert_int_eq(ref_parse("local:/etc/passwd", &ref, err, sizeof(err)), 0);
    ck_assert_int_eq(backend_conf_check_ref(conf, &ref, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "file path '/etc/passwd' must be relative to the backend directory");
    ref_cleanup(&ref);
    ck_assert_int_eq(ref_parse("local:a/..x/b..", &ref, err, sizeof(err)), 0);
    ck_assert_int_eq(backend_conf_check_ref(conf, &ref, err, sizeof(err)), 0);  /* not a .. segment */
    ref_cleanup(&ref);
    backend_conf_free(conf);
}
END_TEST

START_TEST(missing_vs_unreadable)
{
    char got[128];
    size_t n;
    ck_assert_int_eq(get("local:nope", got, &n), -ENOENT);   /* gone: the file disappears */
    ck_assert_int_eq(get("local:sub", got, &n), -EISDIR);    /* unreadable: an error */
    ck_assert_str_eq(err, "sub: not a regular file");
    ck_assert_int_eq(get("local:fifo", got, &n), -EINVAL);   /* and it did not block */
    ck_assert_int_eq(get("local:db.json#nope", got, &n), -EINVAL);
    ck_assert_str_eq(err, "field 'nope' not found");
    ck_assert_int_eq(get("local:plain#user", got, &n), -EINVAL);
    ck_assert_ptr_null(strstr(err, "hunter2"));               /* never the value */
}
END_TEST

START_TEST(size_cap)
{
    char got[128], data[65];
    size_t n;
    memset(data, 'z', sizeof(data));
    put("max", data, 64);
    ck_assert_int_eq(get("local:max", got, &n), 0);          /* exactly max_size */
    ck_assert_uint_eq(n, 64);
    put("over", data, 65);
    ck_assert_int_eq(get("local:over", got, &n), -E2BIG);
    ck_assert_str_eq(err, "over: 65 bytes, larger than max_size 64");
}
END_TEST

START_TEST(missing_directory_is_outage)
{
    char got[128], cmd[300];
    size_t n;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    /* Not -ENOENT: a vanished directory must not delete every secret. */
    ck_assert_int_eq(get("local:plain", got, &n), -EIO);
    ck_assert_ptr_nonnull(strstr(err, "backend directory"));
    mkdir(dir, 0700);
}
END_TEST

static Suite *file_suite(void)
{
    Suite *s = suite_create("file_backend");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, contents_and_fields);
    tcase_add_test(tc, escapes_refused);
    tcase_add_test(tc, symlink_loop_is_a_loop);
    tcase_add_test(tc, missing_vs_unreadable);
    tcase_add_test(tc, size_cap);
    tcase_add_test(tc, missing_directory_is_outage);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(file_suite)
