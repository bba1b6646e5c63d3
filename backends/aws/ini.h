/* ini.h - the AWS shared config and credentials file format.
 *
 * "[section]" headers, "key = value" lines, '#' and ';' comments; indented
 * lines continue a nested block (e.g. s3 settings) and are skipped. The
 * whole file lives in secret memory (credentials files hold keys) and is
 * wiped when freed.
 */
#ifndef RS_INI_H
#define RS_INI_H

#include <stddef.h>
#include "lib/secmem.h"

struct ini;

/* Load path. 0, -ENOENT (no such file: not an error for callers that fall
 * through), or another negative errno with "path:line: what" in err. */
int ini_load(const char *path, struct ini **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Parse a buffer (copied into secret memory); name is used in messages. */
int ini_parse(const char *name, const char *text, size_t len, struct ini **out, char *err,
              size_t errlen) __attribute__((warn_unused_result));
void ini_free(struct ini *ini);

/* The value of key in section, or NULL. Borrowed until ini_free; it may be
 * secret: copy it into secret memory if it must outlive the ini. */
const char *ini_get(const struct ini *ini, const char *section, const char *key);
/* Whether the section exists at all. */
int ini_has_section(const struct ini *ini, const char *section);

#endif
