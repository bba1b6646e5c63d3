/* audit.c - the access policy's audit trail (see audit.h). */
#include "policy/audit.h"
#include "lib/clock.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The repeats table: AUDIT_BUCKETS sets of AUDIT_WAYS slots. A caller
 * opening more distinct secrets than a set holds within repeat_after
 * pushes the oldest slot out, whose pending count is then written on a
 * line of its own: nothing is lost, lines are only less folded. 4,096
 * slots hold a host's busy minute (a slot is ~80 bytes plus the name). */
#define AUDIT_WAYS 4
#define AUDIT_BUCKETS 1024
/* A denial is written at least once a second per (secret, caller). */
#define AUDIT_DENY_MAX_MS 1000LL
/* One line: the secret (1,024), the exe path (1,024) and the cgroup (512)
 * escaped (x6 at worst) could exceed it; an escaped field is cut to fit
 * and the line stays JSON. */
#define AUDIT_LINE_MAX 8192
#define AUDIT_SYSLOG_DEFAULT "/dev/log"
/* LOG_AUTHPRIV (10), as sshd and sudo log: access decisions are for the
 * security log, not the general one. */
#define AUDIT_SYSLOG_FACILITY (10 << 3)

struct slot {
    char *name;                   /* owned; NULL: free */
    uint64_t hash;
    pid_t pid;
    unsigned long long who;       /* start time; the uid for pid 0 */
    uid_t uid;
    gid_t gid;
    enum policy_decision d;
    long long last_ms;            /* monotonic: the last line written */
    unsigned long long repeats;   /* folded since */
};

struct policy_audit_log {
    pthread_mutex_t lock;         /* audit.lock: protects everything below but ticker */
    pthread_cond_t tick;          /* the ticker's wait (CLOCK_MONOTONIC); stop wakes it */
    bool stopping;
    pthread_t ticker;             /* set once by new, joined by free */
    enum policy_audit_sink sink;
    char *path;                   /* owned: the file or socket path; NULL otherwise */
    int fd;                       /* the sink: 2, the file, the socket; -1 none */
    long long repeat_ms;
    long long warned_ms;          /* the last "audit write failed" warning */
    struct slot *slots;           /* AUDIT_BUCKETS * AUDIT_WAYS */
};

/* ---- the line ---- */

/* A line being built: fields are appended whole or not at all, and room
 * for "}\n" and the NUL is always kept, so a line cut to fit is JSON. */
#define BUF_RESERVE 3

struct buf {
    char *p;
    size_t cap, len;
};

static size_t room(const struct buf *b)
{
    return b->cap > b->len + BUF_RESERVE ? b->cap - b->len - BUF_RESERVE : 0;
}

static bool put(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n > room(b))
        return false;
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
    return true;
}

/* ,"key":"value" with value escaped, cut (on a character) to fit. */
static void put_str(struct buf *b, const char *key, const char *val)
{
    if (!val || strlen(key) + 7 > room(b))
        return;
    put(b, ",\"");
    put(b, key);
    put(b, "\":\"");
    /* room(b) - 1 characters leave room for the closing quote. */
    b->len += log_json_escape(b->p + b->len, room(b), val);
    put(b, "\"");
}

static void put_num(struct buf *b, const char *key, long long v)
{
    char num[64];
    snprintf(num, sizeof(num), ",\"%s\":%lld", key, v);
    put(b, num);
}

