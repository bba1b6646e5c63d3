/* test_policy_proc.c - the facts about a caller (policy/proc.c) read from
 * real processes: the executable by inode (a copy is another file, a hard
 * link the same, a deleted or other-namespace file still known), groups
 * set before exec, a cgroup v2 folder the test makes, a thread's own
 * facts, a process gone (before, and between the reads and the pidfd's
 * check), pid 0, the pid namespace; and the container a cgroup path
 * names, over real-world paths. Needs root. Each test runs in its own
 * process (CK_FORK) and kills, reaps and removes what it made. */
#include "policy/proc.h"
#include "policy/proc_i.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ck_main.h"

#define ID64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ID64B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

/* ---- children ---- */

struct creds {
    bool set;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t ngroups;
};

/* Fork a child that dies with us, takes creds if given, and execs path
 * with "30" (sleep's argument). Returns once the exec happened (the
 * close-on-exec pipe closes) so /proc/PID/exe is the new program. */
static pid_t spawn_sleep(const char *path, const struct creds *c)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (c && c->set &&
            (setgroups(c->ngroups, c->groups) != 0 || setgid(c->gid) != 0 || setuid(c->uid) != 0))
            _exit(126);
        execl(path, path, "30", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char b;
    ck_assert_int_eq(read(p[0], &b, 1), 0);   /* EOF: exec'd (or failed: checked below) */
    close(p[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, WNOHANG), 0);   /* still running */
    return pid;
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(in, 0);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
    ck_assert_int_ge(out, 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    ck_assert_int_eq(n, 0);
    close(in);
    ck_assert_int_eq(close(out), 0);
}

static char tmp[64];

static void tmp_setup(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/rs-proc-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static void tmp_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    ck_assert_int_eq(system(cmd), 0);
}

static int load(pid_t pid, struct policy_proc *p)
{
    char err[256] = "";
    int rc = policy_proc_load(pid, 4242, 4343, POLICY_FACTS_ALL, p, err, sizeof(err));
    if (rc != 0 && (rc != -ESRCH || getenv("RS_TEST_VERBOSE")))
        fprintf(stderr, "policy_proc_load(%d): %s\n", (int)pid, err);
    if (rc != 0)
        ck_assert_str_ne(err, "");   /* every failure says why */
    return rc;
}

/* ---- the executable ---- */

START_TEST(exe_by_inode)
{
    struct stat sleep_st, copy_st;
    char copy[128], link_path[128];
    ck_assert_int_eq(stat("/bin/sleep", &sleep_st), 0);   /* the target of any symlink */
    snprintf(copy, sizeof(copy), "%s/sleep-copy", tmp);
    snprintf(link_path, sizeof(link_path), "%s/sleep-link", tmp);
    copy_file("/bin/sleep", copy);
    ck_assert_int_eq(link(copy, link_path), 0);
    ck_assert_int_eq(stat(copy, &copy_st), 0);

    struct policy_proc p;
    pid_t a = spawn_sleep("/bin/sleep", NULL);
    ck_assert_int_eq(load(a, &p), 0);
    ck_assert(p.has_pid && p.has_exe);
    ck_assert_int_eq(p.pid, a);
    ck_assert_int_eq(p.uid, 4242);   /* the request's, not the process's */
    ck_assert_int_eq(p.gid, 4343);
    ck_assert(p.exe_dev == sleep_st.st_dev && p.exe_ino == sleep_st.st_ino);
    reap(a);

    /* A byte-identical copy is another file. */
    pid_t b = spawn_sleep(copy, NULL);
    ck_assert_int_eq(load(b, &p), 0);
    ck_assert(p.exe_dev == copy_st.st_dev && p.exe_ino == copy_st.st_ino);
    ck_assert(p.exe_ino != sleep_st.st_ino);
    reap(b);

    /* A hard link is the same file. */
    pid_t c = spawn_sleep(link_path, NULL);
    ck_assert_int_eq(load(c, &p), 0);
    ck_assert(p.exe_dev == copy_st.st_dev && p.exe_ino == copy_st.st_ino);

    /* Deleted while running: still the same (dev, ino) through the link. */
    ck_assert_int_eq(unlink(link_path), 0);
    ck_assert_int_eq(unlink(copy), 0);
    ck_assert_int_eq(load(c, &p), 0);
    ck_assert(p.has_exe && p.exe_dev == copy_st.st_dev && p.exe_ino == copy_st.st_ino);
    reap(c);
}
END_TEST

/* The executable lives on a tmpfs mounted in the child's own mount
 * namespace: the broker's namespace has no such file at that path, yet
 * /proc/PID/exe stats to it. */
START_TEST(exe_in_other_mount_ns)
{
    char mnt[128], path[160];
    snprintf(mnt, sizeof(mnt), "%s/mnt", tmp);
    snprintf(path, sizeof(path), "%s/sleep", mnt);
    ck_assert_int_eq(mkdir(mnt, 0755), 0);
    int rep[2], go[2];
    ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct stat st;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
            mount("tmpfs", mnt, "tmpfs", 0, "size=8m") != 0)
            _exit(125);
        int in = open("/bin/sleep", O_RDONLY), out = open(path, O_WRONLY | O_CREAT, 0755);
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) > 0)
            if (write(out, buf, (size_t)n) != n)
                _exit(124);
        close(in);
        close(out);
        if (stat(path, &st) != 0 || write(rep[1], &st, sizeof(st)) != (ssize_t)sizeof(st))
            _exit(123);
        execl(path, path, "30", (char *)NULL);
        _exit(127);
    }
    close(rep[1]);
    close(go[1]);
    close(go[0]);
    struct stat child_st, here;
    ck_assert_int_eq(read(rep[0], &child_st, sizeof(child_st)), (ssize_t)sizeof(child_st));
    char b;
    ck_assert_int_eq(read(rep[0], &b, 1), 0);   /* exec'd */
    close(rep[0]);
    ck_assert_int_ne(stat(path, &here), 0);   /* not in our namespace */

    struct policy_proc p;
    ck_assert_int_eq(load(pid, &p), 0);
    ck_assert(p.has_exe);
    ck_assert(p.exe_dev == child_st.st_dev && p.exe_ino == child_st.st_ino);
    reap(pid);
}
END_TEST

