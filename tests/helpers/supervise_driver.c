/* supervise_driver.c - runs broker/supervise exactly as `runsecrets exec`
 * does, without FUSE or a config, for tests/integration/test_supervise.py:
 *
 *   supervise_driver [--user SPEC] [--grace MS] [--signal-group] [--leak-fd] -- CMD [ARGS...]
 *
 * Prints "status N" on stdout and exits N (the status exec would return);
 * exits 2 with the error on stderr when --user or the start fails.
 * --leak-fd opens /dev/zero without O_CLOEXEC after taking the fd floor, as a
 * careless library would: the child must not see it. */
#include "broker/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

extern char **environ;

static int usage(void)
{
    fprintf(stderr, "usage: supervise_driver [--user SPEC] [--grace MS] [--signal-group] "
                    "[--leak-fd] -- CMD [ARGS...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct supervise_user user = {0};
    struct supervise *s = NULL;
    const char *user_spec = NULL;
    long long grace = 10000;
    bool group = false, leak = false, dumpable = false;
    char err[512] = "";
    int i, rc, status = 2;

    /* First, as exec's main: what we hold now is the runtime's to pass on. */
    int floor_fd = supervise_fd_floor();
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (!strcmp(argv[i], "--user") && i + 1 < argc) {
            user_spec = argv[++i];
        } else if (!strcmp(argv[i], "--grace") && i + 1 < argc) {
            grace = strtoll(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--dumpable")) {
            /* Non-dumpable as hardening_init makes the broker; print
             * the flag once the child has started. */
            dumpable = true;
        } else if (!strcmp(argv[i], "--signal-group")) {
            group = true;
        } else if (!strcmp(argv[i], "--leak-fd")) {
            leak = true;
        } else {
            return usage();
        }
    }
    if (i >= argc)
        return usage();
    /* The broker ignores these; the child must not inherit that. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);
    if (leak && open("/dev/zero", O_RDONLY) < 0)
        perror("open /dev/zero");

    if ((rc = supervise_block_signals()) < 0) {
        fprintf(stderr, "block signals: %s\n", strerror(-rc));
        return 2;
    }
    if (user_spec && supervise_user_parse(user_spec, &user, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (supervise_new(&s, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    struct supervise_child c = {
        .argv = argv + i,
        .envp = environ,
        .user = &user,
        .signal_group = group,
        .close_from = floor_fd,
    };
    if (dumpable)
        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (supervise_start(s, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if (dumpable)
        fprintf(stderr, "dumpable %d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    for (;;) {
        enum supervise_event ev = supervise_wait(s, -1, &status);
        if (ev == SUPERVISE_EXITED)
            break;
        if (ev == SUPERVISE_STOP) {
            status = supervise_stop(s, grace);
            break;
        }
    }
    printf("status %d\n", status);
    fflush(stdout);
out:
    supervise_free(s);
    supervise_user_cleanup(&user);
    return status;
}
