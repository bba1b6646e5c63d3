/* azure.h - the Azure Key Vault provider (backends/azure/azure_i.h has the map). */
#ifndef RS_AZURE_H
#define RS_AZURE_H

#include "backends/core/provider.h"

extern const struct backend_ops backend_azure_ops;

#endif
