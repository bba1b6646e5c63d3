/* proc.c - the facts about a caller, read from /proc through a pidfd, and
 * the container its cgroup path names (issue 15).
 *
 * This runs on a FUSE thread at every open that a policy needs it for:
 * no stdio, no allocation, every file read into a bounded stack buffer,
 * every descriptor closed on the one exit path. */
#include "policy/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "policy/proc_i.h"

/* linux/magic.h, Linux 6.9: pidfds' own file system. */
#ifndef PIDFS_MAGIC
#define PIDFS_MAGIC 0x50494446
#endif

/* Linux 6.9: a pidfd for a thread that is not its group's leader. */
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

#ifdef UNITTEST
void (*policy_proc_test_hook)(pid_t pid);
bool policy_proc_test_old_kernel;
#endif

/* ---- reading /proc files line by line, without allocating ---- */

/* The longest line kept whole; longer ones are handed out cut (their
 * first LINE_MAX - 1 bytes) and the rest is skipped. /proc/PID/status's
 * Groups line is the only one that can grow past this (65536 groups). */
#define LR_BUF 4096

struct line_reader {
    int fd;
    char buf[LR_BUF];
    size_t len;     /* bytes in buf */
    size_t pos;     /* start of the next line */
    bool eof;
    bool skipping;  /* inside the rest of a cut line */
};

/* The next line of lr (without its '\n', NUL-terminated in place) in
 * *line and *n; *cut when it was longer than the buffer. 1: a line; 0: end;
 * negative errno. */
static int lr_next(struct line_reader *lr, char **line, size_t *n, bool *cut)
{
    for (;;) {
        char *start = lr->buf + lr->pos;
        size_t avail = lr->len - lr->pos;
        char *nl = memchr(start, '\n', avail);
        if (nl) {
            *nl = '\0';
            lr->pos += (size_t)(nl - start) + 1;
            if (lr->skipping) {   /* the tail of a cut line: drop it */
                lr->skipping = false;
                continue;
            }
            *line = start;
            *n = (size_t)(nl - start);
            *cut = false;
            return 1;
        }
        if (lr->eof) {
            if (avail == 0 || lr->skipping)
                return 0;
            start[avail] = '\0';   /* a last line with no '\n' */
            lr->pos = lr->len;
            *line = start;
            *n = avail;
            *cut = false;
            return 1;
        }
        if (lr->pos == 0 && lr->len == sizeof(lr->buf) - 1) {
            /* A line as long as the buffer: hand out its start, skip the rest. */
            lr->buf[lr->len] = '\0';
            bool was_skipping = lr->skipping;
            lr->len = lr->pos = 0;
            lr->skipping = true;
            if (was_skipping)
                continue;
            *line = lr->buf;
            *n = sizeof(lr->buf) - 1;
            *cut = true;
            return 1;
        }
        memmove(lr->buf, start, avail);
        lr->len = avail;
        lr->pos = 0;
        ssize_t r;
        do {
            r = read(lr->fd, lr->buf + lr->len, sizeof(lr->buf) - 1 - lr->len);
        } while (r < 0 && errno == EINTR);
        if (r < 0)
            return -errno;
        if (r == 0)
            lr->eof = true;
        lr->len += (size_t)r;
    }
}

/* name under where (a /proc/PID or /proc/PID/task/TID directory): through
 * dir, where's descriptor, or, when dir is -1 (one or two files to read:
 * the directory's own open and close would cost more than it saves), by
 * the whole path into buf. */
static const char *at(int dir, const char *where, const char *name, char *buf, size_t cap,
                      int *atfd)
{
    *atfd = dir >= 0 ? dir : AT_FDCWD;
    if (dir >= 0)
        return name;
    snprintf(buf, cap, "%s/%s", where, name);
    return buf;
}

static int open_at(int dir, const char *name, int *fd, char *err, size_t errlen, const char *where)
{
    char path[96];
    int atfd;
    const char *p = at(dir, where, name, path, sizeof(path), &atfd);
    *fd = openat(atfd, p, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s/%s: %s", where, name, strerror(e));
        return -e;
    }
    return 0;
}

