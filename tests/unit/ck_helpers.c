/* ck_helpers.c - see ck_helpers.h. */
#include "ck_helpers.h"

#include <check.h>
#include <string.h>

#include "backends/http/http.h"
#include "broker/hardening.h"
#include "lib/secmem.h"

void ckh_setup_hardening(void)
{
    char e[256];
    ck_assert_int_eq(hardening_init(e, sizeof(e)), 0);
}

int ckh_parse(int (*parse)(json_t *json, void **conf, char *err, size_t errlen), const char *text,
              void **conf, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    ck_assert_msg(j != NULL, "bad test JSON: %s", text);
    *conf = NULL;
    err[0] = '\0';
    int rc = parse(j, conf, err, errlen);
    json_decref(j);
    return rc;
}

void ckh_response(struct http_response *r, long status, const char *body)
{
    http_response_init(r);
    r->status = status;
    secbuf_init(&r->body, 65536);
    ck_assert_int_eq(secbuf_append(&r->body, body, strlen(body)), 0);
}
