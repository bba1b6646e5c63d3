/* test_policy_glob.c - the policy's globs: what matches, what is refused
 * (with its message), and that no pattern makes matching slow. */
#include "policy/glob.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ck_main.h"

static const struct {
    const char *pat, *s;
    bool match;
} cases[] = {
    {"db/*", "db/password", true},
    {"db/*", "db/a/b", false},
    {"db/*", "db", false},
    {"db/*", "db/", true},
    {"db/*", "dbx/a", false},
    {"api_key", "api_key", true},
    {"api_key", "api_keys", false},
    {"api_?ey", "api_key", true},
    {"api_?ey", "api_/ey", false},
    {"**", "a", true},
    {"**", "a/b/c", true},
    {"**", "", true},
    {"admin/**", "admin", true},
    {"admin/**", "admin/x", true},
    {"admin/**", "admin/x/y", true},
    {"admin/**", "administrator/x", false},
    {"**/key", "key", true},
    {"**/key", "a/b/key", true},
    {"**/key", "a/b/key2", false},
    {"a/**/b", "a/b", true},
    {"a/**/b", "a/x/y/b", true},
    {"a/**/b", "a/x/y/c", false},
    {"a/**/b/**/c", "a/1/b/2/b/3/c", true},
    {"a/**/b/**/c", "a/1/b/2/c/3", false},
    {"**/x/**", "p/q/x/r", true},
    {"*", "abc", true},
    {"*", "a/b", false},
    {"*.crt", "tls.crt", true},
    {"*.crt", "tls.key", false},
    {"a*b*c", "aXXbYYc", true},
    {"a*b*c", "aXXbYY", false},
    {"*a*a*b", "xaaxab", true},
    {"[a-c]x", "bx", true},
    {"[a-c]x", "dx", false},
    {"[!a-c]x", "dx", true},
    {"[^a-c]x", "ax", false},
    {"[]]", "]", true},
    {"[!]]", "]", false},
    {"[!]]", "a", true},
    {"[a-]", "-", true},
    {"[\\]]", "]", true},
    {"x[!a]", "x/", false},
    {"\\*", "*", true},
    {"\\*", "a", false},
    {"a\\?", "a?", true},
    {"a\\?", "ab", false},
    {"\\**", "*abc", true},
    {"/system.slice/ssh*.service", "/system.slice/sshd.service", true},
    {"/system.slice/ssh*.service", "/system.slice/x/sshd.service", false},
    {"/system.slice/**", "/system.slice/a/b", true},
    {"/kubepods.slice/**/cri-containerd-*.scope",
     "/kubepods.slice/kubepods-burstable.slice/x.slice/cri-containerd-abc.scope", true},
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
};

START_TEST(table)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        ck_assert_msg(policy_glob_check(cases[i].pat, err, sizeof(err)) == 0, "%s: %s",
                      cases[i].pat, err);
        ck_assert_msg(policy_glob_match(cases[i].pat, cases[i].s) == cases[i].match,
                      "'%s' against '%s': expected %s", cases[i].pat, cases[i].s,
                      cases[i].match ? "a match" : "no match");
    }
}
END_TEST

static const struct {
    const char *pat, *msg;
} bad[] = {
    {"", "bad glob: empty"},
    {"a**", "bad glob: '**' at character 2 must be a whole segment (as in \"a/**/b\"); '*' "
            "alone stays within one"},
    {"**a", "bad glob: '**' at character 1 must be a whole segment (as in \"a/**/b\"); '*' "
            "alone stays within one"},
    {"x/***", "bad glob: '**' at character 3 must be a whole segment (as in \"a/**/b\"); '*' "
              "alone stays within one"},
    {"db/[abc", "bad glob: '[' at character 4 is not closed by ']'"},
    {"[]", "bad glob: '[' at character 1 is not closed by ']'"},
    {"[\\", "bad glob: '[' at character 1 is not closed by ']'"},
    {"a[z-a]", "bad glob: the set at character 2 has a reversed range"},
    {"a[/]", "bad glob: the set at character 2 holds '/', which no set matches (a segment has "
             "no '/')"},
    {"a[.-/]", "bad glob: the set at character 2 holds '/', which no set matches (a segment "
               "has no '/')"},
    {"abc\\", "bad glob: trailing backslash at character 4"},
    {"a\\/b", "bad glob: '/' escaped at character 2: a '/' always separates segments"},
};

START_TEST(refused)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        ck_assert_int_eq(policy_glob_check(bad[i].pat, err, sizeof(err)), -EINVAL);
        ck_assert_msg(strcmp(err, bad[i].msg) == 0, "'%s':\n got: %s\nwant: %s", bad[i].pat,
                      err, bad[i].msg);
    }
    /* Refused patterns still get an answer from match, never a crash. */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        (void)policy_glob_match(bad[i].pat, "a/b[c");
}
END_TEST

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A naive recursive matcher takes exponential time here; the two-pointer
 * backtrack takes (pattern x string) steps. */
START_TEST(pathological)
{
    char pat[512], s[4096], deep[512], path[8192], err[128];
    size_t o = 0;
    for (int i = 0; i < 30; i++)
        o += (size_t)snprintf(pat + o, sizeof(pat) - o, "*a");
    snprintf(pat + o, sizeof(pat) - o, "*b");
    memset(s, 'a', sizeof(s) - 1);
    s[sizeof(s) - 1] = '\0';
    o = 0;
    for (int i = 0; i < 30; i++)
        o += (size_t)snprintf(deep + o, sizeof(deep) - o, "**/a/");
    snprintf(deep + o, sizeof(deep) - o, "b");
    o = 0;
    for (int i = 0; i < 2000; i++)
        o += (size_t)snprintf(path + o, sizeof(path) - o, "a/");
    snprintf(path + o, sizeof(path) - o, "c");
    ck_assert_int_eq(policy_glob_check(pat, err, sizeof(err)), 0);
    ck_assert_int_eq(policy_glob_check(deep, err, sizeof(err)), 0);
    double t0 = now();
    ck_assert(!policy_glob_match(pat, s));
    ck_assert(!policy_glob_match(deep, path));
    path[strlen(path) - 1] = 'b';
    ck_assert(policy_glob_match(deep, path));
    ck_assert_msg(now() - t0 < 1.0, "took %.3f s", now() - t0);
}
END_TEST

static Suite *glob_suite(void)
{
    Suite *s = suite_create("policy_glob");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, table);
    tcase_add_test(tc, refused);
    tcase_add_test(tc, pathological);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(glob_suite)
