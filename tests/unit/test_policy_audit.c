/* test_policy_audit.c - the audit trail's line (fields, JSON whatever the
 * bytes of a path) and its repeats (folded per secret, process and
 * decision; denials at least once a second; counts written when a slot is
 * reused, at a reconfiguration and at free), through a real file sink. */
#include "policy/audit.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ck_main.h"

static char dir[] = "/tmp/rs-test-audit-XXXXXX";
static char file[256];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rs-test-audit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/sub/audit.log", dir);
}

static void teardown(void)
{
    char sub[300];
    unlink(file);
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
}

/* The file's lines, parsed; *n how many. Every line must be JSON. */
static json_t **read_lines(size_t *n)
{
    static json_t *lines[20000];
    FILE *f = fopen(file, "r");
    char buf[16384];
    *n = 0;
    if (!f)
        return lines;
    while (fgets(buf, sizeof(buf), f) && *n < 20000) {
        json_error_t je;
        lines[*n] = json_loads(buf, 0, &je);
        ck_assert_msg(lines[*n] != NULL, "not JSON: %s (%s)", buf, je.text);
        (*n)++;
    }
    fclose(f);
    return lines;
}

static void free_lines(json_t **l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(l[i]);
}

static struct policy_audit_log *open_log(long long repeat_ms)
{
    struct policy_audit cfg = {.sink = POLICY_AUDIT_FILE, .path = file, .repeat_after = repeat_ms};
    struct policy_audit_log *l = NULL;
    char err[256];
    ck_assert_int_eq(policy_audit_log_new(&cfg, &l, err, sizeof(err)), 0);
    return l;
}

