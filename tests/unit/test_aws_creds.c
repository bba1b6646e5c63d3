/* test_aws_creds.c - the AWS shared-file parser and the parts of the
 * credential chain that need no network: environment, static profile keys,
 * credential_process, the order of sources and their error messages.
 * (STS, container and instance-metadata sources run against servers in
 * tests/integration/test_aws_creds.py.) Each test runs in its own process
 * (CK_FORK), so setenv stays local. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "backends/aws/creds.h"
#include "backends/aws/aws_i.h"
#include "backends/aws/ini.h"
#include "lib/secmem.h"
#include "broker/hardening.h"
#include "ck_main.h"

static char dir[] = "/tmp/rs-test-aws-XXXXXX";
static struct http_engine *eng;

static void setup(void)
{
    char e[256];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(http_engine_new(&eng, e, sizeof(e)), 0);
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_REGION", "AWS_DEFAULT_REGION", NULL};
    for (size_t i = 0; vars[i]; i++)
        unsetenv(vars[i]);
    char p[256];
    snprintf(p, sizeof(p), "%s/credentials", dir);
    setenv("AWS_SHARED_CREDENTIALS_FILE", p, 1);
    snprintf(p, sizeof(p), "%s/config", dir);
    setenv("AWS_CONFIG_FILE", p, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static void teardown(void)
{
    http_engine_free(eng);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

static void write_file(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(p, 0700);
}

static struct aws_chain *chain(const char *profile)
{
    struct aws_chain *c = NULL;
    char err[256] = "";
    struct aws_chain_opts o = {.http = eng, .profile = profile, .backend = "aws"};
    ck_assert_int_eq(aws_chain_new(&o, &c, err, sizeof(err)), 0);
    return c;
}

START_TEST(ini_sections_comments_and_last_wins)
{
    static const char text[] =
        "# comment\n[default]\naws_access_key_id = AKIA1\n; another\nAWS_Secret_Access_Key=s1\n"
        "[profile prod]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 20\n"
        "region=eu-central-1\n";
    struct ini *ini = NULL;
    char err[256] = "";
    ck_assert_int_eq(ini_parse("t", text, sizeof(text) - 1, &ini, err, sizeof(err)), 0);
    ck_assert_str_eq(ini_get(ini, "default", "aws_access_key_id"), "AKIA1");
    ck_assert_str_eq(ini_get(ini, "default", "aws_secret_access_key"), "s1");   /* keys lower-cased */
    ck_assert_str_eq(ini_get(ini, "profile prod", "region"), "eu-central-1");   /* last wins */
    ck_assert_ptr_null(ini_get(ini, "profile prod", "max_concurrent_requests")); /* nested: skipped */
    ck_assert_ptr_null(ini_get(ini, "default", "region"));
    ck_assert(ini_has_section(ini, "profile prod"));
    ck_assert(!ini_has_section(ini, "prod"));
    ini_free(ini);
}
END_TEST