/* A decimal id (uid, gid, pid) at *p, advancing it. false when none. */
static bool parse_id(const char **p, unsigned long *v)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long x = strtoul(s, &end, 10);
    if (errno || x > UINT32_MAX)
        return false;
    *v = x;
    *p = end;
    return true;
}

/* ---- the files ---- */

/* /proc/PID/status: Tgid (for the thread fallback) and Groups. More than
 * POLICY_PROC_MAX_GROUPS groups: the first ones kept, groups_truncated
 * set (see proc.h: a gids rule must then fail closed). */
static int read_status(int dir, const char *where, struct policy_proc *out, pid_t *tgid,
                       char *err, size_t errlen)
{
    struct line_reader lr = {.fd = -1};
    int rc = open_at(dir, "status", &lr.fd, err, errlen, where);
    if (rc < 0)
        return rc;
    bool have_groups = false;
    char *line;
    size_t n;
    bool cut;
    *tgid = 0;
    while ((rc = lr_next(&lr, &line, &n, &cut)) == 1) {
        unsigned long v;
        if (strncmp(line, "Tgid:", 5) == 0) {
            const char *p = line + 5;
            if (parse_id(&p, &v))
                *tgid = (pid_t)v;
        } else if (strncmp(line, "Groups:", 7) == 0) {
            const char *p = line + 7;
            have_groups = true;
            out->n_groups = 0;
            while (parse_id(&p, &v)) {
                if (out->n_groups == POLICY_PROC_MAX_GROUPS) {
                    out->groups_truncated = true;
                    break;
                }
                out->groups[out->n_groups++] = (gid_t)v;
            }
            /* A cut line whose kept part held no more than the cap: the
             * rest was not seen, so it may hold more. */
            if (cut && out->n_groups == POLICY_PROC_MAX_GROUPS)
                out->groups_truncated = true;
            break;   /* Tgid comes before Groups */
        }
    }
    close(lr.fd);
    if (rc < 0) {
        snprintf(err, errlen, "%s/status: %s", where, strerror(-rc));
        return rc;
    }
    if (!have_groups) {
        snprintf(err, errlen, "%s/status: no Groups line", where);
        return -EIO;
    }
    return 0;
}

/* Copy path into dst[POLICY_PROC_CGROUP_MAX]; "" when too long. */
static void copy_path(char *dst, const char *path, size_t n, bool cut)
{
    if (cut || n >= POLICY_PROC_CGROUP_MAX) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, path, n);
    dst[n] = '\0';
}

/* /proc/PID/cgroup. The path: the v2 line ("0::/path", also on hybrid
 * hosts where cgroup2 is /sys/fs/cgroup/unified), else the v1
 * name=systemd line, else the first line. The container: from the same
 * line when it names one, else from the first other line that does in
 * the same order (a Docker container on a v1 or hybrid host is named by
 * its v1 lines while its v2 line may be the daemon's or "/"). */
static int read_cgroup(int dir, const char *where, struct policy_proc *out, char *err,
                       size_t errlen)
{
    struct line_reader lr = {.fd = -1};
    int rc = open_at(dir, "cgroup", &lr.fd, err, errlen, where);
    if (rc < 0)
        return rc;
    /* Ranks: 3 v2, 2 name=systemd, 1 the first line, 0 any other. */
    int path_rank = 0, cont_rank = -1;
    bool any = false;
    char *line;
    size_t n;
    bool cut;
    while ((rc = lr_next(&lr, &line, &n, &cut)) == 1) {
        /* hierarchy-ID:controller-list:path; the path may contain ':'. */
        char *c1 = memchr(line, ':', n);
        char *c2 = c1 ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - line)) : NULL;
        if (!c2)
            continue;
        const char *path = c2 + 1;
        size_t plen = n - (size_t)(path - line);
        int rank;
        if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1)
            rank = 3;
        else if ((size_t)(c2 - c1 - 1) == strlen("name=systemd") &&
                 memcmp(c1 + 1, "name=systemd", strlen("name=systemd")) == 0)
            rank = 2;
        else
            rank = any ? 0 : 1;
        any = true;
        if (rank > path_rank) {
            /* Too long to keep: "" (unknown), never a cut path a glob
             * could match wrongly. */
            path_rank = rank;
            copy_path(out->cgroup, path, plen, cut);
        }
        if (rank > cont_rank && !cut) {
            char id[POLICY_CONTAINER_ID_MAX];
            enum policy_runtime r = policy_container_of(path, id, sizeof(id));
            if (r != POLICY_RUNTIME_NONE) {
                cont_rank = rank;
                out->runtime = r;
                memcpy(out->container, id, sizeof(id));
            }
        }
    }
    close(lr.fd);
    if (rc < 0) {
        snprintf(err, errlen, "%s/cgroup: %s", where, strerror(-rc));
        return rc;
    }
    if (!any) {
        snprintf(err, errlen, "%s/cgroup: no hierarchy line", where);
        return -EIO;
    }
    return 0;
}

