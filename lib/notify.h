/* notify.h - the service manager's readiness protocol (sd_notify(3)),
 * spoken directly: one datagram of "KEY=VALUE\n" lines to the AF_UNIX
 * socket named by $NOTIFY_SOCKET ("/path", or "@name" for the abstract
 * namespace). No libsystemd: docs/internals/service.md says why.
 *
 * Messages are best effort, as sd_notify's are: a failure to send is
 * reported once (the caller logs it) and never stops the broker; systemd
 * then sees no READY=1 and its start timeout decides.
 */
#ifndef RS_NOTIFY_H
#define RS_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Embedded in its owner; notify_init then notify_cleanup. */
struct notify {
    int fd;                     /* -1: no service manager asked */
    struct sockaddr_un addr;
    socklen_t addrlen;
    bool failed;                /* a send failed: reported once */
};

/* Set n up from the value of $NOTIFY_SOCKET (NULL or "": notifications
 * are off and every send is a no-op). 0, or -EINVAL / -errno with err for
 * an address this protocol cannot use (n is then off). */
int notify_init(struct notify *n, const char *socket_env, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Whether a service manager is listening (notify_init found an address). */
bool notify_enabled(const struct notify *n);
/* Send one message (the lines in text, e.g. "READY=1\nSTATUS=serving").
 * 0, 1 when notifications are off, or -errno with err (only for the first
 * failure: later ones return the errno with err empty). Thread-safe: one
 * sendto per message. */
int notify_send(struct notify *n, const char *text, char *err, size_t errlen);
/* CLOCK_MONOTONIC in microseconds, as MONOTONIC_USEC= wants it. */
unsigned long long notify_monotonic_usec(void);
void notify_cleanup(struct notify *n);

#endif
