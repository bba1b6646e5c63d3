/* libs.h - the HTTP stack's libraries, loaded on first use (lib/dynlib.h):
 * libcurl, and the OpenSSL it speaks TLS with (libssl for one setting of
 * curl's TLS contexts, libcrypto for its allocator hook and the GCP
 * assertion's RS256).
 *
 * A mount whose backends are all local never loads them. Code below the
 * broker that calls one of these functions calls it through its sym_
 * pointer, after http_libs_load (or http_libs_crypto, for libcrypto alone)
 * returned 0: the URL parser, the HTTP engine, the GCP assertion, and in
 * the broker the hardening hooks, `version` and the admin client.
 */
#ifndef RS_HTTP_LIBS_H
#define RS_HTTP_LIBS_H

#include <stddef.h>

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#define HTTP_LIBS_CURL(X)                                                                   \
    X(curl_easy_cleanup) X(curl_easy_getinfo) X(curl_easy_header) X(curl_easy_init)         \
    X(curl_easy_perform) X(curl_easy_setopt) X(curl_easy_strerror) X(curl_free)             \
    X(curl_getdate) X(curl_global_init_mem) X(curl_multi_add_handle) X(curl_multi_cleanup)  \
    X(curl_multi_info_read) X(curl_multi_init) X(curl_multi_perform) X(curl_multi_poll)     \
    X(curl_multi_remove_handle) X(curl_multi_setopt) X(curl_multi_wakeup)                   \
    X(curl_share_cleanup) X(curl_share_init) X(curl_share_setopt) X(curl_slist_append)      \
    X(curl_slist_free_all) X(curl_url) X(curl_url_cleanup) X(curl_url_get) X(curl_url_set)  \
    X(curl_version_info)

#define HTTP_LIBS_SSL(X) X(SSL_CTX_ctrl)

#define HTTP_LIBS_CRYPTO(X)                                                                 \
    X(BIO_free) X(BIO_new_mem_buf) X(CRYPTO_get_mem_functions) X(CRYPTO_secure_malloc_init) \
    X(CRYPTO_secure_malloc_initialized) X(CRYPTO_set_mem_functions) X(ERR_clear_error)      \
    X(EVP_DigestSign) X(EVP_DigestSignInit) X(EVP_MD_CTX_free) X(EVP_MD_CTX_new)            \
    X(EVP_PKEY_free) X(EVP_PKEY_get_base_id) X(EVP_PKEY_get_bits) X(EVP_PKEY_get_size)      \
    X(EVP_sha256) X(PEM_read_bio_PrivateKey)

/* `__typeof__(curl_easy_setopt)` names the function even where curl's
 * headers make it a type-checking macro (a function-like macro is not
 * expanded without its parentheses). */
#define HTTP_LIBS_DECLARE(fn) extern __typeof__(fn) *sym_##fn;
HTTP_LIBS_CURL(HTTP_LIBS_DECLARE)
HTTP_LIBS_SSL(HTTP_LIBS_DECLARE)
HTTP_LIBS_CRYPTO(HTTP_LIBS_DECLARE)
#undef HTTP_LIBS_DECLARE

/* libcrypto, then libssl and libcurl (each once per process). 0, or
 * -ELIBACC and "cannot load libcurl.so.4 (...): ..." in err. The caller that
 * initialises libcurl (the broker's hardening) hooks OpenSSL's allocator
 * between http_libs_crypto and this: loading allocates nothing. */
int http_libs_load(char *err, size_t errlen) __attribute__((warn_unused_result));
/* libcrypto alone. 0 or -ELIBACC (err). */
int http_libs_crypto(char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
