/* fuzz_ref.c - secret references (broker/ref.c): parse, copy, and the
 * canonical form, which must parse back to the same reference. */
#include "fuzz.h"

#include <errno.h>
#include "lib/ref.h"

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    char err[512] = "";
    struct secret_ref r, c, back;

    if (ref_parse(s, &r, err, sizeof(err)) == 0) {
        FUZZ_ASSERT(r.backend && r.backend[0] && r.path && r.path[0]);
        FUZZ_ASSERT(!(r.version && r.stage));
        FUZZ_ASSERT(ref_copy(&c, &r) == 0);
        char *f = ref_format(&c);
        FUZZ_ASSERT(f != NULL);
        FUZZ_ASSERT(ref_parse(f, &back, err, sizeof(err)) == 0);
        FUZZ_ASSERT(same(back.backend, r.backend) && same(back.path, r.path) &&
                    same(back.version, r.version) && same(back.stage, r.stage) &&
                    same(back.field, r.field));
        ref_cleanup(&back);
        free(f);
        ref_cleanup(&c);
        ref_cleanup(&r);
    } else {
        FUZZ_ASSERT(r.backend == NULL && r.path == NULL && err[0] != '\0');
    }
    free(s);
    return 0;
}
