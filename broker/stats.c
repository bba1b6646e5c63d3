/* stats.c - the admin endpoint's pages, built from lib/metrics.h only.
 *
 * A page reads atomics and, under metrics.lock (which no FUSE thread or
 * fetch worker ever takes), the published lists; it copies each secret's
 * error text under that secret's text_lock, a leaf held for one copy. It
 * never touches the store, the configuration or a backend, which a reload
 * replaces under it: everything it shows was published into objects that
 * live as long as the broker.
 *
 * Times: the store and scheduler publish CLOCK_MONOTONIC milliseconds (a
 * clock step never makes a secret look stale); a page turns them into
 * wall-clock time once, against one reading of both clocks.
 */
#include "broker/stats.h"
#include "broker/broker.h"
#include "backends/core/provider.h"
#include "engine/cache.h"
#include "fuse/mountns.h"
#include "fuse/mountpoint.h"
#include "lib/clock.h"
#include "lib/duration.h"
#include "lib/metrics.h"
#include "rs_config.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- a growing text buffer (no secret ever goes in) ---- */

struct text {
    char *p;
    size_t len, cap;
    bool failed;   /* an allocation failed: the page is a 500 */
};

static void text_reserve(struct text *t, size_t more)
{
    if (t->failed || t->len + more + 1 <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + more + 1)
        cap *= 2;
    char *p = realloc(t->p, cap);
    if (!p) {
        t->failed = true;
        return;
    }
    t->p = p;
    t->cap = cap;
}

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = true;
        return;
    }
    text_reserve(t, (size_t)n);
    if (t->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* The pages are made of these, not of printf: with 1,000 secrets a
 * scrape was 3.8 ms of CPU, three quarters of it in vfprintf. */
static void text_put(struct text *t, const char *s, size_t n)
{
    text_reserve(t, n);
    if (t->failed)
        return;
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void text_str(struct text *t, const char *s)
{
    text_put(t, s, strlen(s));
}

static void text_ull(struct text *t, unsigned long long v)
{
    char buf[24];
    size_t i = sizeof(buf);
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    text_put(t, buf + i, sizeof(buf) - i);
}

static void text_ll(struct text *t, long long v)
{
    if (v < 0) {
        text_put(t, "-", 1);
        text_ull(t, 0ULL - (unsigned long long)v);
    } else {
        text_ull(t, (unsigned long long)v);
    }
}

/* v / 10^digits with that many decimals: 1234 ms as "1.234". */
static void text_fixed(struct text *t, long long v, int digits)
{
    unsigned long long scale = 1, u;
    for (int i = 0; i < digits; i++)
        scale *= 10;
    if (v < 0)
        text_put(t, "-", 1);
    u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    text_ull(t, u / scale);
    char frac[24];
    unsigned long long f = u % scale;
    frac[0] = '.';
    for (int i = digits; i > 0; i--) {
        frac[i] = (char)('0' + f % 10);
        f /= 10;
    }
    text_put(t, frac, (size_t)digits + 1);
}

/* A Prometheus label value (text format 0.0.4: backslash, quote, newline). */
static void text_label(struct text *t, const char *v)
{
    size_t n = strlen(v);
    text_reserve(t, 2 * n);
    if (t->failed)
        return;
    size_t off = t->len;
    metrics_escape_label(t->p, t->cap, &off, v);
    t->len = off;
}

/* A JSON string, quoted. */
static void text_json(struct text *t, const char *v)
{
    text_reserve(t, strlen(v) * 6 + 2);
    if (t->failed)
        return;
    t->p[t->len++] = '"';
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        if (*c == '"' || *c == '\\') {
            t->p[t->len++] = '\\';
            t->p[t->len++] = (char)*c;
        } else if (*c < 0x20 || *c == 0x7f) {
            t->len += (size_t)snprintf(t->p + t->len, 7, "\\u%04x", *c);
        } else {
            t->p[t->len++] = (char)*c;
        }
    }
    t->p[t->len++] = '"';
    t->p[t->len] = '\0';
}

static int text_reply(struct text *t, struct admin_reply *out, int status, const char *type)
{
    if (t->failed || !t->p) {
        free(t->p);
        return -ENOMEM;
    }
    out->status = status;
    out->content_type = type;
    out->body = t->p;
    out->len = t->len;
    return 0;
}

/* ---- one reading of a secret ---- */

/* Both clocks, read once per page. */
struct now {
    long long mono, real;
};

static long long to_real(const struct now *n, long long mono_ms)
{
    return n->real - (n->mono - mono_ms);
}

static const char *const state_names[] = {"missing", "ok", "stale", "failing"};

struct reading {
    enum metrics_state state;   /* METRICS_EXPIRED also once past max_stale unseen */
    long long size;             /* -1: none */
    long long age_ms;           /* -1: never fetched */
    long long last_attempt, next, lease;   /* CLOCK_MONOTONIC ms; 0: none */
    bool settled, required;
    struct metrics_backend *backend;
    char error[METRICS_ERROR_MAX];
    char version[METRICS_VERSION_MAX];
};

/* with_text: also copy the error and version (under the secret's
 * text_lock): /status and a failing secret in /health; /metrics needs
 * neither. */
static void read_secret(struct metrics_secret *s, const struct now *n, struct reading *r,
                        bool with_text)
{
    r->state = (enum metrics_state)atomic_load_explicit(&s->state, memory_order_relaxed);
    r->size = atomic_load_explicit(&s->size, memory_order_relaxed);
    long long ok = atomic_load_explicit(&s->last_success_ms, memory_order_relaxed);
    r->age_ms = ok ? n->mono - ok : -1;
    r->last_attempt = atomic_load_explicit(&s->last_attempt_ms, memory_order_relaxed);
    r->next = atomic_load_explicit(&s->next_ms, memory_order_relaxed);
    r->lease = atomic_load_explicit(&s->lease_expiry_ms, memory_order_relaxed);
    r->settled = atomic_load_explicit(&s->settled, memory_order_relaxed);
    r->required = atomic_load_explicit(&s->required, memory_order_relaxed);
    r->backend = atomic_load_explicit(&s->backend, memory_order_relaxed);
    /* The store decides "past max_stale" when something asks; a page asks
     * too, so a secret nobody opened still shows failing in time. */
    long long max_stale = atomic_load_explicit(&s->max_stale_ms, memory_order_relaxed);
    if (r->size >= 0 && r->age_ms > max_stale && r->state != METRICS_ABSENT)
        r->state = METRICS_EXPIRED;
    r->error[0] = r->version[0] = '\0';
    if (with_text)
        metrics_secret_text_get(s, r->error, sizeof(r->error), r->version, sizeof(r->version));
}

/* What /health says of a secret that is not ok ("stale 5m12s: ..."). */
static void health_line(const struct reading *r, char *out, size_t len)
{
    char age[32] = "";
    if (r->age_ms >= 0) {
        age[0] = ' ';
        duration_format(r->age_ms - r->age_ms % 1000, age + 1, sizeof(age) - 1);
    }
    const char *err = r->error[0] ? r->error : !r->settled ? "not fetched yet" : "no value";
    snprintf(out, len, "%s%s: %s", state_names[r->state], r->state == METRICS_ABSENT ? "" : age,
             err);
}

/* ---- /health ---- */

static int page_health(struct broker *b, struct admin_reply *out)
{
    struct metrics_view v;
    struct now n = {clock_mono_ms(), clock_real_ms()};
    struct text t = {0};
    struct reading *r = malloc(sizeof(*r));
    size_t bad = 0;
    if (!r)
        return -ENOMEM;
    metrics_view_begin(b->metrics, &v);
    for (size_t i = 0; i < v.n; i++) {
        read_secret(v.secrets[i], &n, r, false);
        if (!r->required || r->state == METRICS_FRESH)
            continue;
        metrics_secret_text_get(v.secrets[i], r->error, sizeof(r->error), NULL, 0);
        char line[METRICS_ERROR_MAX + 64];
        health_line(r, line, sizeof(line));
        text_add(&t, "%s", bad++ ? "," : "{\"status\":\"degraded\",\"secrets\":{");
        text_json(&t, v.secrets[i]->name);
        text_add(&t, ":");
        text_json(&t, line);
    }
    metrics_view_end(b->metrics);
    free(r);
    if (bad)
        text_add(&t, "}}\n");
    else
        text_add(&t, "{\"status\":\"ok\"}\n");
    return text_reply(&t, out, bad ? 503 : 200, "application/json");
}

/* ---- /metrics ---- */

static void head(struct text *t, const char *name, const char *type, const char *help)
{
    text_add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* "runsecrets_x{secret=\"NAME\"" (the caller closes the braces). */
static void series(struct text *t, const char *metric, const char *label, const char *value)
{
    text_str(t, metric);
    text_put(t, "{", 1);
    text_str(t, label);
    text_put(t, "=\"", 2);
    text_label(t, value);
    text_put(t, "\"", 1);
}

/* "} V\n" */
static void close_ull(struct text *t, unsigned long long v)
{
    text_put(t, "} ", 2);
    text_ull(t, v);
    text_put(t, "\n", 1);
}

/* metric{label="value",result="result"} n */
static void by_result(struct text *t, const char *metric, const char *label, const char *value,
                      const char *result, unsigned long long n)
{
    series(t, metric, label, value);
    text_put(t, ",result=\"", 9);
    text_str(t, result);
    text_put(t, "\"", 1);
    close_ull(t, n);
}

static void close_fixed(struct text *t, long long v, int digits)
{
    text_put(t, "} ", 2);
    text_fixed(t, v, digits);
    text_put(t, "\n", 1);
}

/* What /proc says of us. */
struct proc {
    long long rss, vsize, locked;   /* bytes; -1 unknown */
    long long fds, max_fds;
    double cpu_seconds;
};

static long long status_kb(const char *line, const char *key)
{
    size_t k = strlen(key);
    if (strncmp(line, key, k) != 0)
        return -1;
    return strtoll(line + k, NULL, 10) * 1024;
}

static void read_proc(struct proc *p)
{
    p->rss = p->vsize = p->locked = p->fds = p->max_fds = -1;
    p->cpu_seconds = -1;
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        long long v;
        if ((v = status_kb(line, "VmRSS:")) >= 0)
            p->rss = v;
        else if ((v = status_kb(line, "VmSize:")) >= 0)
            p->vsize = v;
        else if ((v = status_kb(line, "VmLck:")) >= 0)
            p->locked = v;
    }
    if (f)
        fclose(f);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        p->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        p->max_fds = (long long)rl.rlim_cur;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long long n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            n += e->d_name[0] != '.';
        closedir(d);
        p->fds = n - 1;   /* not the one opendir holds */
    }
}

