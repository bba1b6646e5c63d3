/* glob.h - the access policy's globs, over secret names and cgroup paths
 * (docs/config.md "policy"; its examples are not repeated here because a
 * slash-star inside a C comment is a warning).
 *
 * A pattern is a list of '/'-separated segments, matched against the
 * string's segments:
 *   *      any run of characters within one segment (never a '/')
 *   **     a whole segment only: any number of segments, zero included
 *          (a, then a slash, then ** matches "a", "a/b" and "a/b/c";
 *          "a**" is an error)
 *   ?      one character other than '/'
 *   [...]  one character of a set: "[a-z0-9_]", negated by a leading '!'
 *          or '^'; a ']' first in the set is literal; never '/'
 *   \c     the character c itself ("\*" is a star, "\\" a backslash)
 * Matching takes at most O(segments of pattern x segments of string)
 * segment comparisons, each O(len pattern x len string): the classic
 * two-pointer backtrack, once per level, never recursion. */
#ifndef RS_POLICY_GLOB_H
#define RS_POLICY_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* 0 when pattern is a valid glob; -EINVAL with one line in err (empty,
 * unterminated '[', an empty or reversed range, a '/' in a set or escaped,
 * '**' that is not a whole segment, a trailing backslash). */
int policy_glob_check(const char *pattern, char *err, size_t errlen)
    __attribute__((warn_unused_result, nonnull(1)));

/* Does s match pattern? Meant for patterns policy_glob_check accepted; any
 * other pattern gives some answer, never a crash or a long loop. */
bool policy_glob_match(const char *pattern, const char *s) __attribute__((nonnull(1, 2)));

#endif