/* ---- groups ---- */

static bool has_group(const struct policy_proc *p, gid_t g)
{
    for (size_t i = 0; i < p->n_groups; i++)
        if (p->groups[i] == g)
            return true;
    return false;
}

START_TEST(groups_read_back)
{
    gid_t gs[] = {5678, 1234, 42};
    struct creds c = {.set = true, .uid = 4321, .gid = 4321, .groups = gs, .ngroups = 3};
    struct policy_proc p;
    pid_t pid = spawn_sleep("/bin/sleep", &c);
    ck_assert_int_eq(load(pid, &p), 0);
    ck_assert_uint_eq(p.n_groups, 3);   /* the kernel sorts them: compare as a set */
    ck_assert(has_group(&p, 5678) && has_group(&p, 1234) && has_group(&p, 42));
    ck_assert(!p.groups_truncated);
    reap(pid);

    c.ngroups = 0;
    pid = spawn_sleep("/bin/sleep", &c);
    ck_assert_int_eq(load(pid, &p), 0);
    ck_assert_uint_eq(p.n_groups, 0);
    ck_assert(!p.groups_truncated);
    reap(pid);

    /* Exactly the cap: all kept, nothing unknown. */
    gid_t many[POLICY_PROC_MAX_GROUPS + 6];
    for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++)
        many[i] = (gid_t)(10000 + i);
    c.groups = many;
    c.ngroups = POLICY_PROC_MAX_GROUPS;
    pid = spawn_sleep("/bin/sleep", &c);
    ck_assert_int_eq(load(pid, &p), 0);
    ck_assert_uint_eq(p.n_groups, POLICY_PROC_MAX_GROUPS);
    ck_assert(!p.groups_truncated);
    reap(pid);

    /* More than the cap: the first kept, the truncation said. */
    c.ngroups = sizeof(many) / sizeof(many[0]);
    pid = spawn_sleep("/bin/sleep", &c);
    ck_assert_int_eq(load(pid, &p), 0);
    ck_assert_uint_eq(p.n_groups, POLICY_PROC_MAX_GROUPS);
    ck_assert(p.groups_truncated);
    ck_assert(has_group(&p, 10000));
    reap(pid);
}
END_TEST

