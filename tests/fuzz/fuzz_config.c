/* fuzz_config.c - the configuration loader (broker/config.c) with the
 * positions of its messages (broker/jsonpos.c) and every backend's
 * validate(): the input is a config file's text, given to cfg_load_buffer,
 * which is what cfg_load (`runsecrets check`, `mount`) calls once the file
 * is read. */
#include "fuzz.h"

#include <errno.h>
#include "engine/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *cfg = NULL;
    char err[1024] = "";
    int rc = cfg_load_buffer((const char *)data, size, "fuzz.json", &cfg, err, sizeof(err));

    if (rc == 0) {
        FUZZ_ASSERT(cfg != NULL && cfg->mount != NULL);
        for (size_t i = 0; i < cfg->n_secrets; i++) {
            FUZZ_ASSERT(cfg->secrets[i].backend < cfg->n_backends);
            FUZZ_ASSERT(cfg->secrets[i].attrs.max_stale >= cfg->secrets[i].attrs.refresh);
            FUZZ_ASSERT(cfg_secret_index(cfg, cfg->secrets[i].name) == (long)i);
        }
        cfg_free(cfg);
    } else {
        /* One line naming the file, for a person at a terminal. */
        FUZZ_ASSERT(rc == -EINVAL || rc == -ENOMEM);
        FUZZ_ASSERT(strncmp(err, "fuzz.json", 9) == 0);
        FUZZ_ASSERT(strchr(err, '\n') == NULL);
    }
    return 0;
}