size_t policy_audit_format(char *out, size_t cap, const struct policy_audit_line *a, bool summary)
{
    struct buf b = {.p = out, .cap = cap, .len = 0};
    const struct policy_proc *w = a->who;
    char when[40];

    log_time(when, sizeof(when));

    /* "level" and "msg" as the broker's own log lines, so one reader of
     * stderr takes both; "audit" tells them apart. */
    put(&b, "{\"time\":\"");
    put(&b, when);
    put(&b, a->d == POLICY_ALLOW && !a->error ? "\",\"level\":\"info\"" : "\",\"level\":\"warn\"");
    put(&b, summary ? ",\"msg\":\"open repeats\",\"audit\":true" : ",\"msg\":\"open\",\"audit\":true");
    /* The fixed fields first, then the strings, those a caller chooses
     * (its executable's path, its cgroup's name) last: a line cut to fit
     * loses the end of what the caller chose, never the decision. */
    put_str(&b, "decision", a->d == POLICY_ALLOW ? "allow" : "deny");
    if (!summary) {
        if (a->rule == POLICY_RULE_MODES)
            put_str(&b, "rule", "file modes");
        else if (a->rule < 0)
            put_str(&b, "rule", "default");
        else
            put_num(&b, "rule", a->rule);
    }
    put_num(&b, "pid", (long long)w->pid);
    put_num(&b, "uid", (long long)w->uid);
    put_num(&b, "gid", (long long)w->gid);
    if (a->repeats)
        put_num(&b, "repeats", (long long)a->repeats);
    put_str(&b, "secret", a->secret);
    put_str(&b, "backend", a->backend);
    put_str(&b, "error", a->error);
    if (!summary && w->has_pid) {
        char id[64];
        if (w->has_exe) {
            /* What rules compare: a path names whatever is there now. */
            snprintf(id, sizeof(id), "%llu:%llu", (unsigned long long)w->exe_dev,
                     (unsigned long long)w->exe_ino);
            put_str(&b, "exe_id", id);
        }
        if (w->runtime != POLICY_RUNTIME_NONE && w->container[0]) {
            char c[POLICY_CONTAINER_ID_MAX + 24];
            snprintf(c, sizeof(c), "%s:%s", policy_runtime_name(w->runtime), w->container);
            put_str(&b, "container", c);
        }
        put_str(&b, "cgroup", w->cgroup[0] ? w->cgroup : NULL);
        put_str(&b, "exe", w->exe_path[0] ? w->exe_path : NULL);
    }
    b.p[b.len++] = '}';
    b.p[b.len++] = '\n';
    b.p[b.len] = '\0';
    return b.len;
}

/* ---- the sink ---- */

static int open_file(const char *path, int *fd, char *err, size_t errlen)
{
    /* The folder, when missing (the default /var/log/runsecrets on a
     * fresh host); only the last level, as logrotate's own "create". */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            snprintf(err, errlen, "policy.audit.sink: file:%s: cannot create its folder: %s", path,
                     strerror(e));
            return -e;
        }
    }
    /* O_NOFOLLOW: a link planted where the log goes must not redirect it. */
    *fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    if (*fd < 0) {
        int e = errno;
        snprintf(err, errlen, "policy.audit.sink: file:%s: %s", path,
                 e == ELOOP ? "is a symbolic link" : strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(*fd);
        *fd = -1;
        snprintf(err, errlen, "policy.audit.sink: file:%s: not a regular file", path);
        return -EINVAL;
    }
    return 0;
}