/* ---- cgroups ---- */

/* Where cgroup2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on
 * a hybrid host), from mountinfo. */
static bool cgroup2_mount(char *dir, size_t n)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[1024];
    bool found = false;
    ck_assert_ptr_nonnull(f);
    while (!found && fgets(line, sizeof(line), f)) {
        char *sep = strstr(line, " - cgroup2 ");
        if (!sep)
            continue;
        /* id parent major:minor root mountpoint ... */
        char root[256], mp[256];
        if (sscanf(line, "%*s %*s %*s %255s %255s", root, mp) == 2 && strcmp(root, "/") == 0) {
            snprintf(dir, n, "%s", mp);
            found = true;
        }
    }
    fclose(f);
    return found;
}

static void write_pid(const char *dir, pid_t pid)
{
    char path[512], num[32];
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    int n = snprintf(num, sizeof(num), "%d", (int)pid);
    ck_assert_int_eq(write(fd, num, (size_t)n), n);
    close(fd);
}

/* Our own v2 path ("0::/..."), which the folders below are relative to. */
static void own_v2_path(char *out, size_t n)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    char line[1024];
    out[0] = '\0';
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, n, "%.*s", (int)(n - 1), line + 3);
        }
    fclose(f);
}

START_TEST(cgroup_v2_folder)
{
    char mnt[256], own[512], dir[512], scope[700], want[1024];
    if (!cgroup2_mount(mnt, sizeof(mnt))) {
        fprintf(stderr, "cgroup_v2_folder: no cgroup2 mount, nothing to test\n");
        return;
    }
    own_v2_path(own, sizeof(own));
    ck_assert_str_ne(own, "");
    /* A folder beside the test's own cgroup's root: the mount's root. Only
     * the child is moved, never the test (or anything that ran it). */
    snprintf(dir, sizeof(dir), "%s/rs-test-proc-%d", mnt, (int)getpid());
    snprintf(scope, sizeof(scope), "%s/docker-" ID64 ".scope", dir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(mkdir(scope, 0755), 0);

    struct policy_proc p;
    pid_t pid = spawn_sleep("/bin/sleep", NULL);
    write_pid(dir, pid);
    ck_assert_int_eq(load(pid, &p), 0);
    snprintf(want, sizeof(want), "/rs-test-proc-%d", (int)getpid());
    ck_assert_str_eq(p.cgroup, want);
    ck_assert_int_eq(p.runtime, POLICY_RUNTIME_NONE);
    ck_assert_str_eq(p.container, "");

    /* A folder named as Docker's systemd driver names a container. */
    write_pid(scope, pid);
    ck_assert_int_eq(load(pid, &p), 0);
    snprintf(want, sizeof(want), "/rs-test-proc-%d/docker-" ID64 ".scope", (int)getpid());
    ck_assert_str_eq(p.cgroup, want);
    ck_assert_int_eq(p.runtime, POLICY_RUNTIME_DOCKER);
    ck_assert_str_eq(p.container, ID64);

    /* Back where it came from (the mount's root), then the folders go. */
    write_pid(mnt, pid);
    ck_assert_int_eq(rmdir(scope), 0);
    ck_assert_int_eq(rmdir(dir), 0);
    reap(pid);
}
END_TEST

/* ---- gone ---- */

START_TEST(exited_and_reaped)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
    struct policy_proc p;
    ck_assert_int_eq(load(pid, &p), -ESRCH);
    ck_assert(!p.has_pid && !p.has_exe);
    ck_assert_int_eq(p.uid, 4242);
}
END_TEST

