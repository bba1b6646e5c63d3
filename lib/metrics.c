/* metrics.c - the registry of lib/metrics.h: objects by name in two open
 * addressing tables (binding 10,000 secrets stays linear), published lists
 * replaced whole. */
#include "lib/metrics.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const double metrics_bucket_bounds[METRICS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                       0.5,   1,    2.5,   5,    10};

/* name -> object; cap is a power of two, at most half full. */
struct table {
    void **slots;
    size_t cap, n;
};

struct metrics {
    pthread_mutex_t lock;          /* the tables and published lists (metrics.h) */
    struct table secrets, backends;
    struct metrics_secret **pub_secrets;
    size_t n_pub_secrets;
    struct metrics_backend **pub_backends;
    size_t n_pub_backends;
    atomic_ullong reloads[2];      /* failed, ok */
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* The slot of name in t (empty or matching); name_of reads an object's. */
static size_t table_slot(const struct table *t, const char *name,
                         const char *(*name_of)(const void *))
{
    size_t i = (size_t)hash_name(name) & (t->cap - 1);
    while (t->slots[i] && strcmp(name_of(t->slots[i]), name) != 0)
        i = (i + 1) & (t->cap - 1);
    return i;
}

static int table_grow(struct table *t, const char *(*name_of)(const void *))
{
    if (t->cap && (t->n + 1) * 2 <= t->cap)
        return 0;
    struct table nt = {.cap = t->cap ? t->cap * 2 : 64, .n = t->n};
    nt.slots = calloc(nt.cap, sizeof(*nt.slots));
    if (!nt.slots)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i])
            nt.slots[table_slot(&nt, name_of(t->slots[i]), name_of)] = t->slots[i];
    free(t->slots);
    *t = nt;
    return 0;
}

static const char *secret_name(const void *o)
{
    return ((const struct metrics_secret *)o)->name;
}

static const char *backend_name_of(const void *o)
{
    return ((const struct metrics_backend *)o)->name;
}

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

static void secret_free(struct metrics_secret *s)
{
    pthread_mutex_destroy(&s->text_lock);
    free(s->error);
    free(s->version);
    free(s);
}

static void backend_free(struct metrics_backend *b)
{
    pthread_mutex_destroy(&b->text_lock);
    free(b);
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->secrets.cap; i++)
        if (m->secrets.slots[i])
            secret_free(m->secrets.slots[i]);
    for (size_t i = 0; i < m->backends.cap; i++)
        if (m->backends.slots[i])
            backend_free(m->backends.slots[i]);
    free(m->secrets.slots);
    free(m->backends.slots);
    free(m->pub_secrets);
    free(m->pub_backends);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* The object named name in t, made by make() on first use; under
 * metrics.lock. NULL on ENOMEM. */
