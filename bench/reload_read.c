/* reload_read.c - readers for bench/reload.py: THREADS threads open, read
 * to EOF and close the given paths round robin for DURATION_MS, and record
 * every operation: its start (CLOCK_MONOTONIC ns), its duration (ns) and
 * whether it failed (or read nothing).
 *
 * usage: reload_read THREADS DURATION_MS OUTFILE PATH...
 *
 * RR_INTERVAL_US=N in the environment paces each thread to one operation
 * every N microseconds (a fixed schedule; slots missed while an operation
 * ran are skipped, not made up): readers at a given rate rather than flat
 * out, so what slows them can be told apart from a saturated machine.
 * SIGINT ends the run early (the records are still written).
 *
 * OUTFILE gets one record per operation, three native int64s each: start,
 * duration, errno (0: a non-empty read). Nothing is compared with expected
 * bytes: values change during the run; bench/reload.py checks values.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RR_MAX_OPS (1u << 22)   /* per thread: ample for a minute of reads */
#define RR_BUF 65536

struct rec {
    int64_t start, dur, err;
};

struct reader {
    pthread_t t;
    unsigned id;
    char **paths;
    size_t npaths;
    _Atomic int64_t end;   /* main moves it to now on SIGINT */
    int64_t interval;   /* ns; 0: flat out */
    struct rec *recs;
    size_t n;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int read_one(const char *path, char *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    size_t total = 0;
    int err = 0;
    for (;;) {
        ssize_t n = read(fd, buf, RR_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            err = errno;
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    close(fd);
    return err ? err : total ? 0 : ENODATA;
}

static void *run(void *arg)
{
    struct reader *r = arg;
    char *buf = malloc(RR_BUF);
    size_t i = r->id * 7919;
    if (!buf)
        return NULL;
    int64_t next = now_ns() + (r->interval ? (int64_t)(r->id * 7919 % 1000) * r->interval / 1000 : 0);
    while (r->n < RR_MAX_OPS) {
        if (r->interval) {
            int64_t now = now_ns();
            while (next < now)
                next += r->interval;
            struct timespec ts = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
            next += r->interval;
        }
        int64_t t0 = now_ns();
        if (t0 >= r->end)
            break;
        int err = read_one(r->paths[i++ % r->npaths], buf);
        r->recs[r->n++] = (struct rec){.start = t0, .dur = now_ns() - t0, .err = err};
    }
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s THREADS DURATION_MS OUTFILE PATH...\n", argv[0]);
        return 2;
    }
    unsigned nt = (unsigned)strtoul(argv[1], NULL, 10);
    int64_t end = now_ns() + (int64_t)strtoll(argv[2], NULL, 10) * 1000000;
    if (nt == 0 || nt > 256)
        return 2;
    const char *iv = getenv("RR_INTERVAL_US");
    int64_t interval = iv ? strtoll(iv, NULL, 10) * 1000 : 0;
    struct reader *rs = calloc(nt, sizeof(*rs));
    if (!rs)
        return 1;
    /* SIGINT is taken by sigtimedwait below, never delivered to a reader. */
    sigset_t intr;
    sigemptyset(&intr);
    sigaddset(&intr, SIGINT);
    pthread_sigmask(SIG_BLOCK, &intr, NULL);
    for (unsigned k = 0; k < nt; k++) {
        rs[k] = (struct reader){.id = k, .paths = argv + 4, .npaths = (size_t)(argc - 4),
                                .end = end, .interval = interval};
        rs[k].recs = malloc(RR_MAX_OPS * sizeof(struct rec));
        if (!rs[k].recs || pthread_create(&rs[k].t, NULL, run, &rs[k]) != 0)
            return 1;
    }
    for (;;) {
        int64_t left = end - now_ns();
        if (left <= 0)
            break;
        struct timespec ts = {.tv_sec = left / 1000000000, .tv_nsec = left % 1000000000};
        if (sigtimedwait(&intr, NULL, &ts) == SIGINT) {
            for (unsigned k = 0; k < nt; k++)
                atomic_store(&rs[k].end, now_ns());
            break;
        }
    }
    FILE *out = fopen(argv[3], "wb");
    if (!out)
        return 1;
    for (unsigned k = 0; k < nt; k++) {
        pthread_join(rs[k].t, NULL);
        fwrite(rs[k].recs, sizeof(struct rec), rs[k].n, out);
        free(rs[k].recs);
    }
    fclose(out);
    free(rs);
    return 0;
}
