/* mountpoint.h - getting the mountpoint ready before mounting. */
#ifndef RS_MOUNTPOINT_H
#define RS_MOUNTPOINT_H

#include <stddef.h>

/* Create the directory (and parents) if missing; lazily unmount a stale FUSE
 * mount left by a killed broker (ENOTCONN); refuse a mountpoint a live
 * runsecrets is already serving. 0 or negative errno with err. */
int mountpoint_prepare(const char *path, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
