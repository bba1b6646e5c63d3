#!/usr/bin/env bash
# run-read.sh [BUILD_DIR] - the read-path benchmark (docs/performance.md).
#
# In one run, times open+read+close of the same 64 random bytes
#   mount  through a runsecrets mount (file backend, value cached),
#   policy through a second runsecrets mount of the same secret under a
#          20-rule access policy that allows the reader on its last rule
#          (issue 15; its rules name uids and executables, so each open
#          reads the caller's executable and start time),
#   floor  through bench/floor_ll, a FUSE filesystem with the daemon's kernel
#          settings that does nothing but serve the bytes,
#   tmpfs  from a tmpfs,
# with bench/open_read (batches interleaved, every read verified), then prints
# the ratios. Targets: mount/floor <= 1.3 (BENCH_TARGET); policy/mount <= 1.2
# (BENCH_POLICY_TARGET). Then BENCH_READERS (default 8; 0: skip) readers at
# once on each path with bench/par_read (BENCH_PAR_ROUNDS rounds of
# BENCH_PAR_MS ms, interleaved): ops/s, and mount/floor (target >= 0.9,
# BENCH_PAR_TARGET).
#
# Needs root and /dev/fuse. Runs in a private mount namespace, so no mount
# outlives it; both daemons get SIGTERM when it exits (or, via pdeathsig, when
# it dies). BUILD_DIR defaults to ./build under the source tree.
#
# Environment: BENCH_WARMUP, BENCH_BATCHES, BENCH_ITERS (open_read -w/-k/-n),
# BENCH_VERBOSE=1 (open_read -v: every batch), BENCH_CPUS=LIST (taskset -c
# LIST for the driver and both daemons alike), BENCH_DAEMON_ARGS (extra
# words for `runsecrets mount`, e.g. "--log-level warn"), BENCH_TARGET (default 1.3),
# BENCH_KEEP=1 keeps the temp dir (daemon logs).
# Exit status: 0 measured (whatever the ratio), 1 failure, 2 usage.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self="$src/bench/run-read.sh"

