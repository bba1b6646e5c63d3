/* proc_load.c - what one policy_proc_load costs (issue 15: is a decision
 * cache worth having?). Starts `/bin/sleep 60` as the caller, reads its
 * facts -n times (default 10,000) per round, -k rounds (default 5), and
 * prints each round's µs/call and the median. -f MASK: which facts
 * (POLICY_FACT_* bits, e.g. 0x11 exe and start time, what an exe-only
 * policy reads at open; default all; 0x100 adds POLICY_PROC_PIDFS). Not a test: run by hand
 * (docs/performance.md). */
#include "policy/proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long n = 10000, k = 5;
    unsigned facts = POLICY_FACTS_ALL;
    int opt;
    while ((opt = getopt(argc, argv, "n:k:f:")) != -1) {
        if (opt == 'f')
            facts = (unsigned)strtoul(optarg, NULL, 0) & (POLICY_FACTS_ALL | POLICY_PROC_PIDFS);
        else if (opt == 'n')
            n = strtol(optarg, NULL, 10);
        else if (opt == 'k')
            k = strtol(optarg, NULL, 10);
        else
            return 2;
    }
    if (n < 1 || k < 1 || k > 100)
        return 2;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/bin/sleep", "sleep", "60", (char *)NULL);
        _exit(127);
    }
    usleep(100000);   /* let it exec */
    struct policy_proc p;
    char err[256];
    double rounds[100];
    int rc = 0;
    for (long i = 0; i < 1000 && rc == 0; i++)   /* warm-up */
        rc = policy_proc_load(pid, 0, 0, facts, &p, err, sizeof(err));
    for (long r = 0; r < k && rc == 0; r++) {
        double t0 = now_us();
        for (long i = 0; i < n && rc == 0; i++)
            rc = policy_proc_load(pid, 0, 0, facts, &p, err, sizeof(err));
        rounds[r] = (now_us() - t0) / (double)n;
        printf("round %ld: %.2f us/call\n", r + 1, rounds[r]);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (rc != 0) {
        fprintf(stderr, "proc_load: %s\n", err);
        return 1;
    }
    qsort(rounds, (size_t)k, sizeof(rounds[0]), cmp);
    printf("median of %ld rounds of %ld, facts 0x%x: %.2f us/call (exe %s, cgroup %s, %zu groups)\n", k, n,
           facts, rounds[k / 2], p.has_exe ? "known" : "unknown", p.cgroup, p.n_groups);
    return 0;
}
