/* fs.h - the read-only FUSE filesystem that serves the store. */
#ifndef RS_FS_H
#define RS_FS_H

#include <signal.h>
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
    /* The audit trail (policy/audit.h): every open's line. Required;
     * borrowed, and must outlive the fs. */
    struct policy_audit_log *audit;
};

/* Build the inode tree from st's secret names (st borrowed: it must outlive
 * the fs, or be replaced by a reload first) and mount at o->mountpoint
 * (which must be prepared). *out is new. 0 or negative errno with err. */
int fs_mount(struct store *st, struct secpool *pool, const struct fs_options *o,
             struct fs **out, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Serve requests until fs_exit: the loop's threads serve, the caller waits
 * for the stop and then ends them. 0 or negative errno. Process-wide: it
 * gives FS_WAKE_SIGNAL an empty action (no SA_RESTART), which nothing else
 * may change (broker/signals.c leaves it alone). */
int fs_run(struct fs *fs) __attribute__((warn_unused_result));
/* Ask fs_run to return. Async-signal-safe: it raises libfuse's exit flag
 * and writes an eventfd fs_run's caller waits on, so the stop signals'
 * handler calls it. */
void fs_exit(struct fs *fs);
/* Sent by fs_run's caller, at the stop, to each loop thread until it has
 * left: it interrupts the blocking read of /dev/fuse (docs/internals/fuse.md,
 * "The loop"). Realtime, after libc's own and broker/signals.h's
 * SIGNALS_WAKE. */
#define FS_WAKE_SIGNAL (SIGRTMIN + 1)
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
/* A reload (docs/internals/reload.md), from one thread, never two at once:
 * fs_prepare builds the tree of next (inode numbers of surviving names
 * kept) and grows the per-inode tables; failing, it changes nothing (err
 * says why: -EINVAL when names collide). fs_commit makes it current and
 * re-homes the parked requests; it cannot fail; call it while the
 * scheduler is paused, so no hook runs with an index of the other
 * generation. fs_finish (any time after, no lock held) tells the kernel
 * which names went and, for each secret i of next with inval[i] (NULL:
 * none), that its attributes changed; then waits until no request uses
 * the old generation and frees it, and r: the caller may then free the
 * old store. fs_abort frees a prepared, never committed r. */
struct fs_reload;
int fs_prepare(struct fs *fs, struct store *next, struct fs_reload **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void fs_commit(struct fs *fs, struct fs_reload *r);
void fs_finish(struct fs *fs, struct fs_reload *r, const bool *inval);
void fs_abort(struct fs_reload *r);
/* Unmount and free (parked requests get ENOENT). NULL is a no-op. */
void fs_free(struct fs *fs);

#endif