static pid_t victim;

static void kill_between(pid_t pid)
{
    ck_assert_int_eq(pid, victim);
    kill(pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);   /* reaped: the pid is free for reuse */
}

/* The process dies after every file was read and before the pidfd's
 * check: whatever was read might be another process's by now, so it is
 * all thrown away. */
START_TEST(exit_between_read_and_check)
{
    struct policy_proc p;
    victim = spawn_sleep("/bin/sleep", NULL);
    policy_proc_test_hook = kill_between;
    ck_assert_int_eq(load(victim, &p), -ESRCH);
    policy_proc_test_hook = NULL;
    ck_assert(!p.has_pid && !p.has_exe);
    ck_assert_str_eq(p.cgroup, "");
    ck_assert_uint_eq(p.n_groups, 0);
}
END_TEST

START_TEST(pid_zero)
{
    struct policy_proc p;
    memset(&p, 0xa5, sizeof(p));
    ck_assert_int_eq(load(0, &p), 0);
    ck_assert(!p.has_pid && !p.has_exe && !p.has_pid_ns);
    ck_assert_int_eq(p.uid, 4242);
    ck_assert_int_eq(p.gid, 4343);
    ck_assert_uint_eq(p.n_groups, 0);
    ck_assert_str_eq(p.cgroup, "");
    ck_assert_int_eq(p.runtime, POLICY_RUNTIME_NONE);
}
END_TEST

/* ---- pid namespaces ---- */

START_TEST(pid_namespace)
{
    struct policy_proc p;
    pid_t pid = spawn_sleep("/bin/sleep", NULL);
    ck_assert_int_eq(load(pid, &p), 0);
    ck_assert(p.has_pid_ns && p.same_pid_ns);
    reap(pid);

    /* A child in a new pid namespace (its pid 1), seen from ours. */
    int rep[2];
    ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
    pid_t mid = fork();
    ck_assert_int_ge(mid, 0);
    if (mid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (unshare(CLONE_NEWPID) != 0)
            _exit(125);
        pid_t inner = fork();
        if (inner < 0)
            _exit(124);
        if (inner == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            execl("/bin/sleep", "sleep", "30", (char *)NULL);
            _exit(127);
        }
        if (write(rep[1], &inner, sizeof(inner)) != (ssize_t)sizeof(inner))
            _exit(123);
        waitpid(inner, NULL, 0);
        _exit(0);
    }
    close(rep[1]);
    pid_t inner;
    ck_assert_int_eq(read(rep[0], &inner, sizeof(inner)), (ssize_t)sizeof(inner));
    close(rep[0]);
    /* Wait for the exec (sleep's comm) so its facts are sleep's. */
    for (int i = 0; i < 500; i++) {
        char path[64], comm[32] = "";
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)inner);
        FILE *f = fopen(path, "re");
        if (f) {
            if (!fgets(comm, sizeof(comm), f))
                comm[0] = '\0';
            fclose(f);
        }
        if (strncmp(comm, "sleep", 5) == 0)
            break;
        usleep(10000);
    }
    ck_assert_int_eq(load(inner, &p), 0);
    ck_assert(p.has_pid_ns && !p.same_pid_ns);
    kill(inner, SIGKILL);
    ck_assert_int_eq(waitpid(mid, NULL, 0), mid);
}
END_TEST

/* ---- threads: FUSE gives the calling thread's id ---- */

static int tid_pipe[2];

static void *thread_main(void *arg)
{
    (void)arg;
    gid_t g = 777;
    /* The raw call changes this thread's credentials only (glibc's
     * setgroups would change every thread's). */
    if (syscall(SYS_setgroups, 1, &g) != 0)
        _exit(122);
    pid_t tid = (pid_t)syscall(SYS_gettid);
    if (write(tid_pipe[1], &tid, sizeof(tid)) != (ssize_t)sizeof(tid))
        _exit(121);
    for (;;)
        pause();
    return NULL;
}

