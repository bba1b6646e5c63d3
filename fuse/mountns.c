/* mountns.c - mount and unmount in another mount namespace (mountns.h). */
#include "fuse/mountns.h"
#include "fuse/mountpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/nsfs.h>

#define MOUNTNS_MSG_MAX 1024

struct mountns {
    int fd;
    char path[PATH_MAX];
};

/* What a child writes back: its result, one line, and the step's output. */
struct report {
    int rc;
    bool entered;              /* setns succeeded */
    bool flag;                 /* prepare: stale mount detached; unmount: lazily */
    char msg[MOUNTNS_MSG_MAX];
    char resolved[PATH_MAX];   /* prepare */
};

static const char *ns_kind(int type)
{
    switch (type) {
    case CLONE_NEWNET: return "a network";
    case CLONE_NEWPID: return "a pid";
    case CLONE_NEWUSER: return "a user";
    case CLONE_NEWUTS: return "a UTS";
    case CLONE_NEWIPC: return "an IPC";
    case CLONE_NEWCGROUP: return "a cgroup";
    default: return "another";
    }
}

/* Opening /proc/PID/ns/mnt of a process whose capabilities are not all
 * ours (PID 1's, under systemd) is a ptrace-class access: it needs
 * CAP_SYS_PTRACE. Nothing else does, so it goes as soon as the file is
 * open: from the effective, permitted and inheritable sets of this thread,
 * before any other exists, so every thread and child is without it (and
 * with NoNewPrivileges no exec can get it back). 0 or negative errno. */
static int drop_ptrace_capability(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &h, d) != 0)
        return -errno;
    unsigned word = CAP_TO_INDEX(CAP_SYS_PTRACE);
    uint32_t bit = CAP_TO_MASK(CAP_SYS_PTRACE);
    if (!((d[word].effective | d[word].permitted | d[word].inheritable) & bit))
        return 0;
    d[word].effective &= ~bit;
    d[word].permitted &= ~bit;
    d[word].inheritable &= ~bit;
    return syscall(SYS_capset, &h, d) == 0 ? 0 : -errno;
}

int mountns_open(const char *path, struct mountns **out, char *err, size_t errlen)
{
    int rc;
    struct mountns *ns = calloc(1, sizeof(*ns));
    if (!ns) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    ns->fd = -1;
    if (strlen(path) >= sizeof(ns->path)) {
        rc = -ENAMETOOLONG;
        snprintf(err, errlen, "--mount-namespace %s: path too long", path);
        goto fail;
    }
    memcpy(ns->path, path, strlen(path) + 1);
    ns->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (ns->fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "--mount-namespace %s: %s%s", path, strerror(errno),
                 rc == -EACCES ? " (another process's namespace needs CAP_SYS_PTRACE)" : "");
        goto fail;
    }
    rc = drop_ptrace_capability();
    if (rc < 0) {
        snprintf(err, errlen, "cannot drop CAP_SYS_PTRACE: %s", strerror(-rc));
        goto fail;
    }
    /* Asked of the file, not of its name: a bind mount of a namespace file
     * is fine, a regular file or a /proc/PID/ns/net is not. */
    int type = ioctl(ns->fd, NS_GET_NSTYPE);
    if (type < 0 && (errno == ENOTTY || errno == EINVAL)) {
        rc = -EINVAL;
        snprintf(err, errlen,
                 "--mount-namespace %s: not a namespace file (give a mount namespace, "
                 "e.g. /proc/1/ns/mnt)", path);
        goto fail;
    }
    if (type < 0) {
        rc = -errno;
        snprintf(err, errlen, "--mount-namespace %s: %s", path, strerror(errno));
        goto fail;
    }
    if (type != CLONE_NEWNS) {
        rc = -EINVAL;
        snprintf(err, errlen, "--mount-namespace %s: %s namespace, not a mount namespace",
                 path, ns_kind(type));
        goto fail;
    }
    *out = ns;
    return 0;
fail:
    mountns_free(ns);
    return rc;
}

void mountns_free(struct mountns *ns)
{
    if (!ns)
        return;
    if (ns->fd >= 0)
        close(ns->fd);
    free(ns);
}

const char *mountns_path(const struct mountns *ns)
{
    return ns->path;
}

int mountns_fd(const struct mountns *ns)
{
    return ns->fd;
}

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

/* Run step(arg, r) in a child that has joined ns, and copy its report to
 * *r. The child is a fork of a process that may have threads: between
 * fork and _exit it calls no function that takes a lock another thread
 * could have held (glibc's fork leaves malloc and stdio usable in the
 * child; the steps never log). 0 when the child reported (r->rc is the
 * step's result), or negative errno with err. */
