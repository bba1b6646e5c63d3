/* audit.h - the access policy's audit trail (issue 15, docs/config.md
 * "policy.audit"): one JSON line per decision, to stderr, a file or
 * syslog, with repeats of the same decision folded.
 *
 * Repeats: the same (secret, caller, decision) is written at most once
 * per repeat_after; the opens in between are counted, and the count goes
 * on the next line written for it ("repeats"), or on a line of its own
 * ("open repeats") once its window has passed with no new open (a thread,
 * rs-audit, looks every second), when its slot is reused, the
 * configuration is reloaded or the broker stops. A denial's window is at
 * most one second. The caller is what FUSE names: the calling thread (its
 * id and identity: start time, or its pidfd's inode, so a reused id is
 * another caller); for pid 0 (a caller in a pid namespace the broker
 * cannot see), the uid.
 *
 * One lock, audit.lock, a leaf: it protects the sink and the repeats
 * table; every line is one write(2) or send(2) under it (a syslog send
 * never waits: a full queue drops the line), so lines never interleave and
 * a reopen never splits one. Never called with a lock of another module
 * held.
 */
#ifndef RS_POLICY_AUDIT_H
#define RS_POLICY_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"
#include "policy/proc.h"
#include "policy/rules.h"

struct policy_audit_log;

/* policy_verdict.rule and policy_audit_line.rule beside a rule's index:
 * the default decided; the file modes (or a write) refused before the
 * access policy was asked. */
#define POLICY_RULE_DEFAULT (-1)
#define POLICY_RULE_MODES (-2)

/* Who decided an open and whether its line is due, for its audit line. */
struct policy_verdict {
    int rule;                        /* the rule that decided, or POLICY_RULE_* */
    const struct policy_proc *proc;  /* the caller's facts (borrowed); NULL: not read */
    const char *why;                 /* the facts could not be read (a deny): why, one line */
    struct policy_audit_log *log;    /* the audit trail (borrowed) */
    bool due;                        /* policy_audit_log_admit said to write */
    unsigned long long repeats;      /* its count of folded opens */
};

/* Write an open's line to v->log when it is due, or always for rc < 0
 * (the error): the decision, the rule (or the file modes) and the caller's
 * facts as far as they were read. */
void policy_audit_open(const struct policy_subject *s, const struct policy_object *o,
                       enum policy_decision d, int rc, const struct policy_verdict *v)
    __attribute__((nonnull));


/* p's "audit" object, or the defaults (stderr, 1m) when p is NULL. */
const struct policy_audit *policy_audit_of(const struct policy_rules *p);

/* Open cfg's sink (a file is created 0600, its folder 0700 when missing).
 * 0, or a negative errno with err: "policy.audit.sink: file:/x: ...". */
int policy_audit_log_new(const struct policy_audit *cfg, struct policy_audit_log **out,
                         char *err, size_t errlen) __attribute__((warn_unused_result));
/* Can cfg's sink be opened? (Opened and closed: a reload checks before
 * it changes anything.) 0 or a negative errno with err. */
int policy_audit_check(const struct policy_audit *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Write the counts still pending, close the sink, free. NULL: no-op. */
void policy_audit_log_free(struct policy_audit_log *l);
/* A reload's "audit" object: the pending counts are written to the old
 * sink, then the new one is opened and the repeats table cleared. If the
 * new sink cannot be opened, the old one stays and err says why. */
int policy_audit_log_configure(struct policy_audit_log *l, const struct policy_audit *cfg,
                               char *err, size_t errlen) __attribute__((warn_unused_result));
/* Reopen the sink (logrotate: SIGHUP, SIGUSR1): a file is opened again
 * by its path, a syslog socket reconnected. On failure the old one stays. */
int policy_audit_log_reopen(struct policy_audit_log *l, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Is a line due for this decision? true: write it (policy_audit_log_write)
 * with *repeats, the opens folded since the last one; false: it was
 * counted and folded. who needs pid, uid and, for pid != 0, start_time. */
bool policy_audit_log_admit(struct policy_audit_log *l, const char *secret,
                            const struct policy_proc *who, enum policy_decision d,
                            unsigned long long *repeats) __attribute__((nonnull));

struct policy_audit_line {
    const char *secret;
    const char *backend;           /* may be NULL */
    const struct policy_proc *who; /* uid, gid, pid; the rest when has_pid */
    enum policy_decision d;
    int rule;                      /* the rule's index, or POLICY_RULE_* */
    const char *error;             /* NULL, or why (facts unreadable; the open failed) */
    unsigned long long repeats;    /* from policy_audit_log_admit */
};

void policy_audit_log_write(struct policy_audit_log *l, const struct policy_audit_line *a)
    __attribute__((nonnull));

/* The line itself, for tests: into out (cap bytes), '\n'-terminated.
 * Returns its length. */
size_t policy_audit_format(char *out, size_t cap, const struct policy_audit_line *a,
                           bool summary) __attribute__((nonnull));

#endif
