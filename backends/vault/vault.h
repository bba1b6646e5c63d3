/* vault.h - the "vault" provider, for the registry (backends/backend.c). */
#ifndef RS_VAULT_PROVIDER_H
#define RS_VAULT_PROVIDER_H

#include "backends/core/provider.h"

extern const struct backend_ops backend_vault_ops;

#endif
