/* apply.c - the live apply of a reloaded configuration (reload.h).
 *
 * Placeholder on the hostsvc branch: the reload branch brings the real
 * one (diff old and new, carry unchanged secrets over). Until then every
 * configuration that loads is refused here, so a reload changes nothing
 * and says why. */
#include "broker/reload.h"

#include <errno.h>
#include <stdio.h>

int broker_apply(struct broker *b, struct config *next, char *err, size_t errlen)
{
    (void)b;
    (void)next;
    snprintf(err, errlen, "reload: applying a changed config is not built yet");
    return -ENOTSUP;
}
