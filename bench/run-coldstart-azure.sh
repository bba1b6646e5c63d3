#!/usr/bin/env bash
# run-coldstart-azure.sh [BUILD_DIR] [OPTIONS] - the Azure Key Vault cold-start benchmark
# (docs/performance.md): 100 secrets from the fake Azure (Key Vault + Entra token endpoint) with
# 50 ms per request, time until all are readable under a runsecrets mount vs 100 sequential curl
# requests with a token fetched beforehand. Needs root and /dev/fuse. Everything is done by
# bench/coldstart-azure.py (see its --help); this wrapper only picks the Python.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "${PYTHON:-python3}" "$src/bench/coldstart-azure.py" "$@"
