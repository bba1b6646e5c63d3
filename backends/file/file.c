/* file.c - the built-in "file" backend: one file per secret under a directory.
 *
 * The embedded default: development, tests, and hosts where another tool
 * (a Kubernetes volume, a config manager) drops files we should serve
 * without them ever leaving secret memory in the broker.
 */
#include "backends/file/file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct file_backend {
    char *dir;
    size_t max_size;
};

static const char *const file_keys[] = {"path", NULL};

struct file_conf {
    char *dir;
};

static void file_conf_free(void *conf)
{
    struct file_conf *fc = conf;
    if (fc) {
        free(fc->dir);
        free(fc);
    }
}

static int file_parse(json_t *conf, void **out, char *err, size_t errlen)
{
    int rc = backend_conf_check_keys(conf, file_keys, NULL, err, errlen);
    if (rc < 0)
        return rc;
    struct file_conf *fc = calloc(1, sizeof(*fc));
    if (!fc)
        return -ENOMEM;
    rc = backend_conf_path(conf, "", "path", CONF_REQUIRED | CONF_PATH_DIR, &fc->dir, err, errlen);
    if (rc < 0) {
        if (!json_object_get(conf, "path"))
            snprintf(err, errlen, "path: missing (the directory holding the secret files)");
        free(fc);
        return rc;
    }
    *out = fc;
    return 0;
}

static int file_create(const struct backend_env *env, const void *conf, void **ctx, char *err,
                       size_t errlen)
{
    const struct file_conf *fc = conf;
    struct file_backend *fb = calloc(1, sizeof(*fb));
    if (!fb)
        return -ENOMEM;
    fb->dir = strdup(fc->dir);
    fb->max_size = env->max_value;
    if (!fb->dir) {
        free(fb);
        return -ENOMEM;
    }
    *ctx = fb;
    return 0;
}

static void file_destroy(void *ctx)
{
    struct file_backend *fb = ctx;
    free(fb->dir);
    free(fb);
}

static int file_check_ref(const struct secret_ref *ref, char *err, size_t errlen)
{
    const char *p = ref->path;
    if (p[0] == '/') {
        snprintf(err, errlen, "file path '%.200s' must be relative to the backend directory", p);
        return -EINVAL;
    }
    /* Reject any ".." segment outright; symlinks are checked at open. */
    for (const char *s = p; s; s = strchr(s, '/') ? strchr(s, '/') + 1 : NULL) {
        if (strncmp(s, "..", 2) == 0 && (s[2] == '/' || s[2] == '\0')) {
            snprintf(err, errlen, "file path '%.200s' leaves the backend directory", p);
            return -EINVAL;
        }
    }
    return 0;
}

/* openat2(RESOLVE_BENEATH) lets the kernel refuse every way out of the
 * directory (.., absolute symlinks, symlinks climbing out) atomically, with
 * no check-then-open race. */
static int open_beneath(int dirfd, const char *path)
{
    struct open_how how = {
        .flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

static int file_fetch(void *ctx, const struct secret_ref *ref, struct fetch_result *out,
                      char *err, size_t errlen)
{
    struct file_backend *fb = ctx;
    int rc, dirfd = -1, fd = -1;
    struct stat st;
    size_t max = fb->max_size < out->value.max ? fb->max_size : out->value.max;

    /* Open the directory each time: it may have been replaced (atomic
     * directory swaps of Kubernetes volumes, config managers). */
    dirfd = open(fb->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "backend directory %.200s: %s", fb->dir, strerror(-rc));
        if (rc == -ENOENT)
            rc = -EIO;   /* a missing directory is an outage, not a deletion */
        goto out;
    }
    fd = open_beneath(dirfd, ref->path);
    if (fd < 0) {
        rc = fd;
        /* RESOLVE_BENEATH says EXDEV for a way out; ELOOP is a loop of
         * symlinks (or a magic link, which cannot be reached from beneath). */
        if (rc == -EXDEV)
            snprintf(err, errlen, "%.200s: refused: resolves outside %.200s", ref->path, fb->dir);
        else if (rc == -ELOOP)
            snprintf(err, errlen, "%.200s: symlink loop (too many levels of symbolic links)",
                     ref->path);
        else
            snprintf(err, errlen, "%.200s: %s", ref->path, strerror(-rc));
        if (rc == -EXDEV)
            rc = -EACCES;
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%.200s: %s", ref->path, strerror(-rc));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
        snprintf(err, errlen, "%.200s: not a regular file", ref->path);
        goto out;
    }
    if ((size_t)st.st_size > max) {
        rc = -E2BIG;
        snprintf(err, errlen, "%.200s: %lld bytes, larger than max_size %zu", ref->path,
                 (long long)st.st_size, max);
        goto out;
    }
    /* Read to EOF rather than trusting st_size: the file may be changing. */
    rc = secbuf_reserve(&out->value, (size_t)st.st_size + 1 < max ? (size_t)st.st_size + 1 : max);
    if (rc < 0)
        goto nomem;
    out->value.len = 0;
    for (;;) {
        if (out->value.len == out->value.cap) {
            if (out->value.cap >= max) {
                /* Full: only EOF now keeps the value whole. */
                unsigned char probe;
                ssize_t extra = read(fd, &probe, 1);
                secmem_wipe(&probe, sizeof(probe));
                if (extra == 0)
                    break;
                rc = -E2BIG;
                snprintf(err, errlen, "%.200s: larger than max_size %zu", ref->path, max);
                goto out;
            }
            rc = secbuf_reserve(&out->value, out->value.cap * 2 < max ? out->value.cap * 2 : max);
            if (rc < 0)
                goto nomem;
        }
        ssize_t n = read(fd, out->value.data + out->value.len, out->value.cap - out->value.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "%.200s: read: %s", ref->path, strerror(-rc));
            goto out;
        }
        if (n == 0)
            break;
        out->value.len += (size_t)n;
    }
    rc = 0;
    goto out;
nomem:
    snprintf(err, errlen, "%.200s: %s", ref->path, strerror(-rc));
out:
    if (fd >= 0)
        close(fd);
    if (dirfd >= 0)
        close(dirfd);
    return rc;
}

const struct backend_ops backend_file_ops = {
    .type = "file",
    /* Files rewritten in place read empty between truncate and write. */
    .caps = BACKEND_CAP_CONFIRM_EMPTY | BACKEND_CAP_LOCAL,
    .parse = file_parse,
    .conf_free = file_conf_free,
    .create = file_create,
    .check_ref = file_check_ref,
    .fetch = file_fetch,
    .destroy = file_destroy,
};
