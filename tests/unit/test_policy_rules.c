/* test_policy_rules.c - the access policy from JSON to decision: issue
 * 15's decision table (deny over allow, default, AND within an object, OR
 * within a key, supplementary groups, executables by inode, pid 0 failing
 * closed), and every refused input with its exact message. */
#include "policy/rules.h"

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

static char dir[] = "/tmp/rs-test-policy-XXXXXX";
static char app[256], copy[256], hlink[256];

/* A file with the bytes of src at dst. */
static void copy_file(const char *src, const char *dst)
{
    char buf[65536];
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    ssize_t n;
    ck_assert_int_ge(in, 0);
    ck_assert_int_ge(out, 0);
    while ((n = read(in, buf, sizeof(buf))) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

/* app: a binary; copy: the same bytes elsewhere (another inode); hlink: a
 * hard link to app (the same inode). */
static void setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(app, sizeof(app), "%s/app", dir);
    snprintf(copy, sizeof(copy), "%s/copy-of-app", dir);
    snprintf(hlink, sizeof(hlink), "%s/link-to-app", dir);
    copy_file("/proc/self/exe", app);
    copy_file(app, copy);
    ck_assert_int_eq(link(app, hlink), 0);
}

static void teardown(void)
{
    unlink(app);
    unlink(copy);
    unlink(hlink);
    rmdir(dir);
    memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
}

/* Replace every @APP@ with app's path. */
static const char *subst(const char *text)
{
    static char out[8192];
    size_t o = 0;
    for (const char *p = text; *p && o < sizeof(out) - 300; p++) {
        if (strncmp(p, "@APP@", 5) == 0) {
            o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", app);
            p += 4;
        } else if (strncmp(p, "@LINK@", 6) == 0) {
            o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", hlink);
            p += 5;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

static struct policy_rules *parse_ok(const char *text)
{
    json_error_t jerr;
    struct policy_error e;
    struct policy_rules *p = NULL;
    char msg[512];
    json_t *v = json_loads(subst(text), 0, &jerr);
    ck_assert_msg(v != NULL, "test JSON: %s", jerr.text);
    int rc = policy_rules_parse(v, 0, &p, &e);
    policy_error_format(&e, msg, sizeof(msg));
    ck_assert_msg(rc == 0, "expected valid, got: %s", msg);
    json_decref(v);
    return p;
}

static void parse_bad(const char *text, const char *want)
{
    json_error_t jerr;
    struct policy_error e;
    struct policy_rules *p = NULL;
    char msg[512];
    json_t *v = json_loads(subst(text), 0, &jerr);
    ck_assert_msg(v != NULL, "test JSON: %s", jerr.text);
    ck_assert_int_eq(policy_rules_parse(v, 0, &p, &e), -EINVAL);
    ck_assert_ptr_null(p);
    policy_error_format(&e, msg, sizeof(msg));
    ck_assert_msg(strcmp(msg, subst(want)) == 0, "\n got: %s\nwant: %s", msg, subst(want));
    json_decref(v);
}

static struct policy_proc caller(uid_t uid, gid_t gid)
{
    struct policy_proc w;
    memset(&w, 0, sizeof(w));
    w.pid = 4242;
    w.has_pid = true;
    w.uid = uid;
    w.gid = gid;
    w.has_pid_ns = true;
    w.same_pid_ns = true;
    snprintf(w.cgroup, sizeof(w.cgroup), "/user.slice/user-%u.slice/session-1.scope",
             (unsigned)uid);
    return w;
}

/* The same caller as the kernel would give it from another pid namespace. */
static struct policy_proc pid0(uid_t uid, gid_t gid)
{
    struct policy_proc w;
    memset(&w, 0, sizeof(w));
    w.uid = uid;
    w.gid = gid;
    return w;
}

static void with_exe(struct policy_proc *w, const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    w->has_exe = true;
    w->exe_dev = st.st_dev;
    w->exe_ino = st.st_ino;
}

#define DECIDES(p, secret, who, want, want_rule)                                        \
    do {                                                                                \
        int rule_ = -2;                                                                 \
        enum policy_decision d_ = policy_decide((p), (secret), (who), &rule_);          \
        ck_assert_msg(d_ == (want) && rule_ == (want_rule),                             \
                      "%s: got %s by %d, want %s by %d", (secret),                      \
                      d_ == POLICY_ALLOW ? "allow" : "deny", rule_,                     \
                      (want) == POLICY_ALLOW ? "allow" : "deny", (want_rule));          \
    } while (0)

START_TEST(issue_example)
{
    struct policy_rules *p = parse_ok(
        "{\"default\": \"deny\", \"rules\": ["
        " {\"secrets\": [\"db/*\", \"api_key\"], \"allow\": {\"uids\": [1000], \"exe\": [\"@APP@\"]}},"
        " {\"secrets\": [\"**\"], \"allow\": {\"containers\": [\"docker:*\", \"libpod:*\"], \"gids\": [2000]}},"
        " {\"secrets\": [\"admin/**\"], \"deny\": {\"cgroups\": [\"/system.slice/ssh*.service\"]}}],"
        " \"audit\": {\"sink\": \"stderr\", \"repeat_after\": \"1m\"}}");
    struct policy_proc w = caller(1000, 1000);
    ck_assert_int_eq(p->n_rules, 3);
    ck_assert_int_eq(p->audit.sink, POLICY_AUDIT_STDERR);
    ck_assert_int_eq(p->audit.repeat_after, 60000);
    /* uid 1000 but not the app: AND fails, default deny. */
    DECIDES(p, "db/password", &w, POLICY_DENY, -1);
    with_exe(&w, app);
    DECIDES(p, "db/password", &w, POLICY_ALLOW, 0);
    DECIDES(p, "api_key", &w, POLICY_ALLOW, 0);
    DECIDES(p, "db/a/b", &w, POLICY_DENY, -1);      /* '*' stays in one segment */
    DECIDES(p, "other", &w, POLICY_DENY, -1);
    /* The app, but uid 1001. */
    w.uid = 1001;
    DECIDES(p, "db/password", &w, POLICY_DENY, -1);
    /* A docker container with gid 2000 (as a supplementary group). */
    struct policy_proc c = caller(3000, 3000);
    c.groups[0] = 10;
    c.groups[1] = 2000;
    c.n_groups = 2;
    snprintf(c.cgroup, sizeof(c.cgroup), "/system.slice/docker-%s.scope",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    c.runtime = POLICY_RUNTIME_DOCKER;
    snprintf(c.container, sizeof(c.container), "%s",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    DECIDES(p, "admin/root", &c, POLICY_ALLOW, 1);
    DECIDES(p, "x/y/z", &c, POLICY_ALLOW, 1);
    /* The same, not in a container: AND fails. */
    c.runtime = POLICY_RUNTIME_NONE;
    c.container[0] = '\0';
    DECIDES(p, "x", &c, POLICY_DENY, -1);
    /* In a container, but without group 2000. */
    c.runtime = POLICY_RUNTIME_LIBPOD;
    snprintf(c.container, sizeof(c.container), "abcdef012345");
    c.n_groups = 1;
    DECIDES(p, "x", &c, POLICY_DENY, -1);
    /* Deny over allow: in a container with 2000, but from sshd's cgroup. */
    c.n_groups = 2;
    DECIDES(p, "admin/root", &c, POLICY_ALLOW, 1);
    snprintf(c.cgroup, sizeof(c.cgroup), "/system.slice/sshd.service");
    DECIDES(p, "admin/root", &c, POLICY_DENY, 2);
    DECIDES(p, "db/x", &c, POLICY_ALLOW, 1);
    policy_rules_free(p);
}
END_TEST

START_TEST(deny_over_allow_and_default)
{
    struct policy_rules *p = parse_ok(
        "{\"rules\": ["
        " {\"secrets\": [\"a\"], \"allow\": {\"uids\": [1, 2]}},"
        " {\"secrets\": [\"a\", \"b\"], \"allow\": {\"uids\": [3]}},"
        " {\"secrets\": [\"a\"], \"deny\": {\"uids\": [2]}}]}");
    struct policy_proc w1 = caller(1, 1), w2 = caller(2, 2), w3 = caller(3, 3), w4 = caller(4, 4);
    ck_assert_int_eq(p->dflt, POLICY_DENY);    /* the default's default */
    DECIDES(p, "a", &w1, POLICY_ALLOW, 0);
    DECIDES(p, "a", &w2, POLICY_DENY, 2);      /* a later deny wins over an earlier allow */
    DECIDES(p, "a", &w3, POLICY_ALLOW, 1);
    DECIDES(p, "b", &w3, POLICY_ALLOW, 1);
    DECIDES(p, "a", &w4, POLICY_DENY, -1);
    DECIDES(p, "b", &w1, POLICY_DENY, -1);
    policy_rules_free(p);

    p = parse_ok("{\"default\": \"allow\", \"rules\": ["
                 " {\"secrets\": [\"x/**\"], \"deny\": {\"uids\": [\"root\"]}}]}");
    struct policy_proc root = caller(0, 0);
    DECIDES(p, "x/y", &root, POLICY_DENY, 0);
    DECIDES(p, "x", &root, POLICY_DENY, 0);     /* x/ then ** also names x itself */
    DECIDES(p, "y", &root, POLICY_ALLOW, -1);
    DECIDES(p, "x/y", &w1, POLICY_ALLOW, -1);
    policy_rules_free(p);

    p = parse_ok("{\"rules\": []}");
    DECIDES(p, "x", &w1, POLICY_DENY, -1);
    policy_rules_free(p);
}
END_TEST

START_TEST(and_or_and_groups)
{
    struct policy_rules *p = parse_ok(
        "{\"rules\": [{\"secrets\": [\"s\"], \"allow\": {\"uids\": [10, 11], \"gids\": [\"root\", 50],"
        " \"pids_ns\": \"same\", \"cgroups\": [\"/app.slice/*\", \"/other/**\"]}}]}");
    struct policy_proc w = caller(10, 99);
    snprintf(w.cgroup, sizeof(w.cgroup), "/app.slice/web.service");
    DECIDES(p, "s", &w, POLICY_DENY, -1);      /* no group 0 or 50 */
    w.groups[0] = 7;
    w.groups[1] = 50;
    w.n_groups = 2;
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);      /* a supplementary group counts */
    w.n_groups = 0;
    w.gid = 0;
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);      /* so does the primary one (root by name) */
    w.uid = 11;
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);      /* any listed uid */
    w.uid = 12;
    DECIDES(p, "s", &w, POLICY_DENY, -1);
    w.uid = 11;
    snprintf(w.cgroup, sizeof(w.cgroup), "/other/a/b");
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);      /* any listed cgroup */
    snprintf(w.cgroup, sizeof(w.cgroup), "/app.slice/a/b");
    DECIDES(p, "s", &w, POLICY_DENY, -1);
    snprintf(w.cgroup, sizeof(w.cgroup), "/other/x");
    w.same_pid_ns = false;
    DECIDES(p, "s", &w, POLICY_DENY, -1);      /* every key must match */
    policy_rules_free(p);
}
END_TEST

/* An executable is its (device, inode): a hard link is the same file, a
 * byte-identical copy is not. */
START_TEST(exe_by_inode)
{
    struct policy_rules *p = parse_ok(
        "{\"rules\": [{\"secrets\": [\"s\"], \"allow\": {\"exe\": [\"@APP@\"]}}]}");
    struct policy_proc w = caller(1000, 1000);
    with_exe(&w, app);
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);
    with_exe(&w, hlink);
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);
    with_exe(&w, copy);
    DECIDES(p, "s", &w, POLICY_DENY, -1);
    w.has_exe = false;                         /* /proc/PID/exe unreadable */
    DECIDES(p, "s", &w, POLICY_DENY, -1);
    policy_rules_free(p);
    /* Named by the link, the original matches too. */
    p = parse_ok("{\"rules\": [{\"secrets\": [\"s\"], \"allow\": {\"exe\": [\"@LINK@\"]}}]}");
    with_exe(&w, app);
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);
    policy_rules_free(p);
}
END_TEST

