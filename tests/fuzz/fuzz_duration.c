/* fuzz_duration.c - durations (broker/duration.c): the input as a string
 * ("1h30m") and as a JSON value (90, "5m"); whatever parses must format
 * to something that parses back to the same number of milliseconds. */
#include "fuzz.h"

#include <errno.h>
#include <jansson.h>
#include "lib/duration.h"

#define TEN_YEARS (10LL * 366 * 86400 * 1000)   /* durations are milliseconds */

static void round_trip(long long secs)
{
    char text[64], err[256];
    long long again = -1;
    FUZZ_ASSERT(secs > 0 && secs <= TEN_YEARS);
    duration_format(secs, text, sizeof(text));
    FUZZ_ASSERT(duration_parse_str(text, &again, err, sizeof(err)) == 0);
    FUZZ_ASSERT(again == secs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    char err[256] = "";
    long long secs = 0;
    json_error_t jerr;

    if (duration_parse_str(s, &secs, err, sizeof(err)) == 0)
        round_trip(secs);
    else
        FUZZ_ASSERT(err[0] != '\0');
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (v) {
        if (duration_parse(v, &secs, err, sizeof(err)) == 0)
            round_trip(secs);
        json_decref(v);
    }
    /* duration_format takes any count, even ones no parse gives. */
    if (size >= sizeof(long long)) {
        char text[64];
        memcpy(&secs, data, sizeof(secs));
        duration_format(secs, text, sizeof(text));
        duration_format(secs, text, 4);
        FUZZ_ASSERT(strlen(text) < 4);
    }
    free(s);
    return 0;
}