/* metrics_bucket_bounds as the le label shows them. */
static const char *const bucket_names[METRICS_BUCKETS] = {"0.005", "0.01", "0.025", "0.05", "0.1",
                                                          "0.25",  "0.5",  "1",     "2.5",  "5",
                                                          "10"};
static const char *const read_names[METRICS_READ_N] = {"allow", "deny", "error"};
static const char *const fetch_names[METRICS_FETCH_N] = {"ok", "unchanged", "not_found", "error"};

static void metrics_secrets(struct text *t, const struct metrics_view *v, unsigned long long opens,
                            const struct now *n, struct reading *r, long long *cache_bytes)
{
    head(t, "runsecrets_reads_total", "counter",
         "Opens of a secret's file by outcome: allow (served), deny (refused by the access "
         "check), error (no value to serve).");
    for (size_t i = 0; i < v->n; i++)
        for (int k = 0; k < METRICS_READ_N; k++) {
            by_result(t, "runsecrets_reads_total", "secret", v->secrets[i]->name, read_names[k],
                      atomic_load_explicit(&v->secrets[i]->reads[k], memory_order_relaxed));
        }
    head(t, "runsecrets_opens_total", "counter",
         "Opens of secret files, every outcome, every secret ever configured.");
    text_str(t, "runsecrets_opens_total ");
    text_ull(t, opens);
    text_put(t, "\n", 1);

    struct text age = {0}, stale = {0}, present = {0}, lease = {0};
    for (size_t i = 0; i < v->n; i++) {
        const char *name = v->secrets[i]->name;
        read_secret(v->secrets[i], n, r, false);
        if (r->size >= 0)
            *cache_bytes += (long long)cache_sealed_size((size_t)r->size);
        if (r->age_ms >= 0) {
            series(&age, "runsecrets_secret_age_seconds", "secret", name);
            close_fixed(&age, r->age_ms, 3);
        }
        series(&stale, "runsecrets_secret_stale", "secret", name);
        close_ull(&stale, r->state == METRICS_STALE || r->state == METRICS_EXPIRED);
        series(&present, "runsecrets_secret_present", "secret", name);
        close_ull(&present, r->state != METRICS_ABSENT && r->state != METRICS_EXPIRED);
        if (r->lease) {
            series(&lease, "runsecrets_lease_expiry_timestamp_seconds", "secret", name);
            close_fixed(&lease, to_real(n, r->lease), 3);
        }
    }
    /* Each family's samples were gathered in a buffer of its own (one pass
     * over the secrets); now they go out under their heads. */
    const struct {
        const char *name, *help;
        struct text *samples;
    } fams[] = {
        {"runsecrets_secret_age_seconds",
         "Seconds since the value served was last fetched or confirmed.", &age},
        {"runsecrets_secret_stale",
         "1 while refreshes fail: the value served is stale, or withheld past max_stale.", &stale},
        {"runsecrets_secret_present", "1 while the secret's file serves a value.", &present},
        {"runsecrets_lease_expiry_timestamp_seconds",
         "When the value's lease or TTL ends (Unix time), for values that have one.", &lease},
    };
    for (size_t k = 0; k < sizeof(fams) / sizeof(fams[0]); k++) {
        head(t, fams[k].name, "gauge", fams[k].help);
        text_put(t, fams[k].samples->p ? fams[k].samples->p : "", fams[k].samples->len);
        t->failed = t->failed || fams[k].samples->failed;
        free(fams[k].samples->p);
    }
}