/* pid 0: the facts that need a pid are unknown. An allow that needs one
 * does not apply; a deny that needs one does, unless a known fact already
 * rules it out. */
START_TEST(pid_zero_fails_closed)
{
    struct policy_rules *p = parse_ok(
        "{\"default\": \"allow\", \"rules\": ["
        " {\"secrets\": [\"d\"], \"deny\": {\"exe\": [\"@APP@\"]}},"
        " {\"secrets\": [\"e\"], \"deny\": {\"uids\": [1000], \"cgroups\": [\"/x\"]}},"
        " {\"secrets\": [\"f\"], \"deny\": {\"containers\": [\"docker:*\"]}},"
        " {\"secrets\": [\"g\"], \"deny\": {\"pids_ns\": \"same\"}},"
        " {\"secrets\": [\"h\"], \"deny\": {\"uids\": [1000]}}]}");
    struct policy_proc w = pid0(1000, 1000), other = pid0(2000, 2000);
    DECIDES(p, "d", &w, POLICY_DENY, 0);
    DECIDES(p, "e", &w, POLICY_DENY, 1);
    DECIDES(p, "e", &other, POLICY_ALLOW, -1);  /* uid 2000 is known not to be 1000 */
    DECIDES(p, "f", &w, POLICY_DENY, 2);
    DECIDES(p, "g", &w, POLICY_DENY, 3);
    DECIDES(p, "h", &w, POLICY_DENY, 4);
    DECIDES(p, "h", &other, POLICY_ALLOW, -1);
    /* With the pid, the facts decide. */
    struct policy_proc full = caller(1000, 1000);
    with_exe(&full, copy);
    DECIDES(p, "d", &full, POLICY_ALLOW, -1);
    DECIDES(p, "e", &full, POLICY_ALLOW, -1);
    DECIDES(p, "f", &full, POLICY_ALLOW, -1);
    DECIDES(p, "g", &full, POLICY_DENY, 3);
    full.same_pid_ns = false;
    DECIDES(p, "g", &full, POLICY_ALLOW, -1);
    policy_rules_free(p);

    p = parse_ok(
        "{\"rules\": ["
        " {\"secrets\": [\"a\"], \"allow\": {\"uids\": [1000], \"exe\": [\"@APP@\"]}},"
        " {\"secrets\": [\"b\"], \"allow\": {\"uids\": [1000]}},"
        " {\"secrets\": [\"c\"], \"allow\": {\"gids\": [1000]}},"
        " {\"secrets\": [\"d\"], \"allow\": {\"gids\": [3000]}},"
        " {\"secrets\": [\"e\"], \"allow\": {\"pids_ns\": \"same\"}}]}");
    DECIDES(p, "a", &w, POLICY_DENY, -1);
    DECIDES(p, "b", &w, POLICY_ALLOW, 1);
    DECIDES(p, "c", &w, POLICY_ALLOW, 2);      /* the primary group is known */
    DECIDES(p, "d", &w, POLICY_DENY, -1);      /* the supplementary ones are not */
    DECIDES(p, "e", &w, POLICY_DENY, -1);
    policy_rules_free(p);

    /* A deny on a group the caller may hold: unknown, so it applies. */
    p = parse_ok("{\"default\": \"allow\", \"rules\": ["
                 " {\"secrets\": [\"a\"], \"deny\": {\"gids\": [3000]}}]}");
    DECIDES(p, "a", &w, POLICY_DENY, 0);
    struct policy_proc known = caller(1000, 1000);
    DECIDES(p, "a", &known, POLICY_ALLOW, -1);
    policy_rules_free(p);
}
END_TEST

