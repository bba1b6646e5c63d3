/* service.h - `runsecrets mount` as a host service (docs/service.md):
 *
 *   - a pid file (pidfile.h), taken before the mount, removed at exit;
 *   - the service manager's notifications (lib/notify.h): READY=1 once the
 *     mount is up and every required secret has been served, RELOADING=1
 *     (with MONOTONIC_USEC=) and READY=1 around each reload once ready,
 *     STOPPING=1 when the stop begins, and a STATUS= line with each;
 *   - SIGHUP reloads (reload.h) on a thread of its own: SIGHUP is blocked
 *     in every thread from before the first one starts and read from a
 *     signalfd, so a reload never runs in a signal handler or on a FUSE
 *     thread. Reloads run one at a time; SIGHUPs that arrive during one
 *     are one more reload after it (the kernel keeps one pending SIGHUP).
 *
 * `exec` uses none of this: there PID 1 forwards HUP to the application.
 * Order: service_block_reload_signal (before any thread), broker_open,
 * service_open, broker_mount (calls service_arm), broker_run (calls
 * service_start; its broker_stop calls service_stopping), service_close,
 * broker_close.
 */
#ifndef RS_SERVICE_H
#define RS_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

struct broker;

struct service_opts {
    const char *pid_file;        /* NULL: none */
    const char *notify_socket;   /* $NOTIFY_SOCKET as found at start; NULL: none */
};

/* Block SIGHUP in the calling thread: the main thread, before any other
 * thread exists, so every thread inherits it. */
void service_block_reload_signal(void);

/* After broker_open: take the pid file, set up notifications, write the
 * first reload status (attempt 0). 0, or a negative errno with err (the
 * pid file: -EBUSY when another broker holds it). */
int service_open(struct broker *b, const struct service_opts *o, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The four below are the broker_ext slots service_open installs. */
/* broker_mount, once mounted: count the required secrets, say so in STATUS=. */
void service_arm(struct broker *b);
/* broker_run, once the refresh threads run: start the reload thread, and
 * send READY=1 if nothing is required. 0 or a negative errno (logged). */
int service_start(struct broker *b) __attribute__((warn_unused_result));
/* The scheduler's hooks (any fetch worker): secret idx may now be served. */
void service_event(struct broker *b, size_t idx);
/* broker_stop, first: STOPPING=1, then end the reload thread (waiting for
 * a reload in progress). */
void service_stopping(struct broker *b);
/* Release the pid file and what service_open set up; a no-op without it. */
void service_close(struct broker *b);

#endif
