/* name.h - secret names: their path under the mount. */
#ifndef RS_NAME_H
#define RS_NAME_H

#include <stddef.h>

#define NAME_MAX_DEPTH 8
#define NAME_MAX_SEGMENT 255
#define NAME_MAX_LEN 1024

/* Segments of [A-Za-z0-9._-], separated by '/', none empty, "." or "..",
 * at most NAME_MAX_DEPTH of them. 0 or -EINVAL with a message in err. */
int name_validate(const char *name, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Backend names: [A-Za-z0-9_-]+, at most 64 characters. */
int name_validate_backend(const char *name, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
