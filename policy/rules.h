/* rules.h - the access policy's rules (issue 15, docs/config.md
 * "policy"): parsed once from the configuration into a typed, immutable
 * struct, then asked per open (policy_decide). Pure: nothing here reads
 * /proc; the caller's facts come in a struct policy_proc (proc.h).
 *
 * Decision: denied if any deny rule applies; otherwise allowed if any
 * allow rule applies; otherwise the default ("deny" when not given). A
 * rule applies when the secret matches one of its globs and every key of
 * its allow/deny object matches the caller (AND), a key matching when any
 * of its values does (OR).
 *
 * Facts the caller could not give (pid 0: a caller in a pid namespace the
 * broker cannot see, so no exe, cgroup, container, pid namespace or
 * supplementary groups; or one fact unreadable) fail closed: a key that
 * needs an unknown fact counts as not matching for an allow rule and as
 * matching for a deny rule. The keys whose facts are known still decide:
 * a deny rule for uid 1000 and an executable does not apply to uid 2000,
 * whatever that caller runs.
 */
#ifndef RS_POLICY_RULES_H
#define RS_POLICY_RULES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "policy/policy.h"
#include "policy/proc.h"

/* The keys of an allow/deny object, as bits of policy_match.keys. */
enum {
    POLICY_KEY_UIDS = 1u << 0,
    POLICY_KEY_GIDS = 1u << 1,
    POLICY_KEY_EXE = 1u << 2,
    POLICY_KEY_CGROUPS = 1u << 3,
    POLICY_KEY_CONTAINERS = 1u << 4,
    POLICY_KEY_PIDS_NS = 1u << 5,
};
/* The keys whose facts come from /proc/PID: unknown for pid 0. */
#define POLICY_KEYS_NEED_PID \
    (POLICY_KEY_EXE | POLICY_KEY_CGROUPS | POLICY_KEY_CONTAINERS | POLICY_KEY_PIDS_NS)

/* A container id prefix shorter than Docker's short id is refused: "a"
 * would match one container in sixteen. */
#define POLICY_CONTAINER_PREFIX_MIN 12

struct policy_exe {
    char *path;           /* owned, as configured (for messages and audit) */
    dev_t dev;            /* stat(path) at load: the identity that is compared */
    ino_t ino;
};

struct policy_container {
    enum policy_runtime runtime;
    char *prefix;         /* owned: lower-case hex id prefix; "" for RUNTIME:* (any) */
};

/* One allow/deny object: keys says which were given; a given key with no
 * values (every exe missing, with missing_ok) matches nothing. */
struct policy_match {
    unsigned keys;        /* POLICY_KEY_* */
    uid_t *uids;
    size_t n_uids;
    gid_t *gids;
    size_t n_gids;
    struct policy_exe *exes;
    size_t n_exes;
    char **cgroups;       /* globs */
    size_t n_cgroups;
    struct policy_container *containers;
    size_t n_containers;
};

struct policy_rule {
    char **secrets;       /* globs over secret names, at least one */
    size_t n_secrets;
    enum policy_decision effect;   /* allow or deny */
    struct policy_match match;
};

enum policy_audit_sink { POLICY_AUDIT_STDERR, POLICY_AUDIT_FILE, POLICY_AUDIT_SYSLOG };
#define POLICY_AUDIT_DEFAULT_REPEAT (60 * 1000LL)

/* "audit": where the audit trail goes (policy/audit.h). */
struct policy_audit {
    enum policy_audit_sink sink;   /* default stderr */
    char *path;                    /* owned: FILE's absolute path; SYSLOG's socket
                                      ("syslog:/path"; NULL: /dev/log); else NULL */
    long long repeat_after;        /* milliseconds; default POLICY_AUDIT_DEFAULT_REPEAT */
};

/* Where in the policy object a message is about: keys and array indexes
 * below "policy", e.g. rules[2].allow.exe[0] is
 *   key = {"rules", NULL, "allow", "exe", NULL}, idx = {-, 2, -, -, 0}. */
#define POLICY_PATH_MAX 5
struct policy_error {
    const char *key[POLICY_PATH_MAX];  /* NULL: an array index (idx[i]); else borrowed: a
                                          literal, or a key of the parsed JSON (valid as
                                          long as it is) */
    size_t idx[POLICY_PATH_MAX];
    size_t n;
    bool at_key;          /* about the last key itself (an unknown key), not its value */
    char msg[384];        /* one line, no path */
};

struct policy_rules {
    enum policy_decision dflt;
    struct policy_rule *rules;
    size_t n_rules;
    struct policy_audit audit;
    unsigned facts;       /* POLICY_FACT_*: what the rules need of a caller */
    /* Load-time warnings (an exe missing under missing_ok): their keys
     * are all literals, so they outlive the JSON. */
    struct policy_error *warnings;
    size_t n_warnings;
};

/* policy_rules_parse flags. Check the form only: resolve no user or
 * group name (a name is then any non-empty string) and stat no exe, for a
 * process that serves no policy from a copy of another host's
 * configuration (exec --mount-from). */
#define POLICY_PARSE_FORM_ONLY 0x1u

/* Parse the "policy" object conf into *out (new). 0; -EINVAL with *e
 * saying where and what; -ENOMEM. */
int policy_rules_parse(json_t *conf, unsigned flags, struct policy_rules **out,
                       struct policy_error *e) __attribute__((warn_unused_result, nonnull(1, 3, 4)));
void policy_rules_free(struct policy_rules *p);

/* "rules[2].allow.exe[0]: what" (or just what at the top) into out. */
void policy_error_format(const struct policy_error *e, char *out, size_t cap) __attribute__((nonnull));

/* The decision for who opening secret; *rule (may be NULL) gets the index
 * of the rule that made it, or -1 for the default. */
enum policy_decision policy_decide(const struct policy_rules *p, const char *secret,
                                   const struct policy_proc *who, int *rule)
    __attribute__((nonnull(1, 2, 3)));

/* One key's answer, for `check --explain`: what policy_decide sees. */
enum policy_tri { POLICY_TRI_NO, POLICY_TRI_YES, POLICY_TRI_UNKNOWN };
/* How key (one POLICY_KEY_*, given in m->keys) of m answers for who. */
enum policy_tri policy_match_key(const struct policy_match *m, unsigned key,
                                 const struct policy_proc *who) __attribute__((nonnull));

#endif
