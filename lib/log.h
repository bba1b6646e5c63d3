/* log.h - structured logging: JSON lines (default) or text on one sink.
 *
 * The sink and format are set once in main before any thread starts; after
 * that the module is read-only and every line is written with one write(2),
 * so lines from different threads never interleave.
 *
 * Never pass a secret value to any of these functions.
 */
#ifndef RS_LOG_H
#define RS_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERROR = 3, LOG_WARN = 4, LOG_INFO = 6, LOG_DEBUG = 7 };
enum log_format { LOG_FORMAT_JSON, LOG_FORMAT_TEXT };

/* Optional structured fields of one line; NULL / has_caller=false omit them. */
struct log_fields {
    const char *secret;
    const char *backend;
    const char *error;   /* human error text (never a value) */
    const char *result;  /* e.g. "allow" / "deny" for audit lines */
    const char *path;    /* a file system path (mountpoint, backend file) */
    const char *address; /* a listen address ("unix:/run/x.sock", "127.0.0.1:9464") */
    bool has_caller;
    long uid, gid, pid;
    /* The access policy's part of an open's audit line (issue 15), each
     * NULL when not known: the rule that decided ("2", or "default"), the
     * caller's executable ("dev:ino"), cgroup path and container. */
    const char *rule;
    const char *exe;
    const char *cgroup;
    const char *container;
    bool has_counts;     /* a summary: how many ok / failed, in how long */
    long ok, failed, ms;
    /* More integer fields, in order ("generation", "secrets"...): keys are
     * constants of the code, never input. */
    const struct log_num *nums;
    size_t n_nums;
};

struct log_num {
    const char *key;
    long long value;
};

/* Set once before threads start. fd is borrowed. */
void log_setup(int fd, enum log_format format, enum log_level min_level);

/* Parse "json"/"text" and "error"/"warn"/"info"/"debug". 0 or -EINVAL. */
int log_parse_format(const char *s, enum log_format *out) __attribute__((warn_unused_result));
int log_parse_level(const char *s, enum log_level *out) __attribute__((warn_unused_result));

bool log_enabled(enum log_level level);
/* The log is text (--log-format text), not JSON lines. */
bool log_is_text(void);

void log_at(enum log_level level, const char *func, const struct log_fields *f,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Now, as every line's "time": "2026-12-02T16:07:08.123Z" (UTC, ms). */
void log_time(char *out, size_t cap);

/* Append s to out as a JSON string body (no quotes), escaped. Returns the
 * number of bytes written, truncating on a character boundary. Exposed for
 * tests and for modules that build JSON by hand. */
size_t log_json_escape(char *out, size_t cap, const char *s);

#define log_error(...) log_at(LOG_ERROR, __func__, NULL, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, __func__, NULL, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, __func__, NULL, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __func__, NULL, __VA_ARGS__)
#define log_f(level, fields, ...) log_at(level, __func__, fields, __VA_ARGS__)

#endif