static long long num(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

START_TEST(line_fields_and_bad_bytes)
{
    struct policy_proc who = {.pid = 42, .uid = 1000, .gid = 100, .has_pid = true,
                              .has_exe = true, .exe_dev = 8, .exe_ino = 99,
                              .runtime = POLICY_RUNTIME_DOCKER};
    /* A path may hold any byte: the line stays JSON, with U+FFFD. */
    snprintf(who.exe_path, sizeof(who.exe_path), "/opt/\xff\xfe" "app\n");
    snprintf(who.cgroup, sizeof(who.cgroup), "/docker/x\"y");
    memset(who.container, 'a', 64);
    struct policy_audit_line a = {.secret = "db/pw", .backend = "vault", .who = &who,
                                  .d = POLICY_DENY, .rule = 3, .error = NULL, .repeats = 7};
    char out[8192];
    size_t n = policy_audit_format(out, sizeof(out), &a, false);
    ck_assert_uint_eq(n, strlen(out));
    ck_assert_int_eq(out[n - 1], '\n');
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    ck_assert_msg(o != NULL, "%s: %s", out, je.text);
    ck_assert_str_eq(str(o, "msg"), "open");
    ck_assert(json_is_true(json_object_get(o, "audit")));
    ck_assert_str_eq(str(o, "level"), "warn");
    ck_assert_str_eq(str(o, "secret"), "db/pw");
    ck_assert_str_eq(str(o, "backend"), "vault");
    ck_assert_str_eq(str(o, "decision"), "deny");
    ck_assert_int_eq(num(o, "rule"), 3);
    ck_assert_int_eq(num(o, "pid"), 42);
    ck_assert_int_eq(num(o, "uid"), 1000);
    ck_assert_int_eq(num(o, "gid"), 100);
    ck_assert_str_eq(str(o, "exe"), "/opt/\xef\xbf\xbd\xef\xbf\xbd" "app\n");
    ck_assert_str_eq(str(o, "exe_id"), "8:99");
    ck_assert_str_eq(str(o, "cgroup"), "/docker/x\"y");
    ck_assert_int_eq(strncmp(str(o, "container"), "docker:aaaa", 11), 0);
    ck_assert_int_eq(num(o, "repeats"), 7);
    ck_assert_ptr_null(json_object_get(o, "error"));
    json_decref(o);

    /* The default rule; no pid: no process fields; an error. */
    struct policy_proc bare = {.pid = 0, .uid = 5, .gid = 6};
    a = (struct policy_audit_line){.secret = "s", .who = &bare, .d = POLICY_ALLOW, .rule = -1,
                                   .error = "Input/output error"};
    policy_audit_format(out, sizeof(out), &a, false);
    o = json_loads(out, 0, &je);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(str(o, "rule"), "default");
    ck_assert_str_eq(str(o, "level"), "warn");
    ck_assert_str_eq(str(o, "error"), "Input/output error");
    ck_assert_ptr_null(json_object_get(o, "exe"));
    ck_assert_ptr_null(json_object_get(o, "cgroup"));
    ck_assert_ptr_null(json_object_get(o, "repeats"));
    json_decref(o);

    /* A line cut to fit stays JSON. */
    char big[1100];
    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    a.secret = big;
    char small[600];
    policy_audit_format(small, sizeof(small), &a, false);
    o = json_loads(small, 0, &je);
    ck_assert_msg(o != NULL, "%s", je.text);
    json_decref(o);
}
END_TEST

START_TEST(folded_per_secret_process_decision)
{
    struct policy_audit_log *l = open_log(60000);
    struct policy_proc p1 = {.pid = 10, .start_time = 111, .uid = 1, .gid = 1};
    struct policy_proc p1_reused = {.pid = 10, .start_time = 222, .uid = 1, .gid = 1};
    unsigned long long r = 99;
    ck_assert(policy_audit_log_admit(l, "a", &p1, POLICY_ALLOW, &r));
    ck_assert_uint_eq(r, 0);
    for (int i = 0; i < 5; i++)
        ck_assert(!policy_audit_log_admit(l, "a", &p1, POLICY_ALLOW, &r));
    /* Another secret, another decision, another process with the same pid:
     * each its own line. */
    ck_assert(policy_audit_log_admit(l, "b", &p1, POLICY_ALLOW, &r));
    ck_assert(policy_audit_log_admit(l, "a", &p1, POLICY_DENY, &r));
    ck_assert(policy_audit_log_admit(l, "a", &p1_reused, POLICY_ALLOW, &r));
    /* pid 0: the uid is the caller. */
    struct policy_proc z1 = {.pid = 0, .uid = 1}, z2 = {.pid = 0, .uid = 2};
    ck_assert(policy_audit_log_admit(l, "a", &z1, POLICY_ALLOW, &r));
    ck_assert(!policy_audit_log_admit(l, "a", &z1, POLICY_ALLOW, &r));
    ck_assert(policy_audit_log_admit(l, "a", &z2, POLICY_ALLOW, &r));
    /* Free writes what is pending: 5 for (a, p1, allow), 1 for (a, z1). */
    policy_audit_log_free(l);
    size_t n;
    json_t **lines = read_lines(&n);
    ck_assert_uint_eq(n, 2);
    long long total = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(str(lines[i], "msg"), "open repeats");
        total += num(lines[i], "repeats");
    }
    ck_assert_int_eq(total, 6);
    free_lines(lines, n);
    struct stat st;
    ck_assert_int_eq(stat(file, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
}
END_TEST

/* The count a line of its own carries for (secret, decision), or -1. */
static long long summary_of(const char *decision)
{
    size_t n;
    json_t **lines = read_lines(&n);
    long long got = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(str(lines[i], "msg"), "open repeats") == 0 &&
            strcmp(str(lines[i], "decision"), decision) == 0)
            got = num(lines[i], "repeats");
    free_lines(lines, n);
    return got;
}

START_TEST(denials_at_least_once_a_second)
{
    struct policy_audit_log *l = open_log(3600 * 1000LL);
    struct policy_proc p = {.pid = 7, .start_time = 1};
    unsigned long long r;
    ck_assert(policy_audit_log_admit(l, "s", &p, POLICY_DENY, &r));
    ck_assert(policy_audit_log_admit(l, "s", &p, POLICY_ALLOW, &r));
    ck_assert(!policy_audit_log_admit(l, "s", &p, POLICY_DENY, &r));
    ck_assert(!policy_audit_log_admit(l, "s", &p, POLICY_DENY, &r));
    ck_assert(!policy_audit_log_admit(l, "s", &p, POLICY_ALLOW, &r));
    /* No further open: within a second or two the ticker writes the
     * denials' count on a line of its own; the allow's (an hour) waits. */
    long long got = -1;
    for (int i = 0; i < 100 && got < 0; i++) {
        usleep(50 * 1000);
        got = summary_of("deny");
    }
    ck_assert_int_eq(got, 2);
    ck_assert_int_eq(summary_of("allow"), -1);
    /* A denial a second after the last line is due again. */
    usleep(1100 * 1000);
    ck_assert(policy_audit_log_admit(l, "s", &p, POLICY_DENY, &r));
    ck_assert_uint_eq(r, 0);
    ck_assert(!policy_audit_log_admit(l, "s", &p, POLICY_ALLOW, &r));
    policy_audit_log_free(l);
    ck_assert_int_eq(summary_of("allow"), 2);
}
END_TEST

START_TEST(zero_writes_every_line)
{
    struct policy_audit_log *l = open_log(0);
    struct policy_proc p = {.pid = 7, .start_time = 1};
    unsigned long long r;
    for (int i = 0; i < 3; i++)
        ck_assert(policy_audit_log_admit(l, "s", &p, POLICY_ALLOW, &r));
    policy_audit_log_free(l);
}
END_TEST

START_TEST(slot_reuse_writes_the_count)
{
    /* 20,000 secrets, each opened twice by one process: more than the
     * table holds, so slots are reused; no count is lost. */
    struct policy_audit_log *l = open_log(60000);
    struct policy_proc p = {.pid = 9, .start_time = 5, .uid = 3, .gid = 4};
    unsigned long long r, due = 0;
    char name[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        due += policy_audit_log_admit(l, name, &p, POLICY_ALLOW, &r);
        due += policy_audit_log_admit(l, name, &p, POLICY_ALLOW, &r);
    }
    ck_assert_uint_ge(due, 20000);
    policy_audit_log_free(l);
    size_t n;
    json_t **lines = read_lines(&n);
    long long total = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(str(lines[i], "msg"), "open repeats");
        ck_assert_int_eq(num(lines[i], "uid"), 3);
        total += num(lines[i], "repeats");
    }
    /* Every open is a line or counted on one. */
    ck_assert_int_eq((long long)due + total, 40000);
    free_lines(lines, n);
}
END_TEST

