/* extract.h - the #field part of a reference, applied to a fetched value. */
#ifndef RS_EXTRACT_H
#define RS_EXTRACT_H

#include "lib/secmem.h"

/* Replace the JSON document in *buf by the selected field: a top-level key,
 * or an RFC 6901 JSON Pointer when field starts with '/'. A string field is
 * served as its characters, anything else as compact JSON. 0, or -EINVAL
 * (not JSON, field missing) / -E2BIG with a message in err. The old contents
 * are wiped. */
int extract_field(struct secbuf *buf, const char *field, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
