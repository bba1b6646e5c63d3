/* libs.c - the HTTP stack's libraries, loaded on first use (libs.h). */
#include "backends/http/libs.h"
#include "lib/dynlib.h"
#include "rs_config.h"

#define HTTP_LIBS_DEFINE(fn) __typeof__(fn) *sym_##fn;
HTTP_LIBS_CURL(HTTP_LIBS_DEFINE)
HTTP_LIBS_SSL(HTTP_LIBS_DEFINE)
HTTP_LIBS_CRYPTO(HTTP_LIBS_DEFINE)

#define HTTP_LIBS_ENTRY(fn) DYNLIB_SYM(fn),
static const struct dynlib_sym curl_syms[] = {HTTP_LIBS_CURL(HTTP_LIBS_ENTRY)};
static const struct dynlib_sym ssl_syms[] = {HTTP_LIBS_SSL(HTTP_LIBS_ENTRY)};
static const struct dynlib_sym crypto_syms[] = {HTTP_LIBS_CRYPTO(HTTP_LIBS_ENTRY)};

/* Process-wide, like the pointers they fill (lib/dynlib.h). */
static struct dynlib curl_lib = DYNLIB_INIT(RS_SONAME_CURL, "libcurl, for network backends", curl_syms);
static struct dynlib ssl_lib = DYNLIB_INIT(RS_SONAME_SSL, "OpenSSL, for network backends", ssl_syms);
static struct dynlib crypto_lib = DYNLIB_INIT(RS_SONAME_CRYPTO, "OpenSSL's libcrypto", crypto_syms);

int http_libs_crypto(char *err, size_t errlen)
{
    return dynlib_load(&crypto_lib, err, errlen);
}

int http_libs_load(char *err, size_t errlen)
{
    int rc = dynlib_load(&crypto_lib, err, errlen);
    if (rc == 0)
        rc = dynlib_load(&ssl_lib, err, errlen);
    if (rc == 0)
        rc = dynlib_load(&curl_lib, err, errlen);
    return rc;
}