/* A visible process whose pid namespace could not be read (no ptrace
 * access) or whose groups were cut at POLICY_PROC_MAX_GROUPS: those facts
 * are unknown, not "another namespace" or "not a member". */
START_TEST(unreadable_facts_fail_closed)
{
    struct policy_rules *p = parse_ok(
        "{\"default\": \"allow\", \"rules\": ["
        " {\"secrets\": [\"n\"], \"deny\": {\"pids_ns\": \"same\"}},"
        " {\"secrets\": [\"g\"], \"deny\": {\"gids\": [3000]}},"
        " {\"secrets\": [\"a\"], \"allow\": {\"gids\": [3000]}},"
        " {\"secrets\": [\"a\"], \"deny\": {\"uids\": [1]}}]}");
    struct policy_proc w = caller(1000, 1000);
    DECIDES(p, "n", &w, POLICY_DENY, 0);
    w.same_pid_ns = false;
    DECIDES(p, "n", &w, POLICY_ALLOW, -1);
    w.has_pid_ns = false;
    DECIDES(p, "n", &w, POLICY_DENY, 0);         /* unknown: a deny applies */
    ck_assert_int_eq(policy_match_key(&p->rules[0].match, POLICY_KEY_PIDS_NS, &w),
                     POLICY_TRI_UNKNOWN);
    DECIDES(p, "g", &w, POLICY_ALLOW, -1);        /* known: not a member */
    w.groups_truncated = true;
    DECIDES(p, "g", &w, POLICY_DENY, 1);          /* maybe one of the dropped groups */
    policy_rules_free(p);
}
END_TEST