/* /proc/PID/stat field 22, the start time in clock ticks since boot. The
 * second field (comm) may hold spaces and parentheses: the fields are
 * counted from the last ')'. */
static int read_start_time(int dir, const char *where, unsigned long long *start, char *err,
                           size_t errlen)
{
    char buf[2048];
    int fd;
    int rc = open_at(dir, "stat", &fd, err, errlen, where);
    if (rc < 0)
        return rc;
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        /* One line: its '\n' is the end, no read for EOF needed. */
        if (len == sizeof(buf) - 1 || buf[len - 1] == '\n')
            break;
    }
    close(fd);
    if (rc < 0) {
        snprintf(err, errlen, "%s/stat: %s", where, strerror(-rc));
        return rc;
    }
    buf[len] = '\0';
    const char *p = memrchr(buf, ')', len);
    if (!p)
        goto bad;
    p++;
    /* After ')': field 3 (state) is the first, so field 22 is the 20th. */
    for (int field = 3; field < 22; field++) {
        while (*p == ' ')
            p++;
        while (*p && *p != ' ')
            p++;
    }
    while (*p == ' ')
        p++;
    if (*p < '0' || *p > '9')
        goto bad;
    char *end;
    errno = 0;
    *start = strtoull(p, &end, 10);
    if (errno || (*end != ' ' && *end != '\n' && *end != '\0'))
        goto bad;
    return 0;
bad:
    snprintf(err, errlen, "%s/stat: no start time (field 22)", where);
    return -EIO;
}

/* ---- the caller ---- */

/* A pidfd for pid, which FUSE gives as the calling *thread's* id. A
 * thread-group leader: pidfd_open(pid, 0). Another thread: PIDFD_THREAD
 * (Linux 6.9). Older kernels refuse both for a non-leader thread
 * (EINVAL; PIDFD_THREAD is an unknown flag there): then the pidfd is the thread group's, the files are read
 * under /proc/TGID/task/TID (which exists only while TID is a thread of
 * TGID), and *tgid says so. */
static int open_pidfd(pid_t pid, int *pidfd, pid_t *tgid, char *err, size_t errlen)
{
    *tgid = 0;
    *pidfd = pidfd_open(pid, 0);
    if (*pidfd >= 0)
        return 0;
    /* Not a leader: EINVAL before Linux 6.9, ENOENT since. */
    if (errno != EINVAL && errno != ENOENT)
        goto fail;
#ifdef UNITTEST
    if (policy_proc_test_old_kernel)
        errno = EINVAL;
    else
#endif
        *pidfd = pidfd_open(pid, PIDFD_THREAD);
    if (*pidfd >= 0)
        return 0;
    if (errno != EINVAL)
        goto fail;
    /* No PIDFD_THREAD: find the thread's group from its status. */
    char where[64];
    snprintf(where, sizeof(where), "/proc/%d", (int)pid);
    int dir = open(where, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", where, strerror(e));
        return e == ENOENT ? -ESRCH : -e;
    }
    struct policy_proc scratch = {0};
    pid_t g;
    int rc = read_status(dir, where, &scratch, &g, err, errlen);
    close(dir);
    if (rc < 0)
        return rc == -ENOENT ? -ESRCH : rc;
    if (g <= 0 || g == pid) {
        snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(EINVAL));
        return -EINVAL;
    }
    *pidfd = pidfd_open(g, 0);
    if (*pidfd < 0) {
        pid = g;
        goto fail;
    }
    *tgid = g;
    return 0;
fail:;
    int e = errno;
    snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(e));
    return -e;
}

