#!/usr/bin/env bash
# Install what building and testing runsecrets needs on Debian 12, and only
# what is missing (so a second run is fast and offline).
set -euo pipefail

PKGS=(meson ninja-build pkg-config gcc libc6-dev
      libsodium-dev libcurl4-openssl-dev libssl-dev libjansson-dev libfuse3-dev fuse3 check
      libmicrohttpd-dev               # the admin endpoint's HTTP server (broker/admin.c)
      python3-prometheus-client       # its /metrics checked by Prometheus's own parser (/usr/bin/python3)
      python3 gdb util-linux procps
      clang libclang-rt-14-dev llvm    # the fuzz build: clang, libFuzzer, llvm-symbolizer
      # the container tests (tests/integration/containers.py): a private
      # dockerd, podman on runc (crun refuses this machine's hybrid cgroups),
      # the Compose tools, and a static busybox for the minimal image's shell
      docker.io docker-compose containerd runc podman podman-compose busybox-static
      systemd)   # systemd-analyze verify of the units (tests/integration/test_install.py)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $EUID -ne 0 ]]; then
        echo "runsecrets: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "==> installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The fake Vault generates its test PKI with the `cryptography` package. The
# python3 on PATH may not be Debian's (pyenv); install Debian's package only
# when that python3 lacks it and is the system one.
if ! python3 -c 'import cryptography' 2>/dev/null; then
    if [[ "$(command -v python3)" == /usr/bin/python3 && $EUID -eq 0 ]]; then
        echo "==> installing: python3-cryptography"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends python3-cryptography >/dev/null ||
            { apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-cryptography >/dev/null; }
    else
        echo "runsecrets: $(command -v python3) cannot import 'cryptography' (needed by the test fakes);" \
             "install it for that interpreter" >&2
        exit 1
    fi
fi

# The AWS tests run against moto (python3 -m moto.server) and set it up with
# boto3. A machine without them gets them from PyPI, or a clear stop: the AWS
# tests are never skipped silently.
if ! python3 -c 'import moto.server, boto3, flask' 2>/dev/null; then
    echo "==> installing: moto[server] (for the AWS tests)"
    if ! python3 -m pip install --quiet 'moto[server]' boto3 >&2; then
        echo "runsecrets: $(command -v python3) lacks moto[server]/boto3 and pip could not install" \
             "them; install them for that interpreter (python3 -m pip install 'moto[server]')" >&2
        exit 1
    fi
fi
