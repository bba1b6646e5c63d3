#!/usr/bin/env bash
# run-coldstart-gcp.sh [BUILD_DIR] [OPTIONS] - the GCP Secret Manager cold-start benchmark
# (docs/performance.md): 100 secrets from the fake GCP (Secret Manager + token endpoint) with
# 50 ms per request, time until all are readable under a runsecrets mount vs 100 sequential curl
# requests with a token fetched beforehand. Needs root and /dev/fuse. Everything is done by
# bench/coldstart-gcp.py (see its --help); this wrapper only picks the Python.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "${PYTHON:-python3}" "$src/bench/coldstart-gcp.py" "$@"
