#!/bin/sh
# Set up (packages and build, see setup.sh), then run the whole test suite
# through CTest.
#
#   sh scripts/test.sh
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh

echo "==> ctest"
ctest --test-dir build --output-on-failure -j2

# Sanitizer and valgrind runs go here (a later issue): each builds into a
# directory of its own and runs the same CTest suite there, e.g.
#   cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSPE_SANITIZE=address,undefined
#   cmake --build build-asan -j2 && ctest --test-dir build-asan --output-on-failure -j2
