/* secfile.h - small files that hold secrets (tokens, ids, credentials
 * files), read straight into secret memory. */
#ifndef RS_SECFILE_H
#define RS_SECFILE_H

#include <stddef.h>
#include "lib/secmem.h"

/* Read all of path into out (initialised here, at most max bytes). 0 or a
 * negative errno (-ENOENT when there is no such file) with "path: what" in
 * err. */
int secfile_read(const char *path, size_t max, struct secbuf *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* A token file: read, surrounding white space dropped, as a new
 * NUL-terminated string in secret memory (secmem_free it). Empty or
 * NUL-containing files are refused. */
int secfile_token(const char *path, size_t max, char **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
