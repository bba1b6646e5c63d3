/* broker.h - the daemon's state, in one place (no mutable globals).
 *
 * main() owns one struct broker; the filesystem reaches it as FUSE userdata.
 */
#ifndef RS_BROKER_H
#define RS_BROKER_H

#include <stddef.h>
#include "engine/config.h"

struct backend;
struct cache;
struct store;
struct scheduler;
struct secpool;
struct fs;
struct http_engine;

struct broker {
    struct config *cfg;
    struct http_engine *http;      /* shared by the HTTP backends */
    struct backend **backends;     /* one per cfg->backends */
    struct cache *cache;
    struct store *store;
    struct scheduler *sched;
    struct secpool *pool;          /* scratch plaintext for reads */
    struct fs *fs;
};

/* Load config_path and build backends, cache, store and scheduler (nothing
 * fetched, nothing mounted). 0, -EINVAL (configuration: exit 2) or another
 * negative errno, with one line in err. */
int broker_open(struct broker *b, const char *config_path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Frees everything broker_open built; idempotent. */
void broker_close(struct broker *b);

/* The CLI: dispatches subcommands. Returns the process exit code. */
int cli_main(struct broker *b, int argc, char **argv);

#endif
