/* policy.h - the file modes' decision for an open, as the kernel makes it.
 *
 * The kernel already enforces file modes (default_permissions); the
 * daemon decides again so a mount without default_permissions cannot
 * serve what the modes forbid, and readdir under an access policy lists
 * only what the modes and the policy let its caller open. The access
 * policy itself is rules.h; the audit line of an open, audit.h. */
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

#endif
