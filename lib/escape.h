/* escape.h - show untrusted bytes in a one-line message or log field.
 *
 * Config keys, names, paths and arguments reach error lines and logs; a
 * "\n" in one must not split the line and an ESC must not reach a terminal.
 * The one escaper for all of them (vis(3)/JSON style):
 *   printable ASCII and valid UTF-8 from U+00A0 up: as they are;
 *   \n \r \t; \\ for a backslash;
 *   \xNN for every other byte (controls, DEL, C1 controls, bytes that are
 *   not valid UTF-8).
 */
#ifndef RS_ESCAPE_H
#define RS_ESCAPE_H

#include <stddef.h>

enum {
    ESCAPE_DQUOTE = 1u << 0,        /* '"' as \x22: the text sits between "..." */
    ESCAPE_SQUOTE = 1u << 1,        /* '\'' as \x27: the text sits between '...' */
    ESCAPE_KEEP_BACKSLASH = 1u << 2,/* a composed message whose escapes are already
                                       in place: only unprintable bytes change */
};

/* Write s[0..n) escaped into out (cap > 0 bytes, always NUL-terminated).
 * When it does not fit, stops before the escape or character that would
 * not fit and ends with "..." (room kept for it). Returns strlen(out). */
size_t escape_bytes(char *out, size_t cap, const char *s, size_t n, unsigned flags);

/* escape_bytes of a NUL-terminated s. */
size_t escape_str(char *out, size_t cap, const char *s, unsigned flags);

#endif
