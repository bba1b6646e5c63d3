/* ref.h - secret references: <backend>:<path>[?version=<v>|?stage=<s>][#<field>]. */
#ifndef RS_REF_H
#define RS_REF_H

#include <stddef.h>
#include <stdbool.h>

#define REF_MAX_LEN 4096

struct secret_ref {
    char *backend;   /* backend name, never empty */
    char *path;      /* backend-specific object path, never empty */
    char *version;   /* NULL or the ?version= value */
    char *stage;     /* NULL or the ?stage= value (never both) */
    char *field;     /* NULL, a top-level key, or a JSON Pointer starting with '/' */
};

/* Parse s into ref (which it initialises). 0 or -EINVAL / -ENOMEM with a
 * message in err; on error ref owns nothing. */
int ref_parse(const char *s, struct secret_ref *ref, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void ref_cleanup(struct secret_ref *ref);
/* Deep copy; 0 or -ENOMEM. */
int ref_copy(struct secret_ref *dst, const struct secret_ref *src) __attribute__((warn_unused_result));
/* Format back to the canonical string (new, caller frees) or NULL. */
char *ref_format(const struct secret_ref *ref);

#endif
