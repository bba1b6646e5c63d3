/* exec.h - `runsecrets exec`: the container entrypoint.
 *
 * Serve the secrets (a FUSE mount of our own, or files another broker
 * mounted: --mount-from), wait for the required ones, start the
 * application as PID 1's child with *_FILE variables pointing at them
 * (never a value), act on rotations (on_change), and exit with the
 * application's status. The command line is parsed in cli.c; PID 1's
 * duties are supervise.h's; docs/internals/exec.md says why each step is
 * where it is.
 */
#ifndef RS_EXEC_H
#define RS_EXEC_H

#include <stdbool.h>
#include <sys/resource.h>
#include <stddef.h>

struct broker;
struct config;
struct supervise_user;

struct exec_opts {
    const char *mount_from;              /* --mount-from DIR, or NULL: our own mount */
    long long wait_ms;                   /* --wait; 0: the configuration's exec.wait */
    const struct supervise_user *user;   /* --user; borrowed */
    bool signal_group;                   /* --signal-group */
    char *const *argv;                   /* CMD [ARGS...]; borrowed */
    int close_from;                      /* supervise_child.close_from */
    const struct rlimit *core_limit;     /* supervise_child.core_limit; borrowed */
};

/* What exec_fuse_missing finds absent. */
enum {
    EXEC_NO_DEVICE = 1u << 0,   /* /dev/fuse cannot be opened (or is not FUSE's device) */
    EXEC_NO_CAP = 1u << 1,      /* CAP_SYS_ADMIN is not in the effective set */
};
/* Which of the two a FUSE mount needs are missing (0: none). */
unsigned exec_fuse_missing(void);
/* The one line for people that says what is missing (missing != 0) and
 * the docker run, Compose and Kubernetes settings that add it, and points
 * at --mount-from. No trailing newline. */
void exec_fuse_message(unsigned missing, char *out, size_t cap);

/* The FUSE mode, on b opened and mounted with b->supervised set: start the
 * refresh threads and the FUSE loop, wait for the required secrets, start
 * and supervise the application, stop it on TERM/INT/QUIT, act on
 * rotations, then broker_stop. Returns the process exit code: the
 * application's status, or 1 when it could not be started. */
int exec_serve(struct broker *b, const struct exec_opts *o);

/* --mount-from: cfg (borrowed) says which files are required and which get
 * a variable; no backend, no mount. Returns the process exit code as
 * exec_serve does. */
int exec_from(const struct config *cfg, const struct exec_opts *o);

#endif
