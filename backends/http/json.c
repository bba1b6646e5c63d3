/* json.c - see json.h. */
#include "backends/http/json.h"
#include "lib/secmem.h"

#include <errno.h>

json_t *http_body_object(const struct http_response *r)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, &jerr);
    secmem_wipe(&jerr, sizeof(jerr));
    if (root && !json_is_object(root)) {
        json_decref(root);
        root = NULL;
    }
    return root;
}

int http_json_body(const json_t *o, size_t max, struct secbuf *b)
{
    size_t need = json_dumpb(o, NULL, 0, JSON_COMPACT);
    secbuf_init(b, max);
    if (need == 0 || secbuf_reserve(b, need) < 0)
        return -E2BIG;
    b->len = json_dumpb(o, (char *)b->data, need, JSON_COMPACT);
    return 0;
}
