/* aws.h - the "aws" provider, for the registry (backends/backend.c). */
#ifndef RS_AWS_PROVIDER_H
#define RS_AWS_PROVIDER_H

#include "backends/core/provider.h"

extern const struct backend_ops backend_aws_ops;

#endif
