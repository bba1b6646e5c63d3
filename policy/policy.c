/* policy.c - read access decisions and the open audit trail. */
#include "policy/policy.h"
#include "lib/log.h"

#include <stdio.h>
#include <string.h>

static bool in_groups(const struct policy_subject *s, gid_t gid)
{
    if (s->gid == gid)
        return true;
    for (size_t i = 0; i < s->ngroups; i++)
        if (s->groups[i] == gid)
            return true;
    return false;
}

enum policy_decision policy_check_read(const struct policy_subject *s, const struct policy_object *o)
{
    unsigned bits;
    if (s->uid == 0)
        return POLICY_ALLOW;   /* as the kernel: root has CAP_DAC_OVERRIDE */
    /* POSIX order: the owner class applies to the owner even when the group
     * or other class would allow more. */
    if (s->uid == o->uid)
        bits = (o->mode >> 6) & 7;
    else if (in_groups(s, o->gid))
        bits = (o->mode >> 3) & 7;
    else
        bits = o->mode & 7;
    return (bits & 4) ? POLICY_ALLOW : POLICY_DENY;
}

void policy_audit_open(const struct policy_subject *s, const struct policy_object *o,
                       enum policy_decision d, int rc)
{
    char error[64] = "";
    struct log_fields f = {
        .secret = o->name,
        .backend = o->backend,
        .result = rc < 0 ? "error" : d == POLICY_ALLOW ? "allow" : "deny",
        .has_caller = true,
        .uid = (long)s->uid,
        .gid = (long)s->gid,
        .pid = (long)s->pid,
    };
    if (rc < 0) {
        snprintf(error, sizeof(error), "%s", strerror(-rc));
        f.error = error;
    }
    log_f(d == POLICY_ALLOW && rc == 0 ? LOG_INFO : LOG_WARN, &f, "open");
}