START_TEST(containers)
{
    struct policy_rules *p = parse_ok(
        "{\"rules\": [{\"secrets\": [\"s\"], \"allow\": {\"containers\": "
        "[\"docker:0123456789AB\", \"crio:*\", \"cri-containerd:ffffffffffff\"]}}]}");
    struct policy_proc w = caller(0, 0);
    w.runtime = POLICY_RUNTIME_DOCKER;
    snprintf(w.container, sizeof(w.container), "0123456789abcdef");
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);
    snprintf(w.container, sizeof(w.container), "1123456789abcdef");
    DECIDES(p, "s", &w, POLICY_DENY, -1);
    w.runtime = POLICY_RUNTIME_CRIO;
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);
    w.runtime = POLICY_RUNTIME_LIBPOD;
    DECIDES(p, "s", &w, POLICY_DENY, -1);
    w.runtime = POLICY_RUNTIME_CRI_CONTAINERD;
    snprintf(w.container, sizeof(w.container), "ffffffffffff0000");
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);
    w.runtime = POLICY_RUNTIME_NONE;
    DECIDES(p, "s", &w, POLICY_DENY, -1);
    policy_rules_free(p);
}
END_TEST

START_TEST(missing_ok)
{
    struct policy_rules *p = parse_ok(
        "{\"rules\": [{\"secrets\": [\"s\"], \"missing_ok\": true,"
        " \"allow\": {\"exe\": [\"/nonexistent/app\", \"@APP@\"]}}]}");
    char msg[512];
    ck_assert_int_eq(p->n_warnings, 1);
    policy_error_format(&p->warnings[0], msg, sizeof(msg));
    ck_assert_str_eq(msg, "rules[0].allow.exe[0]: /nonexistent/app: No such file or directory "
                          "(missing_ok: this rule matches no executable there until a reload "
                          "finds it)");
    ck_assert_int_eq(p->rules[0].match.n_exes, 1);
    struct policy_proc w = caller(1, 1);
    with_exe(&w, app);
    DECIDES(p, "s", &w, POLICY_ALLOW, 0);
    policy_rules_free(p);
    p = parse_ok("{\"missing_ok\": true, \"rules\": [{\"secrets\": [\"s\"],"
                 " \"deny\": {\"exe\": [\"/nonexistent/a\", \"/nonexistent/b\"]}}]}");
    ck_assert_int_eq(p->n_warnings, 2);
    ck_assert_int_eq(p->rules[0].match.n_exes, 0);
    DECIDES(p, "s", &w, POLICY_DENY, -1);     /* the default; the rule matches no exe */
    policy_rules_free(p);
    parse_bad("{\"missing_ok\": true, \"rules\": [{\"secrets\": [\"s\"], \"missing_ok\": false,"
              " \"allow\": {\"exe\": [\"/nonexistent/app\"]}}]}",
              "rules[0].allow.exe[0]: /nonexistent/app: No such file or directory");
}
END_TEST

