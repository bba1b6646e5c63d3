/* explain.h - `runsecrets check --explain SECRET`: the access decision for
 * one caller, hypothetical (--uid, --gid, --groups, --exe, --cgroup) or
 * live (--pid), and the rules that made it, for operators writing a policy
 * (docs/config.md "check --explain").
 *
 * A hypothetical caller is evaluated as the broker would evaluate a caller
 * with exactly the facts given: a fact not given is unknown, and unknown
 * facts fail closed as in policy_decide (an allow rule that needs one does
 * not apply, a deny rule that needs one does). The output says which. */
#ifndef RS_EXPLAIN_H
#define RS_EXPLAIN_H

#include <stdbool.h>

struct config;

/* The options as typed (borrowed from argv); NULL when not given. */
struct explain_opts {
    const char *secret;   /* --explain SECRET */
    const char *uid;      /* number or user name */
    const char *gid;      /* number or group name */
    const char *groups;   /* A,B,...: numbers or group names */
    const char *exe;      /* a path, stat'ed into (dev, ino) */
    const char *cgroup;   /* an absolute cgroup path */
    const char *pid;      /* a live process instead of the above */
};

/* Exit codes: scripts may test a caller's access with them. */
#define EXPLAIN_ALLOWED 0
#define EXPLAIN_DENIED 1
#define EXPLAIN_USAGE 2     /* an unknown secret, a bad or missing option value */

/* True when any option but --explain itself was given. */
bool explain_opts_any(const struct explain_opts *o);

/* Print the explanation on stdout (usage errors on stderr, as the CLI's,
 * naming cmd). Returns one of the exit codes above. */
int explain_run(const struct config *cfg, const struct explain_opts *o, const char *cmd);

#endif
