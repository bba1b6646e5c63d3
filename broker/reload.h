/* reload.h - a new configuration, live (SIGHUP under `mount`, `runsecrets
 * reload`). Two halves with one owner each:
 *
 *   broker_reload  loads the configuration again, from the path and with
 *                  the flags broker_open used (fragments included), and
 *                  hands it to broker_apply. A configuration that does not
 *                  load never reaches broker_apply: nothing changes.
 *   broker_apply   puts a loaded configuration in place while the mount
 *                  keeps serving (broker/apply.c).
 *
 * Both run on the reload thread only (service.c), one at a time, never on
 * a FUSE thread and never in a signal handler.
 */
#ifndef RS_RELOAD_H
#define RS_RELOAD_H

#include <stddef.h>

struct broker;
struct config;

/* Load the configuration again and apply it. 0 when the new configuration
 * is served; else a negative errno and one line in err (the caller logs it
 * and writes the outcome): -EINVAL and the like for a configuration that
 * does not load (file:line:col: path: what), whatever broker_apply
 * returned otherwise. On any failure the running configuration stays. */
int broker_reload(struct broker *b, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Serve next instead of b->cfg, live, without unmounting: secrets added,
 * removed and changed; unchanged ones keep value, state, schedule and
 * inode; backends with the same settings keep their instance (tokens,
 * connections, leases). Takes next in every case: on success it is b->cfg,
 * on failure it is freed. 0, or a negative errno with one line in err and
 * nothing changed (the old configuration still served). After broker_open
 * (and broker_mount, for a mount); one at a time, on a thread that is
 * neither a FUSE thread nor a signal handler, and never while broker_stop
 * or broker_close runs. b->last_apply says what changed. */
int broker_apply(struct broker *b, struct config *next, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
