/* vault_i.h - vault.c's answer parsers, for the unit tests and fuzz targets.
 *
 * Each takes one HTTP response as Vault sent it and does no I/O; vault.c
 * calls them right after the request. Messages name paths and Vault's
 * "errors" text, never a token or a value. */
#ifndef RS_VAULT_I_H
#define RS_VAULT_I_H

#include <jansson.h>
#include <stdbool.h>
#include "backends/core/provider.h"
#include "backends/http/http.h"
#include "lib/unittest.h"

enum mount_kind { MOUNT_KV1 = 1, MOUNT_KV2 = 2, MOUNT_OTHER = 3 };

#ifdef UNITTEST
/* auth/<method>/login: a new token (secret memory) with its TTL. */
int vault_login_answer(const char *what, const struct http_response *r, char **tok,
                       long long *ttl, bool *renewable, char *err, size_t errlen);
/* auth/token/lookup-self. */
int vault_lookup_answer(const struct http_response *r, long long *ttl, long long *increment,
                        bool *renewable, char *err, size_t errlen);
/* auth/token/renew-self: 0, 1 (refused: log in afresh) or an error. */
int vault_renew_self_answer(const struct http_response *r, long long *ttl, bool *renewable,
                            char *err, size_t errlen);
/* sys/internal/ui/mounts/<path>: the mount (borrowed from path or *root,
 * which is new) serving path. */
int vault_mount_answer(const struct http_response *r, const char *path, struct fetch_result *out,
                       json_t **root, const char **mp, size_t *mplen, enum mount_kind *kind,
                       char *err, size_t errlen);
/* A read of path: the data object into out->value; *root is new. */
int vault_read_answer(const char *path, const struct http_response *r, bool kv2,
                      struct fetch_result *out, json_t **root, char *err, size_t errlen);
/* The lease of a read answer (id borrowed from root): 0, or 1 if none. */
int vault_lease_of(const json_t *root, const char **id, long long *dur, bool *renewable);
/* sys/leases/renew: 0 and the seconds granted, 1 (read anew) or an error. */
int vault_lease_renew_answer(const struct http_response *r, struct fetch_result *out,
                             long long *granted, char *err, size_t errlen);
#endif

#endif
