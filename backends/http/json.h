/* json.h - JSON request and response bodies in secret memory, for the
 * providers that speak JSON over HTTP (Vault, AWS, and next Azure, GCP). */
#ifndef RS_HTTP_JSON_H
#define RS_HTTP_JSON_H

#include <jansson.h>
#include <stddef.h>
#include "backends/http/http.h"

/* The response body as a JSON object (new reference), or NULL when it is
 * not one. jansson's error text quotes the input, so it is wiped. */
json_t *http_body_object(const struct http_response *r);
/* Serialise o compactly into b (initialised here, capped at max bytes):
 * a request body that may hold secrets. 0 or -E2BIG. */
int http_json_body(const json_t *o, size_t max, struct secbuf *b)
    __attribute__((warn_unused_result));

#endif