int policy_proc_load(pid_t pid, uid_t uid, gid_t gid, unsigned facts, struct policy_proc *out,
                     char *err, size_t errlen)
{
    int rc;
    int pidfd = -1, dir = -1;
    pid_t tgid;
    char where[64], path[96];
    int atfd;
    struct stat st, self_ns;

    memset(out, 0, sizeof(*out));
    out->pid = pid;
    out->uid = uid;
    out->gid = gid;
    if (pid == 0)
        return 0;   /* not in our pid namespace: only what FUSE told us */
    if (pid < 0) {
        snprintf(err, errlen, "pid %d: not a process id", (int)pid);
        return -EINVAL;
    }

    rc = open_pidfd(pid, &pidfd, &tgid, err, errlen);
    if (rc < 0)
        goto out;
    if (tgid)
        snprintf(where, sizeof(where), "/proc/%d/task/%d", (int)tgid, (int)pid);
    else
        snprintf(where, sizeof(where), "/proc/%d", (int)pid);
    /* The identity on pidfs (Linux 6.9): the pidfd's inode, which no
     * other process gets while this boot lasts; nothing to read. */
    bool id_from_pidfd = (facts & POLICY_FACT_START) && (facts & POLICY_PROC_PIDFS);
    if (id_from_pidfd) {
        if (fstat(pidfd, &st) != 0) {
            rc = -errno;
            snprintf(err, errlen, "pidfd of %d: %s", (int)pid, strerror(-rc));
            goto out;
        }
        out->start_time = (unsigned long long)st.st_ino;
    }
    /* The /proc files to read; none: no liveness check either, as nothing
     * was read by the pid's number that another process could answer. */
    unsigned files = (facts & POLICY_FACT_EXE ? 1 : 0) + (facts & POLICY_FACT_EXE_PATH ? 1 : 0) +
                     (facts & POLICY_FACT_GROUPS ? 1 : 0) + (facts & POLICY_FACT_CGROUP ? 1 : 0) +
                     (facts & POLICY_FACT_START && !id_from_pidfd ? 1 : 0) +
                     (facts & POLICY_FACT_PID_NS ? 1 : 0);
    if (files == 0) {
        out->has_pid = true;
        out->groups_truncated = !(facts & POLICY_FACT_GROUPS);
        rc = 0;
        goto out;
    }
    /* Three or more: one lookup of the directory, every file relative to
     * it; fewer: by their whole paths. */
    if (files >= 3) {
        dir = open(where, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", where, strerror(-rc));
            goto out;
        }
    }

    /* The executable by what it is, not by its name. stat follows the
     * magic link to the file the process runs, even once that file was
     * deleted or lives in another mount namespace. ENOENT: a kernel
     * thread, or a process past exit; EACCES: we may not ptrace-read it
     * (e.g. a broker without CAP_SYS_PTRACE, a caller of another uid) —
     * the exe is then unknown, and a rule naming one fails closed. */
    if (facts & POLICY_FACT_EXE) {
        const char *name = at(dir, where, "exe", path, sizeof(path), &atfd);
        if (fstatat(atfd, name, &st, 0) == 0) {
            out->has_exe = true;
            out->exe_dev = st.st_dev;
            out->exe_ino = st.st_ino;
        } else if (errno != ENOENT && errno != EACCES && errno != EPERM) {
            rc = -errno;
            snprintf(err, errlen, "%s/exe: %s", where, strerror(-rc));
            goto out;
        }
    }
    if (facts & POLICY_FACT_EXE_PATH) {
        /* For people reading the audit: a path longer than kept is left
         * out rather than shown cut. */
        const char *name = at(dir, where, "exe", path, sizeof(path), &atfd);
        ssize_t n = readlinkat(atfd, name, out->exe_path, sizeof(out->exe_path));
        if (n > 0 && (size_t)n < sizeof(out->exe_path))
            out->exe_path[n] = '\0';
        else
            out->exe_path[0] = '\0';
    }

    if (facts & POLICY_FACT_GROUPS) {
        rc = read_status(dir, where, out, &(pid_t){0}, err, errlen);
        if (rc < 0)
            goto out;
    } else {
        out->groups_truncated = true;   /* supplementary groups unknown */
    }
    if (facts & POLICY_FACT_CGROUP) {
        rc = read_cgroup(dir, where, out, err, errlen);
        if (rc < 0)
            goto out;
    }
    if ((facts & POLICY_FACT_START) && !id_from_pidfd) {
        rc = read_start_time(dir, where, &out->start_time, err, errlen);
        if (rc < 0)
            goto out;
    }

    /* The pid namespace, by the nsfs inode (ptrace-read gated like exe). */
    const char *ns_name = at(dir, where, "ns/pid", path, sizeof(path), &atfd);
    if (!(facts & POLICY_FACT_PID_NS)) {
        /* not asked for: unknown */
    } else if (fstatat(atfd, ns_name, &st, 0) == 0) {
        if (stat("/proc/self/ns/pid", &self_ns) != 0) {
            rc = -errno;
            snprintf(err, errlen, "/proc/self/ns/pid: %s", strerror(-rc));
            goto out;
        }
        out->has_pid_ns = true;
        out->same_pid_ns = st.st_dev == self_ns.st_dev && st.st_ino == self_ns.st_ino;
    } else if (errno != ENOENT && errno != EACCES && errno != EPERM) {
        rc = -errno;
        snprintf(err, errlen, "%s/ns/pid: %s", where, strerror(-rc));
        goto out;
    }

#ifdef UNITTEST
    if (policy_proc_test_hook)
        policy_proc_test_hook(pid);
#endif
    /* Last: is the process the pidfd names still there? If not, the pid
     * may have been given to another process while we read, and what we
     * read may be that process's: throw it all away. */
    /* EPERM: there, but not ours to signal (a broker without CAP_KILL). */
    if (pidfd_send_signal(pidfd, 0, NULL, 0) != 0 && errno != EPERM) {
        rc = -errno;
        snprintf(err, errlen, "pid %d: %s", (int)pid,
                 rc == -ESRCH ? "exited while its facts were read" : strerror(-rc));
        goto out;
    }
    out->has_pid = true;
    rc = 0;
out:
    /* A file missing because the process is gone: one answer, -ESRCH,
     * whichever file noticed first. Missing while the process lives (a
     * /proc of another pid namespace than FUSE's pids): -ENOENT, with err. */
    if (rc == -ENOENT &&
        (pidfd < 0 || (pidfd_send_signal(pidfd, 0, NULL, 0) != 0 && errno != EPERM)))
        rc = -ESRCH;
    if (dir >= 0)
        close(dir);
    if (pidfd >= 0)
        close(pidfd);
    if (rc < 0) {
        memset(out, 0, sizeof(*out));
        out->pid = pid;
        out->uid = uid;
        out->gid = gid;
    }
    return rc;
}

