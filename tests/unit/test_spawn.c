/* test_spawn.c - the process runner (lib/spawn.c): output captured into
 * secret memory, exit status, stderr captured or left alone, the deadline
 * (the child AND its grandchild killed: the process group), the cap on
 * output, a program that cannot start. Each test runs in its own process
 * (CK_FORK). */
#include "lib/spawn.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "broker/hardening.h"
#include "ck_main.h"

static void setup(void)
{
    char e[256];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
}

static int sh(const char *cmd, long long timeout_ms, size_t out_max, size_t err_max,
              struct spawn_result *r, char *err, size_t errlen)
{
    char shell[] = "/bin/sh", dash_c[] = "-c", *line = strdup(cmd);
    char *argv[] = {shell, dash_c, line, NULL};
    ck_assert_ptr_nonnull(line);
    struct spawn_opts o = {.path = "/bin/sh", .argv = argv, .timeout_ms = timeout_ms,
                           .out_max = out_max, .err_max = err_max};
    int rc = spawn_run(&o, r, err, errlen);
    free(line);
    return rc;
}

static double since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Whether pid is gone (a zombie counts as gone: it is not ours to reap). */
static int gone(pid_t pid)
{
    for (int i = 0; i < 250; i++) {   /* 5 s: a loaded machine */
        char st[128] = "", path[64];
        if (kill(pid, 0) != 0)
            return 1;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *p = fopen(path, "r");
        int zombie = p && fgets(st, sizeof(st), p) && strstr(st, ") Z");
        if (p)
            fclose(p);
        if (zombie)
            return 1;
        usleep(20000);
    }
    return 0;
}

START_TEST(output_and_status)
{
    struct spawn_result r;
    char err[256] = "";
    /* argv as given, no shell in between */
    char echo[] = "/bin/echo", ab[] = "a b", home[] = "$HOME";
    char *argv[] = {echo, ab, home, NULL};
    struct spawn_opts o = {.path = "/bin/echo", .argv = argv, .timeout_ms = 5000,
                           .out_max = 1024};
    ck_assert_msg(spawn_run(&o, &r, err, sizeof(err)) == 0, "%s", err);
    ck_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    ck_assert_uint_eq(r.out.len, 10);
    ck_assert_int_eq(memcmp(r.out.data, "a b $HOME\n", 10), 0);
    ck_assert_ptr_null(r.err);
    spawn_result_cleanup(&r);

    ck_assert_int_eq(sh("printf out; echo oops >&2; exit 3", 5000, 1024, 64, &r, err,
                        sizeof(err)), 0);
    ck_assert(WIFEXITED(r.status));
    ck_assert_int_eq(WEXITSTATUS(r.status), 3);
    ck_assert_uint_eq(r.out.len, 3);
    ck_assert_int_eq(memcmp(r.out.data, "out", 3), 0);
    ck_assert_str_eq(r.err, "oops\n");
    spawn_result_cleanup(&r);

    ck_assert_int_eq(sh("kill -TERM $$", 5000, 1024, 0, &r, err, sizeof(err)), 0);
    ck_assert(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGTERM);
    spawn_result_cleanup(&r);
}
END_TEST

/* stdin is /dev/null (a helper that reads it sees end of file at once),
 * and no descriptor of ours leaks into the child. */
START_TEST(stdin_and_descriptors)
{
    struct spawn_result r;
    char err[256] = "";
    ck_assert_int_eq(sh("cat; ls /proc/self/fd | wc -l", 5000, 1024, 0, &r, err, sizeof(err)),
                     0);
    ck_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    /* 0, 1, 2 and the directory ls reads */
    ck_assert_msg(r.out.len >= 2 && r.out.data[0] == '4', "%.*s", (int)r.out.len, r.out.data);
    spawn_result_cleanup(&r);
}
END_TEST

