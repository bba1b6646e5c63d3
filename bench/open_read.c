/* open_read.c - time open(O_RDONLY) + read until EOF + close, per path.
 *
 * usage: open_read -e EXPECTED [-w WARMUP] [-k BATCHES] [-n ITERS] LABEL=PATH...
 *
 * Every PATH must hold exactly the bytes of the file EXPECTED. Each path gets
 * WARMUP untimed operations, then BATCHES timed batches of ITERS operations.
 * Batches are interleaved across the paths (batch b runs every path once,
 * starting at path b mod npaths), so machine noise lands on all of them
 * alike. Every operation's bytes are compared with EXPECTED; any difference,
 * short or long read or error stops the run with exit status 1.
 *
 * Output: one line per path with the median, 10th and 90th percentile,
 * minimum and maximum of the per-batch nanoseconds per operation:
 *
 *   # label   median_ns    p10_ns    p90_ns    min_ns    max_ns  path
 *   floor       12345.6   12001.2   13012.9   11890.0   14001.3  /tmp/x/floor/f
 *
 * -v first prints every batch's ns/op in run order, as comment lines.
 *
 * Lines starting with '#' are comments; the rest are for scripts to parse.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OR_MAX_PATHS 16
#define OR_MAX_EXPECTED (1u << 20)
#define OR_MIN_BUF 4096
#define OR_DEFAULT_WARMUP 2000
#define OR_DEFAULT_BATCHES 31
#define OR_DEFAULT_ITERS 2000

struct target {
    const char *label;   /* borrowed from argv */
    const char *path;    /* borrowed from argv */
    size_t label_len;
    double *ns_per_op;   /* one per batch; owned */
};

struct run {
    unsigned char *expected;  /* owned */
    size_t expected_len;
    unsigned char *buf;       /* owned; buf_len > expected_len */
    size_t buf_len;
};

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s -e EXPECTED [-w WARMUP] [-k BATCHES] [-n ITERS] LABEL=PATH...\n"
            "Time open+read-until-EOF+close of each PATH (which must hold EXPECTED's bytes)\n"
            "and print the median, p10 and p90 of the per-batch ns/op.\n"
            "  -e FILE   the bytes every PATH must return\n"
            "  -w N      untimed operations per path first (default %d)\n"
            "  -k N      timed batches per path, interleaved (default %d)\n"
            "  -n N      operations per batch (default %d)\n"
            "  -v        also print each batch's ns/op, in run order\n",
            argv0, OR_DEFAULT_WARMUP, OR_DEFAULT_BATCHES, OR_DEFAULT_ITERS);
}

