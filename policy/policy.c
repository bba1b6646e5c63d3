/* policy.c - read access decisions and the open audit trail. */
#include "policy/policy.h"
#include "lib/log.h"
#include "policy/proc.h"

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
                       enum policy_decision d, int rc, const struct policy_verdict *v)
{
    char error[64] = "";
    char rule[24], exe[48], container[POLICY_CONTAINER_ID_MAX + 24];
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
    if (v) {
        if (v->rule < 0)
            f.rule = "default";
        else {
            snprintf(rule, sizeof(rule), "%d", v->rule);
            f.rule = rule;
        }
        if (v->why && rc >= 0)
            f.error = v->why;
        const struct policy_proc *p = v->proc;
        if (p && p->has_pid) {
            /* The identity rules compare, not a path: a path names whatever
             * is there now, in the broker's mount namespace. */
            if (p->has_exe) {
                snprintf(exe, sizeof(exe), "%llu:%llu", (unsigned long long)p->exe_dev,
                         (unsigned long long)p->exe_ino);
                f.exe = exe;
            }
            if (p->cgroup[0])
                f.cgroup = p->cgroup;
            if (p->runtime != POLICY_RUNTIME_NONE && p->container[0]) {
                snprintf(container, sizeof(container), "%s:%s", policy_runtime_name(p->runtime),
                         p->container);
                f.container = container;
            }
        }
    }
    log_f(d == POLICY_ALLOW && rc == 0 ? LOG_INFO : LOG_WARN, &f, "open");
}
