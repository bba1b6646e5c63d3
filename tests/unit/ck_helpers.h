/* ck_helpers.h - what several unit test binaries share beyond main()
 * (ck_main.h): the hardening fixture, a backend config parsed from JSON
 * text, an HTTP answer built in memory. Linked as tests/meson.build's
 * ck_helpers library. */
#ifndef RS_CK_HELPERS_H
#define RS_CK_HELPERS_H

#include <jansson.h>
#include <stddef.h>

struct http_response;

/* A checked fixture: hardening_init as main runs it (secret memory, the
 * wiping jansson allocator), or the test fails. */
void ckh_setup_hardening(void);

/* A backend's parse function (the shape of vault_parse, azure_parse,
 * aws_parse) run on the JSON text: its rc; the new config in *conf (the
 * caller frees it with the backend's conf_free), NULL on error; its message
 * in err, which is emptied first. Fails the test if text is not JSON. */
int ckh_parse(int (*parse)(json_t *json, void **conf, char *err, size_t errlen), const char *text,
              void **conf, char *err, size_t errlen) __attribute__((nonnull(1, 2, 3, 4)));

/* *r as http_request leaves it for an answer of status with body (at most
 * 64 KiB, in secret memory). The caller calls http_response_cleanup. */
void ckh_response(struct http_response *r, long status, const char *body)
    __attribute__((nonnull(1, 3)));

#endif