START_TEST(stderr_capture_is_capped)
{
    struct spawn_result r;
    char err[256] = "";
    ck_assert_int_eq(sh("head -c 10000 /dev/zero | tr '\\0' x >&2; echo done", 5000, 1024, 16,
                        &r, err, sizeof(err)), 0);
    ck_assert_uint_eq(r.err_len, 16);
    ck_assert_str_eq(r.err, "xxxxxxxxxxxxxxxx");
    ck_assert_uint_eq(r.out.len, 5);   /* the rest was drained: the child was not blocked */
    spawn_result_cleanup(&r);
}
END_TEST

/* The grandchild whose pid the shell wrote to pidfile is gone (and the
 * file is removed). */
static void assert_grandchild_gone(const char *pidfile)
{
    FILE *f = fopen(pidfile, "r");
    ck_assert_ptr_nonnull(f);
    int gpid = 0;
    ck_assert_int_eq(fscanf(f, "%d", &gpid), 1);
    fclose(f);
    unlink(pidfile);
    ck_assert_msg(gone(gpid), "the grandchild %d survived", gpid);
}

START_TEST(deadline_kills_the_group)
{
    struct spawn_result r;
    char err[256] = "", cmd[256], pidfile[] = "/tmp/rs-test-spawn-XXXXXX";
    int fd = mkstemp(pidfile);
    ck_assert_int_ge(fd, 0);
    close(fd);
    /* a grandchild holding stdout open, the child asleep */
    snprintf(cmd, sizeof(cmd), "sleep 30 & echo $! > %s; sleep 30", pidfile);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(sh(cmd, 500, 1024, 0, &r, err, sizeof(err)), -ETIMEDOUT);
    ck_assert_msg(since(&t0) < 10.0, "took %.1f s", since(&t0));
    ck_assert_str_eq(err, "no answer within 1 s");
    ck_assert(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL);
    spawn_result_cleanup(&r);
    assert_grandchild_gone(pidfile);
}
END_TEST

/* The program exited, its child still holds the pipe: the deadline ends
 * that too. */
START_TEST(deadline_after_exit_kills_the_grandchild)
{
    struct spawn_result r;
    char err[256] = "", cmd[256], pidfile[] = "/tmp/rs-test-spawn-XXXXXX";
    int fd = mkstemp(pidfile);
    ck_assert_int_ge(fd, 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "sleep 30 & echo $! > %s; exit 0", pidfile);
    ck_assert_int_eq(sh(cmd, 500, 1024, 0, &r, err, sizeof(err)), -ETIMEDOUT);
    spawn_result_cleanup(&r);
    assert_grandchild_gone(pidfile);
}
END_TEST

/* The child's stdout and stderr block like any pipe: O_NONBLOCK is a
 * property of the open pipe, and a child handed a non-blocking stdout
 * fails with EAGAIN whenever the pipe is full. */
START_TEST(child_pipes_block)
{
    struct spawn_result r;
    char err[256] = "";
    ck_assert_int_eq(sh("grep ^flags /proc/self/fdinfo/1; grep ^flags /proc/self/fdinfo/2 >&1",
                        5000, 4096, 256, &r, err, sizeof(err)), 0);
    ck_assert_int_eq(r.status, 0);
    char text[128];
    ck_assert_uint_lt(r.out.len, sizeof(text));
    memcpy(text, r.out.data, r.out.len);
    text[r.out.len] = '\0';
    unsigned long f1, f2;
    ck_assert_int_eq(sscanf(text, "flags: %lo flags: %lo", &f1, &f2), 2);
    ck_assert_msg(!(f1 & O_NONBLOCK) && !(f2 & O_NONBLOCK), "child pipes non-blocking: %s", text);
    spawn_result_cleanup(&r);
}
END_TEST

/* runsecrets exec is PID 1 and reaps every zombie with waitpid(-1): a
 * program spawn runs (a credential_process) may be reaped there, and
 * spawn_claim_status hands its status back, so the run still sees it. */
static atomic_bool reaper_stop;
static atomic_int handed_over;