void policy_proc_merge(struct policy_proc *into, const struct policy_proc *from, unsigned facts)
{
    if (!from->has_pid)
        return;
    if (!(facts & POLICY_FACT_EXE_PATH))
        memcpy(into->exe_path, from->exe_path, sizeof(into->exe_path));
    if (!(facts & POLICY_FACT_EXE)) {
        into->has_exe = from->has_exe;
        into->exe_dev = from->exe_dev;
        into->exe_ino = from->exe_ino;
    }
    if (!(facts & POLICY_FACT_GROUPS)) {
        memcpy(into->groups, from->groups, sizeof(into->groups));
        into->n_groups = from->n_groups;
        into->groups_truncated = from->groups_truncated;
    }
    if (!(facts & POLICY_FACT_CGROUP)) {
        memcpy(into->cgroup, from->cgroup, sizeof(into->cgroup));
        into->runtime = from->runtime;
        memcpy(into->container, from->container, sizeof(into->container));
    }
    if (!(facts & POLICY_FACT_PID_NS)) {
        into->has_pid_ns = from->has_pid_ns;
        into->same_pid_ns = from->same_pid_ns;
    }
}

bool policy_proc_pidfs(void)
{
    int fd = pidfd_open(getpid(), 0);
    struct statfs sf;
    bool yes = fd >= 0 && fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type == PIDFS_MAGIC;
    if (fd >= 0)
        close(fd);
    return yes;
}

/* ---- containers from cgroup paths ---- */

#define CONTAINER_ID_LEN 64

/* A container id as runtimes write it into cgroup names: exactly 64
 * lowercase hex digits (the full id; the 12-digit form is only shown by
 * CLIs). Anything shorter is some other unit's name. */
