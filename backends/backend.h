/* backend.h - a configured backend, as the engine sees it.
 *
 * A backend type is a const struct backend_ops registered in backend.c; a
 * configured instance is a struct backend. Callers use the backend_*()
 * wrappers, never the ops directly (maintain and shutdown are optional; the
 * wrappers know), so no caller ever probes for NULL.
 */
#ifndef RS_BACKEND_H
#define RS_BACKEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "backends/core/provider.h"

struct backoff;

/* A backend's parsed config: the provider's typed config and the common
 * settings. Made by backend_conf_parse when the config loads; no JSON
 * outlives that. */
struct backend_conf;

/* A live backend instance (opaque). */
struct backend;

#define BACKEND_DEFAULT_RETRY_BASE_MS 1000LL
#define BACKEND_DEFAULT_RETRY_MAX_MS (5 * 60 * 1000LL)

/* "file, vault, aws": the registered types, for messages; returns buf. */
const char *backend_type_list(char *buf, size_t len);

/* backend_conf_parse flags. */
/* Check "type" and the common keys only, not the provider's own settings:
 * for a process that builds no backend (exec --mount-from), whose config
 * names paths that exist on the host, not here. Such a conf can check
 * references but cannot make a backend (backend_new refuses it). */
#define BACKEND_CONF_TYPE_ONLY 0x1u

/* Parse a backend config object: "type" known, the common keys and the
 * provider's own. *out is new. On error err holds "<key>: <message>"
 * relative to the object. */
int backend_conf_parse(json_t *json, unsigned flags, struct backend_conf **out, char *err,
                       size_t errlen) __attribute__((warn_unused_result));
void backend_conf_free(struct backend_conf *c);
const char *backend_conf_type(const struct backend_conf *c);
/* Whether a and b were parsed from the same settings: the same JSON object
 * up to key order and white space (a reload keeps the live backend). */
bool backend_conf_same(const struct backend_conf *a, const struct backend_conf *b);
/* Whether the type has every capability in cap (BACKEND_CAP_*): what the
 * broker must set up before backend_new (BACKEND_CAP_LOCAL: no HTTP). */
bool backend_conf_has_cap(const struct backend_conf *c, unsigned cap);
/* Static reference check against the backend type. */
int backend_conf_check_ref(const struct backend_conf *c, const struct secret_ref *ref, char *err,
                           size_t errlen) __attribute__((warn_unused_result));

/* New live instance; conf and env are borrowed. */
int backend_new(const struct backend_env *env, const char *name, const struct backend_conf *conf,
                struct backend **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
const char *backend_name(const struct backend *b);
bool backend_has_cap(const struct backend *b, unsigned cap);
/* The largest value it hands over (max_size). */
size_t backend_max_value(const struct backend *b);
/* Backoff after failed fetches (retry_base, retry_max). */
const struct backoff *backend_backoff(const struct backend *b);
/* Up to batch_max refs at once when the backend batches (returns false
 * when it does not: fetch them one by one). ready (may be NULL) hears of
 * each item the backend finishes before the call returns (provider.h). */
bool backend_fetch_many(struct backend *b, const struct secret_ref *const *refs, size_t n,
                        struct fetch_result *outs, int *rcs, char (*errs)[BACKEND_ERR_MAX],
                        void (*ready)(void *arg, size_t i), void *arg);
size_t backend_batch_max(const struct backend *b);
/* Upkeep and shutdown, see the ops. */
long long backend_maintain(struct backend *b);
/* The login's state (provider.h: auth_status); never blocks. */
void backend_auth_status(struct backend *b, struct backend_auth *out);
void backend_shutdown(struct backend *b);
void backend_free(struct backend *b);

/* Fetch ref without applying its #field (the raw object, which several
 * secrets may share). Same contract as backend_resolve. */
int backend_fetch(struct backend *b, const struct secret_ref *ref, struct fetch_result *out,
                  char *err, size_t errlen) __attribute__((warn_unused_result));
/* Fetch ref and apply its #field: out->value holds the final plaintext.
 * out must be initialised with fetch_result_init. 0, -ENOENT (gone) or
 * another negative errno with err filled (never containing the value). */
int backend_resolve(struct backend *b, const struct secret_ref *ref, struct fetch_result *out,
                    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