static int parse_count(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Read all of path into r->expected. 0 or negative errno (printed). */
static int load_expected(struct run *r, const char *path)
{
    int rc = -EIO;
    int fd = -1;
    unsigned char *buf = NULL;
    size_t len = 0;

    buf = malloc(OR_MAX_EXPECTED + 1);
    if (!buf) {
        rc = -ENOMEM;
        fprintf(stderr, "open_read: out of memory\n");
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        fprintf(stderr, "open_read: %s: %s\n", path, strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, OR_MAX_EXPECTED + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            fprintf(stderr, "open_read: %s: %s\n", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > OR_MAX_EXPECTED) {
            rc = -E2BIG;
            fprintf(stderr, "open_read: %s: more than %u bytes\n", path, OR_MAX_EXPECTED);
            goto out;
        }
    }
    r->expected = buf;
    buf = NULL;   /* ownership moved */
    r->expected_len = len;
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* One open + read until EOF + close, checked against the expected bytes.
 * 0, or -1 after printing what went wrong. */
static int one_op(struct run *r, const struct target *t, long batch, long iter)
{
    size_t got = 0;
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "open_read: FAIL %.*s: open %s (batch %ld, op %ld): %s\n",
                (int)t->label_len, t->label, t->path, batch, iter, strerror(errno));
        return -1;
    }
    for (;;) {
        ssize_t n = read(fd, r->buf + got, r->buf_len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "open_read: FAIL %.*s: read %s (batch %ld, op %ld): %s\n",
                    (int)t->label_len, t->label, t->path, batch, iter, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got == r->buf_len)
            break;   /* more than expected: reported below */
    }
    if (close(fd) != 0) {
        fprintf(stderr, "open_read: FAIL %.*s: close %s (batch %ld, op %ld): %s\n",
                (int)t->label_len, t->label, t->path, batch, iter, strerror(errno));
        return -1;
    }
    if (got != r->expected_len) {
        fprintf(stderr, "open_read: FAIL %.*s: %s (batch %ld, op %ld): read %s%zu bytes, expected %zu\n",
                (int)t->label_len, t->label, t->path, batch, iter,
                got == r->buf_len ? "at least " : "", got, r->expected_len);
        return -1;
    }
    if (memcmp(r->buf, r->expected, got) != 0) {
        size_t i = 0;
        while (r->buf[i] == r->expected[i])
            i++;
        /* The offset only: the bytes themselves may be a secret. */
        fprintf(stderr, "open_read: FAIL %.*s: %s (batch %ld, op %ld): content differs at byte %zu\n",
                (int)t->label_len, t->label, t->path, batch, iter, i);
        return -1;
    }
    return 0;
}

static double ts_ns(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e9 + (double)(b->tv_nsec - a->tv_nsec);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p in [0, 1] of sorted v[0..n-1], linear interpolation between ranks. */
static double quantile(const double *v, size_t n, double p)
{
    double pos = p * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n)
        return v[n - 1];
    return v[lo] + (v[lo + 1] - v[lo]) * (pos - (double)lo);
}

int main(int argc, char **argv)
{
    int ex = 1;
    long warmup = OR_DEFAULT_WARMUP, batches = OR_DEFAULT_BATCHES, iters = OR_DEFAULT_ITERS;
    const char *expected_path = NULL;
    bool verbose = false;
    struct target targets[OR_MAX_PATHS];
    size_t nt = 0;
    struct run r = {.expected = NULL, .buf = NULL};
    int c;

    memset(targets, 0, sizeof(targets));
    while ((c = getopt(argc, argv, "e:w:k:n:vh")) != -1) {
        long *dst = NULL;
        long min = 1;
        switch (c) {
        case 'e':
            expected_path = optarg;
            continue;
        case 'w':
            dst = &warmup;
            min = 0;
            break;
        case 'k':
            dst = &batches;
            break;
        case 'n':
            dst = &iters;
            break;
        case 'v':
            verbose = true;
            continue;
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
        if (parse_count(optarg, min, INT_MAX, dst) < 0) {
            fprintf(stderr, "open_read: -%c: expected an integer from %ld to %d, got '%s'\n", c, min,
                    INT_MAX, optarg);
            return 2;
        }
    }
    if (!expected_path || optind >= argc) {
        usage(stderr, argv[0]);
        return 2;
    }
    if (argc - optind > OR_MAX_PATHS) {
        fprintf(stderr, "open_read: at most %d paths\n", OR_MAX_PATHS);
        return 2;
    }
    for (int i = optind; i < argc; i++) {
        struct target *t = &targets[nt++];
        const char *eq = strchr(argv[i], '=');
        if (eq) {
            t->label = argv[i];
            t->label_len = (size_t)(eq - argv[i]);
            t->path = eq + 1;
        } else {
            t->label = argv[i];
            t->label_len = strlen(argv[i]);
            t->path = argv[i];
        }
        if (t->label_len == 0 || t->path[0] == '\0') {
            fprintf(stderr, "open_read: '%s': expected LABEL=PATH or PATH\n", argv[i]);
            return 2;
        }
    }

    if (load_expected(&r, expected_path) < 0)
        goto out;
    r.buf_len = r.expected_len + 1 > OR_MIN_BUF ? r.expected_len + 1 : OR_MIN_BUF;
    r.buf = malloc(r.buf_len);
    if (!r.buf) {
        fprintf(stderr, "open_read: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < nt; i++) {
        targets[i].ns_per_op = calloc((size_t)batches, sizeof(double));
        if (!targets[i].ns_per_op) {
            fprintf(stderr, "open_read: out of memory\n");
            goto out;
        }
    }

    for (size_t i = 0; i < nt; i++)
        for (long it = 0; it < warmup; it++)
            if (one_op(&r, &targets[i], -1, it) < 0)
                goto out;

    for (long b = 0; b < batches; b++) {
        for (size_t j = 0; j < nt; j++) {
            struct target *t = &targets[((size_t)b + j) % nt];
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            for (long it = 0; it < iters; it++)
                if (one_op(&r, t, b, it) < 0)
                    goto out;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            t->ns_per_op[b] = ts_ns(&t0, &t1) / (double)iters;
        }
    }

    printf("# open_read: %zu bytes, warmup %ld, %ld batches x %ld ops per path, all verified\n",
           r.expected_len, warmup, batches, iters);
    if (verbose) {
        printf("# batch");
        for (size_t i = 0; i < nt; i++)
            printf(" %11.*s", (int)targets[i].label_len, targets[i].label);
        printf("\n");
        for (long b = 0; b < batches; b++) {
            printf("# %5ld", b);
            for (size_t i = 0; i < nt; i++)
                printf(" %11.1f", targets[i].ns_per_op[b]);
            printf("\n");
        }
    }
    printf("# %-10s %11s %11s %11s %11s %11s  %s\n", "label", "median_ns", "p10_ns", "p90_ns",
           "min_ns", "max_ns", "path");
    for (size_t i = 0; i < nt; i++) {
        struct target *t = &targets[i];
        size_t n = (size_t)batches;
        qsort(t->ns_per_op, n, sizeof(double), cmp_double);
        printf("%-12.*s %11.1f %11.1f %11.1f %11.1f %11.1f  %s\n", (int)t->label_len, t->label,
               quantile(t->ns_per_op, n, 0.5), quantile(t->ns_per_op, n, 0.1),
               quantile(t->ns_per_op, n, 0.9), t->ns_per_op[0], t->ns_per_op[n - 1], t->path);
    }
    ex = 0;
out:
    for (size_t i = 0; i < nt; i++)
        free(targets[i].ns_per_op);
    free(r.buf);
    free(r.expected);
    return ex;
}
