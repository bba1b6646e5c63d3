/* jsonpos.h - find where a JSON path sits in the source text.
 *
 * jansson reports positions only for syntax errors; semantic errors in the
 * config still deserve file:line:col, so this walks the (already valid) text
 * once more and reports the position of a value or of a key. */
#ifndef RS_JSONPOS_H
#define RS_JSONPOS_H

#include <stddef.h>
#include <stdbool.h>
#include <jansson.h>

/* path: object keys and array indexes (as decimal strings), n of them.
 * want_key: position of the last key itself instead of its value.
 * Returns 0 and 1-based line/column (in characters) or -ENOENT. */
int jsonpos_find(const char *text, size_t len, const char *const *path, size_t n,
                 bool want_key, int *line, int *col) __attribute__((warn_unused_result));

/* "an object", "an array", "a string", ... for "expected X, got Y" messages. */
const char *jsonpos_kind(const json_t *v);

#endif
