#!/usr/bin/env bash
# Quick start: install what is missing, build, and mount the example secrets
# (examples/secrets, served by the built-in file backend) at
# /run/secrets-demo, in the background. Stop it with:  scripts/quickstart.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || exec sudo -E "$0" "$@"

MNT=/run/secrets-demo
STATE=/run/runsecrets-demo
if [[ ${1:-} == stop ]]; then
    if [[ -f $STATE/pid ]]; then
        kill -TERM "$(cat "$STATE/pid")" 2>/dev/null || true
        for _ in $(seq 50); do mountpoint -q "$MNT" || break; sleep 0.1; done
        rm -rf "$STATE"
    fi
    echo "stopped"
    exit 0
fi

scripts/deps.sh
[[ -d build ]] || meson setup build >/dev/null
ninja -C build runsecrets >/dev/null

mkdir -p "$STATE"
if [[ -f $STATE/pid ]] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
    kill -TERM "$(cat "$STATE/pid")"
    for _ in $(seq 50); do mountpoint -q "$MNT" || break; sleep 0.1; done
fi
cat > "$STATE/config.json" <<JSON
{
  "mount": "$MNT",
  "defaults": {"refresh": "30s", "max_stale": "10m", "mode": "0444"},
  "backends": {"local": {"type": "file", "path": "$PWD/examples/secrets"}},
  "secrets": {
    "db_password": {"from": "local:db_password"},
    "api_key": {"from": "local:api_key", "mode": "0400"},
    "db/user": {"from": "local:db.json#user"},
    "db/host": {"from": "local:db.json#host"},
    "db/port": {"from": "local:db.json#port"}
  }
}
JSON
build/runsecrets check --config "$STATE/config.json"
nohup build/runsecrets mount --config "$STATE/config.json" --log-format text \
    >"$STATE/log" 2>&1 &
echo $! > "$STATE/pid"
for _ in $(seq 100); do
    mountpoint -q "$MNT" && break
    kill -0 "$(cat "$STATE/pid")" 2>/dev/null || { cat "$STATE/log" >&2; exit 1; }
    sleep 0.1
done
mountpoint -q "$MNT" || { echo "mount did not appear; log:" >&2; cat "$STATE/log" >&2; exit 1; }

echo
echo "runsecrets is serving the example secrets at $MNT:"
ls -lR "$MNT"
echo
echo "\$ cat $MNT/db_password"
cat "$MNT/db_password"; echo
echo
echo "Edit a file in examples/secrets and it changes here within 30 s."
echo "Log: $STATE/log      Stop: scripts/quickstart.sh stop"