static const struct {
    const char *json, *msg;
} bad[] = {
    {"[]", "expected an object, got an array"},
    {"{\"rules\": [], \"defaults\": 1}",
     "defaults: unknown key (expected one of: default, rules, audit, missing_ok)"},
    {"{}", "missing \"rules\" (an array of {\"secrets\": [...], \"allow\" or \"deny\": {...}}; [] "
           "for the default alone)"},
    {"{\"rules\": {}}", "rules: expected an array of rules, got an object"},
    {"{\"rules\": [], \"default\": \"permit\"}", "default: expected \"allow\" or \"deny\", got another string"},
    {"{\"rules\": [], \"missing_ok\": 1}", "missing_ok: expected true or false, got an integer"},
    {"{\"rules\": [1]}", "rules[0]: expected an object, got an integer"},
    {"{\"rules\": [{\"allow\": {\"uids\": [1]}}]}",
     "rules[0]: missing \"secrets\" (an array of globs over secret names, such as [\"db/*\"])"},
    {"{\"rules\": [{\"secrets\": [], \"allow\": {\"uids\": [1]}}]}",
     "rules[0].secrets: empty list: it would match nothing (leave the key out instead)"},
    {"{\"rules\": [{\"secrets\": \"a\", \"allow\": {\"uids\": [1]}}]}",
     "rules[0].secrets: expected an array such as [\"db/*\"], got a string"},
    {"{\"rules\": [{\"secrets\": [\"a**\"], \"allow\": {\"uids\": [1]}}]}",
     "rules[0].secrets[0]: bad glob: '**' at character 2 must be a whole segment (as in "
     "\"a/**/b\"); '*' alone stays within one"},
    {"{\"rules\": [{\"secrets\": [\"a\", 2], \"allow\": {\"uids\": [1]}}]}",
     "rules[0].secrets[1]: expected a glob string, got an integer"},
    {"{\"rules\": [{\"secrets\": [\"a\"]}]}",
     "rules[0]: missing \"allow\" or \"deny\" (an object of uids, gids, exe, cgroups, containers, "
     "pids_ns)"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": [1]}, \"deny\": {\"uids\": [2]}}]}",
     "rules[0].deny: a rule has one of \"allow\" and \"deny\", not both: write two rules"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {}}]}",
     "rules[0].allow: empty: it would match every caller by accident; name at least one of uids, "
     "gids, exe, cgroups, containers, pids_ns"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": []}]}",
     "rules[0].allow: expected an object, got an array"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uid\": [1]}}]}",
     "rules[0].allow.uid: unknown key (expected one of: uids, gids, exe, cgroups, containers, "
     "pids_ns)"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": [1]}, \"note\": 1}]}",
     "rules[0].note: unknown key (expected one of: secrets, allow, deny, missing_ok)"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": 1}}]}",
     "rules[0].allow.uids: expected an array such as [1000, \"app\"], got an integer"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": []}}]}",
     "rules[0].allow.uids: empty list: it would match nothing (leave the key out instead)"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": [-1]}}]}",
     "rules[0].allow.uids[0]: user id out of range (0 to 4294967294)"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": [4294967295]}}]}",
     "rules[0].allow.uids[0]: user id out of range (0 to 4294967294)"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": [1.5]}}]}",
     "rules[0].allow.uids[0]: expected a user name or number, got a number"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": [\"\"]}}]}",
     "rules[0].allow.uids[0]: expected a user name or number, got an empty string"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": [\"no-such-user-rs\"]}}]}",
     "rules[0].allow.uids[0]: unknown user 'no-such-user-rs'"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"gids\": [0, \"no-such-group-rs\"]}}]}",
     "rules[0].allow.gids[1]: unknown group 'no-such-group-rs'"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"gids\": [\"99999999999\"]}}]}",
     "rules[0].allow.gids[0]: group id '99999999999' out of range (0 to 4294967294)"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"exe\": [\"bin/app\"]}}]}",
     "rules[0].allow.exe[0]: expected an absolute path to an executable, got a relative path"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"exe\": [3]}}]}",
     "rules[0].allow.exe[0]: expected an absolute path to an executable, got an integer"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": [1]}}, {\"secrets\": [\"b\"], "
     "\"deny\": {\"exe\": [\"/usr/bin/rs-no-such-app\"]}}]}",
     "rules[1].deny.exe[0]: /usr/bin/rs-no-such-app: No such file or directory"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"exe\": [\"/\"]}}]}",
     "rules[0].allow.exe[0]: /: not a regular file"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"cgroups\": [\"system.slice/x\"]}}]}",
     "rules[0].allow.cgroups[0]: a cgroup path starts with '/' (as in /proc/PID/cgroup)"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"cgroups\": [\"/x/[a\"]}}]}",
     "rules[0].allow.cgroups[0]: bad glob: '[' at character 4 is not closed by ']'"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"containers\": [\"lxc:*\"]}}]}",
     "rules[0].allow.containers[0]: 'lxc:*': expected \"RUNTIME:*\" or \"RUNTIME:ID-PREFIX\" with "
     "RUNTIME one of docker, libpod, cri-containerd, crio"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"containers\": [\"docker\"]}}]}",
     "rules[0].allow.containers[0]: 'docker': expected \"RUNTIME:*\" or \"RUNTIME:ID-PREFIX\" with "
     "RUNTIME one of docker, libpod, cri-containerd, crio"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"containers\": [\"docker:abc\"]}}]}",
     "rules[0].allow.containers[0]: 'docker:abc': an id prefix of fewer than 12 characters could "
     "match containers nobody meant"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"containers\": [\"docker:web-1\"]}}]}",
     "rules[0].allow.containers[0]: 'docker:web-1': a container id is hexadecimal; expected "
     "\"RUNTIME:*\" or \"RUNTIME:ID-PREFIX\" with RUNTIME one of docker, libpod, cri-containerd, "
     "crio"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"pids_ns\": \"host\"}}]}",
     "rules[0].allow.pids_ns: expected \"same\" (the caller is in the broker's pid namespace), got "
     "another string"},
    {"{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"pids_ns\": [\"same\"]}}]}",
     "rules[0].allow.pids_ns: expected \"same\" (the caller is in the broker's pid namespace), got "
     "an array"},
    {"{\"rules\": [], \"audit\": {\"sink\": \"file:log\"}}",
     "audit.sink: the audit file must be an absolute path"},
    {"{\"rules\": [], \"audit\": {\"sink\": \"journal\"}}",
     "audit.sink: unknown sink 'journal'; expected \"stderr\", \"syslog\", \"syslog:/socket/path\" or \"file:/absolute/path\""},
    {"{\"rules\": [], \"audit\": {\"sink\": 1}}",
     "audit.sink: expected \"stderr\", \"syslog\", \"syslog:/socket/path\" or \"file:/absolute/path\", got an integer"},
    {"{\"rules\": [], \"audit\": {\"repeat\": \"1m\"}}",
     "audit.repeat: unknown key (expected one of: sink, repeat_after)"},
    {"{\"rules\": [], \"audit\": []}", "audit: expected an object, got an array"},
};

