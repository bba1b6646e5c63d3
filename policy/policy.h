/* policy.h - access decisions for opens, and their audit trail.
 *
 * The kernel already enforces file modes (default_permissions); the policy
 * decides again in the daemon so a mount without default_permissions, or a
 * future rule set, cannot serve what the modes forbid, and so every open is
 * audited with who asked and what was decided. */
#ifndef RS_POLICY_H
#define RS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct policy_subject {
    uid_t uid;
    gid_t gid;
    pid_t pid;
    const gid_t *groups;   /* supplementary groups, borrowed; may be NULL */
    size_t ngroups;
};

struct policy_object {
    const char *name;      /* secret name */
    const char *backend;   /* backend name */
    unsigned mode;
    uid_t uid;
    gid_t gid;
};

enum policy_decision { POLICY_ALLOW, POLICY_DENY };

/* May subject read object? Root may always read (as the kernel allows). */
enum policy_decision policy_check_read(const struct policy_subject *s, const struct policy_object *o);

struct policy_proc;

/* The access policy's part of an open (issue 15), for its audit line. */
struct policy_verdict {
    int rule;                        /* the rule that decided; -1: the default */
    const struct policy_proc *proc;  /* the caller's facts (borrowed); NULL: not read */
    const char *why;                 /* the facts could not be read (a deny): why, one line */
};

/* Write one audit line for an open: decision or, for rc < 0, the error.
 * v (may be NULL: no access policy, file modes alone decided) adds the
 * deciding rule and the caller's exe, cgroup and container when known. */
void policy_audit_open(const struct policy_subject *s, const struct policy_object *o,
                       enum policy_decision d, int rc, const struct policy_verdict *v);

#endif
