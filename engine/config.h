/* config.h - the JSON configuration contract (docs/config.md). */
#ifndef RS_CONFIG_H
#define RS_CONFIG_H

#include <stddef.h>
#include <sys/types.h>
#include "lib/ref.h"

#define CFG_DEFAULT_MOUNT "/run/secrets"
#define CFG_DEFAULT_REFRESH (5 * 60 * 1000LL)
#define CFG_DEFAULT_MAX_STALE (60 * 60 * 1000LL)
#define CFG_DEFAULT_MODE 0400
#define CFG_MIN_REFRESH_MS 100

struct cfg_attrs {
    long long refresh;    /* milliseconds */
    long long max_stale;  /* milliseconds */
    unsigned mode;        /* permission bits */
    uid_t uid;
    gid_t gid;
};

struct backend_conf;

struct cfg_backend {
    char *name;
    struct backend_conf *conf;  /* owned: parsed and checked (backends/backend.h) */
};

struct cfg_secret {
    char *name;
    struct secret_ref ref;
    size_t backend;       /* index into config.backends */
    struct cfg_attrs attrs;
};

struct config {
    char *path;           /* as given, for messages */
    char *mount;
    struct cfg_attrs defaults;
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
/* Same, from memory; label stands for the file name in messages. */
int cfg_load_buffer(const char *text, size_t len, const char *label, struct config **out,
                    char *err, size_t errlen) __attribute__((warn_unused_result));
void cfg_free(struct config *c);

/* Index of a backend by name, or -1. */
long cfg_backend_index(const struct config *c, const char *name);
/* Index of a secret by name, or -1. */
long cfg_secret_index(const struct config *c, const char *name);

#endif
