/* file.h - the "file" provider, for the registry (backends/backend.c). */
#ifndef RS_FILE_PROVIDER_H
#define RS_FILE_PROVIDER_H

#include "backends/core/provider.h"

extern const struct backend_ops backend_file_ops;

#endif