static void thread_caller(bool old_kernel)
{
    policy_proc_test_old_kernel = old_kernel;
    ck_assert_int_eq(pipe2(tid_pipe, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        pthread_t t;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (pthread_create(&t, NULL, thread_main, NULL) != 0)
            _exit(120);
        for (;;)
            pause();
    }
    close(tid_pipe[1]);
    pid_t tid;
    ck_assert_int_eq(read(tid_pipe[0], &tid, sizeof(tid)), (ssize_t)sizeof(tid));
    close(tid_pipe[0]);
    ck_assert_int_ne(tid, pid);

    struct stat self;
    struct policy_proc p;
    ck_assert_int_eq(stat("/proc/self/exe", &self), 0);
    ck_assert_int_eq(load(tid, &p), 0);
    ck_assert(p.has_pid && p.has_exe && p.exe_ino == self.st_ino);
    ck_assert_uint_eq(p.n_groups, 1);   /* the thread's own credentials */
    ck_assert_uint_eq(p.groups[0], 777);
    ck_assert_int_eq(load(pid, &p), 0);
    ck_assert(!has_group(&p, 777));
    reap(pid);
    /* The thread is gone with its process. */
    ck_assert_int_eq(load(tid, &p), -ESRCH);
    policy_proc_test_old_kernel = false;
}

START_TEST(thread_pidfd_thread)
{
    thread_caller(false);
}
END_TEST

/* Debian 12's 6.1: the thread group's pidfd and /proc/TGID/task/TID. */
START_TEST(thread_old_kernel)
{
    thread_caller(true);
}
END_TEST

/* ---- without CAP_SYS_PTRACE: exe and ns unknown, the rest read ---- */

START_TEST(no_ptrace_access)
{
    struct creds c = {.set = true, .uid = 65534, .gid = 65534, .groups = (gid_t[]){99}, .ngroups = 1};
    pid_t pid = spawn_sleep("/bin/sleep", &c);
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    ck_assert_int_eq(syscall(SYS_capget, &h, d), 0);
    d[CAP_SYS_PTRACE / 32].effective &= ~(1u << (CAP_SYS_PTRACE % 32));
    ck_assert_int_eq(syscall(SYS_capset, &h, d), 0);

    struct policy_proc p;
    ck_assert_int_eq(load(pid, &p), 0);
    ck_assert(p.has_pid);
    ck_assert(!p.has_exe && !p.has_pid_ns);   /* unknown: a rule needing them fails closed */
    ck_assert_uint_eq(p.n_groups, 1);
    ck_assert_uint_eq(p.groups[0], 99);
    ck_assert_str_ne(p.cgroup, "");
    ck_assert_uint_gt(p.start_time, 0);
    reap(pid);
}
END_TEST

/* ---- start time: fields counted after the last ')' ---- */

static unsigned long long uptime_ticks(void)
{
    FILE *f = fopen("/proc/uptime", "re");
    double up = 0;
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%lf", &up), 1);
    fclose(f);
    return (unsigned long long)(up * (double)sysconf(_SC_CLK_TCK));
}

START_TEST(start_time_odd_comm)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/a) b (c) 1 2 3", tmp);   /* comm: "a) b (c) 1 2 3" */
    copy_file("/bin/sleep", path);
    unsigned long long before = uptime_ticks();
    pid_t pid = spawn_sleep(path, NULL);
    unsigned long long after = uptime_ticks();
    struct policy_proc p;
    ck_assert_int_eq(load(pid, &p), 0);
    ck_assert_uint_ge(p.start_time + 2, before);
    ck_assert_uint_le(p.start_time, after + 2);
    struct policy_proc again;
    ck_assert_int_eq(load(pid, &again), 0);
    ck_assert_uint_eq(again.start_time, p.start_time);   /* an identity: stable */
    reap(pid);
}
END_TEST

/* ---- containers from cgroup paths ---- */

