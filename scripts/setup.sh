#!/bin/sh
# Set-up on a fresh Debian 12 machine, and again at any time (idempotent):
# installs the Debian packages that are missing (as root, or through sudo),
# then configures and builds SPE into build/.
#
#   sh scripts/setup.sh
#
# SPE_BUILD_TYPE (e.g. Debug) chooses the CMake build type; the default is the
# project's (RelWithDebInfo).
set -eu
cd "$(dirname "$0")/.."

# Build: compiler, make, cmake, pkg-config; libraries: jansson (JSON),
# SQLite (the state store), cmocka (unit tests), libmicrohttpd (the HTTP server
# of `spe serve`), libcurl (its clients: `spe submit`, `spe watch`...); jq for
# the example jobs; curl, the HTTP client of the server's tests; clang, its
# sanitizer runtimes and valgrind for the checked builds of scripts/test.sh.
PACKAGES="build-essential cmake pkg-config libjansson-dev libsqlite3-dev libcmocka-dev libmicrohttpd-dev libcurl4-openssl-dev jq curl clang libclang-rt-14-dev valgrind"

missing=""
if command -v dpkg-query > /dev/null 2>&1; then
  for p in $PACKAGES; do
    if ! dpkg-query -W -f '${Status}' "$p" 2> /dev/null | grep -q "install ok installed"; then
      missing="$missing $p"
    fi
  done
else
  echo "setup: not a Debian system; make sure these are installed: $PACKAGES" >&2
fi

if [ -n "$missing" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo > /dev/null 2>&1; then
      sudo=sudo
    else
      echo "setup: missing packages:$missing; run this as root to install them" >&2
      exit 1
    fi
  fi
  echo "==> installing:$missing"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $missing
fi

echo "==> building into build/"
cmake -S . -B build ${SPE_BUILD_TYPE:+-DCMAKE_BUILD_TYPE="$SPE_BUILD_TYPE"}
cmake --build build -j2
