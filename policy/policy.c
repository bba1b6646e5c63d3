/* policy.c - the POSIX read check of an open (see policy.h). */
#include "policy/policy.h"

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
