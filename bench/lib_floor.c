/* lib_floor.c - the start-to-exit floor of a program linked with the
 * libraries runsecrets is linked with, and nothing else: it loads them
 * (libsodium, jansson, libfuse3 and libc; libcurl, OpenSSL and
 * libmicrohttpd are loaded on use, lib/dynlib.h, so a run that needs none
 * of them does not pay for them), runs their constructors and destructors,
 * and exits. bench/exec-overhead.py times it against /bin/true and
 * `runsecrets version`, so what the libraries cost is told apart from what
 * runsecrets does (docs/performance.md). */
#include <fuse3/fuse_lowlevel.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argv;
    /* One symbol of each library is referenced, so --as-needed keeps
     * every one of them, but nothing is called: only the load is timed. */
    const void *const used[] = {
        (const void *)fuse_pkgversion, (const void *)json_object,
        (const void *)sodium_version_string,
    };
    if (argc > 1000)
        printf("%p\n", used[argc % (int)(sizeof(used) / sizeof(used[0]))]);
    return 0;
}