static void metrics_backends(struct text *t, const struct metrics_view *v, const struct now *n)
{
    head(t, "runsecrets_fetches_total", "counter",
         "Fetches by backend and outcome: ok (a value), unchanged (the value served is still "
         "current), not_found, error.");
    for (size_t i = 0; i < v->nb; i++)
        for (int k = 0; k < METRICS_FETCH_N; k++) {
            by_result(t, "runsecrets_fetches_total", "backend", v->backends[i]->name,
                      fetch_names[k],
                      atomic_load_explicit(&v->backends[i]->fetches[k], memory_order_relaxed));
        }
    head(t, "runsecrets_fetch_duration_seconds", "histogram",
         "Time of one request to a backend (a batch counts once).");
    for (size_t i = 0; i < v->nb; i++) {
        struct metrics_backend *bm = v->backends[i];
        unsigned long long count = atomic_load_explicit(&bm->count, memory_order_acquire);
        unsigned long long cum = 0;
        for (int k = 0; k < METRICS_BUCKETS; k++) {
            cum += atomic_load_explicit(&bm->buckets[k], memory_order_relaxed);
            series(t, "runsecrets_fetch_duration_seconds_bucket", "backend", bm->name);
            text_put(t, ",le=\"", 5);
            text_str(t, bucket_names[k]);
            text_put(t, "\"", 1);
            close_ull(t, cum < count ? cum : count);
        }
        series(t, "runsecrets_fetch_duration_seconds_bucket", "backend", bm->name);
        text_put(t, ",le=\"+Inf\"", 10);
        close_ull(t, count);
        series(t, "runsecrets_fetch_duration_seconds_sum", "backend", bm->name);
        close_fixed(t, (long long)atomic_load_explicit(&bm->sum_us, memory_order_relaxed), 6);
        series(t, "runsecrets_fetch_duration_seconds_count", "backend", bm->name);
        close_ull(t, count);
    }
    head(t, "runsecrets_backend_up", "gauge",
         "1 when the backend answered the last fetch (whatever it said), 0 when it did not; "
         "absent before the first fetch.");
    for (size_t i = 0; i < v->nb; i++) {
        int up = atomic_load_explicit(&v->backends[i]->up, memory_order_relaxed);
        if (up < 0)
            continue;
        series(t, "runsecrets_backend_up", "backend", v->backends[i]->name);
        text_add(t, "} %d\n", up);
    }
    head(t, "runsecrets_token_expiry_timestamp_seconds", "gauge",
         "When the backend's login token or credentials end (Unix time), when known.");
    for (size_t i = 0; i < v->nb; i++) {
        long long e = atomic_load_explicit(&v->backends[i]->auth_expires_unix_ms,
                                           memory_order_relaxed);
        if (e <= 0)
            continue;
        series(t, "runsecrets_token_expiry_timestamp_seconds", "backend", v->backends[i]->name);
        text_add(t, "} %.3f\n", (double)e / 1000.0);
    }
    (void)n;
}

