#!/usr/bin/env bash
# run-coldstart.sh [BUILD_DIR] [OPTIONS] - the Vault cold-start benchmark (docs/performance.md):
# 100 secrets from the fake Vault with 50 ms per request, time until all are readable under a
# runsecrets mount vs 100 sequential curl requests. Needs root and /dev/fuse. Everything is done
# by bench/coldstart-vault.py (see its --help); this wrapper only picks the Python.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "${PYTHON:-python3}" "$src/bench/coldstart-vault.py" "$@"
