/* reload.c - load the configuration again, then apply it (reload.h). */
#include "broker/reload.h"
#include "broker/broker.h"
#include "engine/config.h"
#include "lib/log.h"

int broker_reload(struct broker *b, char *err, size_t errlen)
{
    struct config *next = NULL;
    int rc = cfg_load_opts(b->config_path, b->cfg_flags, &next, err, errlen);
    if (rc < 0)
        return rc;   /* nothing was touched: the old configuration serves on */
    for (size_t i = 0; i < next->n_warnings; i++)
        log_warn("%s", next->warnings[i]);
    return broker_apply(b, next, err, errlen);   /* takes next, applied or not */
}
