/* log.c - JSON-lines / text logging to one fd, one write(2) per line. */
#include "lib/log.h"
#include "lib/escape.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set once in main before threads start: process-wide state that
 * ARCHITECTURE.md ("Process-wide state") allows. */
static int log_fd = 2;
static enum log_format log_fmt = LOG_FORMAT_JSON;
static enum log_level log_min = LOG_INFO;

#define LOG_LINE_MAX 4096

void log_setup(int fd, enum log_format format, enum log_level min_level)
{
    log_fd = fd;
    log_fmt = format;
    log_min = min_level;
}

int log_parse_format(const char *s, enum log_format *out)
{
    if (strcmp(s, "json") == 0)
        *out = LOG_FORMAT_JSON;
    else if (strcmp(s, "text") == 0)
        *out = LOG_FORMAT_TEXT;
    else
        return -EINVAL;
    return 0;
}

int log_parse_level(const char *s, enum log_level *out)
{
    static const struct { const char *name; enum log_level level; } levels[] = {
        {"error", LOG_ERROR}, {"warn", LOG_WARN}, {"warning", LOG_WARN},
        {"info", LOG_INFO}, {"debug", LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(s, levels[i].name) == 0) {
            *out = levels[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

bool log_is_text(void)
{
    return log_fmt == LOG_FORMAT_TEXT;
}

bool log_enabled(enum log_level level)
{
    return level <= log_min;
}

static const char *level_name(enum log_level level)
{
    switch (level) {
    case LOG_ERROR: return "error";
    case LOG_WARN: return "warn";
    case LOG_INFO: return "info";
    case LOG_DEBUG: return "debug";
    }
    return "info";
}

/* The length of the valid UTF-8 character at p (a byte >= 0x80), 0 when
 * it is not one (a stray continuation byte, an overlong form, a surrogate,
 * past U+10FFFF, or cut by the string's end). */
static size_t utf8_seq(const unsigned char *p)
{
    size_t n;
    unsigned min;
    unsigned cp;
    if (*p >= 0xc2 && *p <= 0xdf) {
        n = 2, min = 0x80, cp = *p & 0x1fu;
    } else if (*p >= 0xe0 && *p <= 0xef) {
        n = 3, min = 0x800, cp = *p & 0x0fu;
    } else if (*p >= 0xf0 && *p <= 0xf4) {
        n = 4, min = 0x10000, cp = *p & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)   /* also the terminating NUL */
            return 0;
        cp = (cp << 6) | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

size_t log_json_escape(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (cap == 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[7];
        size_t n;
        switch (*p) {
        case '"': memcpy(esc, "\\\"", 2); n = 2; break;
        case '\\': memcpy(esc, "\\\\", 2); n = 2; break;
        case '\n': memcpy(esc, "\\n", 2); n = 2; break;
        case '\r': memcpy(esc, "\\r", 2); n = 2; break;
        case '\t': memcpy(esc, "\\t", 2); n = 2; break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[*p >> 4];
                esc[5] = hex[*p & 15];
                n = 6;
            } else {
                esc[0] = (char)*p;
                n = 1;
            }
        }
        if (*p >= 0x80) {
            /* A byte of a multi-byte UTF-8 character: the whole character,
             * or, for bytes that are not valid UTF-8 (a path may hold any),
             * U+FFFD per byte, so the line stays JSON a strict parser
             * reads. Stop before a character that does not fit. */
            size_t seq = utf8_seq(p);
            if (seq == 0) {
                if (o + 6 >= cap)
                    break;
                memcpy(out + o, "\\ufffd", 6);
                o += 6;
                continue;
            }
            if (o + seq >= cap)
                break;
            memcpy(out + o, p, seq);
            o += seq;
            p += seq - 1;
            continue;
        }
        if (o + n >= cap)
            break;
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
    return o;
}

struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
};

static void line_raw(struct line *l, const char *s)
{
    size_t n = strlen(s);
    if (l->len + n >= sizeof(l->buf) - 2)
        n = sizeof(l->buf) - 2 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    l->buf[l->len] = '\0';
}

static void line_printf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_printf(struct line *l, const char *fmt, ...)
{
    va_list ap;
    size_t room = sizeof(l->buf) - 2 - l->len;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    l->len += (size_t)n < room ? (size_t)n : room - 1;
}

static void line_json_str(struct line *l, const char *key, const char *val)
{
    if (!val)
        return;
    line_printf(l, ",\"%s\":\"", key);
    l->len += log_json_escape(l->buf + l->len, sizeof(l->buf) - 3 - l->len, val);
    line_raw(l, "\"");
}

/* Text values: escaped (a name or path with a "\n" or an ESC in it must
 * neither split the line nor reach a terminal raw; '"' too, so a quoted
 * value ends where it seems to), then quoted when they contain spaces or
 * '=' so lines stay parseable. */
static void line_text_kv(struct line *l, const char *key, const char *val)
{
    char shown[LOG_LINE_MAX];
    if (!val)
        return;
    escape_str(shown, sizeof(shown), val, ESCAPE_DQUOTE);
    if (strpbrk(shown, " ="))
        line_printf(l, " %s=\"%s\"", key, shown);
    else
        line_printf(l, " %s=%s", key, shown);
}

void log_time(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void log_vat(enum log_level level, const char *func, const struct log_fields *f,
                    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static void log_vat(enum log_level level, const char *func, const struct log_fields *f,
                    const char *fmt, va_list ap)
{
    struct line l = {.len = 0};
    char msg[1024];
    char when[40];

    if (!log_enabled(level))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    log_time(when, sizeof(when));

    if (log_fmt == LOG_FORMAT_JSON) {
        line_printf(&l, "{\"time\":\"%s\",\"level\":\"%s\"", when, level_name(level));
        line_json_str(&l, "msg", msg);
        if (f) {
            line_json_str(&l, "secret", f->secret);
            line_json_str(&l, "backend", f->backend);
            line_json_str(&l, "path", f->path);
            line_json_str(&l, "address", f->address);
            line_json_str(&l, "result", f->result);
            if (f->has_caller)
                line_printf(&l, ",\"uid\":%ld,\"gid\":%ld,\"pid\":%ld", f->uid, f->gid, f->pid);
            line_json_str(&l, "rule", f->rule);
            line_json_str(&l, "exe", f->exe);
            line_json_str(&l, "cgroup", f->cgroup);
            line_json_str(&l, "container", f->container);
            if (f->has_counts)
                line_printf(&l, ",\"ok\":%ld,\"failed\":%ld,\"ms\":%ld", f->ok, f->failed, f->ms);
            for (size_t i = 0; i < f->n_nums; i++)
                line_printf(&l, ",\"%s\":%lld", f->nums[i].key, f->nums[i].value);
            line_json_str(&l, "error", f->error);
        }
        if (log_min >= LOG_DEBUG && func)
            line_json_str(&l, "func", func);
        line_raw(&l, "}");
    } else {
        char shown[sizeof(msg)];
        escape_str(shown, sizeof(shown), msg, 0);
        line_printf(&l, "%s %-5s %s", when, level_name(level), shown);
        if (f) {
            line_text_kv(&l, "secret", f->secret);
            line_text_kv(&l, "backend", f->backend);
            line_text_kv(&l, "path", f->path);
            line_text_kv(&l, "address", f->address);
            line_text_kv(&l, "result", f->result);
            if (f->has_caller)
                line_printf(&l, " uid=%ld gid=%ld pid=%ld", f->uid, f->gid, f->pid);
            line_text_kv(&l, "rule", f->rule);
            line_text_kv(&l, "exe", f->exe);
            line_text_kv(&l, "cgroup", f->cgroup);
            line_text_kv(&l, "container", f->container);
            if (f->has_counts)
                line_printf(&l, " ok=%ld failed=%ld ms=%ld", f->ok, f->failed, f->ms);
            for (size_t i = 0; i < f->n_nums; i++)
                line_printf(&l, " %s=%lld", f->nums[i].key, f->nums[i].value);
            line_text_kv(&l, "error", f->error);
        }
    }
    l.buf[l.len++] = '\n';
    /* One write per line: concurrent lines never interleave. A failing log
     * sink must not take the broker down, so the result is ignored. */
    ssize_t rc = write(log_fd, l.buf, l.len);
    (void)rc;
}

void log_at(enum log_level level, const char *func, const struct log_fields *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vat(level, func, f, fmt, ap);
    va_end(ap);
}
