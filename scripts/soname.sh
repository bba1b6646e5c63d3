#!/bin/sh
# soname.sh LIBDIR NAME - the soname of LIBDIR/libNAME.so, the library a
# build links against (meson.build): what runsecrets dlopens on first use
# (lib/dynlib.h), so it loads the ABI its headers describe.
set -eu
so=$(readelf -d "$1/lib$2.so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ -z "$so" ]; then
    echo "soname.sh: $1/lib$2.so: no SONAME (is the -dev package installed?)" >&2
    exit 1
fi
echo "$so"
