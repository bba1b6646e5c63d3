/* fuzz_extract.c - the #field extractor (backends/extract.c): input is
 * "<field>\0<value>", the field from a reference and the fetched value.
 * The value's buffer is capped at its own size, so a field that encodes
 * larger than the document meets the -E2BIG path. */
#include "fuzz.h"

#include <errno.h>
#include "backends/extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    char err[1024] = "";
    struct secbuf b;

    if (!nul)
        return 0;
    const char *field = (const char *)data;
    const uint8_t *doc = nul + 1;
    size_t len = size - (size_t)(doc - data);

    secbuf_init(&b, len);
    FUZZ_ASSERT(secbuf_append(&b, doc, len) == 0);
    int rc = extract_field(&b, field, err, sizeof(err));
    if (rc == 0)
        FUZZ_ASSERT(b.len <= b.max && (b.len == 0 || b.data != NULL));
    else
        FUZZ_ASSERT(err[0] != '\0' && (rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM));
    secbuf_cleanup(&b);
    return 0;
}
