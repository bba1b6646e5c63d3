/* explain.c - `runsecrets check --explain` (explain.h). Reads no secret
 * value: only the configuration's names, modes and owners, the policy, and
 * the caller's facts. */
#include "broker/explain.h"
#include "engine/config.h"
#include "lib/escape.h"
#include "lib/ids.h"
#include "policy/glob.h"
#include "policy/policy.h"
#include "policy/proc.h"
#include "policy/rules.h"
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Why a fact is unknown, for the output. */
struct explain_ctx {
    const char *cmd;
    bool live;                        /* --pid: unknown means unreadable */
    char exe_path[PATH_MAX];          /* as given, or /proc/PID/exe's target; "" */
};

static int usage(const char *cmd, const char *opt, const char *given, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int usage(const char *cmd, const char *opt, const char *given, const char *fmt, ...)
{
    char detail[320], shown[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    fprintf(stderr, "runsecrets %s: %s: %s", cmd, opt, detail);
    if (given) {
        escape_str(shown, sizeof(shown), given, ESCAPE_SQUOTE);
        fprintf(stderr, ", got '%s'", shown);
    }
    fprintf(stderr, "\nTry 'runsecrets %s --help'.\n", cmd);
    return EXPLAIN_USAGE;
}

bool explain_opts_any(const struct explain_opts *o)
{
    return o->uid || o->gid || o->groups || o->exe || o->cgroup || o->pid;
}

/* A decimal id below (id_t)-1 (the kernel's "no id"), the whole string. */
static bool parse_number(const char *s, unsigned long max, unsigned long *out)
{
    if (s[0] < '0' || s[0] > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v >= max)
        return false;
    *out = v;
    return true;
}

/* A uid by number or user name; *pgid (may be NULL) gets its primary group
 * when the passwd database knows it, else stays. 0; -EINVAL; -ENOENT. */
static int parse_uid(const char *s, uid_t *out, gid_t *pgid, bool *found)
{
    unsigned long v;
    *found = false;
    if (parse_number(s, (uid_t)-1, &v)) {
        *out = (uid_t)v;
        *found = ids_user(NULL, out, pgid) == 0;
        return 0;
    }
    if (s[0] == '\0')
        return -EINVAL;
    if (ids_user(s, out, pgid) < 0)
        return -ENOENT;
    *found = true;
    return 0;
}

static int parse_gid(const char *s, gid_t *out)
{
    unsigned long v;
    if (parse_number(s, (gid_t)-1, &v)) {
        *out = (gid_t)v;
        return 0;
    }
    if (s[0] == '\0')
        return -EINVAL;
    return ids_group(s, out) < 0 ? -ENOENT : 0;
}

/* "(alice)" or "" for an id the databases do not name. */
static void user_name(uid_t uid, char *out, size_t cap)
{
    char name[256];
    out[0] = '\0';
    if (ids_user_name(uid, name, sizeof(name)) == 0)
        snprintf(out, cap, " (%s)", name);
}

static void group_name(gid_t gid, char *out, size_t cap)
{
    char name[256];
    out[0] = '\0';
    if (ids_group_name(gid, name, sizeof(name)) == 0)
        snprintf(out, cap, " (%s)", name);
}

/* --groups A,B: numbers or names, at most POLICY_PROC_MAX_GROUPS. */
static int parse_groups(const char *cmd, const char *s, struct policy_proc *who)
{
    const char *p = s;
    who->n_groups = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[256];
        if (len == 0 || len >= sizeof(one))
            return usage(cmd, "--groups", s, "expected groups (numbers or names) separated by "
                                             "commas, like 27,docker");
        memcpy(one, p, len);
        one[len] = '\0';
        if (who->n_groups == POLICY_PROC_MAX_GROUPS)
            return usage(cmd, "--groups", NULL, "at most %d groups", POLICY_PROC_MAX_GROUPS);
        int rc = parse_gid(one, &who->groups[who->n_groups]);
        if (rc < 0)
            return usage(cmd, "--groups", one, "no such group");
        who->n_groups++;
        if (!comma)
            return -1;
        p = comma + 1;
    }
}

/* The hypothetical caller of the options. -1 to go on, else an exit code. */
static int hypothetical(const struct explain_opts *o, struct explain_ctx *x,
                        struct policy_proc *who)
{
    const char *cmd = x->cmd;
    bool found;
    gid_t pgid = 0;
    memset(who, 0, sizeof(*who));
    if (!o->uid)
        return usage(cmd, "--explain", NULL, "needs --uid (a hypothetical caller) or --pid "
                                             "(a live process)");
    int rc = parse_uid(o->uid, &who->uid, &pgid, &found);
    if (rc < 0)
        return usage(cmd, "--uid", o->uid, rc == -ENOENT ? "no such user"
                                                         : "expected a user id or name");
    if (o->gid) {
        rc = parse_gid(o->gid, &who->gid);
        if (rc < 0)
            return usage(cmd, "--gid", o->gid, rc == -ENOENT ? "no such group"
                                                             : "expected a group id or name");
    } else if (found) {
        who->gid = pgid;
    } else {
        return usage(cmd, "--gid", NULL, "needed: uid %u has no passwd entry to take its "
                                         "primary group from", (unsigned)who->uid);
    }
    /* Any fact the broker reads from /proc/PID makes this a caller with a
     * pid; the facts not given stay unknown, as unreadable ones would. */
    who->has_pid = o->groups || o->exe || o->cgroup;
    who->groups_truncated = !o->groups;
    if (o->groups) {
        int ex = parse_groups(cmd, o->groups, who);
        if (ex >= 0)
            return ex;
    }
    if (o->exe) {
        struct stat st;
        /* By inode, as the broker compares /proc/PID/exe's target. */
        if (stat(o->exe, &st) < 0)
            return usage(cmd, "--exe", o->exe, "%s", strerror(errno));
        if (!S_ISREG(st.st_mode))
            return usage(cmd, "--exe", o->exe, "not a regular file");
        who->has_exe = true;
        who->exe_dev = st.st_dev;
        who->exe_ino = st.st_ino;
        snprintf(x->exe_path, sizeof(x->exe_path), "%s", o->exe);
    }
    if (o->cgroup) {
        size_t len = strlen(o->cgroup);
        if (o->cgroup[0] != '/' || len >= sizeof(who->cgroup))
            return usage(cmd, "--cgroup", o->cgroup, "expected an absolute cgroup path (as in "
                                                     "/proc/PID/cgroup) shorter than %d bytes",
                         POLICY_PROC_CGROUP_MAX);
        memcpy(who->cgroup, o->cgroup, len + 1);
        who->runtime = policy_container_of(who->cgroup, who->container, sizeof(who->container));
    }
    return -1;
}

/* The fs uid and gid of a live process (/proc/PID/status, the fourth
 * field of Uid: and Gid:): what FUSE would give for its requests. */
static int proc_fs_ids(pid_t pid, uid_t *uid, gid_t *gid)
{
    char path[64], line[512];
    unsigned long r, e, s, fs;
    int got = 0;
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    while (got != 3 && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "Uid: %lu %lu %lu %lu", &r, &e, &s, &fs) == 4) {
            *uid = (uid_t)fs;
            got |= 1;
        } else if (sscanf(line, "Gid: %lu %lu %lu %lu", &r, &e, &s, &fs) == 4) {
            *gid = (gid_t)fs;
            got |= 2;
        }
    }
    fclose(f);
    return got == 3 ? 0 : -EIO;
}

