#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this):
# installs what is missing, then builds and runs every test twice — a
# -Werror build and an ASan+UBSan build (the container tests run in the
# first only) — and gives each libFuzzer target 15 s over its corpus in a
# third, clang build (build-fuzz, -Dfuzz=true; docs/reliability.md), beside
# the ASan suite. Each phase prints its time: CI's budget for all of it is
# 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || exec sudo -E "$0" "$@"

phase_start=$SECONDS
phase_end() {  # what
    echo "==> $1: $((SECONDS - phase_start)) s"
    phase_start=$SECONDS
}

scripts/deps.sh
phase_end "deps"

run_suite() {  # name, meson options...
    local dir=$1; shift
    echo "==> $dir: meson setup $*"
    if [[ -d $dir ]]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
    ninja -C "$dir"
    phase_end "$dir: build"
    # Suite 'background': the real-container tests (plain build only), which
    # wait on dockerd and podman most of the time. They run as a second meson
    # instance beside the rest, with a log of their own (--logbase), instead
    # of holding both CPUs idle for minutes at the end.
    local bg=
    if meson test -C "$dir" --list --suite background 2>/dev/null | grep -q "background / "; then
        meson test -C "$dir" --suite background --logbase background --print-errorlogs \
            >"$dir/meson-logs/background.out" 2>&1 &
        bg=$!
    fi
    meson test -C "$dir" --no-suite background --print-errorlogs --num-processes 2 || status=1
    if [[ -n $bg ]]; then
        wait "$bg" || status=1
        echo "==> $dir: background suite (beside the rest):"
        cat "$dir/meson-logs/background.out"
    fi
    phase_end "$dir: tests"
}

# The fuzz build has the fuzz suite only (tests/meson.build); 9 targets of
# 15 s, two at a time.
run_fuzz() {  # build dir
    local dir=$1
    echo "==> $dir: CC=clang meson setup -Dwerror=true -Dfuzz=true"
    if [[ -d $dir ]]; then
        meson setup --reconfigure "$dir" -Dwerror=true -Dfuzz=true >/dev/null
    else
        CC=clang meson setup "$dir" -Dwerror=true -Dfuzz=true >/dev/null
    fi
    ninja -C "$dir"
    phase_end "$dir: build"
    meson test -C "$dir" --suite fuzz --print-errorlogs --num-processes 2 || status=1
    phase_end "$dir: fuzz"
}

status=0
run_suite build-ci -Dwerror=true
# The fuzz build and its runs (CPU-bound, about 2.5 minutes) go beside the
# ASan+UBSan suite, whose integration tests mostly wait; their output is
# shown, and their status counted, once both are done.
fuzz_out=$(mktemp)
( status=0; run_fuzz build-fuzz; exit $status ) >"$fuzz_out" 2>&1 &
fuzz_pid=$!
run_suite build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
wait "$fuzz_pid" || status=1
echo "==> build-fuzz (beside build-asan):"
cat "$fuzz_out"
rm -f "$fuzz_out"
phase_end "waiting for the fuzz runs"

# One closing line over all three runs, counted from meson's own logs.
python3 - build-ci build-asan build-fuzz <<'PY'
import glob, json, sys
ok = bad = skip = 0
for d in sys.argv[1:]:
    for log in glob.glob(f"{d}/meson-logs/testlog.json") + glob.glob(f"{d}/meson-logs/background.json"):
        for line in open(log):
            r = json.loads(line)["result"]
            if r == "OK": ok += 1
            elif r == "SKIP": skip += 1
            else: bad += 1
print(f"{ok} passed, {bad} failed, {skip} skipped")
PY
exit $status
