/* config.h - the JSON configuration contract (docs/config.md). */
#ifndef RS_CONFIG_H
#define RS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "lib/ref.h"

#define CFG_DEFAULT_MOUNT "/run/secrets"
#define CFG_DEFAULT_REFRESH (5 * 60 * 1000LL)
#define CFG_DEFAULT_MAX_STALE (60 * 60 * 1000LL)
#define CFG_DEFAULT_MODE 0400
#define CFG_MIN_REFRESH_MS 100
/* runsecrets exec (docs/config.md "exec"): */
#define CFG_DEFAULT_EXEC_WAIT (30 * 1000LL)
#define CFG_DEFAULT_EXEC_STOP_GRACE (10 * 1000LL)
#define CFG_DEFAULT_EXEC_DEBOUNCE (5 * 1000LL)

struct cfg_attrs {
    long long refresh;    /* milliseconds */
    long long max_stale;  /* milliseconds */
    unsigned mode;        /* permission bits */
    uid_t uid;
    gid_t gid;
};

struct backend_conf;
struct policy_rules;

struct cfg_backend {
    char *name;
    struct backend_conf *conf;  /* owned: parsed and checked (backends/backend.h) */
    size_t file;                /* index into config.files: where it is defined (for
                                   messages; not a setting: moving it changes nothing) */
};

/* What `runsecrets exec` does when a secret's served value changes. */
enum cfg_on_change {
    CFG_ON_CHANGE_NONE,     /* the next open sees the new value */
    CFG_ON_CHANGE_SIGNAL,   /* send on_change_signal to the child */
    CFG_ON_CHANGE_RESTART,  /* stop the child (grace) and start it again, debounced */
};

struct cfg_secret {
    char *name;
    size_t file;          /* index into config.files, as cfg_backend.file */
    struct secret_ref ref;
    size_t backend;       /* index into config.backends */
    struct cfg_attrs attrs;
    /* runsecrets exec (validated everywhere, used only by exec; required and
     * on_change may come from "defaults", env may not): */
    bool required;        /* the app starts only once it has a value (default true) */
    char *env;            /* owned; NULL, or a variable name set to the file's path
                             ("DB_PASSWORD_FILE"), unique across secrets, never RUNSECRETS_* or LD_* */
    enum cfg_on_change on_change;   /* default CFG_ON_CHANGE_NONE */
    int on_change_signal; /* CFG_ON_CHANGE_SIGNAL: the signal number (never SIGKILL or SIGSTOP); else 0 */
};

/* The "exec" object: runsecrets exec's settings (milliseconds, each at most
 * 1h; wait > 0, stop_grace and debounce >= 0; defaults CFG_DEFAULT_EXEC_*). */
struct cfg_exec {
    long long wait;       /* longest wait for the required secrets before the app starts */
    long long stop_grace; /* after forwarding SIGTERM, before SIGKILL of the child's group */
    long long debounce;   /* changes within this window give one restart */
};

/* The "admin" object (docs/operations.md): where the operations endpoint
 * (/health, /metrics, /status) listens. Absent: `given` false and the
 * command's default applies (broker/admin.h). */
#define CFG_ADMIN_DEFAULT_MODE 0600
struct cfg_admin {
    bool given;           /* the key was in the main file */
    char *listen;         /* owned: "unix:/abs/path", "127.0.0.1:PORT", "[::1]:PORT",
                             "HOST:PORT" (needs allow_remote), or "none" */
    unsigned mode;        /* unix socket's permission bits (default 0600) */
    bool has_group;
    gid_t gid;            /* "group": a name (resolved at load) or a number */
    bool allow_remote;    /* a non-loopback address is allowed (then token_file is required) */
    char *token_file;     /* owned; NULL: no token asked */
};

/* Fragments: "include": [...] in the main file (only there), e.g. the
 * glob conf.d/<star>.json. Each entry is a glob or a file name, relative to the main file's
 * folder unless absolute; a glob's matches are read in byte order, a glob
 * that matches nothing is fine, a named file that cannot be read is an
 * error, a file matched twice (or the main file itself) is read once. A
 * fragment holds only "backends" and "secrets"; a backend or secret name
 * defined in two files is an error naming both places. */
#define CFG_MAX_FRAGMENTS 4096

struct config {
    char *path;           /* as given, for messages */
    char **files;         /* the main file (files[0] == path's text), then each
                             fragment in the order read, as shown in messages */
    size_t n_files;
    char *mount;
    struct cfg_attrs defaults;
    struct cfg_exec exec;
    struct cfg_admin admin;
    /* The access policy (policy/rules.h; docs/config.md "policy"), owned;
     * NULL without a "policy" key: file modes alone decide. */
    struct policy_rules *policy;
    /* Load-time warnings, one located line each ("file:line:col: path:
     * what"), owned: for the caller to log (check prints them). */
    char **warnings;
    size_t n_warnings;
    struct cfg_backend *backends;
    size_t n_backends;
    struct cfg_secret *secrets;
    size_t n_secrets;
};

/* Load and fully validate a config file. *out is new. On error err holds one
 * line "<file>:<line>:<col>: <json.path>: <what>" and the return is -EINVAL
 * (bad config) or another negative errno (cannot read the file). */
int cfg_load(const char *path, struct config **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* cfg_load_opts flags. */
/* Check each backend's type and common keys, not its own settings (which
 * name host paths: a CA file, the file backend's folder): for a process
 * that builds no backend, exec --mount-from. References are still checked
 * against the backend's type. */
#define CFG_BACKEND_TYPES_ONLY 0x1u
int cfg_load_opts(const char *path, unsigned flags, struct config **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Same, from memory; label stands for the file name in messages. */
int cfg_load_buffer(const char *text, size_t len, const char *label, struct config **out,
                    char *err, size_t errlen) __attribute__((warn_unused_result));
void cfg_free(struct config *c);

/* Index of a backend by name, or -1. */
long cfg_backend_index(const struct config *c, const char *name);
/* Index of a secret by name, or -1. */
long cfg_secret_index(const struct config *c, const char *name);

#endif