/* A live process. -1 to go on, else an exit code; *load_err gets
 * policy_proc_load's failure other than a vanished process (the broker
 * would deny: the caller says so). */
static int live(const struct explain_opts *o, struct explain_ctx *x, struct policy_proc *who,
                char *load_err, size_t errlen)
{
    const char *cmd = x->cmd;
    unsigned long v;
    if (o->uid || o->gid || o->groups || o->exe || o->cgroup)
        return usage(cmd, "--pid", NULL, "excludes --uid, --gid, --groups, --exe and --cgroup "
                                         "(the process's own are used)");
    if (!parse_number(o->pid, INT_MAX, &v) || v == 0)
        return usage(cmd, "--pid", o->pid, "expected a process id");
    pid_t pid = (pid_t)v;
    uid_t uid = 0;
    gid_t gid = 0;
    x->live = true;
    int rc = proc_fs_ids(pid, &uid, &gid);
    if (rc == 0)
        rc = policy_proc_load(pid, uid, gid, POLICY_FACTS_ALL, who, load_err, errlen);
    if (rc == -ENOENT || rc == -ESRCH)
        return usage(cmd, "--pid", o->pid, "no such process");
    if (rc < 0 && !load_err[0])
        snprintf(load_err, errlen, "/proc/%ld/status: %s", (long)pid, strerror(-rc));
    if (rc == 0 && who->has_exe) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
        ssize_t n = readlink(path, x->exe_path, sizeof(x->exe_path) - 1);
        x->exe_path[n > 0 ? n : 0] = '\0';
    }
    return -1;
}

