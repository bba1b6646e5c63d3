/* pidfile.h - one broker per pid file, and the outcome of its reloads.
 *
 * The pid file is how `runsecrets reload` (and Compose's `down`) find a
 * broker: "<pid>\n", created with O_EXCL, held with flock(LOCK_EX) for the
 * broker's life and removed at exit. A pid file nobody holds is stale (its
 * broker was killed): the next broker takes it over. The lock, not the
 * pid written in it, says whether a broker is alive: a pid can be reused,
 * a lock dies with its process.
 *
 * Beside it, "<pid file>.reload" holds the outcome of the broker's latest
 * reload as one JSON object, replaced atomically (rename) after each one:
 *   {"pid":P,"attempt":N,"generation":G,"ok":true|false,"error":"..."|null,
 *    "started_usec":T0,"finished_usec":T1}
 * attempt counts reloads (0: none yet, written at start), generation the
 * successful ones; *_usec are CLOCK_MONOTONIC microseconds, so a client
 * that noted the clock before sending SIGHUP knows which outcome is its
 * own (started_usec >= its note).
 */
#ifndef RS_PIDFILE_H
#define RS_PIDFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PIDFILE_DEFAULT "/run/runsecrets/runsecrets.pid"
#define PIDFILE_STATUS_SUFFIX ".reload"

struct pidfile {
    int fd;                              /* -1: none held */
    char path[PATH_MAX];
    char status_path[PATH_MAX];
};

/* Create (or take over a stale) pid file at path and hold it; its folder
 * is created (0755) when only the last level is missing. 0; -EBUSY when a
 * live broker holds it (err names its pid); another -errno with err. */
int pidfile_take(struct pidfile *p, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Replace the status file with json (one object, borrowed). 0 or -errno. */
int pidfile_write_status(const struct pidfile *p, const char *json)
    __attribute__((warn_unused_result));
/* Remove the pid file (if it is still ours) and the status file, drop the
 * lock. No-op when none is held. */
void pidfile_release(struct pidfile *p);

/* For clients: the pid of the live broker holding the pid file at path.
 * 0; -ENOENT (no such file), -ESRCH (stale: nobody holds it), -EINVAL
 * (not a pid file) or another -errno, each with err. */
int pidfile_read_live(const char *path, pid_t *pid, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