static void *table_get(struct metrics *m, struct table *t, const char *(*name_of)(const void *),
                       void *(*make)(const char *name, size_t len), const char *name)
{
    void *o = NULL;
    pthread_mutex_lock(&m->lock);
    if (table_grow(t, name_of) == 0) {
        size_t i = table_slot(t, name, name_of);
        o = t->slots[i];
        if (!o && (o = make(name, strlen(name)))) {
            t->slots[i] = o;
            t->n++;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return o;
}

static void *secret_make(const char *name, size_t len)
{
    struct metrics_secret *s = calloc(1, sizeof(*s) + len + 1);
    if (!s || pthread_mutex_init(&s->text_lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    memcpy(s->name, name, len + 1);
    atomic_init(&s->size, -1);
    return s;
}

static void *backend_make(const char *name, size_t len)
{
    struct metrics_backend *b = calloc(1, sizeof(*b) + len + 1);
    if (!b || pthread_mutex_init(&b->text_lock, NULL) != 0) {
        free(b);
        return NULL;
    }
    memcpy(b->name, name, len + 1);
    atomic_init(&b->up, -1);
    atomic_init(&b->type, "");
    return b;
}

struct metrics_secret *metrics_secret_get(struct metrics *m, const char *name)
{
    return table_get(m, &m->secrets, secret_name, secret_make, name);
}

struct metrics_backend *metrics_backend_get(struct metrics *m, const char *name)
{
    return table_get(m, &m->backends, backend_name_of, backend_make, name);
}

int metrics_publish(struct metrics *m, struct metrics_secret *const *secrets, size_t n,
                    struct metrics_backend *const *backends, size_t nb)
{
    struct metrics_secret **ps = calloc(n + 1, sizeof(*ps));
    struct metrics_backend **pb = calloc(nb + 1, sizeof(*pb));
    if (!ps || !pb) {
        free(ps);
        free(pb);
        return -ENOMEM;
    }
    if (n)
        memcpy(ps, secrets, n * sizeof(*ps));
    if (nb)
        memcpy(pb, backends, nb * sizeof(*pb));
    pthread_mutex_lock(&m->lock);
    free(m->pub_secrets);
    free(m->pub_backends);
    m->pub_secrets = ps;
    m->n_pub_secrets = n;
    m->pub_backends = pb;
    m->n_pub_backends = nb;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void metrics_reload_done(struct metrics *m, bool ok)
{
    atomic_fetch_add_explicit(&m->reloads[ok ? 1 : 0], 1, memory_order_relaxed);
}

void metrics_view_begin(struct metrics *m, struct metrics_view *v)
{
    pthread_mutex_lock(&m->lock);
    v->secrets = m->pub_secrets;
    v->n = m->n_pub_secrets;
    v->backends = m->pub_backends;
    v->nb = m->n_pub_backends;
    v->reloads_ok = atomic_load_explicit(&m->reloads[1], memory_order_relaxed);
    v->reloads_failed = atomic_load_explicit(&m->reloads[0], memory_order_relaxed);
}

unsigned long long metrics_view_opens(struct metrics *m)
{
    unsigned long long opens = 0;
    for (size_t i = 0; i < m->secrets.cap; i++) {
        struct metrics_secret *s = m->secrets.slots[i];
        for (int r = 0; s && r < METRICS_READ_N; r++)
            opens += atomic_load_explicit(&s->reads[r], memory_order_relaxed);
    }
    return opens;
}

void metrics_view_end(struct metrics *m)
{
    pthread_mutex_unlock(&m->lock);
}

void metrics_fetch(struct metrics_backend *b, enum metrics_fetch r, double seconds)
{
    if (!b)
        return;
    atomic_fetch_add_explicit(&b->fetches[r], 1, memory_order_relaxed);
    if (seconds < 0)
        return;
    size_t k = 0;
    while (k < METRICS_BUCKETS && seconds > metrics_bucket_bounds[k])
        k++;
    if (k < METRICS_BUCKETS)
        atomic_fetch_add_explicit(&b->buckets[k], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->sum_us, (unsigned long long)(seconds * 1e6 + 0.5),
                              memory_order_relaxed);
    /* The count last (release): a page reads it first (acquire) and caps
     * the cumulative buckets at it, so no finite bucket tops +Inf. */
    atomic_fetch_add_explicit(&b->count, 1, memory_order_release);
}

/* Printable ASCII only: a backend's text could carry anything. */
static void copy_text(char *dst, size_t len, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < len; i++)
        dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
    dst[i] = '\0';
}

/* A printable copy of src, at most max - 1 bytes; NULL for NULL, "" or
 * out of memory. */
static char *dup_text(const char *src, size_t max)
{
    if (!src || !src[0])
        return NULL;
    size_t n = strnlen(src, max - 1);
    char *d = malloc(n + 1);
    if (d)
        copy_text(d, n + 1, src);
    return d;
}

void metrics_secret_text(struct metrics_secret *s, const char *error, const char *version)
{
    if (!s)
        return;
    /* Most backends have no versions, and a version seldom changes: a
     * copy of its own only when there is one (no fixed array in each of
     * 10,000 objects). Out of memory: the old version stays. */
    char *e = dup_text(error, METRICS_ERROR_MAX), *v = dup_text(version, METRICS_VERSION_MAX);
    char *old_v = NULL;
    pthread_mutex_lock(&s->text_lock);
    char *old = s->error;
    s->error = e;
    if (v) {
        old_v = s->version;
        s->version = v;
    }
    pthread_mutex_unlock(&s->text_lock);
    free(old);
    free(old_v);
}

void metrics_secret_text_get(struct metrics_secret *s, char *error, size_t errlen, char *version,
                             size_t verlen)
{
    pthread_mutex_lock(&s->text_lock);
    if (error && errlen)
        copy_text(error, errlen, s->error ? s->error : "");
    if (version && verlen)
        copy_text(version, verlen, s->version ? s->version : "");
    pthread_mutex_unlock(&s->text_lock);
}

void metrics_backend_method(struct metrics_backend *b, const char *method)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->text_lock);
    copy_text(b->method, sizeof(b->method), method);
    pthread_mutex_unlock(&b->text_lock);
}

void metrics_backend_method_get(struct metrics_backend *b, char *out, size_t len)
{
    pthread_mutex_lock(&b->text_lock);
    copy_text(out, len, b->method);
    pthread_mutex_unlock(&b->text_lock);
}

void metrics_escape_label(char *buf, size_t len, size_t *off, const char *value)
{
    if (len == 0)
        return;
    for (; *value; value++) {
        const char *esc = *value == '\\' ? "\\\\" : *value == '"' ? "\\\"" : *value == '\n' ? "\\n" : NULL;
        size_t need = esc ? 2 : 1;
        if (*off + need >= len)
            break;
        if (esc) {
            memcpy(buf + *off, esc, 2);
        } else {
            buf[*off] = *value;
        }
        *off += need;
    }
    buf[*off < len ? *off : len - 1] = '\0';
}