static const char *const key_names[] = {"uids", "gids", "exe", "cgroups", "containers",
                                        "pids_ns"};

static const char *tri_name(enum policy_tri t)
{
    return t == POLICY_TRI_YES ? "yes" : t == POLICY_TRI_NO ? "no" : "unknown";
}

static void print_caller(const struct explain_ctx *x, const struct policy_proc *who)
{
    const char *why = x->live ? "not readable" : "not given";
    char n[300];
    if (x->live)
        printf("caller: pid %ld\n", (long)who->pid);
    else
        printf("caller: hypothetical (the facts given; any other is unknown)\n");
    user_name(who->uid, n, sizeof(n));
    printf("  uid: %u%s\n", (unsigned)who->uid, n);
    group_name(who->gid, n, sizeof(n));
    printf("  gid: %u%s\n", (unsigned)who->gid, n);
    if (who->has_pid && who->n_groups > 0) {
        printf("  groups:");
        for (size_t i = 0; i < who->n_groups && i < POLICY_PROC_MAX_GROUPS; i++) {
            group_name(who->groups[i], n, sizeof(n));
            printf("%s %u%s", i ? "," : "", (unsigned)who->groups[i], n);
        }
        printf("%s\n", who->groups_truncated ? ", and more (unknown)" : "");
    } else if (who->has_pid && !who->groups_truncated) {
        printf("  groups: none\n");
    } else {
        printf("  groups: unknown (%s)\n", x->live ? "not readable" : "not given");
    }
    if (who->has_pid && who->has_exe) {
        escape_str(n, sizeof(n), x->exe_path, 0);
        printf("  exe: %s (dev %u:%u, ino %llu)\n", n[0] ? n : "?", major(who->exe_dev),
               minor(who->exe_dev), (unsigned long long)who->exe_ino);
    } else {
        printf("  exe: unknown (%s)\n", why);
    }
    if (who->has_pid && who->cgroup[0]) {
        escape_str(n, sizeof(n), who->cgroup, 0);
        printf("  cgroup: %s\n", n);
        if (who->runtime != POLICY_RUNTIME_NONE)
            printf("  container: %s:%s\n", policy_runtime_name(who->runtime), who->container);
        else
            printf("  container: none\n");
    } else {
        printf("  cgroup: unknown (%s)\n  container: unknown (%s)\n", why, why);
    }
    if (who->has_pid && who->has_pid_ns)
        printf("  pid namespace: %s\n", who->same_pid_ns ? "the broker's" : "another");
    else
        printf("  pid namespace: unknown (%s)\n", x->live ? "not readable" : "not given");
}

static bool rule_names(const struct policy_rule *r, const char *secret)
{
    for (size_t i = 0; i < r->n_secrets; i++)
        if (policy_glob_match(r->secrets[i], secret))
            return true;
    return false;
}

/* One rule that names the secret: its keys' answers. Returns the rule's
 * answer (AND, an unknown key making it unknown unless one says no). */
static enum policy_tri print_rule(size_t i, const struct policy_rule *r,
                                  const struct policy_proc *who)
{
    char g[256];
    printf("rule %zu (%s, secrets", i, r->effect == POLICY_ALLOW ? "allow" : "deny");
    for (size_t k = 0; k < r->n_secrets; k++) {
        escape_str(g, sizeof(g), r->secrets[k], ESCAPE_DQUOTE);
        printf("%s \"%s\"", k ? "," : "", g);
    }
    printf("):");
    enum policy_tri all = POLICY_TRI_YES;
    size_t nk = 0;
    for (unsigned key = 1, b = 0; key <= POLICY_KEY_PIDS_NS; key <<= 1, b++) {
        if (!(r->match.keys & key))
            continue;
        enum policy_tri t = policy_match_key(&r->match, key, who);
        printf("%s %s %s", nk++ ? "," : "", key_names[b], tri_name(t));
        if (t == POLICY_TRI_NO)
            all = POLICY_TRI_NO;
        else if (t == POLICY_TRI_UNKNOWN && all == POLICY_TRI_YES)
            all = POLICY_TRI_UNKNOWN;
    }
    bool applies = r->effect == POLICY_DENY ? all != POLICY_TRI_NO : all == POLICY_TRI_YES;
    printf(" -> %s", applies ? "applies" : "does not apply");
    if (all == POLICY_TRI_UNKNOWN)
        printf(r->effect == POLICY_DENY ? " (a deny applies when a fact it needs is unknown)\n"
                                        : " (an allow needs every fact known)\n");
    else
        printf("\n");
    return all;
}