static int run_in(const struct mountns *ns, int (*step)(void *arg, struct report *r), void *arg,
                  struct report *r, char *err, size_t errlen)
{
    int p[2];
    memset(r, 0, sizeof(*r));
    if (pipe2(p, O_CLOEXEC) != 0) {
        int rc = -errno;
        snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
        return rc;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int rc = -errno;
        close(p[0]);
        close(p[1]);
        snprintf(err, errlen, "cannot fork to enter %s: %s", ns->path, strerror(-rc));
        return rc;
    }
    if (pid == 0) {
        close(p[0]);
        if (setns(ns->fd, CLONE_NEWNS) != 0) {
            r->rc = -errno;
        } else {
            r->entered = true;
            r->rc = step(arg, r);
        }
        write_all(p[1], r, sizeof(*r));
        _exit(0);
    }
    close(p[1]);
    size_t got = 0;
    while (got < sizeof(*r)) {
        ssize_t n = read(p[0], (char *)r + got, sizeof(*r) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(p[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != sizeof(*r)) {
        snprintf(err, errlen, "the child that enters %s ended without a report (%s %d)",
                 ns->path, WIFSIGNALED(status) ? "signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        return -EIO;
    }
    r->msg[sizeof(r->msg) - 1] = '\0';
    r->resolved[sizeof(r->resolved) - 1] = '\0';
    if (!r->entered) {
        snprintf(err, errlen, "cannot enter the mount namespace %s: %s%s", ns->path,
                 strerror(-r->rc),
                 r->rc == -EPERM ? " (setns needs CAP_SYS_ADMIN and CAP_SYS_CHROOT, and "
                                   "RestrictNamespaces= must allow mnt)" : "");
        return r->rc;
    }
    return 0;
}

struct prepare_arg {
    const char *path;
};

static int prepare_step(void *arg, struct report *r)
{
    const struct prepare_arg *a = arg;
    return mountpoint_prepare(a->path, r->resolved, sizeof(r->resolved), &r->flag, r->msg,
                              sizeof(r->msg));
}

int mountns_prepare(const struct mountns *ns, const char *path, char *resolved, size_t cap,
                    bool *detached, char *err, size_t errlen)
{
    struct report r;
    struct prepare_arg a = {.path = path};
    int rc = run_in(ns, prepare_step, &a, &r, err, errlen);
    if (rc < 0)
        return rc;
    *detached = r.flag;
    if (r.rc < 0) {
        snprintf(err, errlen, "%s", r.msg);
        return r.rc;
    }
    if (strlen(r.resolved) >= cap) {
        snprintf(err, errlen, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    memcpy(resolved, r.resolved, strlen(r.resolved) + 1);
    return 0;
}

struct probe_arg {
    const char *path;
};

static int probe_step(void *arg, struct report *r)
{
    const struct probe_arg *a = arg;
    return mountpoint_probe(a->path, r->msg, sizeof(r->msg));
}

int mountns_probe(const struct mountns *ns, const char *mountpoint, char *err, size_t errlen)
{
    struct report r;
    struct probe_arg a = {.path = mountpoint};
    int rc = run_in(ns, probe_step, &a, &r, err, errlen);
    if (rc == 0 && r.rc < 0)
        snprintf(err, errlen, "%s", r.msg);
    return rc < 0 ? rc : r.rc;
}

struct mount_arg {
    const char *source, *mountpoint, *fstype, *data;
    unsigned long flags;
};

static int mount_step(void *arg, struct report *r)
{
    const struct mount_arg *a = arg;
    (void)r;
    return mount(a->source, a->mountpoint, a->fstype, a->flags, a->data) == 0 ? 0 : -errno;
}

int mountns_mount(const struct mountns *ns, const char *source, const char *mountpoint,
                  const char *fstype, unsigned long flags, const char *data, char *err,
                  size_t errlen)
{
    struct report r;
    struct mount_arg a = {.source = source, .mountpoint = mountpoint, .fstype = fstype,
                          .data = data, .flags = flags};
    int rc = run_in(ns, mount_step, &a, &r, err, errlen);
    if (rc < 0)
        return rc;
    if (r.rc < 0)
        snprintf(err, errlen, "cannot mount on %s in the mount namespace %s: %s", mountpoint,
                 ns->path, strerror(-r.rc));
    return r.rc;
}

struct unmount_arg {
    const char *mountpoint;
};

static int unmount_step(void *arg, struct report *r)
{
    const struct unmount_arg *a = arg;
    if (umount2(a->mountpoint, UMOUNT_NOFOLLOW) == 0)
        return 0;
    if (errno != EBUSY)
        return -errno;
    r->flag = true;
    return umount2(a->mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW) == 0 ? 0 : -errno;
}

int mountns_unmount(const struct mountns *ns, const char *mountpoint, bool *lazy, char *err,
                    size_t errlen)
{
    struct report r;
    struct unmount_arg a = {.mountpoint = mountpoint};
    int rc = run_in(ns, unmount_step, &a, &r, err, errlen);
    if (rc < 0)
        return rc;
    *lazy = r.flag;
    if (r.rc < 0)
        snprintf(err, errlen, "cannot unmount %s in the mount namespace %s: %s", mountpoint,
                 ns->path, strerror(-r.rc));
    return r.rc;
}

void mountns_detach_async(int ns_fd, const char *mountpoint)
{
    /* _Fork, not fork: it runs no atfork handlers, so a signal handler may
     * call it (glibc 2.34, POSIX.1-2024). */
    pid_t pid = _Fork();
    if (pid == 0) {
        if (setns(ns_fd, CLONE_NEWNS) == 0)
            (void)umount2(mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW);
        _exit(0);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
}
