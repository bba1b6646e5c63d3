/* mountpoint.h - getting the mountpoint ready before mounting. */
#ifndef RS_MOUNTPOINT_H
#define RS_MOUNTPOINT_H

#include <stdbool.h>
#include <stddef.h>

/* Lazily unmount a stale FUSE mount left by a killed broker (ENOTCONN;
 * *detached says so, for the caller to log: this logs nothing, so
 * mountns.c may run it in a child of a process with threads);
 * create the directory (and parents) if missing; resolve it (symlinks, ".",
 * "//", a trailing '/') into resolved (cap bytes, PATH_MAX is enough): the
 * path to mount on. Refuses, with -EBUSY, a directory that is or is inside a
 * live runsecrets mount, however it is spelt. -ENOTDIR when the path is not
 * a directory (a configuration error). 0 or negative errno with err. */
int mountpoint_prepare(const char *path, char *resolved, size_t cap, bool *detached, char *err,
                       size_t errlen) __attribute__((warn_unused_result));

/* The admin watchdog's question (broker/admin.h): does the FUSE loop
 * mounted at path still answer? Opens the directory (an OPENDIR request
 * only the loop can answer: unlike a stat, the kernel never answers it
 * from its cache) and checks it is a FUSE filesystem (not the directory
 * beneath, after someone unmounted it). Blocks as long as the loop does.
 * Logs nothing (mountns.c runs it in a child). 0 or negative errno with
 * err. */
int mountpoint_probe(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