START_TEST(ini_errors)
{
    struct ini *ini = NULL;
    char err[256] = "";
    ck_assert_int_eq(ini_parse("f", "[a\nk=v\n", 8, &ini, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "f:1: section header without ']'");
    ck_assert_int_eq(ini_parse("f", "[a]\njunk\n", 9, &ini, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "f:2: expected 'key = value'");
    ck_assert_int_eq(ini_parse("f", "k=v\n", 4, &ini, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "f:1: setting outside any [section]");
    ck_assert_int_eq(ini_load("/nonexistent-rs/credentials", &ini, err, sizeof(err)), -ENOENT);
}
END_TEST

/* aws_chain_status's state, expiry and method. */
static void expect_status(struct aws_chain *c, enum backend_auth_state st, long long expires,
                          const char *method)
{
    struct backend_auth a = {0};
    aws_chain_status(c, &a);
    ck_assert_int_eq(a.state, st);
    ck_assert_int_eq(a.expires_unix_ms, expires);
    ck_assert_str_eq(a.method, method);
}

START_TEST(environment_first)
{
    struct aws_creds cr = {0};
    char err[256] = "";
    write_file("credentials", "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = f\n");
    setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    struct aws_chain *c = chain(NULL);
    expect_status(c, BACKEND_AUTH_PENDING, 0, "");
    ck_assert_msg(aws_chain_get(c, &cr, err, sizeof(err)) == 0, "%s", err);
    /* a session token without an end known: OK, no expiry */
    expect_status(c, BACKEND_AUTH_OK, 0, "env");
    ck_assert_str_eq(cr.akid, "ENVKEY");
    ck_assert_str_eq(cr.secret, "envsecret");
    ck_assert_str_eq(cr.token, "envtoken");
    ck_assert_str_eq(aws_chain_source(c), "environment");
    aws_creds_clear(&cr);
    aws_chain_free(c);
    /* an explicit profile skips the environment, as the CLI's --profile does */
    c = chain("default");
    ck_assert_msg(aws_chain_get(c, &cr, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cr.akid, "FILEKEY");
    ck_assert_ptr_null(cr.token);
    ck_assert_str_eq(aws_chain_source(c), "profile default");
    expect_status(c, BACKEND_AUTH_OK, 0, "profile");   /* long-term keys never end */
    /* rejected as expired: none held until the next fetch */
    aws_chain_invalidate(c);
    expect_status(c, BACKEND_AUTH_PENDING, 0, "profile");
    aws_creds_clear(&cr);
    aws_chain_free(c);
}
END_TEST

START_TEST(profile_from_env_and_config_file)
{
    struct aws_creds cr = {0};
    char err[256] = "";
    write_file("config", "[profile prod]\naws_access_key_id = CFGKEY\naws_secret_access_key = c\n"
                         "region = eu-west-1\n");
    setenv("AWS_PROFILE", "prod", 1);
    struct aws_chain *c = chain(NULL);
    ck_assert_msg(aws_chain_get(c, &cr, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cr.akid, "CFGKEY");
    char *region = NULL;
    ck_assert_int_eq(aws_chain_region(c, &region, err, sizeof(err)), 0);
    ck_assert_str_eq(region, "eu-west-1");
    free(region);
    aws_creds_clear(&cr);
    aws_chain_free(c);
    setenv("AWS_REGION", "ap-south-1", 1);   /* the environment beats the profile */
    c = chain(NULL);
    ck_assert_int_eq(aws_chain_region(c, &region, err, sizeof(err)), 0);
    ck_assert_str_eq(region, "ap-south-1");
    free(region);
    aws_chain_free(c);
}
END_TEST

START_TEST(credential_process)
{
    struct aws_creds cr = {0};
    char err[256] = "", cfg[512];
    write_file("proc.sh", "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"PROCKEY\", "
                          "\"SecretAccessKey\": \"ps\", \"SessionToken\": \"pt\", "
                          "\"Expiration\": \"2099-01-01T00:00:00Z\"}'\n");
    snprintf(cfg, sizeof(cfg), "[default]\ncredential_process = %s/proc.sh --flag\n", dir);
    write_file("config", cfg);
    struct aws_chain *c = chain(NULL);
    ck_assert_msg(aws_chain_get(c, &cr, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cr.akid, "PROCKEY");
    ck_assert_str_eq(cr.token, "pt");
    ck_assert_int_eq(cr.expiration, 4070908800);
    expect_status(c, BACKEND_AUTH_OK, 4070908800000LL, "profile");
    aws_creds_clear(&cr);
    /* the servers' clock runs 60 s ahead of ours: the end, on ours, is 60 s sooner */
    aws_chain_invalidate(c);
    c->clock->skew_s = 60;
    ck_assert_msg(aws_chain_get(c, &cr, err, sizeof(err)) == 0, "%s", err);
    expect_status(c, BACKEND_AUTH_OK, (4070908800LL - 60) * 1000, "profile");
    aws_creds_clear(&cr);
    aws_chain_free(c);
}
END_TEST

/* The broker ignores USR1, PIPE... and its threads block every signal; the
 * child must start with neither, or SIG_IGN survives the exec. */
START_TEST(credential_process_default_signals)
{
    struct aws_creds cr = {0};
    char err[256] = "", cfg[512];
    sigset_t all, old;
    /* awk reports its own status: what the child and its children got. */
    write_file("sig.sh", "#!/bin/sh\n"
                         "ign=$(awk '/^SigIgn/ {print $2}' /proc/self/status)\n"
                         "blk=$(awk '/^SigBlk/ {print $2}' /proc/self/status)\n"
                         "[ $((0x$ign & 0x1200)) -eq 0 ] || exit 4\n"   /* USR1, PIPE */
                         "[ $((0x$blk)) -eq 0 ] || exit 5\n"
                         "echo '{\"Version\": 1, \"AccessKeyId\": \"SIGKEY\", "
                         "\"SecretAccessKey\": \"ps\"}'\n");
    snprintf(cfg, sizeof(cfg), "[default]\ncredential_process = %s/sig.sh\n", dir);
    write_file("config", cfg);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    struct aws_chain *c = chain(NULL);
    int rc = aws_chain_get(c, &cr, err, sizeof(err));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_str_eq(cr.akid, "SIGKEY");
    aws_creds_clear(&cr);
    aws_chain_free(c);
}
END_TEST

START_TEST(credential_process_failures)
{
    struct aws_creds cr = {0};
    char err[256] = "", cfg[512];
    write_file("fail.sh", "#!/bin/sh\necho 'nope' >&2\nexit 3\n");
    snprintf(cfg, sizeof(cfg), "[default]\ncredential_process = %s/fail.sh\n", dir);
    write_file("config", cfg);
    struct aws_chain *c = chain(NULL);
    ck_assert_int_eq(aws_chain_get(c, &cr, err, sizeof(err)), -EIO);
    ck_assert_str_eq(err, "credential_process: exited with status 3");
    expect_status(c, BACKEND_AUTH_FAILING, 0, "profile");
    aws_chain_free(c);
    write_file("bad.sh", "#!/bin/sh\necho '{\"Version\": 1}'\n");
    snprintf(cfg, sizeof(cfg), "[default]\ncredential_process = %s/bad.sh\n", dir);
    write_file("config", cfg);
    c = chain(NULL);
    ck_assert_int_eq(aws_chain_get(c, &cr, err, sizeof(err)), -EPROTO);
    ck_assert_str_eq(err, "credential_process: no AccessKeyId/SecretAccessKey in the answer");
    aws_chain_free(c);
}
END_TEST

START_TEST(credential_process_timeout_kills_the_group)
{
    struct aws_creds cr = {0};
    char err[256] = "", cfg[512], pidfile[300];
    struct aws_chain *c = NULL;
    struct aws_chain_opts o = {.http = eng, .backend = "aws", .process_timeout_ms = 1000};
    /* a helper that never answers, with a grandchild holding stdout open */
    snprintf(pidfile, sizeof(pidfile), "%s/grandchild.pid", dir);
    snprintf(cfg, sizeof(cfg), "#!/bin/sh\nsleep 60 &\necho $! > %s\nsleep 60\n", pidfile);
    write_file("hang.sh", cfg);
    snprintf(cfg, sizeof(cfg), "[default]\ncredential_process = %s/hang.sh\n", dir);
    write_file("config", cfg);
    ck_assert_int_eq(aws_chain_new(&o, &c, err, sizeof(err)), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(aws_chain_get(c, &cr, err, sizeof(err)), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_str_eq(err, "credential_process: no answer within 1 s");
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(s < 5.0, "took %.1f s", s);
    FILE *f = fopen(pidfile, "r");
    ck_assert_ptr_nonnull(f);
    int gpid = 0;
    ck_assert_int_eq(fscanf(f, "%d", &gpid), 1);
    fclose(f);
    for (int i = 0; i < 50 && kill(gpid, 0) == 0; i++) {
        char st[64] = "", path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", gpid);   /* a zombie counts as gone */
        FILE *p = fopen(path, "r");
        if (p && fgets(st, sizeof(st), p) && strstr(st, ") Z"))
            gpid = -1;
        if (p)
            fclose(p);
        if (gpid < 0)
            break;
        usleep(20000);
    }
    ck_assert_msg(gpid < 0 || kill(gpid, 0) != 0, "the grandchild %d survived", gpid);
    aws_chain_free(c);
}
END_TEST

START_TEST(missing_profile_and_nothing_at_all)
{
    struct aws_creds cr = {0};
    char err[512] = "";
    struct aws_chain *c = chain("ghost");
    ck_assert_int_eq(aws_chain_get(c, &cr, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, "profile ghost not found in ") != NULL, "%s", err);
    aws_chain_free(c);
    c = chain(NULL);
    ck_assert_int_eq(aws_chain_get(c, &cr, err, sizeof(err)), -ENOENT);
    ck_assert_msg(strstr(err, "no credentials: not in the environment") != NULL, "%s", err);
    /* a failure is remembered: the same answer, no second attempt */
    char err2[512] = "";
    ck_assert_int_eq(aws_chain_get(c, &cr, err2, sizeof(err2)), -ENOENT);
    ck_assert_str_eq(err, err2);
    aws_chain_free(c);
    write_file("credentials", "[default]\naws_access_key_id = ONLYID\n");
    c = chain(NULL);
    ck_assert_int_eq(aws_chain_get(c, &cr, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "profile default: aws_access_key_id without aws_secret_access_key");
    aws_chain_free(c);
}
END_TEST

START_TEST(role_needs_source)
{
    struct aws_creds cr = {0};
    char err[512] = "";
    write_file("config", "[profile r]\nrole_arn = arn:aws:iam::1:role/x\n");
    struct aws_chain *c = chain("r");
    ck_assert_int_eq(aws_chain_get(c, &cr, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "profile r: role_arn needs source_profile (credential_source is not "
                          "supported)");
    aws_chain_free(c);
}
END_TEST

/* Found by fuzz_aws_creds: the instance metadata role listing went into
 * the next URL as it came, NUL bytes, '/' and "../" included. */
START_TEST(imds_role_is_a_role_name)
{
    struct secbuf b;
    char role[256];
/* The body's bytes without the literal's terminating NUL (some hold NULs). */
#define BODY(lit) lit, sizeof(lit) - 1
    static const struct {
        const char *body;
        size_t len;
        int rc;
        const char *role;
    } cases[] = {
        {BODY("my-instance-role\n"), 0, "my-instance-role"},
        {BODY("r+=,.@_-1\r\nsecond\n"), 0, "r+=,.@_-1"},
        {BODY("\n"), -ENOENT, NULL},
        {BODY("\0mynsi-tanc[e-\x95ole\n"), -EPROTO, NULL},
        {BODY("a\0b"), -EPROTO, NULL},
        {BODY("../../user-data"), -EPROTO, NULL},
        {BODY("a b"), -EPROTO, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        secbuf_init(&b, 1024);
        ck_assert_int_eq(secbuf_append(&b, cases[i].body, cases[i].len), 0);
        ck_assert_int_eq(aws_imds_role(&b, role, sizeof(role)), cases[i].rc);
        if (cases[i].role)
            ck_assert_str_eq(role, cases[i].role);
        secbuf_cleanup(&b);
    }
}
END_TEST

static Suite *aws_creds_suite(void)
{
    Suite *s = suite_create("aws_creds");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, ini_sections_comments_and_last_wins);
    tcase_add_test(tc, ini_errors);
    tcase_add_test(tc, environment_first);
    tcase_add_test(tc, profile_from_env_and_config_file);
    tcase_add_test(tc, credential_process);
    tcase_add_test(tc, credential_process_default_signals);
    tcase_add_test(tc, credential_process_failures);
    tcase_add_test(tc, credential_process_timeout_kills_the_group);
    tcase_add_test(tc, missing_profile_and_nothing_at_all);
    tcase_add_test(tc, role_needs_source);
    tcase_add_test(tc, imds_role_is_a_role_name);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(aws_creds_suite)