static const struct {
    const char *path;
    enum policy_runtime runtime;
    const char *id;
} containers[] = {
    /* Docker 20.10, cgroup v1, cgroupfs driver (every v1 line) */
    {"/docker/" ID64, POLICY_RUNTIME_DOCKER, ID64},
    /* Docker 20.10, systemd driver, v1 name=systemd line and v2 */
    {"/system.slice/docker-" ID64 ".scope", POLICY_RUNTIME_DOCKER, ID64},
    /* Docker on cgroup v2, cgroupfs driver (no cgroupns: the host's view) */
    {"/docker/" ID64 "/", POLICY_RUNTIME_DOCKER, ID64},
    /* rootless Docker (systemd driver in the user's manager) */
    {"/user.slice/user-1000.slice/user@1000.service/docker.service/docker-" ID64 ".scope",
     POLICY_RUNTIME_DOCKER, ID64},
    /* Podman rootful, systemd driver */
    {"/machine.slice/libpod-" ID64 ".scope", POLICY_RUNTIME_LIBPOD, ID64},
    /* Podman 4 with the container's own sub-cgroup */
    {"/machine.slice/libpod-" ID64 ".scope/container", POLICY_RUNTIME_LIBPOD, ID64},
    /* Podman rootful, cgroupfs driver */
    {"/libpod_parent/libpod-" ID64, POLICY_RUNTIME_LIBPOD, ID64},
    /* Podman rootless */
    {"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" ID64 ".scope",
     POLICY_RUNTIME_LIBPOD, ID64},
    /* Podman pod, systemd */
    {"/machine.slice/machine-libpod_pod_" ID64B ".slice/libpod-" ID64 ".scope",
     POLICY_RUNTIME_LIBPOD, ID64},
    /* Kubernetes, systemd driver, containerd: burstable, besteffort, guaranteed */
    {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/"
     "cri-containerd-" ID64 ".scope",
     POLICY_RUNTIME_CRI_CONTAINERD, ID64},
    {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/"
     "cri-containerd-" ID64 ".scope",
     POLICY_RUNTIME_CRI_CONTAINERD, ID64},
    {"/kubepods.slice/kubepods-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-" ID64 ".scope",
     POLICY_RUNTIME_CRI_CONTAINERD, ID64},
    /* Kubernetes, systemd driver, CRI-O */
    {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/"
     "crio-" ID64 ".scope",
     POLICY_RUNTIME_CRIO, ID64},
    /* Kubernetes, cgroupfs driver: containerd (bare id under pod<uid>) and CRI-O (crio-<id>) */
    {"/kubepods/burstable/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/" ID64, POLICY_RUNTIME_CRI_CONTAINERD, ID64},
    {"/kubepods/besteffort/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/" ID64, POLICY_RUNTIME_CRI_CONTAINERD, ID64},
    {"/kubepods/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/" ID64, POLICY_RUNTIME_CRI_CONTAINERD, ID64},
    {"/kubepods/burstable/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/crio-" ID64, POLICY_RUNTIME_CRIO, ID64},
    /* Kubernetes with the dockershim (systemd driver): Docker's own scope */
    {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice/docker-" ID64 ".scope",
     POLICY_RUNTIME_DOCKER, ID64},
    /* kind / k3d: a node container, with pods inside it: the innermost wins */
    {"/system.slice/docker-" ID64B ".scope/kubelet.slice/kubelet-kubepods.slice/"
     "kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-podx.slice/cri-containerd-" ID64 ".scope",
     POLICY_RUNTIME_CRI_CONTAINERD, ID64},
    /* Docker in Docker (cgroupfs) */
    {"/docker/" ID64B "/docker/" ID64, POLICY_RUNTIME_DOCKER, ID64},
    /* Podman inside a Docker container */
    {"/docker/" ID64B "/libpod_parent/libpod-" ID64, POLICY_RUNTIME_LIBPOD, ID64},
    /* the node's container itself, the inner part not a container */
    {"/system.slice/docker-" ID64B ".scope/init.scope", POLICY_RUNTIME_DOCKER, ID64B},

    /* ---- negatives ---- */
    {"/", POLICY_RUNTIME_NONE, ""},
    {"", POLICY_RUNTIME_NONE, ""},
    {"/user.slice/user-1000.slice/session-3.scope", POLICY_RUNTIME_NONE, ""},
    {"/system.slice/docker.service", POLICY_RUNTIME_NONE, ""},
    {"/system.slice/containerd.service", POLICY_RUNTIME_NONE, ""},
    {"/docker", POLICY_RUNTIME_NONE, ""},
    /* the monitors, not the containers */
    {"/machine.slice/libpod-conmon-" ID64 ".scope", POLICY_RUNTIME_NONE, ""},
    {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podx.slice/crio-conmon-" ID64 ".scope",
     POLICY_RUNTIME_NONE, ""},
    /* short (CLI) ids, upper case, one digit short or long, not hex */
    {"/docker/0123456789ab", POLICY_RUNTIME_NONE, ""},
    {"/system.slice/docker-0123456789ab.scope", POLICY_RUNTIME_NONE, ""},
    {"/docker/0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", POLICY_RUNTIME_NONE, ""},
    {"/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", POLICY_RUNTIME_NONE, ""},
    {"/docker/" ID64 "0", POLICY_RUNTIME_NONE, ""},
    {"/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg", POLICY_RUNTIME_NONE, ""},
    /* an id where no layout puts one */
    {"/" ID64, POLICY_RUNTIME_NONE, ""},
    {"/system.slice/" ID64, POLICY_RUNTIME_NONE, ""},
    {"/pod1234/" ID64, POLICY_RUNTIME_NONE, ""},   /* pod<uid> without kubepods above */
    {"/system.slice/docker-" ID64, POLICY_RUNTIME_NONE, ""},   /* systemd names end in .scope */
    {"/system.slice/cri-containerd-" ID64, POLICY_RUNTIME_NONE, ""},
    {"/system.slice/docker-" ID64 ".service", POLICY_RUNTIME_NONE, ""},
    {"/system.slice/mydocker-" ID64 ".scope", POLICY_RUNTIME_NONE, ""},
    {"/notdocker/" ID64, POLICY_RUNTIME_NONE, ""},
};

