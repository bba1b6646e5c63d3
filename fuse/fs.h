/* fs.h - the read-only FUSE filesystem that serves the store. */
#ifndef RS_FS_H
#define RS_FS_H

#include <stdbool.h>
#include <stddef.h>

struct store;
struct secpool;
struct fs;
struct mountns;

struct fs_options {
    const char *mountpoint;
    bool allow_other;     /* let other users in (root only) */
    bool debug;           /* libfuse request tracing */
    unsigned max_threads; /* worker threads; 0 = default */
    double attr_timeout;  /* seconds the kernel caches names and attributes */
    /* NULL, or mount (and unmount) in that namespace rather than ours
     * (mountns.h); borrowed, and must outlive the fs. */
    const struct mountns *mount_ns;
};

/* Build the inode tree from st's secret names and mount at o->mountpoint
 * (which must be prepared). *out is new. 0 or negative errno with err. */
int fs_mount(struct store *st, struct secpool *pool, const struct fs_options *o,
             struct fs **out, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Serve requests until fs_exit. 0 or negative errno. */
int fs_run(struct fs *fs) __attribute__((warn_unused_result));
/* Ask fs_run to return. Async-signal-safe: it only raises libfuse's exit
 * flag (what libfuse's own signal handler does), so the stop signals'
 * handler calls it; the signal's interruption wakes the loop. */
void fs_exit(struct fs *fs);
/* Tell the kernel a secret's value changed or disappeared. Thread-safe; call
 * with no store lock held. */
void fs_notify(struct fs *fs, size_t idx, bool removed);
/* A secret's first fetch has finished: answer the getattr and open
 * requests parked for it. Thread-safe. */
void fs_settled(struct fs *fs, size_t idx);
/* Route libfuse's own messages through lib/log (log_at, func "libfuse").
 * Process-wide: call once, before any thread starts. (Its name is from
 * lib/log.c, where it lived until lib stopped knowing FUSE.) */
void log_hook_fuse(void);
/* Unmount and free (parked requests get ENOENT). NULL is a no-op. */
void fs_free(struct fs *fs);

#endif