START_TEST(reconfigure_and_reopen)
{
    struct policy_audit_log *l = open_log(60000);
    struct policy_proc p = {.pid = 9, .start_time = 5, .uid = 3, .gid = 4};
    unsigned long long r;
    char err[256], moved[300];
    ck_assert(policy_audit_log_admit(l, "s", &p, POLICY_ALLOW, &r));
    ck_assert(!policy_audit_log_admit(l, "s", &p, POLICY_ALLOW, &r));
    /* logrotate: moved away, reopened by its path. */
    snprintf(moved, sizeof(moved), "%s.1", file);
    ck_assert_int_eq(rename(file, moved), 0);
    ck_assert_int_eq(policy_audit_log_reopen(l, err, sizeof(err)), 0);
    struct stat st;
    ck_assert_int_eq(stat(file, &st), 0);
    /* A bad sink is refused and the old one kept. */
    char bad_path[] = "/proc/nope/x.log", sock_path[] = "/proc/nope.sock";
    struct policy_audit bad = {.sink = POLICY_AUDIT_FILE, .path = bad_path,
                               .repeat_after = 1000};
    ck_assert_int_lt(policy_audit_log_configure(l, &bad, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "policy.audit.sink: file:/proc/nope/x.log") != NULL, "%s", err);
    ck_assert_int_lt(policy_audit_check(&bad, err, sizeof(err)), 0);
    struct policy_audit sock = {.sink = POLICY_AUDIT_SYSLOG, .path = sock_path};
    ck_assert_int_lt(policy_audit_check(&sock, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "policy.audit.sink: syslog:/proc/nope.sock") != NULL, "%s", err);
    /* The same sink again: the pending count is written, the table cleared. */
    struct policy_audit same = {.sink = POLICY_AUDIT_FILE, .path = file, .repeat_after = 60000};
    ck_assert_int_eq(policy_audit_log_configure(l, &same, err, sizeof(err)), 0);
    ck_assert(policy_audit_log_admit(l, "s", &p, POLICY_ALLOW, &r));
    ck_assert_uint_eq(r, 0);
    policy_audit_log_free(l);
    size_t n;
    json_t **lines = read_lines(&n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(num(lines[0], "repeats"), 1);
    free_lines(lines, n);
    unlink(moved);
}
END_TEST

static Suite *audit_suite(void)
{
    Suite *s = suite_create("policy_audit");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, line_fields_and_bad_bytes);
    tcase_add_test(tc, folded_per_secret_process_decision);
    tcase_add_test(tc, denials_at_least_once_a_second);
    tcase_add_test(tc, zero_writes_every_line);
    tcase_add_test(tc, slot_reuse_writes_the_count);
    tcase_add_test(tc, reconfigure_and_reopen);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(audit_suite)
