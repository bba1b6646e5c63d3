/* signals.h - what each signal does to a mounted broker.
 *
 * Every catchable signal either has a meaning or is ignored, and none may
 * leave the mount behind (the table is in signals.c and docs/internals/fuse.md):
 *   stop cleanly (broker_stop: unmount, exit 0): TERM, INT, QUIT, XCPU,
 *     XFSZ;
 *   reload the configuration: HUP, blocked in every thread and read by the
 *     reload thread from a signalfd (service.h), so it gets no action here;
 *   ignored: PIPE, USR1, USR2, ALRM, VTALRM, PROF, POLL, PWR, STKFLT, TSTP,
 *     TTIN, TTOU and SIGRTMIN..SIGRTMAX (WINCH, URG, CONT keep their
 *     harmless defaults; CHLD stays SIG_DFL: credential_process waits for
 *     its child);
 *   crashes (SEGV, BUS, ILL, FPE, ABRT, SYS, TRAP): detach the mount, then
 *     die of the same signal.
 * libfuse's own handlers (fuse_set_signal_handlers) are never installed:
 * this table is the only one.
 *
 * Under `runsecrets exec` (SIGNALS_EXEC) the process is PID 1 and the
 * supervisor (supervise.h) reads TERM, INT, QUIT, HUP, USR1, USR2, WINCH and
 * CHLD from a signalfd, blocked in every thread since before the first
 * started: those get no action here (an ignored one would be lost to the
 * child). XCPU and XFSZ are ignored (only the supervisor ends the process);
 * the crash signals still detach the mount; SIGNALS_WAKE gets an empty
 * handler so another thread can interrupt the main thread's wait for the
 * required secrets (exec.c). Handlers (sigaction), not a signal thread,
 * because under `mount` the stop must interrupt the main thread's wait in
 * the FUSE loop (docs/internals/fuse.md, "Signals", says why).
 */
#ifndef RS_SIGNALS_H
#define RS_SIGNALS_H

#include <signal.h>
#include <stddef.h>

struct fs;

enum signals_mode {
    SIGNALS_MOUNT,   /* `mount`: stop signals end the FUSE loop */
    SIGNALS_EXEC,    /* `exec`: the supervisor reads them (see above) */
};

/* Exec mode: interrupts the main thread's sigtimedwait for the required
 * secrets (a value arrived, the loop ended): a realtime signal nobody else
 * sends, blocked in every thread. */
#define SIGNALS_WAKE SIGRTMIN

/* Block every signal that arrives asynchronously (not the crash signals a
 * fault raises) in the calling thread; the old mask goes to *old when not
 * NULL. Around the mount, so a TERM cannot land between mounting and
 * signals_install; after the loop, so a second stop changes nothing. */
void signals_block_async(sigset_t *old);

/* Install the table for a broker serving fs (borrowed; must outlive
 * signals_restore) at mountpoint (copied), mounted in the mount namespace
 * of mount_ns_fd (borrowed; -1: ours, where a crash then detaches it), before the FUSE loop starts its
 * threads. Gives the calling (main) thread an alternate signal stack for the
 * crash handler. 0 or negative errno with err. */
int signals_install(struct fs *fs, const char *mountpoint, int mount_ns_fd, enum signals_mode mode,
                    char *err, size_t errlen) __attribute__((warn_unused_result));

/* Exec mode: block SIGNALS_WAKE in the calling thread (before any thread
 * starts, so every thread inherits it and only sigtimedwait takes it). */
void signals_block_wake(void);

/* The stop signal that ended the loop, abbreviated ("TERM"...), or NULL. Static. */
const char *signals_stopped_by(void);

/* After unmounting: stop and crash signals back to their defaults (a crash
 * from now on must not detach a mount that is no longer ours), alternate
 * stack freed. Ignored signals stay ignored until exit. */
void signals_restore(void);

#endif
