/* duration.h - "90s", "5m", "1h30m", "2d", "250ms" or an integer number of
 * seconds. Everything is in milliseconds. */
#ifndef RS_DURATION_H
#define RS_DURATION_H

#include <jansson.h>
#include <stddef.h>

/* Parse a JSON string or integer (seconds) into milliseconds (> 0, at most
 * 10 years). 0 or -EINVAL with a message in err. */
int duration_parse(const json_t *v, long long *ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int duration_parse_str(const char *s, long long *ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Format milliseconds as e.g. "1h30m" or "1s500ms" into out. */
void duration_format(long long ms, char *out, size_t cap);

#endif
