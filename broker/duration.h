/* duration.h - "90s", "5m", "1h30m", "2d" or an integer number of seconds. */
#ifndef RS_DURATION_H
#define RS_DURATION_H

#include <jansson.h>
#include <stddef.h>

/* Parse a JSON string or integer into seconds (> 0, at most 10 years).
 * 0 or -EINVAL with a message in err. */
int duration_parse(const json_t *v, long long *secs, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int duration_parse_str(const char *s, long long *secs, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Format seconds as e.g. "1h30m" into out. */
void duration_format(long long secs, char *out, size_t cap);

#endif
