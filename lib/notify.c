/* notify.c - sd_notify(3)'s datagram protocol (notify.h). */
#include "lib/notify.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* systemd reads the whole datagram or nothing; a send that blocks longer
 * than this means a manager that is not reading, and the broker has
 * better things to do than wait for it. */
#define NOTIFY_SEND_TIMEOUT_S 2

int notify_init(struct notify *n, const char *socket_env, char *err, size_t errlen)
{
    memset(n, 0, sizeof(*n));
    n->fd = -1;
    if (!socket_env || socket_env[0] == '\0')
        return 0;
    size_t len = strlen(socket_env);
    if (socket_env[0] != '/' && socket_env[0] != '@') {
        /* systemd 254+ also speaks AF_VSOCK ("vsock:CID:PORT") to a VM's
         * host; a broker runs beside its consumers, never across a VM. */
        snprintf(err, errlen, "NOTIFY_SOCKET: only an absolute path or an abstract name "
                 "(\"@name\") is supported, got an address of %zu bytes starting with '%c'",
                 len, socket_env[0] >= 0x20 && socket_env[0] < 0x7f ? socket_env[0] : '?');
        return -EINVAL;
    }
    if (len >= sizeof(n->addr.sun_path)) {
        snprintf(err, errlen, "NOTIFY_SOCKET: address longer than %zu bytes",
                 sizeof(n->addr.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, socket_env, len);
    if (socket_env[0] == '@')
        n->addr.sun_path[0] = '\0';   /* abstract: no terminating NUL counts */
    n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                             (socket_env[0] == '/' ? 1 : 0));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "NOTIFY_SOCKET: cannot create a socket: %s", strerror(errno));
        return rc;
    }
    struct timeval tv = {.tv_sec = NOTIFY_SEND_TIMEOUT_S};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    n->fd = fd;
    return 0;
}

bool notify_enabled(const struct notify *n)
{
    return n->fd >= 0;
}

int notify_send(struct notify *n, const char *text, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (n->fd < 0)
        return 1;
    ssize_t w;
    do {
        w = sendto(n->fd, text, strlen(text), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
                   n->addrlen);
    } while (w < 0 && errno == EINTR);
    if (w >= 0)
        return 0;
    int rc = -errno;
    /* Several threads notify (readiness, reloads, the stop); one report. */
    if (!__atomic_exchange_n(&n->failed, true, __ATOMIC_RELAXED) && err)
        snprintf(err, errlen, "cannot notify the service manager: %s", strerror(-rc));
    return rc;
}

unsigned long long notify_monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

void notify_cleanup(struct notify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