START_TEST(container_table)
{
    for (size_t i = 0; i < sizeof(containers) / sizeof(containers[0]); i++) {
        char id[POLICY_CONTAINER_ID_MAX];
        memset(id, 'x', sizeof(id));
        enum policy_runtime r = policy_container_of(containers[i].path, id, sizeof(id));
        ck_assert_msg(r == containers[i].runtime, "%s: runtime %d, want %d", containers[i].path, (int)r,
                      (int)containers[i].runtime);
        ck_assert_msg(strcmp(id, containers[i].id) == 0, "%s: id '%s'", containers[i].path, id);
    }
}
END_TEST

START_TEST(container_edges)
{
    char small[64];
    /* A buffer too small for the id: none, and "". */
    ck_assert_int_eq(policy_container_of("/docker/" ID64, small, sizeof(small)), POLICY_RUNTIME_NONE);
    ck_assert_str_eq(small, "");
    ck_assert_int_eq(policy_container_of(NULL, small, sizeof(small)), POLICY_RUNTIME_NONE);
    ck_assert_str_eq(policy_runtime_name(POLICY_RUNTIME_DOCKER), "docker");
    ck_assert_str_eq(policy_runtime_name(POLICY_RUNTIME_LIBPOD), "libpod");
    ck_assert_str_eq(policy_runtime_name(POLICY_RUNTIME_CRI_CONTAINERD), "cri-containerd");
    ck_assert_str_eq(policy_runtime_name(POLICY_RUNTIME_CRIO), "crio");
    ck_assert_str_eq(policy_runtime_name(POLICY_RUNTIME_NONE), "");
}
END_TEST

/* ---- only the facts asked for ---- */

