/* lib_floor.c - the start-to-exit floor of a program linked with the
 * libraries runsecrets is linked with, and nothing else: it loads them
 * (with everything they pull in: 36 objects with Debian 12's libcurl),
 * runs their constructors and destructors, and exits.
 * bench/exec-overhead.py times it against /bin/true and `runsecrets
 * version`, so what the libraries cost is told apart from what runsecrets
 * does (docs/performance.md). */
#include <curl/curl.h>
#include <fuse3/fuse_lowlevel.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argv;
    /* One symbol of each library is referenced, so --as-needed keeps
     * every one of them, but nothing is called: only the load is timed. */
    const void *const used[] = {
        (const void *)curl_version, (const void *)fuse_pkgversion, (const void *)json_object,
        (const void *)OpenSSL_version_num, (const void *)SSL_CTX_new,
        (const void *)sodium_version_string,
    };
    if (argc > 1000)
        printf("%p\n", used[argc % (int)(sizeof(used) / sizeof(used[0]))]);
    return 0;
}
