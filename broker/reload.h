/* reload.h - change a running broker's configuration (SIGHUP).
 *
 * broker_reload (hostsvc: load, the plumbing that calls it) loads the
 * configuration again and, only when it loads, calls broker_apply, which
 * changes what is served live: docs/internals/reload.md.
 */
#ifndef RS_RELOAD_H
#define RS_RELOAD_H

#include <stddef.h>
#include "broker/broker.h"

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
