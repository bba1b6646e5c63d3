/* par_read.c - open+read+close by THREADS readers at once, per path.
 *
 * usage: par_read -e EXPECTED [-t THREADS] [-k ROUNDS] [-m MS] LABEL=PATH...
 *
 * Every PATH must hold exactly the bytes of EXPECTED. A round runs THREADS
 * threads (default 8) on one path for MS milliseconds (default 500), each
 * opening, reading to EOF and closing in a loop, every read verified; the
 * round's figure is the total operations per second. Rounds are
 * interleaved across the paths (round r runs every path once, starting at
 * path r mod npaths), so machine noise lands on all of them alike; the
 * first round of each path is a warm-up and not counted.
 *
 * Output: one line per path with the median, minimum and maximum ops/s:
 *   # label   median_ops   min_ops   max_ops  path
 * Lines starting with '#' are comments. Exit 1 on any wrong byte or error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PR_MAX_PATHS 8
#define PR_MAX_THREADS 64
#define PR_MAX_ROUNDS 101
#define PR_MAX_EXPECTED (1u << 20)

struct round {
    const char *path;
    const char *expected;
    size_t len;
    atomic_bool stop;
    atomic_bool failed;
    pthread_barrier_t start;
};

struct reader {
    pthread_t t;
    struct round *r;
    unsigned long ops;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static bool one(const struct round *r, char *buf, size_t cap)
{
    int fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "par_read: open %s: %s\n", r->path, strerror(errno));
        return false;
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                fprintf(stderr, "par_read: read %s: %s\n", r->path, strerror(errno));
            close(fd);
            if (n < 0)
                return false;
            break;
        }
        got += (size_t)n;
        if (got == cap) {
            close(fd);
            break;
        }
    }
    if (got != r->len || memcmp(buf, r->expected, got) != 0) {
        fprintf(stderr, "par_read: %s: %zu bytes, not the expected %zu\n", r->path, got, r->len);
        return false;
    }
    return true;
}

static void *run(void *arg)
{
    struct reader *rd = arg;
    struct round *r = rd->r;
    size_t cap = r->len + 4096;
    char *buf = malloc(cap);
    pthread_barrier_wait(&r->start);
    while (buf && !atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        if (!one(r, buf, cap)) {
            atomic_store(&r->failed, true);
            break;
        }
        rd->ops++;
    }
    if (!buf)
        atomic_store(&r->failed, true);
    free(buf);
    return NULL;
}

/* One round on path: ops/s, or -1 on failure. */
static double round_on(const char *path, const char *expected, size_t len, int threads, int ms)
{
    struct round r = {.path = path, .expected = expected, .len = len};
    struct reader rd[PR_MAX_THREADS];
    atomic_init(&r.stop, false);
    atomic_init(&r.failed, false);
    pthread_barrier_init(&r.start, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) {
        rd[i] = (struct reader){.r = &r};
        if (pthread_create(&rd[i].t, NULL, run, &rd[i]) != 0) {
            fprintf(stderr, "par_read: cannot start a thread\n");
            exit(1);
        }
    }
    pthread_barrier_wait(&r.start);
    double t0 = now_s();
    struct timespec d = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
    atomic_store(&r.stop, true);
    unsigned long ops = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(rd[i].t, NULL);
        ops += rd[i].ops;
    }
    double secs = now_s() - t0;
    pthread_barrier_destroy(&r.start);
    return atomic_load(&r.failed) ? -1 : (double)ops / secs;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *expected_path = NULL;
    int threads = 8, rounds = 11, ms = 500, opt;
    while ((opt = getopt(argc, argv, "e:t:k:m:")) != -1) {
        if (opt == 'e')
            expected_path = optarg;
        else if (opt == 't')
            threads = (int)strtol(optarg, NULL, 10);
        else if (opt == 'k')
            rounds = (int)strtol(optarg, NULL, 10);
        else if (opt == 'm')
            ms = (int)strtol(optarg, NULL, 10);
        else
            goto usage;
    }
    int n = argc - optind;
    if (!expected_path || n < 1 || n > PR_MAX_PATHS || threads < 1 || threads > PR_MAX_THREADS ||
        rounds < 1 || rounds > PR_MAX_ROUNDS - 1 || ms < 10)
        goto usage;
    static char expected[PR_MAX_EXPECTED];
    int fd = open(expected_path, O_RDONLY | O_CLOEXEC);
    ssize_t len = fd < 0 ? -1 : read(fd, expected, sizeof(expected));
    if (fd >= 0)
        close(fd);
    if (len < 0) {
        fprintf(stderr, "par_read: %s: cannot read\n", expected_path);
        return 1;
    }
    const char *label[PR_MAX_PATHS], *path[PR_MAX_PATHS];
    static double res[PR_MAX_PATHS][PR_MAX_ROUNDS];
    for (int i = 0; i < n; i++) {
        char *eq = strchr(argv[optind + i], '=');
        if (!eq)
            goto usage;
        *eq = '\0';
        label[i] = argv[optind + i];
        path[i] = eq + 1;
    }
    printf("# par_read: %d threads, %d rounds of %d ms per path (+1 warm-up), %zd bytes, verified\n",
           threads, rounds, ms, len);
    for (int r = 0; r <= rounds; r++)
        for (int k = 0; k < n; k++) {
            int i = (r + k) % n;
            double v = round_on(path[i], expected, (size_t)len, threads, ms);
            if (v < 0)
                return 1;
            if (r > 0)
                res[i][r - 1] = v;
        }
    printf("# %-8s %12s %12s %12s  path\n", "label", "median_ops", "min_ops", "max_ops");
    for (int i = 0; i < n; i++) {
        qsort(res[i], (size_t)rounds, sizeof(double), cmp);
        printf("%-10s %12.0f %12.0f %12.0f  %s\n", label[i], res[i][rounds / 2], res[i][0],
               res[i][rounds - 1], path[i]);
    }
    return 0;
usage:
    fprintf(stderr, "usage: par_read -e EXPECTED [-t THREADS] [-k ROUNDS] [-m MS] LABEL=PATH...\n");
    return 2;
}