START_TEST(refused)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i].json, bad[i].msg);
    /* A duration's own message. */
    json_t *v = json_loads("{\"rules\": [], \"audit\": {\"repeat_after\": \"soon\"}}", 0, NULL);
    struct policy_error e;
    struct policy_rules *p = NULL;
    char msg[512];
    ck_assert_int_eq(policy_rules_parse(v, 0, &p, &e), -EINVAL);
    policy_error_format(&e, msg, sizeof(msg));
    ck_assert_msg(strncmp(msg, "audit.repeat_after: ", 20) == 0, "%s", msg);
    json_decref(v);
}
END_TEST

START_TEST(audit_kept)
{
    struct policy_rules *p = parse_ok("{\"rules\": [], \"audit\": {\"sink\": \"file:/var/log/rs.log\","
                                      " \"repeat_after\": 90}}");
    ck_assert_int_eq(p->audit.sink, POLICY_AUDIT_FILE);
    ck_assert_str_eq(p->audit.path, "/var/log/rs.log");
    ck_assert_int_eq(p->audit.repeat_after, 90000);
    policy_rules_free(p);
    p = parse_ok("{\"rules\": [], \"audit\": {\"sink\": \"syslog\"}}");
    ck_assert_int_eq(p->audit.sink, POLICY_AUDIT_SYSLOG);
    ck_assert_int_eq(p->audit.repeat_after, POLICY_AUDIT_DEFAULT_REPEAT);
    policy_rules_free(p);
}
END_TEST

