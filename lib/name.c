/* name.c - secret names (their path under the mount) and backend names. */
#include "lib/name.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Longest backend name; it appears in every log line about a secret. */
#define NAME_BACKEND_MAX_LEN 64

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Names come from the config and end up in messages and logs: a byte that
 * is not printable ASCII is shown as 0xNN, never raw. */
static void bad_char(char *err, size_t errlen, unsigned char c, const char *what,
                     const char *allowed)
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(err, errlen, "character '%c' (0x%02x) is not allowed in %s (allowed: %s)", c, c,
                 what, allowed);
    else
        snprintf(err, errlen, "character 0x%02x is not allowed in %s (allowed: %s)", c, what,
                 allowed);
}

int name_validate(const char *name, char *err, size_t errlen)
{
    static const char allowed[] = "A-Z a-z 0-9 . _ - and '/' between levels";
    size_t len = strnlen(name, NAME_MAX_LEN + 1);
    size_t seg_start = 0;
    unsigned depth = 0;

    if (len == 0) {
        snprintf(err, errlen, "name is empty");
        return -EINVAL;
    }
    if (len > NAME_MAX_LEN) {
        snprintf(err, errlen, "name is longer than %d characters", NAME_MAX_LEN);
        return -EINVAL;
    }
    if (name[0] == '/') {
        snprintf(err, errlen, "name must not start with '/' (it is already relative to the mount)");
        return -EINVAL;
    }

    /* One pass; i == len closes the last segment like a '/' would. */
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)name[i];
        size_t seg_len;

        if (i < len && c != '/') {
            if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
                bad_char(err, errlen, c, "a name", allowed);
                return -EINVAL;
            }
            continue;
        }
        seg_len = i - seg_start;
        if (seg_len == 0) {
            if (i == len)
                snprintf(err, errlen, "name must not end with '/'");
            else
                snprintf(err, errlen, "empty segment ('//') in name");
            return -EINVAL;
        }
        if ((seg_len == 1 && name[seg_start] == '.') ||
            (seg_len == 2 && name[seg_start] == '.' && name[seg_start + 1] == '.')) {
            snprintf(err, errlen, "segment '%.*s' is not allowed", (int)seg_len, name + seg_start);
            return -EINVAL;
        }
        if (seg_len > NAME_MAX_SEGMENT) {
            snprintf(err, errlen, "segment longer than %d characters", NAME_MAX_SEGMENT);
            return -EINVAL;
        }
        depth++;
        if (depth > NAME_MAX_DEPTH) {
            snprintf(err, errlen, "more than %d levels deep", NAME_MAX_DEPTH);
            return -EINVAL;
        }
        seg_start = i + 1;
    }
    return 0;
}

int name_validate_backend(const char *name, char *err, size_t errlen)
{
    size_t len = strnlen(name, NAME_BACKEND_MAX_LEN + 1);

    if (len == 0) {
        snprintf(err, errlen, "backend name is empty");
        return -EINVAL;
    }
    if (len > NAME_BACKEND_MAX_LEN) {
        snprintf(err, errlen, "backend name is longer than %d characters", NAME_BACKEND_MAX_LEN);
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!is_alnum(c) && c != '_' && c != '-') {
            bad_char(err, errlen, c, "a backend name", "A-Z a-z 0-9 _ -");
            return -EINVAL;
        }
    }
    return 0;
}