START_TEST(facts_asked_for)
{
    static const gid_t g777[] = {777};
    struct creds c = {.set = true, .uid = 4242, .gid = 4343, .groups = g777, .ngroups = 1};
    pid_t pid = spawn_sleep("/bin/sleep", &c);
    struct policy_proc all, some, again;
    char err[256];
    ck_assert_int_eq(load(pid, &all), 0);
    ck_assert(all.has_exe && all.cgroup[0] && all.has_pid_ns && all.start_time);
    ck_assert(!all.groups_truncated && all.n_groups == 1);
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath("/bin/sleep", real));
    ck_assert_str_eq(all.exe_path, real);

    /* The executable alone: everything else unknown, which the rules
     * treat as failing closed. */
    ck_assert_int_eq(policy_proc_load(pid, 1, 2, POLICY_FACT_EXE, &some, err, sizeof(err)), 0);
    ck_assert(some.has_pid && some.has_exe);
    ck_assert(some.exe_dev == all.exe_dev && some.exe_ino == all.exe_ino);
    ck_assert_str_eq(some.cgroup, "");
    ck_assert(!some.has_pid_ns && some.groups_truncated && some.n_groups == 0);
    ck_assert_uint_eq(some.start_time, 0);
    ck_assert_str_eq(some.exe_path, "");

    /* The identity: the start time, or on pidfs the pidfd's inode; the
     * same for the same process, another for another one. */
    pid_t other = spawn_sleep("/bin/sleep", NULL);
    unsigned modes[2] = {0, policy_proc_pidfs() ? POLICY_PROC_PIDFS : 0};
    for (int m = 0; m < 2; m++) {
        unsigned f = POLICY_FACT_START | modes[m];
        ck_assert_int_eq(policy_proc_load(pid, 1, 2, f, &some, err, sizeof(err)), 0);
        ck_assert_int_eq(policy_proc_load(pid, 1, 2, f, &again, err, sizeof(err)), 0);
        ck_assert(some.has_pid && some.start_time != 0);
        ck_assert_uint_eq(some.start_time, again.start_time);
        if (m == 0)
            ck_assert_uint_eq(some.start_time, all.start_time);
        ck_assert_int_eq(policy_proc_load(other, 1, 2, f, &again, err, sizeof(err)), 0);
        if (modes[m])   /* start times may tie within a clock tick; inodes never */
            ck_assert_uint_ne(some.start_time, again.start_time);
    }
    reap(other);
    reap(pid);
    /* Gone: -ESRCH whichever facts were asked for. */
    ck_assert_int_eq(policy_proc_load(pid, 1, 2, POLICY_FACT_EXE, &some, err, sizeof(err)),
                     -ESRCH);
    ck_assert_int_eq(policy_proc_load(pid, 1, 2, POLICY_FACT_START | modes[1], &some, err,
                                      sizeof(err)), -ESRCH);
}
END_TEST

static Suite *policy_proc_suite(void)
{
    Suite *s = suite_create("policy_proc");
    TCase *t = tcase_create("proc");
    tcase_add_checked_fixture(t, tmp_setup, tmp_teardown);
    tcase_set_timeout(t, 20);
    tcase_add_test(t, exe_by_inode);
    tcase_add_test(t, facts_asked_for);
    tcase_add_test(t, exe_in_other_mount_ns);
    tcase_add_test(t, groups_read_back);
    tcase_add_test(t, cgroup_v2_folder);
    tcase_add_test(t, exited_and_reaped);
    tcase_add_test(t, exit_between_read_and_check);
    tcase_add_test(t, pid_zero);
    tcase_add_test(t, pid_namespace);
    tcase_add_test(t, thread_pidfd_thread);
    tcase_add_test(t, thread_old_kernel);
    tcase_add_test(t, no_ptrace_access);
    tcase_add_test(t, start_time_odd_comm);
    suite_add_tcase(s, t);
    TCase *c = tcase_create("containers");
    tcase_add_test(c, container_table);
    tcase_add_test(c, container_edges);
    suite_add_tcase(s, c);
    return s;
}

CK_MAIN(policy_proc_suite)