/* exec --mount-from's copy of a host configuration: names and paths of
 * another host are not checked here. */
START_TEST(form_only)
{
    json_t *v = json_loads("{\"rules\": [{\"secrets\": [\"a\"], \"allow\": {\"uids\": "
                           "[\"no-such-user-rs\"], \"exe\": [\"/nonexistent/app\"]}}]}", 0, NULL);
    struct policy_error e;
    struct policy_rules *p = NULL;
    ck_assert_int_eq(policy_rules_parse(v, POLICY_PARSE_FORM_ONLY, &p, &e), 0);
    ck_assert_int_eq(p->n_warnings, 0);
    policy_rules_free(p);
    json_decref(v);
}
END_TEST

static Suite *rules_suite(void)
{
    Suite *s = suite_create("policy_rules");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, issue_example);
    tcase_add_test(tc, deny_over_allow_and_default);
    tcase_add_test(tc, and_or_and_groups);
    tcase_add_test(tc, exe_by_inode);
    tcase_add_test(tc, pid_zero_fails_closed);
    tcase_add_test(tc, unreadable_facts_fail_closed);
    tcase_add_test(tc, containers);
    tcase_add_test(tc, missing_ok);
    tcase_add_test(tc, refused);
    tcase_add_test(tc, audit_kept);
    tcase_add_test(tc, form_only);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(rules_suite)