static int open_syslog(const char *path, int *fd, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "policy.audit.sink: syslog:%s: path too long", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    *fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (*fd < 0 || connect(*fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        snprintf(err, errlen, "policy.audit.sink: syslog:%s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

static int sink_open(enum policy_audit_sink sink, const char *path, int *fd, char *err,
                     size_t errlen)
{
    switch (sink) {
    case POLICY_AUDIT_STDERR:
        *fd = STDERR_FILENO;
        return 0;
    case POLICY_AUDIT_FILE:
        return open_file(path, fd, err, errlen);
    case POLICY_AUDIT_SYSLOG:
        return open_syslog(path ? path : AUDIT_SYSLOG_DEFAULT, fd, err, errlen);
    }
    return -EINVAL;
}

static void sink_close(enum policy_audit_sink sink, int fd)
{
    if (fd >= 0 && sink != POLICY_AUDIT_STDERR)
        close(fd);
}

/* Under audit.lock. A failed write is worth one warning a minute in the
 * broker's log; a slow or full log must not stop opens. */
static void emit(struct policy_audit_log *l, const char *line, size_t len, bool allow)
{
    ssize_t rc;
    if (l->sink == POLICY_AUDIT_SYSLOG) {
        /* RFC 3164, as syslog(3) sends it to /dev/log. */
        char msg[AUDIT_LINE_MAX + 64], when[32];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(when, sizeof(when), "%b %e %H:%M:%S", &tm);
        int pri = AUDIT_SYSLOG_FACILITY | (allow ? 6 : 4);   /* info; warning */
        int n = snprintf(msg, sizeof(msg), "<%d>%s runsecrets[%ld]: %.*s", pri, when,
                         (long)getpid(), (int)(len - 1), line);
        size_t mlen = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
        /* MSG_DONTWAIT: a stalled syslog daemon (its queue full) costs
         * lines, counted in the warning, never a FUSE thread. */
        rc = send(l->fd, msg, mlen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (rc < 0 && (errno == ECONNREFUSED || errno == ENOTCONN)) {
            /* The syslog daemon restarted: connect again, once. */
            char err[256];
            int fd;
            if (open_syslog(l->path ? l->path : AUDIT_SYSLOG_DEFAULT, &fd, err, sizeof(err)) == 0) {
                close(l->fd);
                l->fd = fd;
                rc = send(l->fd, msg, mlen, MSG_NOSIGNAL | MSG_DONTWAIT);
            }
        }
    } else {
        rc = write(l->fd, line, len);
    }
    if (rc < 0) {
        int e = errno;
        long long now = clock_mono_ms();
        if (l->warned_ms == 0 || now - l->warned_ms >= 60000) {
            l->warned_ms = now;
            struct log_fields f = {.error = strerror(e), .path = l->path};
            log_f(LOG_WARN, &f, "audit line not written");
        }
    }
}

/* ---- the repeats table ---- */

static uint64_t slot_hash(const char *secret, pid_t pid, unsigned long long who,
                          enum policy_decision d)
{
    uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a, then the numbers mixed in */
    for (const unsigned char *p = (const unsigned char *)secret; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    h ^= (uint64_t)(uint32_t)pid * 0x9e3779b97f4a7c15ull;
    h ^= (who + (uint64_t)d) * 0xc2b2ae3d27d4eb4full;
    h ^= h >> 29;
    return h;
}

static long long interval_ms(const struct policy_audit_log *l, enum policy_decision d)
{
    if (d == POLICY_DENY && l->repeat_ms > AUDIT_DENY_MAX_MS)
        return AUDIT_DENY_MAX_MS;
    return l->repeat_ms;
}

/* Under audit.lock: the pending count of s on a line of its own. */
/* Under audit.lock: one line to the sink. On stderr beside a text log
 * (--log-format text) the line is one of the log's, in its format (and
 * level); elsewhere JSON. */
static void emit_line(struct policy_audit_log *l, const struct policy_audit_line *a, bool summary)
{
    bool allow = a->d == POLICY_ALLOW && !a->error;
    if (l->sink == POLICY_AUDIT_STDERR && log_is_text()) {
        const struct policy_proc *w = a->who;
        char rule[24], id[64], c[POLICY_CONTAINER_ID_MAX + 24];
        struct log_num rep = {"repeats", (long long)a->repeats};
        struct log_fields f = {.secret = a->secret, .backend = a->backend,
                               .result = a->d == POLICY_ALLOW ? "allow" : "deny",
                               .error = a->error, .has_caller = true, .uid = (long)w->uid,
                               .gid = (long)w->gid, .pid = (long)w->pid,
                               .nums = a->repeats ? &rep : NULL, .n_nums = a->repeats ? 1 : 0};
        if (!summary) {
            if (a->rule >= 0)
                snprintf(rule, sizeof(rule), "%d", a->rule);
            f.rule = a->rule >= 0 ? rule : a->rule == POLICY_RULE_MODES ? "file modes" : "default";
        }
        if (!summary && w->has_pid) {
            if (w->has_exe) {
                snprintf(id, sizeof(id), "%llu:%llu", (unsigned long long)w->exe_dev,
                         (unsigned long long)w->exe_ino);
                f.exe = w->exe_path[0] ? w->exe_path : id;
            }
            f.cgroup = w->cgroup[0] ? w->cgroup : NULL;
            if (w->runtime != POLICY_RUNTIME_NONE && w->container[0]) {
                snprintf(c, sizeof(c), "%s:%s", policy_runtime_name(w->runtime), w->container);
                f.container = c;
            }
        }
        log_f(allow ? LOG_INFO : LOG_WARN, &f, summary ? "open repeats" : "open");
        return;
    }
    char line[AUDIT_LINE_MAX];
    size_t n = policy_audit_format(line, sizeof(line), a, summary);
    emit(l, line, n, allow);
}

static void flush_slot(struct policy_audit_log *l, struct slot *s)
{
    if (!s->name || s->repeats == 0)
        return;
    struct policy_proc who = {.pid = s->pid, .uid = s->uid, .gid = s->gid};
    struct policy_audit_line a = {.secret = s->name, .who = &who, .d = s->d, .rule = -1,
                                  .repeats = s->repeats};
    emit_line(l, &a, true);
    s->repeats = 0;
}

static void flush_all(struct policy_audit_log *l, bool clear)
{
    for (size_t i = 0; i < (size_t)AUDIT_BUCKETS * AUDIT_WAYS; i++) {
        flush_slot(l, &l->slots[i]);
        if (clear) {
            free(l->slots[i].name);
            l->slots[i] = (struct slot){0};
        }
    }
}

/* Under audit.lock: the counts whose window has passed with no new open
 * to carry them, each on a line of its own — so a burst of denials that
 * stops is written within a second, not at the next one. */
static void tick_locked(struct policy_audit_log *l)
{
    long long now = clock_mono_ms();
    for (size_t i = 0; i < (size_t)AUDIT_BUCKETS * AUDIT_WAYS; i++) {
        struct slot *s = &l->slots[i];
        if (s->name && s->repeats && now - s->last_ms >= interval_ms(l, s->d)) {
            flush_slot(l, s);
            s->last_ms = now;
        }
    }
}

static void *ticker_main(void *arg)
{
    struct policy_audit_log *l = arg;
    pthread_setname_np(pthread_self(), "rs-audit");
    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_sec += 1;
        int rc = pthread_cond_timedwait(&l->tick, &l->lock, &t);
        if (rc == ETIMEDOUT && !l->stopping)
            tick_locked(l);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

bool policy_audit_log_admit(struct policy_audit_log *l, const char *secret,
                            const struct policy_proc *who, enum policy_decision d,
                            unsigned long long *repeats)
{
    /* The identity when it was read; else (pid 0, or no policy: nothing
     * read from /proc) the uid, so a pid reused by another user is another
     * caller. */
    unsigned long long id = who->start_time ? who->start_time : (unsigned long long)who->uid;
    uint64_t h = slot_hash(secret, who->pid, id, d);
    long long now = clock_mono_ms();
    *repeats = 0;

    pthread_mutex_lock(&l->lock);
    if (l->repeat_ms <= 0) {   /* every decision on its own line */
        pthread_mutex_unlock(&l->lock);
        return true;
    }
    struct slot *set = &l->slots[(h % AUDIT_BUCKETS) * AUDIT_WAYS];
    struct slot *s = NULL, *victim = NULL;
    for (size_t i = 0; i < AUDIT_WAYS; i++) {
        struct slot *c = &set[i];
        if (c->name && c->hash == h && c->pid == who->pid && c->who == id && c->d == d &&
            strcmp(c->name, secret) == 0) {
            s = c;
            break;
        }
        /* A free slot first, then the least recently written. */
        if (!victim || (victim->name && (!c->name || c->last_ms < victim->last_ms)))
            victim = c;
    }
    bool due;
    if (s) {
        due = now - s->last_ms >= interval_ms(l, d);
        if (due) {
            *repeats = s->repeats;
            s->repeats = 0;
            s->last_ms = now;
        } else {
            s->repeats++;
        }
    } else {
        due = true;
        char *name = strdup(secret);
        if (name) {   /* out of memory: the line is written, not folded */
            flush_slot(l, victim);
            free(victim->name);
            *victim = (struct slot){.name = name, .hash = h, .pid = who->pid, .who = id,
                                    .uid = who->uid, .gid = who->gid, .d = d, .last_ms = now};
        }
    }
    pthread_mutex_unlock(&l->lock);
    return due;
}

void policy_audit_log_write(struct policy_audit_log *l, const struct policy_audit_line *a)
{
    pthread_mutex_lock(&l->lock);
    emit_line(l, a, false);
    pthread_mutex_unlock(&l->lock);
}

/* ---- an open's line ---- */

void policy_audit_open(const struct policy_subject *s, const struct policy_object *o,
                       enum policy_decision d, int rc, const struct policy_verdict *v)
{
    char error[64] = "";
    if (rc < 0)
        snprintf(error, sizeof(error), "%s", strerror(-rc));
    /* A failed open is always written (its count stays with the allows of
     * its slot); a decision only when due. */
    if (!v->due && rc >= 0)
        return;
    struct policy_proc bare = {.pid = s->pid, .uid = s->uid, .gid = s->gid};
    struct policy_audit_line a = {
        .secret = o->name, .backend = o->backend, .who = v->proc ? v->proc : &bare,
        .d = d, .rule = v->rule, .error = rc < 0 ? error : v->why,
        .repeats = v->due ? v->repeats : 0,
    };
    policy_audit_log_write(v->log, &a);
}

/* ---- life ---- */

int policy_audit_log_new(const struct policy_audit *cfg, struct policy_audit_log **out,
                         char *err, size_t errlen)
{
    struct policy_audit_log *l = calloc(1, sizeof(*l));
    int rc = -ENOMEM;
    *out = NULL;
    if (!l)
        goto oom;
    l->fd = -1;
    l->slots = calloc((size_t)AUDIT_BUCKETS * AUDIT_WAYS, sizeof(*l->slots));
    if (!l->slots || (cfg->path && !(l->path = strdup(cfg->path))))
        goto oom;
    l->sink = cfg->sink;
    l->repeat_ms = cfg->repeat_after;
    rc = sink_open(l->sink, l->path, &l->fd, err, errlen);
    if (rc < 0)
        goto fail;
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->tick, &ca);
    pthread_condattr_destroy(&ca);
    rc = -pthread_create(&l->ticker, NULL, ticker_main, l);
    if (rc < 0) {
        snprintf(err, errlen, "audit: cannot start its thread: %s", strerror(-rc));
        pthread_cond_destroy(&l->tick);
        pthread_mutex_destroy(&l->lock);
        sink_close(l->sink, l->fd);
        goto fail;
    }
    *out = l;
    return 0;
oom:
    snprintf(err, errlen, "audit: out of memory");
fail:
    if (l) {
        free(l->slots);
        free(l->path);
        free(l);
    }
    return rc;
}

const struct policy_audit *policy_audit_of(const struct policy_rules *p)
{
    static const struct policy_audit dflt = {.sink = POLICY_AUDIT_STDERR,
                                             .repeat_after = POLICY_AUDIT_DEFAULT_REPEAT};
    return p ? &p->audit : &dflt;
}

int policy_audit_check(const struct policy_audit *cfg, char *err, size_t errlen)
{
    int fd;
    int rc = sink_open(cfg->sink, cfg->path, &fd, err, errlen);
    if (rc == 0)
        sink_close(cfg->sink, fd);
    return rc;
}

void policy_audit_log_free(struct policy_audit_log *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->stopping = true;
    pthread_cond_signal(&l->tick);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->ticker, NULL);
    flush_all(l, true);
    sink_close(l->sink, l->fd);
    pthread_cond_destroy(&l->tick);
    pthread_mutex_destroy(&l->lock);
    free(l->slots);
    free(l->path);
    free(l);
}

int policy_audit_log_configure(struct policy_audit_log *l, const struct policy_audit *cfg,
                               char *err, size_t errlen)
{
    char *path = NULL;
    int fd;
    if (cfg->path && !(path = strdup(cfg->path))) {
        snprintf(err, errlen, "audit: out of memory");
        return -ENOMEM;
    }
    /* Opened before the lock: a slow file system stalls no open. */
    int rc = sink_open(cfg->sink, path, &fd, err, errlen);
    if (rc < 0) {
        free(path);
        return rc;
    }
    pthread_mutex_lock(&l->lock);
    flush_all(l, true);   /* the old sink gets the old configuration's counts */
    sink_close(l->sink, l->fd);
    free(l->path);
    l->sink = cfg->sink;
    l->path = path;
    l->fd = fd;
    l->repeat_ms = cfg->repeat_after;
    pthread_mutex_unlock(&l->lock);
    return 0;
}

int policy_audit_log_reopen(struct policy_audit_log *l, char *err, size_t errlen)
{
    int fd;
    pthread_mutex_lock(&l->lock);
    enum policy_audit_sink sink = l->sink;
    char path[PATH_MAX] = "";
    if (l->path)
        snprintf(path, sizeof(path), "%s", l->path);
    pthread_mutex_unlock(&l->lock);
    if (sink == POLICY_AUDIT_STDERR)
        return 0;
    int rc = sink_open(sink, path[0] ? path : NULL, &fd, err, errlen);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->lock);
    if (l->sink != sink || strcmp(l->path ? l->path : "", path) != 0) {
        /* A reload changed the sink meanwhile: its own is newer. */
        pthread_mutex_unlock(&l->lock);
        close(fd);
        return 0;
    }
    int old = l->fd;
    l->fd = fd;
    pthread_mutex_unlock(&l->lock);
    sink_close(sink, old);
    return 0;
}
