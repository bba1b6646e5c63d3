/* pidfile.c - the broker's pid file and reload outcome (pidfile.h). */
#include "broker/pidfile.h"
#include "lib/escape.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Attempts at create-or-take-over: each lost race (the file removed or
 * replaced under us by another broker) costs one. */
#define PIDFILE_TRIES 8
#define PIDFILE_MAX_BYTES 32

static void shown_path(const char *path, char *out, size_t cap)
{
    escape_str(out, cap, path, 0);
}

/* Read "<pid>\n" from fd; 0 when it holds no valid pid. */
static pid_t read_pid(int fd)
{
    char buf[PIDFILE_MAX_BYTES + 1];
    ssize_t n = pread(fd, buf, PIDFILE_MAX_BYTES, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || end == buf || (*end != '\n' && *end != '\0') || v <= 0 || v > INT_MAX)
        return 0;
    return (pid_t)v;
}

static int make_parent(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if (mkdir(dir, 0755) == 0 || errno == EEXIST)
        return 0;
    int rc = -errno;
    char shown[512];
    shown_path(dir, shown, sizeof(shown));
    snprintf(err, errlen, "pid file: cannot create the folder %s: %s", shown, strerror(errno));
    return rc;
}

/* After the lock: is fd still the file at path (not one removed or
 * replaced since we opened it)? */
static bool still_there(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

static int write_pid(int fd)
{
    char buf[PIDFILE_MAX_BYTES];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        return -errno ? -errno : -EIO;
    return 0;
}

int pidfile_take(struct pidfile *p, const char *path, char *err, size_t errlen)
{
    char shown[512];
    int rc = -EAGAIN;

    memset(p, 0, sizeof(*p));
    p->fd = -1;
    shown_path(path, shown, sizeof(shown));
    if (path[0] == '\0' || strlen(path) + sizeof(PIDFILE_STATUS_SUFFIX) > sizeof(p->path)) {
        snprintf(err, errlen, "pid file: '%s': empty or too long a path", shown);
        return -EINVAL;
    }
    rc = make_parent(path, err, errlen);
    if (rc < 0)
        return rc;
    for (int attempt = 0; attempt < PIDFILE_TRIES; attempt++) {
        bool created = true;
        /* O_NOFOLLOW: a symlink planted at the path must not make a root
         * broker truncate whatever it points to. */
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST) {
            created = false;
            fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
            if (fd < 0 && errno == ENOENT)
                continue;   /* removed by its exiting broker: create it */
        }
        if (fd < 0) {
            rc = -errno;
            snprintf(err, errlen, "pid file %s: cannot open: %s", shown,
                     errno == ELOOP ? "it is a symbolic link" : strerror(errno));
            return rc;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            snprintf(err, errlen, "pid file %s: not a regular file", shown);
            return -EINVAL;
        }
        if (st.st_uid != geteuid()) {
            close(fd);
            snprintf(err, errlen, "pid file %s: owned by uid %lu, not by this broker's uid %lu",
                     shown, (unsigned long)st.st_uid, (unsigned long)geteuid());
            return -EPERM;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            rc = -errno;
            pid_t other = read_pid(fd);
            close(fd);
            if (rc == -EWOULDBLOCK) {
                if (other)
                    snprintf(err, errlen, "pid file %s is held by a running broker (pid %ld): "
                             "one pid file per broker (--pid-file)", shown, (long)other);
                else
                    snprintf(err, errlen, "pid file %s is held by another running broker: one "
                             "pid file per broker (--pid-file)", shown);
                return -EBUSY;
            }
            snprintf(err, errlen, "pid file %s: cannot lock: %s", shown, strerror(-rc));
            return rc;
        }
        if (!still_there(fd, path)) {
            close(fd);   /* removed or replaced between open and lock */
            continue;
        }
        pid_t stale = created ? 0 : read_pid(fd);
        rc = write_pid(fd);
        if (rc < 0) {
            close(fd);
            snprintf(err, errlen, "pid file %s: cannot write: %s", shown, strerror(-rc));
            return rc;
        }
        p->fd = fd;
        snprintf(p->path, sizeof(p->path), "%s", path);
        snprintf(p->status_path, sizeof(p->status_path), "%s%s", path, PIDFILE_STATUS_SUFFIX);
        /* err carries a note for the caller to log, not an error. */
        if (!created)
            snprintf(err, errlen, "took over a stale pid file (pid %ld had it, no broker "
                     "holds it)", (long)stale);
        else
            err[0] = '\0';
        return 0;
    }
    snprintf(err, errlen, "pid file %s: kept changing under us (another broker starting?)",
             shown);
    return -EAGAIN;
}

int pidfile_write_status(const struct pidfile *p, const char *json)
{
    char tmp[PATH_MAX + 8];
    if (p->fd < 0)
        return 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->status_path);
    /* The folder is the pid file's, ours while we hold the pid file. */
    (void)unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t len = strlen(json);
    ssize_t w = write(fd, json, len);
    int rc = w == (ssize_t)len ? 0 : (w < 0 ? -errno : -EIO);
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, p->status_path) != 0)
        rc = -errno;
    if (rc < 0)
        (void)unlink(tmp);
    return rc;
}

void pidfile_release(struct pidfile *p)
{
    if (p->fd < 0)
        return;
    (void)unlink(p->status_path);
    /* Only our own: after a takeover race the path may name another's. */
    if (still_there(p->fd, p->path))
        (void)unlink(p->path);
    close(p->fd);   /* drops the lock, after the unlink: no window for a
                     * second broker to lock a file about to vanish */
    p->fd = -1;
}

int pidfile_read_live(const char *path, pid_t *pid, char *err, size_t errlen)
{
    char shown[512];
    shown_path(path, shown, sizeof(shown));
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int rc = -errno;
        if (rc == -ENOENT)
            snprintf(err, errlen, "no pid file at %s: is a broker running with this --pid-file?",
                     shown);
        else
            snprintf(err, errlen, "pid file %s: cannot open: %s", shown, strerror(-rc));
        return rc;
    }
    struct stat st;
    pid_t v = 0;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "pid file %s: not a regular file", shown);
        rc = -EINVAL;
    } else if (!(v = read_pid(fd))) {
        snprintf(err, errlen, "pid file %s: does not hold a process id", shown);
        rc = -EINVAL;
    } else if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        /* Nobody holds it: its broker is gone, whatever runs as that pid. */
        snprintf(err, errlen, "pid file %s names pid %ld, but no broker holds it (stale: the "
                 "broker was killed?)", shown, (long)v);
        rc = -ESRCH;
    } else if (errno != EWOULDBLOCK) {
        rc = -errno;
        snprintf(err, errlen, "pid file %s: cannot check its lock: %s", shown, strerror(-rc));
    }
    close(fd);
    if (rc == 0)
        *pid = v;
    return rc;
}
