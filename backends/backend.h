/* backend.h - the one interface every secret backend implements.
 *
 * A backend type is a const struct backend_ops registered in backend.c; a
 * configured instance is a struct backend. Callers use the backend_*()
 * wrappers, never the ops directly; every slot is filled (defaults in
 * backend.c), so no caller ever probes for NULL.
 */
#ifndef RS_BACKEND_H
#define RS_BACKEND_H

#include <jansson.h>
#include <stddef.h>
#include "secmem.h"
#include "ref.h"

#define BACKEND_CAP_VERSIONS (1u << 0) /* understands ?version= */

/* Largest value any backend hands over unless its config says otherwise. */
#define BACKEND_DEFAULT_MAX_VALUE (1024 * 1024)

struct fetch_result {
    struct secbuf value; /* plaintext in secret memory; owned */
};
void fetch_result_init(struct fetch_result *r, size_t max);
void fetch_result_cleanup(struct fetch_result *r);

/* Error messages from validate() name the offending key first, as
 * "<key>: <what is wrong>", so the config layer can point at file:line:col. */
struct backend_ops {
    const char *type;
    unsigned caps;
    /* Static check of the backend's config object (may stat local files, no
     * network). 0 or -EINVAL. */
    int (*validate)(json_t *conf, char *err, size_t errlen);
    /* Build a live instance; conf has passed validate(). *ctx is new. */
    int (*create)(json_t *conf, void **ctx, char *err, size_t errlen);
    /* Static check of a reference's path for this backend. 0 or -EINVAL. */
    int (*check_ref)(const struct secret_ref *ref, char *err, size_t errlen);
    /* Fetch the raw value of ref->path (the #field is applied by the caller).
     * 0, -ENOENT when the object does not exist (the secret disappears), or
     * another negative errno with a message in err. */
    int (*fetch)(void *ctx, const struct secret_ref *ref, struct fetch_result *out,
                 char *err, size_t errlen);
    void (*destroy)(void *ctx);
};

struct backend {
    char *name;                     /* owned */
    const struct backend_ops *ops;  /* static */
    void *ctx;                      /* owned, freed by ops->destroy */
    size_t max_value;
};

/* Registry: the ops for a type name, or NULL. */
const struct backend_ops *backend_find_type(const char *type);
/* Comma-separated list of known types (static string), for messages. */
const char *backend_type_list(void);

/* Validate a backend config object: "type" known and ops->validate passes.
 * On error err holds "<key>: <message>" relative to the object. */
int backend_validate(json_t *conf, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Static reference check against the backend type. */
int backend_check_ref(json_t *conf, const struct secret_ref *ref, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* New live instance; conf is borrowed. */
int backend_new(const char *name, json_t *conf, struct backend **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void backend_free(struct backend *b);

/* Fetch ref and apply its #field: out->value holds the final plaintext.
 * out must be initialised with fetch_result_init. 0, -ENOENT (gone) or
 * another negative errno with err filled (never containing the value). */
int backend_resolve(struct backend *b, const struct secret_ref *ref, struct fetch_result *out,
                    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
