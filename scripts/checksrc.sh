#!/usr/bin/env bash
# Ban the C calls that invite overflows or hidden state (curl's checksrc
# idea): sprintf, vsprintf, strcpy, strcat, strncat, strtok, gets, atoi.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='\b(sprintf|vsprintf|strcpy|strcat|strncat|strtok|gets|atoi)[[:space:]]*\('
if grep -nE "$pattern" --include='*.c' --include='*.h' -r lib backends engine policy fuse broker bench tests; then
    echo "checksrc: banned function used (see above); use snprintf, memcpy with sizes, strtok_r, strtol" >&2
    exit 1
fi
echo "checksrc: ok"
