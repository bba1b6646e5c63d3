/* mountns.h - mount and unmount in another mount namespace.
 *
 * A service sandboxed by systemd (ProtectSystem=, PrivateTmp=...) runs in a
 * mount namespace of its own, a slave of the host's: a mount made there
 * never reaches the host (docs/internals/service.md). With
 * `mount --mount-namespace PATH` the broker keeps running in its sandbox
 * but makes, checks and removes its FUSE mount in the namespace PATH names
 * (/proc/1/ns/mnt: the host's), where its readers are.
 *
 * setns(CLONE_NEWNS) is refused to a process whose threads share its
 * filesystem context (every multithreaded one), so each step runs in a
 * short-lived child forked for it: the child joins the namespace, does
 * that one step, writes its outcome to a pipe and exits; the broker never
 * leaves its own namespace. The broker's /dev/fuse descriptor crosses into
 * the child by fork, so what the child mounts is served by the broker.
 */
#ifndef RS_MOUNTNS_H
#define RS_MOUNTNS_H

#include <stdbool.h>
#include <stddef.h>

struct mountns;

/* Open path and check that it is a mount namespace (nsfs, NS_GET_NSTYPE):
 * the only way the broker reaches that namespace for its life. Then drops
 * CAP_SYS_PTRACE (which opening another process's namespace file may need,
 * and nothing else does) from the calling thread: call it before any
 * thread starts. *out is new.
 * 0; -ENOENT and the like (open's), or -EINVAL for another kind of file or
 * namespace, with one line in err. */
int mountns_open(const char *path, struct mountns **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void mountns_free(struct mountns *ns);
/* The path given (borrowed), for messages. */
const char *mountns_path(const struct mountns *ns);
/* The namespace's descriptor (borrowed; close-on-exec), for the crash
 * handler's mountns_detach_async. */
int mountns_fd(const struct mountns *ns);

/* mountpoint_prepare (mountpoint.h) run inside ns: the stale-mount check,
 * the mkdir, the resolution and the check for a live broker all see that
 * namespace's tree and mount table. *detached: a stale mount was detached
 * there. Same results as mountpoint_prepare; -EPERM (with err naming the
 * capabilities) when the namespace cannot be entered. */
int mountns_prepare(const struct mountns *ns, const char *path, char *resolved, size_t cap,
                    bool *detached, char *err, size_t errlen) __attribute__((warn_unused_result));

/* mount(2) of a FUSE filesystem inside ns: source, "fuse.<subtype>",
 * flags and data as given (data holds fd=N of a /dev/fuse descriptor open
 * in this process, which the child inherits). 0 or negative errno with err. */
int mountns_mount(const struct mountns *ns, const char *source, const char *mountpoint,
                  const char *fstype, unsigned long flags, const char *data, char *err,
                  size_t errlen) __attribute__((warn_unused_result));

/* umount2 of mountpoint inside ns; when it is busy (a reader holds a file
 * open), MNT_DETACH, as libfuse does for root. *lazy: it was detached.
 * 0 or negative errno with err. */
int mountns_unmount(const struct mountns *ns, const char *mountpoint, bool *lazy, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

/* Async-signal-safe (the crash handler): fork a child that joins the
 * namespace of ns_fd and detaches mountpoint, and wait for it. Best effort:
 * a failure is ignored (the next broker detaches the stale mount). */
void mountns_detach_async(int ns_fd, const char *mountpoint);
/* mountpoint_probe (mountpoint.h) in ns, from a short-lived child. 0 or
 * negative errno with err. */
int mountns_probe(const struct mountns *ns, const char *mountpoint, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