static bool is_id(const char *s, size_t n)
{
    if (n != CONTAINER_ID_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool has_prefix(const char *s, size_t n, const char *p)
{
    size_t pn = strlen(p);
    return n >= pn && memcmp(s, p, pn) == 0;
}

/* The systemd layouts: PREFIX<id>.scope. The conmon scopes
 * (libpod-conmon-<id>.scope, crio-conmon-<id>.scope) hold the monitor, not
 * the container, and fail is_id. */
static const struct {
    const char *prefix;
    enum policy_runtime runtime;
} scopes[] = {
    {"docker-", POLICY_RUNTIME_DOCKER},
    {"libpod-", POLICY_RUNTIME_LIBPOD},
    {"cri-containerd-", POLICY_RUNTIME_CRI_CONTAINERD},
    {"crio-", POLICY_RUNTIME_CRIO},
};

/* The runtime one path component c[0..n) names, given its parent
 * component p[0..pn) and whether a "kubepods*" component came before. */
static enum policy_runtime component_runtime(const char *c, size_t n, const char *p, size_t pn,
                                             bool kube, const char **id)
{
    for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        size_t l = strlen(scopes[i].prefix);
        if (!has_prefix(c, n, scopes[i].prefix))
            continue;
        const char *rest = c + l;
        size_t rn = n - l;
        if (rn > 6 && memcmp(rest + rn - 6, ".scope", 6) == 0)
            rn -= 6;
        else if (scopes[i].runtime != POLICY_RUNTIME_LIBPOD && scopes[i].runtime != POLICY_RUNTIME_CRIO)
            continue;   /* cgroupfs: only podman's libpod-<id> and CRI-O's crio-<id> */
        if (is_id(rest, rn)) {
            *id = rest;
            return scopes[i].runtime;
        }
    }
    if (!is_id(c, n))
        return POLICY_RUNTIME_NONE;
    *id = c;
    /* cgroupfs: Docker's /docker/<id>; the kubelet's .../pod<uid>/<id>. */
    if (pn == strlen("docker") && memcmp(p, "docker", pn) == 0)
        return POLICY_RUNTIME_DOCKER;
    if (kube && has_prefix(p, pn, "pod"))
        return POLICY_RUNTIME_CRI_CONTAINERD;   /* see docs/internals/policy.md */
    return POLICY_RUNTIME_NONE;
}

enum policy_runtime policy_container_of(const char *cgroup, char *id, size_t idlen)
{
    enum policy_runtime found = POLICY_RUNTIME_NONE;
    const char *found_id = NULL;
    const char *parent = "";
    size_t parent_n = 0;
    bool kube = false;

    if (idlen)
        id[0] = '\0';
    if (!cgroup)
        return POLICY_RUNTIME_NONE;
    /* Left to right, keeping the last match: the innermost wins. */
    for (const char *c = cgroup; *c;) {
        if (*c == '/') {
            c++;
            continue;
        }
        const char *end = strchr(c, '/');
        size_t n = end ? (size_t)(end - c) : strlen(c);
        const char *cid = NULL;
        enum policy_runtime r = component_runtime(c, n, parent, parent_n, kube, &cid);
        if (r != POLICY_RUNTIME_NONE) {
            found = r;
            found_id = cid;
        }
        if (has_prefix(c, n, "kubepods"))
            kube = true;
        parent = c;
        parent_n = n;
        c += n;
    }
    if (found == POLICY_RUNTIME_NONE || idlen <= CONTAINER_ID_LEN)
        return POLICY_RUNTIME_NONE;
    memcpy(id, found_id, CONTAINER_ID_LEN);
    id[CONTAINER_ID_LEN] = '\0';
    return found;
}

const char *policy_runtime_name(enum policy_runtime r)
{
    switch (r) {
    case POLICY_RUNTIME_DOCKER:
        return "docker";
    case POLICY_RUNTIME_LIBPOD:
        return "libpod";
    case POLICY_RUNTIME_CRI_CONTAINERD:
        return "cri-containerd";
    case POLICY_RUNTIME_CRIO:
        return "crio";
    case POLICY_RUNTIME_NONE:
        break;
    }
    return "";
}
