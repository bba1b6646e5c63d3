/* mountpoint.c - prepare the mountpoint: create it, clear a stale mount,
 * refuse one a live broker serves, resolve it to the path to mount on. */
#include "fuse/mountpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define FSTYPE "fuse.runsecrets"

/* mkdir -p, 0755 for the directories we create. */
static int mkdir_parents(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Decode the octal escapes mountinfo uses for spaces and the like. */
static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* One mountinfo line (NUL-terminated, modified): is it a runsecrets mount
 * at resolved or on device dev? Then its mountpoint goes to where. */
static bool line_is_ours(char *line, const char *resolved, dev_t dev, char *where, size_t cap)
{
    /* id parent major:minor root mountpoint opts [optional...] - fstype ... */
    char *fields[6] = {0};
    char *save = NULL, *tok = strtok_r(line, " ", &save);
    unsigned maj, min;
    for (int i = 0; tok && i < 5; i++, tok = strtok_r(NULL, " ", &save))
        fields[i] = tok;
    if (!fields[4])
        return false;
    while (tok && strcmp(tok, "-") != 0)
        tok = strtok_r(NULL, " ", &save);
    char *fstype = tok ? strtok_r(NULL, " ", &save) : NULL;
    if (!fstype || strcmp(fstype, FSTYPE) != 0)
        return false;
    unescape(fields[4]);
    bool same_dev = sscanf(fields[2], "%u:%u", &maj, &min) == 2 && makedev(maj, min) == dev;
    if (!same_dev && strcmp(fields[4], resolved) != 0)
        return false;
    snprintf(where, cap, "%s", fields[4]);
    return true;
}

/* The runsecrets mount that path is on, compared by identity: the device of
 * the (resolved) path against each fuse.runsecrets entry's major:minor, and
 * the resolved path against its mountpoint. Comparing spellings alone let
 * "/x/mnt/", "/x/./mnt", "//x/mnt" or a symlink stack a second broker on a
 * live one. On a match, copies that mount's mountpoint into where.
 *
 * read(2) into a buffer on the stack, not stdio: mountns.c runs this in a
 * child forked from a process with threads, where an allocator lock held
 * by another thread at the fork (ASan's, which is not reset in the child)
 * would hang getline. A line longer than the buffer (mountpoints with
 * thousands of escaped characters) cannot be ours: ours are PATH_MAX. */
static bool ours_at(const char *resolved, dev_t dev, char *where, size_t cap)
{
    char buf[4 * PATH_MAX + 4096];   /* an escaped root and mountpoint, and the rest */
    size_t have = 0;
    bool found = false, skipping = false;
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    while (!found) {
        ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
        char *line = buf, *nl;
        while (!found && (nl = memchr(line, '\n', have - (size_t)(line - buf))) != NULL) {
            *nl = '\0';
            if (!skipping)
                found = line_is_ours(line, resolved, dev, where, cap);
            skipping = false;
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
        if (have == sizeof(buf) - 1) {   /* no end of line in a full buffer */
            skipping = true;
            have = 0;
        }
    }
    close(fd);
    return found;
}

int mountpoint_prepare(const char *path, char *resolved, size_t cap, bool *detached, char *err,
                       size_t errlen)
{
    char canon[PATH_MAX], other[PATH_MAX];
    struct stat st;
    int rc;

    struct statvfs sv;
    *detached = false;
    /* statvfs, not stat: the kernel answers stat from cached attributes for a
     * while after the daemon died, but statvfs always asks the daemon. */
    if (statvfs(path, &sv) != 0 && errno == ENOTCONN) {
        /* A broker was killed without unmounting: its mount answers nothing
         * but ENOTCONN. Detach it (lazily: a reader may still hold it). */
        if (umount2(path, MNT_DETACH) != 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: stale FUSE mount and cannot detach it: %s", path,
                     strerror(errno));
            return rc;
        }
        *detached = true;
    }
    rc = mkdir_parents(path);
    if (rc == -ENOTDIR) {
        snprintf(err, errlen, "%s: the mountpoint is not a directory (a part of it is a file)",
                 path);
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot create the mountpoint: %s", path, strerror(-rc));
        return rc;
    }
    /* Mount on the canonical path: it is what mountinfo shows, so the next
     * broker's check and every log line name the same place. */
    if (!realpath(path, canon)) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot resolve the mountpoint: %s", path, strerror(errno));
        return rc;
    }
    if (stat(canon, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: the mountpoint is not a directory", path);
        return -ENOTDIR;
    }
    if (ours_at(canon, st.st_dev, other, sizeof(other))) {
        if (strcmp(other, canon) == 0)
            snprintf(err, errlen, "%s: another runsecrets is already serving this mountpoint (%s)",
                     path, canon);
        else
            snprintf(err, errlen, "%s: the mountpoint is inside the runsecrets mount at %s",
                     path, other);
        return -EBUSY;
    }
    if (strlen(canon) >= cap) {
        snprintf(err, errlen, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    memcpy(resolved, canon, strlen(canon) + 1);
    return 0;
}

/* linux/magic.h has no name for it. */
#define FUSE_SUPER_MAGIC 0x65735546

int mountpoint_probe(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    struct statfs sf;
    int rc = fstatfs(fd, &sf) == 0 ? 0 : -errno;
    close(fd);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    if (sf.f_type != FUSE_SUPER_MAGIC) {
        snprintf(err, errlen, "%s: not mounted any more", path);
        return -ENOTCONN;
    }
    return 0;
}
