/* reload_debug.h - TEMPORARY: a FIFO that triggers broker_apply in tests
 * until the SIGHUP plumbing (hostsvc) is merged. */
#ifndef RS_RELOAD_DEBUG_H
#define RS_RELOAD_DEBUG_H

#include "broker/broker.h"

void reload_debug_start(struct broker *b, const char *config_path);

#endif
