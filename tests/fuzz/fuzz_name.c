/* fuzz_name.c - secret and backend names (broker/name.c): what they accept
 * must be safe as a path under the mount. */
#include "fuzz.h"

#include "lib/name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    char err[512] = "";

    if (name_validate(s, err, sizeof(err)) == 0) {
        size_t depth = 1;
        FUZZ_ASSERT(s[0] != '\0' && s[0] != '/' && strlen(s) <= NAME_MAX_LEN);
        FUZZ_ASSERT(strstr(s, "//") == NULL && s[strlen(s) - 1] != '/');
        for (const char *seg = s; seg; seg = strchr(seg, '/') ? strchr(seg, '/') + 1 : NULL) {
            size_t n = strcspn(seg, "/");
            FUZZ_ASSERT(n > 0 && n <= NAME_MAX_SEGMENT);
            FUZZ_ASSERT(!(n == 1 && seg[0] == '.') && !(n == 2 && seg[0] == '.' && seg[1] == '.'));
            depth += strchr(seg, '/') != NULL;
        }
        FUZZ_ASSERT(depth <= NAME_MAX_DEPTH);
        FUZZ_ASSERT(strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/") ==
                    strlen(s));
    } else {
        FUZZ_ASSERT(err[0] != '\0');
    }
    if (name_validate_backend(s, err, sizeof(err)) == 0)
        FUZZ_ASSERT(s[0] != '\0' && strlen(s) <= 64 &&
                    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
                        strlen(s));
    free(s);
    return 0;
}
