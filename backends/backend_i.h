/* backend_i.h - what backend.c needs from each backend implementation. */
#ifndef RS_BACKEND_I_H
#define RS_BACKEND_I_H

#include "backend.h"

extern const struct backend_ops backend_file_ops;
extern const struct backend_ops backend_vault_ops;
extern const struct backend_ops backend_aws_ops;

/* Shared helpers for validate(): each returns 0 or -EINVAL with
 * "<key>: <what>" in err. */
/* Keys allowed: the common ones (type, max_size, retry_base, retry_max),
 * allowed and more (either may be NULL). */
int backend_conf_check_keys(json_t *conf, const char *const *allowed, const char *const *more,
                            char *err, size_t errlen) __attribute__((warn_unused_result));
int backend_conf_size(json_t *conf, const char *key, size_t dflt, size_t *out,
                      char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
