#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this):
# installs what is missing, then builds and runs every test twice — a
# -Werror build and an ASan+UBSan build — and gives each libFuzzer target
# 30 s over its corpus in a third, clang build (build-fuzz, -Dfuzz=true;
# docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || exec sudo -E "$0" "$@"

scripts/deps.sh

run_suite() {  # name, meson options...
    local dir=$1; shift
    echo "==> $dir: meson setup $*"
    if [[ -d $dir ]]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
    ninja -C "$dir"
    meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
}

# The fuzz build has the fuzz suite only (tests/meson.build); 9 targets of
# 30 s, two at a time.
run_fuzz() {  # build dir
    local dir=$1
    echo "==> $dir: CC=clang meson setup -Dwerror=true -Dfuzz=true"
    if [[ -d $dir ]]; then
        meson setup --reconfigure "$dir" -Dwerror=true -Dfuzz=true >/dev/null
    else
        CC=clang meson setup "$dir" -Dwerror=true -Dfuzz=true >/dev/null
    fi
    ninja -C "$dir"
    meson test -C "$dir" --suite fuzz --print-errorlogs --num-processes 2 || status=1
}

status=0
run_suite build-ci -Dwerror=true
run_suite build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
run_fuzz build-fuzz

# One closing line over all three runs, counted from meson's own logs.
python3 - build-ci build-asan build-fuzz <<'PY'
import json, sys
ok = bad = skip = 0
for d in sys.argv[1:]:
    for line in open(f"{d}/meson-logs/testlog.json"):
        r = json.loads(line)["result"]
        if r == "OK": ok += 1
        elif r == "SKIP": skip += 1
        else: bad += 1
print(f"{ok} passed, {bad} failed, {skip} skipped")
PY
exit $status
