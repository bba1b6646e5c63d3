/* fuzz.h - what every fuzz target shares: the libFuzzer entry points and
 * the process setup main() does before anything parses (hardening_init:
 * jansson's, curl's and OpenSSL's wiping allocators), so the code under
 * test runs as in production. */
#ifndef RS_FUZZ_H
#define RS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/secmem.h"
#include "broker/hardening.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256] = "";
    (void)argc;
    (void)argv;
    /* Only errors: a warning per input would drown libFuzzer's output. */
    log_setup(2, LOG_FORMAT_TEXT, LOG_ERROR);
    if (hardening_init(err, sizeof(err)) < 0) {
        fprintf(stderr, "hardening_init: %s\n", err);
        abort();
    }
    return 0;
}

/* The input as a C string (new; NULs inside end it early, as they would
 * for any string the product gets from JSON or the command line). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* An invariant the code under test broke: a finding like a crash. */
#define FUZZ_ASSERT(cond)                                                        \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                      \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* Secret values in the seeds contain this marker ("s3cr3t-db-passw0rd");
 * mutations keep it. A parser's message may quote a path or a server's error
 * text, never a value: a message with the marker leaked one. */
#define FUZZ_SECRET_MARKER "s3cr3t"

/* What an answer parser owes its caller: a failure says why, and a message
 * about a successful (200) answer quotes none of its values (a server's own
 * error text is quoted on purpose). */
static inline void fuzz_check_answer_message(int rc, long status, const char *err)
{
    if (rc < 0)
        FUZZ_ASSERT(err[0] != '\0');
    if (status == 200)
        FUZZ_ASSERT(strstr(err, FUZZ_SECRET_MARKER) == NULL);
}

/* An HTTP status the parsers are likely to meet, from one input byte. */
static inline long fuzz_status(uint8_t b)
{
    static const long st[] = {200, 204, 400, 403, 404, 429, 500, 503};
    return st[b % (sizeof(st) / sizeof(st[0]))];
}

#endif
