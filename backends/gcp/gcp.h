/* gcp.h - the GCP Secret Manager provider (backends/gcp/gcp_i.h has the map). */
#ifndef RS_GCP_H
#define RS_GCP_H

#include "backends/core/provider.h"

extern const struct backend_ops backend_gcp_ops;

#endif