if [[ $# -gt 1 || ${1:-} == -h || ${1:-} == --help ]]; then
    echo "usage: $0 [BUILD_DIR]" >&2
    exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "run-read.sh: needs root (mounts FUSE and tmpfs in a private mount namespace)" >&2
    exit 1
fi
if [[ ! -c /dev/fuse ]]; then
    echo "run-read.sh: /dev/fuse is missing" >&2
    exit 1
fi

# Re-exec in a private mount namespace: the FUSE mounts and the tmpfs never
# appear outside it and vanish with it.
if [[ -z ${RS_BENCH_UNSHARED:-} ]]; then
    if [[ -n ${BENCH_CPUS:-} ]]; then
        exec taskset -c "$BENCH_CPUS" unshare --mount --propagation private \
            env RS_BENCH_UNSHARED=1 bash "$self" "$@"
    fi
    exec unshare --mount --propagation private env RS_BENCH_UNSHARED=1 bash "$self" "$@"
fi

build=$(cd "${1:-$src/build}" && pwd)
daemon=$build/runsecrets
floor=$build/bench/floor_ll
driver=$build/bench/open_read
par=$build/bench/par_read
for b in "$daemon" "$floor" "$driver" "$par"; do
    if [[ ! -x $b ]]; then
        echo "run-read.sh: $b: not built (ninja -C $build)" >&2
        exit 1
    fi
done

warmup=${BENCH_WARMUP:-2000}
batches=${BENCH_BATCHES:-31}
iters=${BENCH_ITERS:-2000}
target=${BENCH_TARGET:-1.3}
policy_target=${BENCH_POLICY_TARGET:-1.2}
readers=${BENCH_READERS:-8}
par_rounds=${BENCH_PAR_ROUNDS:-11}
par_ms=${BENCH_PAR_MS:-500}
par_target=${BENCH_PAR_TARGET:-0.9}
verbose=()
read -r -a daemon_args <<<"${BENCH_DAEMON_ARGS:-}"
[[ ${BENCH_VERBOSE:-0} == 1 ]] && verbose=(-v)
name=db_password
mount_timeout=100   # x 0.1 s
stop_timeout=100    # x 0.1 s

tmp=$(mktemp -d /tmp/rs-bench.XXXXXX)
chmod 700 "$tmp"
mkdir "$tmp/src" "$tmp/mnt" "$tmp/pmnt" "$tmp/floor" "$tmp/tmpfs"
daemon_pid=
policy_pid=
floor_pid=

log() { printf 'run-read.sh: %s\n' "$*" >&2; }

is_mounted() {   # is_mounted PATH: PATH is a mount point in this namespace
    awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo
}

stop() {   # stop NAME PID: SIGTERM, bounded wait, SIGKILL as a last resort
    local what=$1 pid=$2 i rc
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < stop_timeout; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$what (pid $pid) ignored SIGTERM for $((stop_timeout / 10)) s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    if [[ $rc -ne 0 ]]; then
        log "$what exited with status $rc"
        return 1
    fi
}

cleanup() {
    local rc=$? bad=0
    trap - EXIT INT TERM HUP
    stop runsecrets "$daemon_pid" || bad=1
    daemon_pid=
    stop "runsecrets (policy)" "$policy_pid" || bad=1
    policy_pid=
    stop floor_ll "$floor_pid" || bad=1
    floor_pid=
    for m in "$tmp/mnt" "$tmp/pmnt" "$tmp/floor" "$tmp/tmpfs"; do
        if is_mounted "$m"; then
            [[ $m == "$tmp/tmpfs" ]] || { log "$m still mounted after its daemon exited"; bad=1; }
            umount -l "$m" 2>/dev/null || true
        fi
    done
    if [[ $bad -ne 0 && $rc -eq 0 ]]; then
        rc=1
    fi
    if [[ ${BENCH_KEEP:-0} == 1 || $rc -ne 0 ]]; then
        if [[ -s $tmp/runsecrets.log ]]; then
            log "last lines of the runsecrets log ($tmp/runsecrets.log):"
            tail -n 5 "$tmp/runsecrets.log" >&2
        fi
        [[ -s $tmp/floor.log ]] && { log "floor_ll log:"; tail -n 5 "$tmp/floor.log" >&2; }
    fi
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        log "kept $tmp"
    else
        rm -rf --one-file-system "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

wait_mounted() {   # wait_mounted NAME PID PATH
    local what=$1 pid=$2 path=$3 i
    for ((i = 0; i < mount_timeout; i++)); do
        if is_mounted "$path"; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$what died before mounting $path"
            return 1
        fi
        sleep 0.1
    done
    log "$what did not mount $path within $((mount_timeout / 10)) s"
    return 1
}

# The secret, the config, and the same bytes on a tmpfs of our own.
head -c 64 /dev/urandom >"$tmp/src/$name"
chmod 600 "$tmp/src/$name"
cat >"$tmp/config.json" <<EOF
{
  "mount": "$tmp/mnt",
  "defaults": {"refresh": "5m", "max_stale": "1h", "mode": "0400", "uid": 0, "gid": 0},
  "backends": {"local": {"type": "file", "path": "$tmp/src"}},
  "secrets": {"$name": {"from": "local:$name"}}
}
EOF
chmod 600 "$tmp/config.json"
# The same secret under 20 rules; the reader (root running open_read) is
# allowed by the last. The others are what a host's policy looks like:
# other secrets' globs, other uids, other executables.
driver_real=$(readlink -f "$driver")
par_real=$(readlink -f "$par")
{
    printf '{\n  "mount": "%s",\n' "$tmp/pmnt"
    printf '  "defaults": {"refresh": "5m", "max_stale": "1h", "mode": "0400", "uid": 0, "gid": 0},\n'
    printf '  "backends": {"local": {"type": "file", "path": "%s"}},\n' "$tmp/src"
    printf '  "secrets": {"%s": {"from": "local:%s"}},\n' "$name" "$name"
    printf '  "policy": {"default": "deny", "rules": [\n'
    for i in $(seq 0 18); do
        printf '    {"secrets": ["app%d/**", "db_%d_*"], "allow": {"uids": [%d], "exe": ["/bin/true"]}},\n' \
            "$i" "$i" $((1000 + i))
    done
    printf '    {"secrets": ["db_*"], "allow": {"uids": [0], "exe": ["%s", "%s"]}}\n' "$driver_real" "$par_real"
    printf '  ], "audit": {"sink": "stderr", "repeat_after": "1m"}}\n}\n'
} >"$tmp/policy.json"
chmod 600 "$tmp/policy.json"
mount -t tmpfs -o size=1m,mode=0700,nosuid,nodev,noexec rsbench "$tmp/tmpfs"
cp "$tmp/src/$name" "$tmp/tmpfs/$name"
chmod 400 "$tmp/tmpfs/$name"

# setpriv --pdeathsig: if this script dies without running its trap, the
# daemons still get SIGTERM and unmount.
setpriv --pdeathsig TERM -- "$daemon" mount "${daemon_args[@]}" --config "$tmp/config.json" "$tmp/mnt" \
    </dev/null >/dev/null 2>"$tmp/runsecrets.log" &
daemon_pid=$!
setpriv --pdeathsig TERM -- "$daemon" mount "${daemon_args[@]}" --config "$tmp/policy.json" \
    --no-pid-file --admin none "$tmp/pmnt" </dev/null >/dev/null 2>"$tmp/runsecrets-policy.log" &
policy_pid=$!
setpriv --pdeathsig TERM -- "$floor" "$tmp/src/$name" "$tmp/floor" \
    </dev/null >/dev/null 2>"$tmp/floor.log" &
floor_pid=$!
wait_mounted runsecrets "$daemon_pid" "$tmp/mnt"
wait_mounted "runsecrets (policy)" "$policy_pid" "$tmp/pmnt"
wait_mounted floor_ll "$floor_pid" "$tmp/floor"

echo "# run-read.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc --all) CPUs," \
    "$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)," \
    "CPUs allowed: $(taskset -cp $$ | sed 's/.*: //')"
"$driver" "${verbose[@]}" -e "$tmp/src/$name" -w "$warmup" -k "$batches" -n "$iters" \
    "mount=$tmp/mnt/$name" "policy=$tmp/pmnt/$name" "floor=$tmp/floor/$name" "tmpfs=$tmp/tmpfs/$name" | tee "$tmp/result.txt"

# A daemon that died during the run would have failed the driver; check anyway.
for p in "$daemon_pid" "$policy_pid" "$floor_pid"; do
    kill -0 "$p" 2>/dev/null || { log "a daemon died during the run"; exit 1; }
done

awk -v target="$target" -v ptarget="$policy_target" '
    /^#/ { next }
    { med[$1] = $2; p10[$1] = $3; p90[$1] = $4 }
    END {
        if (!("mount" in med) || !("policy" in med) || !("floor" in med) || !("tmpfs" in med)) {
            print "run-read.sh: driver output incomplete" > "/dev/stderr"; exit 1
        }
        printf "ratio mount/floor  %6.2f   (p10/p10 %.2f, p90/p90 %.2f)\n", med["mount"] / med["floor"], p10["mount"] / p10["floor"], p90["mount"] / p90["floor"]
        printf "ratio mount/tmpfs  %6.2f\n", med["mount"] / med["tmpfs"]
        printf "ratio floor/tmpfs  %6.2f\n", med["floor"] / med["tmpfs"]
        printf "ratio policy/mount %6.2f   (p10/p10 %.2f, p90/p90 %.2f; %.0f ns/op for the policy)\n", med["policy"] / med["mount"], p10["policy"] / p10["mount"], p90["policy"] / p90["mount"], med["policy"] - med["mount"]
        pr = med["policy"] / med["mount"]
        if (pr <= ptarget)
            printf "target policy/mount <= %s: met (%.2f)\n", ptarget, pr
        else
            printf "target policy/mount <= %s: MISSED (%.2f)\n", ptarget, pr
        r = med["mount"] / med["floor"]
        if (r <= target)
            printf "target mount/floor <= %s: met (%.2f)\n", target, r
        else
            printf "target mount/floor <= %s: MISSED by %.0f%% (%.2f; %.0f ns/op over the floor, %.0f ns/op allowed)\n", target, (r / target - 1) * 100, r, med["mount"] - med["floor"], (target - 1) * med["floor"]
    }' "$tmp/result.txt"

if [[ $readers -gt 0 ]]; then
    "$par" -e "$tmp/src/$name" -t "$readers" -k "$par_rounds" -m "$par_ms" \
        "mount=$tmp/mnt/$name" "policy=$tmp/pmnt/$name" "floor=$tmp/floor/$name" \
        | tee "$tmp/par.txt"
    awk -v readers="$readers" -v target="$par_target" '
        /^#/ { next }
        { ops[$1] = $2 }
        END {
            if (!("mount" in ops) || !("floor" in ops)) {
                print "run-read.sh: par_read output incomplete" > "/dev/stderr"; exit 1
            }
            r = ops["mount"] / ops["floor"]
            printf "parallel %d: mount/floor ops/s %5.2f   policy/floor %5.2f\n", readers, r, ops["policy"] / ops["floor"]
            if (r >= target)
                printf "target parallel mount/floor >= %s: met (%.2f)\n", target, r
            else
                printf "target parallel mount/floor >= %s: MISSED (%.2f)\n", target, r
        }' "$tmp/par.txt"
fi
