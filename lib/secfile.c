/* secfile.c - small secret files into secret memory, with no unwiped copy:
 * the read buffer is wiped, the content lands in a secbuf. */
#include "lib/secfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int secfile_read(const char *path, size_t max, struct secbuf *out, char *err, size_t errlen)
{
    char chunk[4096];
    int rc = 0;
    secbuf_init(out, max);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = -errno;
        if (rc != -ENOENT)
            snprintf(err, errlen, "%.200s: %s", path, strerror(-rc));
        else
            snprintf(err, errlen, "%.200s: %s", path, strerror(ENOENT));
        return rc;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "%.200s: %s", path, strerror(-rc));
            break;
        }
        if (n == 0)
            break;
        if ((rc = secbuf_append(out, chunk, (size_t)n)) < 0) {
            snprintf(err, errlen, "%.200s: larger than %zu bytes", path, max);
            break;
        }
    }
    secmem_wipe(chunk, sizeof(chunk));
    close(fd);
    if (rc < 0)
        secbuf_cleanup(out);
    return rc;
}

static int space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int secfile_token(const char *path, size_t max, char **out, char *err, size_t errlen)
{
    struct secbuf b;
    int rc = secfile_read(path, max, &b, err, errlen);
    if (rc < 0)
        return rc;
    size_t s = 0, e = b.len;
    while (s < e && space(b.data[s]))
        s++;
    while (e > s && space(b.data[e - 1]))
        e--;
    if (e == s) {
        snprintf(err, errlen, "%.200s: empty", path);
        rc = -EINVAL;
    } else if (memchr(b.data + s, '\0', e - s)) {
        snprintf(err, errlen, "%.200s: contains a NUL byte", path);
        rc = -EINVAL;
    } else if (!(*out = secmem_alloc(e - s + 1))) {
        rc = -ENOMEM;
    } else {
        memcpy(*out, b.data + s, e - s);
        (*out)[e - s] = '\0';
    }
    secbuf_cleanup(&b);
    return rc;
}
