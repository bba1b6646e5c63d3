/* fuzz_ini.c - the AWS shared config/credentials file parser
 * (backends/ini.c), and the look-ups the credential chain makes. */
#include "fuzz.h"

#include "backends/aws/ini.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ini *ini = NULL;
    char err[512] = "";
    static const char *const sections[] = {"default", "profile dev", "dev", "", NULL};
    static const char *const keys[] = {"aws_access_key_id", "aws_secret_access_key",
                                       "role_arn", "source_profile", "region", "", NULL};

    if (ini_parse("fuzz.ini", (const char *)data, size, &ini, err, sizeof(err)) != 0) {
        FUZZ_ASSERT(err[0] != '\0' && ini == NULL);
        return 0;
    }
    for (size_t i = 0; sections[i]; i++) {
        (void)ini_has_section(ini, sections[i]);
        for (size_t k = 0; keys[k]; k++) {
            const char *v = ini_get(ini, sections[i], keys[k]);
            if (v)
                FUZZ_ASSERT(strlen(v) <= size);
        }
    }
    ini_free(ini);
    return 0;
}
