#!/usr/bin/env bash
# run-coldstart-aws.sh [BUILD_DIR] [OPTIONS] - the AWS Secrets Manager cold-start benchmark:
# 100 secrets from moto (IAM authentication on, through the recording proxy of
# tests/fakes/aws_proxy.py), time until all are readable under a runsecrets mount with
# BatchGetSecretValue (the default) vs "batch": false. Needs root, /dev/fuse and moto/boto3 for
# the python3 on PATH. Everything is done by bench/coldstart-aws.py (see its --help); this wrapper
# only picks the Python.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "${PYTHON:-python3}" "$src/bench/coldstart-aws.py" "$@"
