/* stats.h - the admin endpoint's pages (broker/admin.h) for one broker:
 * /health, /metrics (Prometheus text format 0.0.4) and /status, built from
 * what lib/metrics.h publishes, so a page never takes a lock a FUSE reader
 * or a fetch holds; and the watchdog's probe of the mount. */
#ifndef RS_STATS_H
#define RS_STATS_H

#include <stdbool.h>
#include "broker/admin.h"

/* admin_handlers.page; arg is the struct broker. */
int stats_page(void *arg, enum admin_page page, struct admin_reply *out);
/* admin_handlers.probe; arg is the struct broker. */
bool stats_probe(void *arg);

#endif