static int explain_policy(const struct policy_rules *p, const char *secret,
                          const struct policy_proc *who)
{
    size_t named = 0;
    bool unknown = false;
    char g[256];
    printf("access policy: %zu rule%s, default %s\n", p->n_rules, p->n_rules == 1 ? "" : "s",
           p->dflt == POLICY_ALLOW ? "allow" : "deny");
    for (size_t i = 0; i < p->n_rules; i++) {
        if (!rule_names(&p->rules[i], secret))
            continue;
        named++;
        if (print_rule(i, &p->rules[i], who) == POLICY_TRI_UNKNOWN)
            unknown = true;
    }
    escape_str(g, sizeof(g), secret, ESCAPE_SQUOTE);
    if (named < p->n_rules)
        printf("%zu rule%s not naming '%s' %s not shown\n", p->n_rules - named,
               p->n_rules - named == 1 ? "" : "s", g, p->n_rules - named == 1 ? "is" : "are");
    int rule = -1;
    enum policy_decision d = policy_decide(p, secret, who, &rule);
    const char *word = d == POLICY_ALLOW ? "allow" : "deny";
    if (rule < 0)
        printf("decision: %s (default: no rule applies)\n", word);
    else if (d == POLICY_DENY)
        printf("decision: deny (rule %d: a deny rule wins over any allow)\n", rule);
    else
        printf("decision: allow (rule %d)\n", rule);
    if (unknown)
        printf("note: unknown facts fail closed: an allow rule that needs one does not apply, "
               "a deny rule that needs one does\n");
    return d == POLICY_ALLOW ? EXPLAIN_ALLOWED : EXPLAIN_DENIED;
}

/* No policy: what the POSIX check (policy_check_read, as the kernel's
 * default_permissions) says for this uid and gid. */
static int explain_modes(const struct cfg_secret *s, const struct policy_proc *who)
{
    struct policy_subject subj = {.uid = who->uid, .gid = who->gid, .pid = who->pid};
    if (who->has_pid) {
        subj.groups = who->groups;
        subj.ngroups = who->n_groups;
    }
    struct policy_object obj = {.name = s->name, .mode = s->attrs.mode, .uid = s->attrs.uid,
                                .gid = s->attrs.gid};
    enum policy_decision d = policy_check_read(&subj, &obj);
    printf("no access policy: file modes decide\n");
    printf("decision: %s (mode %04o, owner %u, group %u%s)\n",
           d == POLICY_ALLOW ? "allow" : "deny", s->attrs.mode, (unsigned)s->attrs.uid,
           (unsigned)s->attrs.gid,
           !who->has_pid || who->groups_truncated ? "; supplementary groups not known: none counted"
                                                   : "");
    return d == POLICY_ALLOW ? EXPLAIN_ALLOWED : EXPLAIN_DENIED;
}

int explain_run(const struct config *cfg, const struct explain_opts *o, const char *cmd)
{
    struct explain_ctx x = {.cmd = cmd};
    struct policy_proc who;
    char load_err[256] = "";
    const struct cfg_secret *s = NULL;

    for (size_t i = 0; i < cfg->n_secrets && !s; i++)
        if (strcmp(cfg->secrets[i].name, o->secret) == 0)
            s = &cfg->secrets[i];
    if (!s) {
        char shown[256], path[256];
        escape_str(shown, sizeof(shown), o->secret, ESCAPE_SQUOTE);
        escape_str(path, sizeof(path), cfg->path, 0);
        fprintf(stderr, "runsecrets %s: --explain: no secret named '%s' in %s\n", cmd, shown,
                path);
        return EXPLAIN_USAGE;
    }
    int ex = o->pid ? live(o, &x, &who, load_err, sizeof(load_err)) : hypothetical(o, &x, &who);
    if (ex >= 0)
        return ex;
    char shown[256];
    escape_str(shown, sizeof(shown), s->name, ESCAPE_SQUOTE);
    printf("secret: '%s' (mode %04o, uid %u, gid %u)\n", shown, s->attrs.mode,
           (unsigned)s->attrs.uid, (unsigned)s->attrs.gid);
    if (load_err[0]) {
        /* The broker denies a caller whose facts it cannot read. */
        escape_str(shown, sizeof(shown), load_err, ESCAPE_KEEP_BACKSLASH);
        printf("caller: pid %s: facts not readable: %s\n", o->pid, shown);
        printf("decision: deny (the broker denies a caller it cannot read)\n");
        return EXPLAIN_DENIED;
    }
    print_caller(&x, &who);
    if (!cfg->policy)
        return explain_modes(s, &who);
    return explain_policy(cfg->policy, s->name, &who);
}
