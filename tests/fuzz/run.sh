#!/usr/bin/env bash
# run.sh TARGET CORPUS SECONDS [ARTIFACT_DIR] - run one libFuzzer target for
# SECONDS over a copy of CORPUS (the checked-in seeds stay as they are).
# Exits 0 when nothing was found, 1 on any crash, leak, UB report, timeout
# or OOM; the input that caused it is kept in ARTIFACT_DIR (default: the
# current directory). The final statistics (executions, ...) go to stderr.
set -euo pipefail
target=$1 corpus=$2 secs=$3 artifacts=${4:-.}
work=$(mktemp -d "${TMPDIR:-/tmp}/rs-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$artifacts"
cp -R "$corpus/." "$work/corpus/"
name=$(basename "$target")
# libFuzzer's own exit codes (77 by default) would read as "skipped" to
# meson: every finding exits 1. -timeout: one input taking 10 s is a hang.
rc=0
"$target" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 \
    -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$name-" "$work/corpus" || rc=$?
if ((rc != 0)); then
    echo "$name: failed (exit $rc); reproduce with: $target $artifacts/$name-<crash file>" >&2
    exit 1
fi
