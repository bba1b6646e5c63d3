#!/usr/bin/env bash
# scripts/fuzz.sh TARGET SECONDS - one long libFuzzer run of tests/fuzz/fuzz_TARGET
# (config, ref, duration, name, extract, ini, vault, aws, aws_creds, azure), on one
# core. Builds build-fuzz when missing (CC=clang, -Dfuzz=true). The corpus
# grows in build-fuzz/fuzz-work/TARGET/corpus (the seeds in
# tests/fuzz/corpus/TARGET are read, never written), findings land in
# build-fuzz/fuzz-work/TARGET/artifacts/, and the last line is one record:
#   TARGET wall-seconds cpu-seconds executions findings
# See docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 2 ]] || { echo "usage: $0 TARGET SECONDS" >&2; exit 2; }
target=$1 secs=$2 build=${FUZZ_BUILD:-build-fuzz}
seeds=tests/fuzz/corpus/$target
[[ -d $seeds ]] || { echo "$0: no target '$target' (no $seeds)" >&2; exit 2; }

if [[ ! -d $build ]]; then
    CC=clang meson setup "$build" -Dfuzz=true >/dev/null
fi
ninja -C "$build" "tests/fuzz/fuzz_$target" >/dev/null
work=$build/fuzz-work/$target
mkdir -p "$work/corpus" "$work/artifacts"
log=$work/last-run.log

rc=0
TIMEFORMAT='%R %U %S'
{ time "$build/tests/fuzz/fuzz_$target" -max_total_time="$secs" -timeout=10 \
      -rss_limit_mb=1024 -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds" >"$log" 2>&1 || rc=$?; } 2>"$work/cpu"
read -r wall user sys <"$work/cpu"
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
found=$(find "$work/artifacts" -type f | wc -l)
grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*invariant failed)' "$log" | head -5 || true
awk -v t="$target" -v s="$wall" -v u="$user" -v y="$sys" -v e="${execs:-?}" -v f="$found" \
    'BEGIN { printf "%s %.0f %.0f %s %s\n", t, s, u + y, e, f }'
exit $rc
