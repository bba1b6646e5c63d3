/* spawn.h - run a program with a deadline and take its output.
 *
 * For helpers whose output is secret (AWS credential_process) and, later,
 * `runsecrets exec`. No shell: argv goes to the program as it is; a caller
 * that wants one runs {"/bin/sh", "-c", cmd}. The child gets its own
 * process group, stdin /dev/null, no descriptor of ours but stdout and
 * stderr, default signal actions and an empty signal mask (the broker
 * ignores PIPE, USR1... and its threads block every signal; neither may
 * leak into the helper). Past the deadline, or once stdout passes its cap,
 * the whole group (grandchildren too) is killed with SIGKILL and reaped.
 */
#ifndef RS_SPAWN_H
#define RS_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include "lib/secmem.h"

struct spawn_opts {
    const char *path;          /* the program: a path, never searched in PATH */
    char *const *argv;         /* NULL-terminated, argv[0] included */
    char *const *envp;         /* NULL: ours (environ) */
    long long timeout_ms;      /* everything, exit included, within this; > 0 */
    size_t out_max;            /* stdout kept in secret memory up to this; more is -E2BIG */
    size_t err_max;            /* 0: stderr is ours (inherited); > 0: captured into
                                  err (normal memory), the first err_max bytes kept */
};

struct spawn_result {
    struct secbuf out;         /* stdout; secret memory, owned */
    char *err;                 /* captured stderr, NUL-terminated; NULL when not
                                  captured. Normal memory: a caller whose helper
                                  may print secrets there must not show it */
    size_t err_len;
    int status;                /* wait status of the program (WIFEXITED...) */
};

/* Run o->path and wait for it. 0 when it ran and exited within the
 * deadline (whatever its status: see r->status); -ETIMEDOUT past the
 * deadline; -E2BIG when stdout passed out_max; the errno of a program that
 * cannot be started (-ENOENT, -EACCES...); -ENOMEM. A one-line reason in
 * err (never any of the output). r is initialised here; release it with
 * spawn_result_cleanup whatever the return. */
int spawn_run(const struct spawn_opts *o, struct spawn_result *r, char *err, size_t errlen)
    __attribute__((warn_unused_result, nonnull(1, 2)));
/* Wipe and free r's buffers. */
void spawn_result_cleanup(struct spawn_result *r);

/* For a process that reaps every child with waitpid(-1) (PID 1: runsecrets
 * exec): hand the exit status of pid over when it is a program spawn_run is
 * running (true), so that run still learns how it ended. Thread-safe. */
bool spawn_claim_status(pid_t pid, int status);

#endif