static int page_metrics(struct broker *b, struct admin_reply *out)
{
    struct metrics_view v;
    struct now n = {clock_mono_ms(), clock_real_ms()};
    struct text t = {0};
    struct reading *r = malloc(sizeof(*r));
    struct proc p;
    long long cache_bytes = 0;
    if (!r)
        return -ENOMEM;
    read_proc(&p);   /* before the lock: /proc reads are slow */

    head(&t, "runsecrets_build_info", "gauge", "The version running; always 1.");
    text_add(&t, "runsecrets_build_info{version=\"");
    text_label(&t, RS_VERSION);
    text_add(&t, "\"} 1\n");
    metrics_view_begin(b->metrics, &v);
    text_reserve(&t, 8192 + v.n * 360 + v.nb * 1500);   /* one allocation, as a rule */
    metrics_secrets(&t, &v, metrics_view_opens(b->metrics), &n, r, &cache_bytes);
    metrics_backends(&t, &v, &n);
    unsigned long long ok = v.reloads_ok, failed = v.reloads_failed;
    metrics_view_end(b->metrics);
    free(r);

    head(&t, "runsecrets_reload_total", "counter", "Configuration reloads by outcome.");
    text_add(&t, "runsecrets_reload_total{result=\"ok\"} %llu\n", ok);
    text_add(&t, "runsecrets_reload_total{result=\"failed\"} %llu\n", failed);
    /* One unlabelled sample each; a negative value: not known here. */
    const struct {
        const char *name, *type, *help;
        long long v;       /* thousandths when milli */
        bool milli;
    } plain[] = {
        {"runsecrets_cache_bytes", "gauge",
         "Memory of the sealed (encrypted) values served, headers included.", cache_bytes, false},
        {"runsecrets_secure_memory_bytes", "gauge",
         "Locked memory (VmLck): keys, plaintext being served, guard pages.", p.locked, false},
        {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", p.rss, false},
        {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", p.vsize, false},
        {"process_open_fds", "gauge", "Number of open file descriptors.", p.fds, false},
        {"process_max_fds", "gauge", "Maximum number of open file descriptors.", p.max_fds, false},
        {"process_cpu_seconds_total", "counter", "User and system CPU time in seconds.",
         p.cpu_seconds < 0 ? -1 : (long long)(p.cpu_seconds * 1000 + 0.5), true},
        {"process_start_time_seconds", "gauge", "Start time of the process (Unix time).",
         b->started_real_ms, true},
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        if (plain[i].v < 0)
            continue;
        head(&t, plain[i].name, plain[i].type, plain[i].help);
        text_str(&t, plain[i].name);
        text_put(&t, " ", 1);
        if (plain[i].milli)
            text_fixed(&t, plain[i].v, 3);
        else
            text_ll(&t, plain[i].v);
        text_put(&t, "\n", 1);
    }
    return text_reply(&t, out, 200, "text/plain; version=0.0.4; charset=utf-8");
}

/* ---- /status ---- */

/* ,"key":"2026-12-02T12:00:00.000Z" for a wall-clock time; null for 0. */
static void json_real_time(struct text *t, const char *key, long long real)
{
    if (real <= 0) {
        text_add(t, ",\"%s\":null", key);
        return;
    }
    time_t sec = (time_t)(real / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    /* RFC 3339 by hand: strftime and printf were most of a /status. */
    char buf[32] = "0000-00-00T00:00:00.000Z\"";
    int f[] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
               (int)(real % 1000)};
    static const int at[] = {3, 6, 9, 12, 15, 18, 22}, width[] = {4, 2, 2, 2, 2, 2, 3};
    for (int k = 0; k < 7; k++)
        for (int d = 0, v = f[k]; d < width[k]; d++, v /= 10)
            buf[at[k] - d] = (char)('0' + v % 10);
    text_str(t, ",\"");
    text_str(t, key);
    text_str(t, "\":\"");
    text_str(t, buf);
}

/* The same for a CLOCK_MONOTONIC time (0: null). */
static void json_time(struct text *t, const char *key, const struct now *n, long long mono_ms)
{
    json_real_time(t, key, mono_ms ? to_real(n, mono_ms) : 0);
}

static const char *const auth_names[] = {"none", "pending", "ok", "failing"};

static int page_status(struct broker *b, struct admin_reply *out)
{
    struct metrics_view v;
    struct now n = {clock_mono_ms(), clock_real_ms()};
    struct text t = {0};
    struct reading *r = malloc(sizeof(*r));
    bool healthy = true;
    if (!r)
        return -ENOMEM;

    text_add(&t, "{\"version\":");
    text_json(&t, RS_VERSION);
    text_add(&t, ",\"pid\":%ld", (long)getpid());
    json_time(&t, "started", &n, b->started_mono_ms);
    text_add(&t, ",\"uptime_seconds\":%.3f", (double)(n.mono - b->started_mono_ms) / 1000.0);
    metrics_view_begin(b->metrics, &v);
    text_reserve(&t, 4096 + v.n * 400 + v.nb * 300);
    text_add(&t, ",\"generation\":%llu,\"secrets\":[", v.reloads_ok);
    for (size_t i = 0; i < v.n; i++) {
        read_secret(v.secrets[i], &n, r, true);
        healthy = healthy && (!r->required || r->state == METRICS_FRESH);
        text_str(&t, i ? ",{\"name\":" : "{\"name\":");
        text_json(&t, v.secrets[i]->name);
        text_str(&t, ",\"backend\":");
        text_json(&t, r->backend ? r->backend->name : "");
        text_str(&t, r->required ? ",\"required\":true,\"state\":\"" : ",\"required\":false,\"state\":\"");
        text_str(&t, state_names[r->state]);
        text_str(&t, "\",\"version\":");
        if (r->version[0])
            text_json(&t, r->version);
        else
            text_str(&t, "null");
        text_str(&t, ",\"size\":");
        if (r->size >= 0)
            text_ll(&t, r->size);
        else
            text_str(&t, "null");
        text_str(&t, ",\"age_seconds\":");
        if (r->age_ms >= 0)
            text_fixed(&t, r->age_ms, 3);
        else
            text_str(&t, "null");
        json_time(&t, "last_fetch", &n, r->last_attempt);
        json_time(&t, "last_success", &n, r->age_ms >= 0 ? n.mono - r->age_ms : 0);
        json_time(&t, "next_fetch", &n, r->next);
        text_str(&t, ",\"next_fetch_in_seconds\":");
        if (r->next)
            text_fixed(&t, r->next - n.mono, 3);
        else
            text_str(&t, "null");
        json_time(&t, "lease_expiry", &n, r->lease);
        text_str(&t, ",\"error\":");
        if (r->error[0])
            text_json(&t, r->error);
        else if (r->state == METRICS_ABSENT && !r->settled)
            text_json(&t, "not fetched yet");
        else
            text_str(&t, "null");
        text_str(&t, "}");
    }
    text_add(&t, "],\"backends\":[");
    for (size_t i = 0; i < v.nb; i++) {
        struct metrics_backend *bm = v.backends[i];
        int up = atomic_load_explicit(&bm->up, memory_order_relaxed);
        int auth = atomic_load_explicit(&bm->auth_state, memory_order_relaxed);
        long long exp = atomic_load_explicit(&bm->auth_expires_unix_ms, memory_order_relaxed);
        unsigned long long total = 0;
        for (int k = 0; k < METRICS_FETCH_N; k++)
            total += atomic_load_explicit(&bm->fetches[k], memory_order_relaxed);
        char method[METRICS_METHOD_MAX];
        metrics_backend_method_get(bm, method, sizeof(method));
        text_add(&t, "%s{\"name\":", i ? "," : "");
        text_json(&t, bm->name);
        text_add(&t, ",\"type\":");
        text_json(&t, atomic_load_explicit(&bm->type, memory_order_relaxed));
        text_add(&t, ",\"up\":%s,\"auth\":\"%s\",\"auth_method\":",
                 up < 0 ? "null" : up ? "true" : "false",
                 auth >= 0 && auth <= BACKEND_AUTH_FAILING ? auth_names[auth] : "none");
        if (method[0])
            text_json(&t, method);
        else
            text_add(&t, "null");
        /* The token's end is wall-clock already (the backend's word). */
        json_real_time(&t, "token_expiry", exp);
        text_add(&t, ",\"fetches\":%llu,\"failures\":%llu}", total,
                 atomic_load_explicit(&bm->fetches[METRICS_FETCH_ERROR], memory_order_relaxed));
    }
    metrics_view_end(b->metrics);
    free(r);
    text_add(&t, "],\"healthy\":%s}\n", healthy ? "true" : "false");
    return text_reply(&t, out, 200, "application/json");
}

int stats_page(void *arg, enum admin_page page, struct admin_reply *out)
{
    struct broker *b = arg;
    memset(out, 0, sizeof(*out));
    switch (page) {
    case ADMIN_PAGE_HEALTH:
        return page_health(b, out);
    case ADMIN_PAGE_METRICS:
        return page_metrics(b, out);
    case ADMIN_PAGE_STATUS:
        return page_status(b, out);
    }
    return -EINVAL;
}

bool stats_probe(void *arg)
{
    struct broker *b = arg;
    char err[512];
    if (!b->mountpoint[0])
        return false;
    if (b->mount_ns)
        return mountns_probe(b->mount_ns, b->mountpoint, err, sizeof(err)) == 0;
    return mountpoint_probe(b->mountpoint, err, sizeof(err)) == 0;
}
