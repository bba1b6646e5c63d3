#!/usr/bin/env bash
# scale.sh [BUILD_DIR] [scale.py OPTIONS] - the scaling curve of issue 16 (docs/performance.md,
# "Scaling curve (issue 16)"): for N = 100 .. 100,000 file secrets and 100 .. 10,000 fake-Vault
# secrets, start-to-all-served time, RSS, VmLck, threads and one refresh cycle's CPU; then
# "Refresh cost at scale" (10,000 secrets, refresh 5m scaled from 30 s). The measuring is
# bench/scale.py's (see its docstring and --help); this wrapper runs it, then draws
# OUT/scale.csv with gnuplot (bench/scale.gp) into docs/img/scale-*.png (SCALE_IMG_DIR to change).
#
# gnuplot is only needed here, so it is not in scripts/deps.sh; on Debian:
#   apt-get install --no-install-recommends gnuplot-nox
# Needs root and /dev/fuse. Takes about 10-15 minutes on a 2-core machine.
# Environment: SCALE_OUT (output dir, as --out; default BUILD/bench-scale), SCALE_IMG_DIR (default SRC/docs/img),
# SCALE_PLOT_ONLY=1 (only redraw from an existing CSV), PYTHON.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$src/build
if [[ $# -gt 0 && ${1:0:1} != - ]]; then
    build=$(cd "$1" && pwd)
    shift
fi
out=${SCALE_OUT:-$build/bench-scale}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do   # an --out of scale.py's wins
    case ${args[i]} in
        --out) out=${args[i + 1]:-$out} ;;
        --out=*) out=${args[i]#--out=} ;;
    esac
done
img=${SCALE_IMG_DIR:-$src/docs/img}

if [[ ${SCALE_PLOT_ONLY:-0} != 1 ]]; then
    "${PYTHON:-python3}" "$src/bench/scale.py" "$build" --out "$out" "$@"
fi
if ! command -v gnuplot >/dev/null; then
    echo "scale.sh: gnuplot is missing (apt-get install --no-install-recommends gnuplot-nox);" \
        "the CSV is $out/scale.csv" >&2
    exit 1
fi
mkdir -p "$img"
note=$(sed -n 's/^# scale: \([^,]*\),.*commit \([^;]*\);.*/(\1, commit \2)/p' "$out/scale.header" 2>/dev/null || true)
gnuplot -e "csv='$out/scale.csv'; outdir='$img'; title_note='$note'" "$src/bench/scale.gp"
echo "scale.sh: drew $img/scale-absolute.png and $img/scale-per-secret.png from $out/scale.csv" >&2
