/* proc.h - what the access policy knows of a caller (issue 15): the facts
 * about one process, read once per open from /proc through a pidfd, and
 * the container a cgroup path names.
 *
 * The facts are read in the order that makes pid reuse harmless:
 * pidfd_open(pid) first, then /proc/PID/{exe,status,cgroup,stat,ns/pid},
 * then pidfd_send_signal(pidfd, 0): if the process the pidfd names is
 * gone, the pid may now be another's and everything read is thrown away
 * (-ESRCH). An executable is known by (st_dev, st_ino) of /proc/PID/exe's
 * target, never by its path: a copy elsewhere is another file, a
 * same-named file in another mount namespace is another file, a hard link
 * is the same file.
 */
#ifndef RS_POLICY_PROC_H
#define RS_POLICY_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define POLICY_PROC_MAX_GROUPS 64
#define POLICY_PROC_CGROUP_MAX 512
#define POLICY_CONTAINER_ID_MAX 80
#define POLICY_PROC_EXE_PATH_MAX 1024

/* Which facts policy_proc_load reads (each costs /proc work; a policy
 * reads only what its rules ask, policy_rules_facts). A fact not asked
 * for is unknown, as one that could not be read. */
enum {
    POLICY_FACT_EXE = 1u << 0,       /* exe_dev, exe_ino: one stat */
    POLICY_FACT_GROUPS = 1u << 1,    /* groups: /proc/PID/status */
    POLICY_FACT_CGROUP = 1u << 2,    /* cgroup, runtime, container: /proc/PID/cgroup */
    POLICY_FACT_PID_NS = 1u << 3,    /* has_pid_ns, same_pid_ns: two stats */
    POLICY_FACT_START = 1u << 4,     /* start_time: /proc/PID/stat */
    POLICY_FACT_EXE_PATH = 1u << 5,  /* exe_path, for the audit line: one readlink */
};
#define POLICY_FACTS_ALL 0x3fu
/* A flag with the facts, not a fact: pidfds live on pidfs (Linux 6.9,
 * policy_proc_pidfs), so POLICY_FACT_START is the pidfd's inode, a number
 * no other process gets in this boot, read with one fstat. */
#define POLICY_PROC_PIDFS 0x100u

/* The runtimes recognised from a cgroup path. */
enum policy_runtime {
    POLICY_RUNTIME_NONE,
    POLICY_RUNTIME_DOCKER,          /* "docker:<id>" */
    POLICY_RUNTIME_LIBPOD,          /* "libpod:<id>" (podman) */
    POLICY_RUNTIME_CRI_CONTAINERD,  /* "cri-containerd:<id>" */
    POLICY_RUNTIME_CRIO,            /* "crio:<id>" */
};

/* The facts about one caller. pid 0 (the caller is in a pid namespace the
 * broker cannot see) has only uid, gid (from the FUSE request) and
 * has_pid false: the rest is unknown, and a rule that needs it does not
 * match (policy_decide).
 *
 * An unknown fact fails closed the same way: a rule that needs it is
 * treated as not matching an allow and as matching a deny. Unknown are:
 * everything but uid/gid when !has_pid; the exe when !has_exe; the pid
 * namespace when !has_pid_ns; the cgroup *and the container* when cgroup
 * is "" (a real path is never empty: the root is "/"); a gid not among
 * groups[] when groups_truncated. */
struct policy_proc {
    pid_t pid;                       /* as FUSE gives it: the calling *thread*'s id */
    bool has_pid;                    /* the facts below were read and checked */
    uid_t uid;                       /* the FUSE request's (fsuid) */
    gid_t gid;                       /* the FUSE request's (fsgid) */
    gid_t groups[POLICY_PROC_MAX_GROUPS];   /* supplementary, from /proc/PID/status */
    size_t n_groups;
    bool groups_truncated;           /* the caller has more than POLICY_PROC_MAX_GROUPS:
                                        the first ones are in groups[], the rest unknown */
    bool has_exe;                    /* /proc/PID/exe could be stat'ed (not: a kernel
                                        thread, or no ptrace-read access to the caller) */
    dev_t exe_dev;
    ino_t exe_ino;
    char cgroup[POLICY_PROC_CGROUP_MAX];    /* v2 "0::" path, else v1 name=systemd, else the
                                               first; "" unknown (e.g. longer than this) */
    enum policy_runtime runtime;     /* from the cgroup lines (docs/internals/policy.md) */
    char container[POLICY_CONTAINER_ID_MAX];  /* the id (64 hex), "" when none */
    char exe_path[POLICY_PROC_EXE_PATH_MAX];   /* /proc/PID/exe's text, as the caller's
                                               mount namespace names it (" (deleted)"
                                               when so); "" unknown. Shown, never compared */
    bool has_pid_ns;                 /* /proc/PID/ns/pid could be stat'ed (ptrace-read) */
    bool same_pid_ns;                /* in the broker's pid namespace (with has_pid_ns) */
    unsigned long long start_time;   /* with pid, a process's identity: /proc/PID/stat
                                        field 22, or with POLICY_PROC_PIDFS its pidfd's
                                        inode; 0 when not read */
};

/* Read the facts (POLICY_FACT_* bits) of pid for a request by uid/gid
 * (the FUSE context's); the others are left unknown (groups: only the
 * primary gid known, groups_truncated set). The pidfd is always opened;
 * the liveness check below is done whenever a /proc file was read (with
 * POLICY_PROC_PIDFS and only the identity asked for, none is).
 * pid 0: out has only uid and gid, and 0 is returned. 0; -ESRCH when the
 * process is gone or was replaced while being read (deny); another
 * negative errno with err (deny, and say why). On error out has only pid,
 * uid and gid. No allocation, no stdio: safe on a FUSE thread; about
 * 8 KiB of stack. pid may be a thread's id (FUSE gives the calling
 * thread's): its own /proc/PID/task entry is read, through a PIDFD_THREAD
 * pidfd on Linux >= 6.9, else through its thread group's pidfd. */
int policy_proc_load(pid_t pid, uid_t uid, gid_t gid, unsigned facts, struct policy_proc *out,
                     char *err, size_t errlen) __attribute__((warn_unused_result));

/* Add to into the facts of from that into's read (asked as facts) lacks:
 * the facts into has stay as they are. For one process read twice. */
void policy_proc_merge(struct policy_proc *into, const struct policy_proc *from, unsigned facts)
    __attribute__((nonnull));

/* Do pidfds live on pidfs here (one probe: a pidfd of our own)? Called
 * once when a filesystem is made; its answer goes with the facts. */
bool policy_proc_pidfs(void);

/* The container a cgroup path names, in the cgroupfs and the systemd
 * layouts of Docker, Podman, containerd's CRI and CRI-O, e.g.
 *   /docker/<64 hex>                         /system.slice/docker-<64 hex>.scope
 *   /machine.slice/libpod-<64 hex>.scope     /libpod_parent/libpod-<64 hex>
 *   /kubepods/burstable/pod<uid>/<64 hex>    /kubepods.slice/.../cri-containerd-<64 hex>.scope
 *   .../crio-<64 hex>.scope
 * (the innermost one wins: a container in a container is the inner one).
 * POLICY_RUNTIME_NONE and id "" when none. */
enum policy_runtime policy_container_of(const char *cgroup, char *id, size_t idlen);
/* "docker", "libpod", "cri-containerd", "crio"; "" for NONE. */
const char *policy_runtime_name(enum policy_runtime r);

#endif