static void *reaper(void *arg)
{
    (void)arg;
    while (!atomic_load(&reaper_stop)) {
        int st;
        pid_t pid;
        while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
            if (spawn_claim_status(pid, st))   /* what broker/supervise.c does */
                atomic_fetch_add(&handed_over, 1);
        struct timespec ts = {0, 100 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

START_TEST(not_reaped_by_a_pid1_loop)
{
    pthread_t t;
    atomic_store(&reaper_stop, false);
    ck_assert_int_eq(pthread_create(&t, NULL, reaper, NULL), 0);
    for (int i = 0; i < 40; i++) {
        struct spawn_result r;
        char err[256] = "";
        int rc = sh("sleep 0.01; exit 3", 5000, 64, 0, &r, err, sizeof(err));
        ck_assert_msg(rc == 0, "run %d: %d %s", i, rc, err);
        ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 3, "run %d: status %#x",
                      i, (unsigned)r.status);
        spawn_result_cleanup(&r);
    }
    atomic_store(&reaper_stop, true);
    pthread_join(t, NULL);
    /* The reaper won some of the races, so the hand-over was exercised. */
    ck_assert_int_gt(atomic_load(&handed_over), 0);
}
END_TEST

START_TEST(output_cap)
{
    struct spawn_result r;
    char err[256] = "";
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* endless output: stopped at the cap, not at the deadline */
    ck_assert_int_eq(sh("yes", 10000, 4096, 0, &r, err, sizeof(err)), -E2BIG);
    ck_assert_str_eq(err, "output larger than 4096 bytes");
    ck_assert_msg(since(&t0) < 10.0, "took %.1f s", since(&t0));
    ck_assert(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL);
    spawn_result_cleanup(&r);
    /* exactly at the cap is fine */
    ck_assert_int_eq(sh("head -c 4096 /dev/zero", 5000, 4096, 0, &r, err, sizeof(err)), 0);
    ck_assert_uint_eq(r.out.len, 4096);
    spawn_result_cleanup(&r);
}
END_TEST

START_TEST(missing_executable)
{
    struct spawn_result r;
    char err[256] = "";
    char nope[] = "nope";
    char *argv[] = {nope, NULL};
    struct spawn_opts o = {.path = "/nonexistent/rs-nope", .argv = argv, .timeout_ms = 5000,
                           .out_max = 1024, .err_max = 64};
    ck_assert_int_eq(spawn_run(&o, &r, err, sizeof(err)), -ENOENT);
    ck_assert_str_eq(err, "cannot start /nonexistent/rs-nope: No such file or directory");
    spawn_result_cleanup(&r);
    /* not searched in PATH */
    o.path = "sh";
    ck_assert_int_eq(spawn_run(&o, &r, err, sizeof(err)), -ENOENT);
    spawn_result_cleanup(&r);
    o.path = "/tmp";   /* not a program */
    ck_assert_int_eq(spawn_run(&o, &r, err, sizeof(err)), -EACCES);
    spawn_result_cleanup(&r);
}
END_TEST

/* Ignored and blocked signals of ours do not reach the child. */
START_TEST(default_signals)
{
    struct spawn_result r;
    char err[256] = "";
    sigset_t all, old;
    signal(SIGUSR1, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = sh("ign=$(awk '/^SigIgn/ {print $2}' /proc/self/status); "
                "blk=$(awk '/^SigBlk/ {print $2}' /proc/self/status); "
                "[ $((0x$ign & 0x1200)) -eq 0 ] || exit 4; [ $((0x$blk)) -eq 0 ] || exit 5",
                5000, 1024, 0, &r, err, sizeof(err));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %d", r.status);
    spawn_result_cleanup(&r);
}
END_TEST

static Suite *spawn_suite(void)
{
    Suite *s = suite_create("spawn");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, output_and_status);
    tcase_add_test(tc, stdin_and_descriptors);
    tcase_add_test(tc, stderr_capture_is_capped);
    tcase_add_test(tc, deadline_kills_the_group);
    tcase_add_test(tc, deadline_after_exit_kills_the_grandchild);
    tcase_add_test(tc, child_pipes_block);
    tcase_add_test(tc, not_reaped_by_a_pid1_loop);
    tcase_add_test(tc, output_cap);
    tcase_add_test(tc, missing_executable);
    tcase_add_test(tc, default_signals);
    suite_add_tcase(s, tc);
    return s;
}

CK_MAIN(spawn_suite)
