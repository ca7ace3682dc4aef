#!/bin/sh
# Every benchmark, in one command, after a build (sh scripts/setup.sh):
#
#   sh bench/run.sh                 (BUILD=dir to use another build directory)
#
# The throughput comparison (spe run against make, xargs, ninja, GNU parallel)
# and every benchmark program built from bench/*.c (build/bench/bench_*), each
# with its default arguments. Figures are recorded in docs/benchmarks.md.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ ! -x "$BUILD/spe" ]; then
  echo "bench: $BUILD/spe not found: build first (sh scripts/setup.sh)" >&2
  exit 2
fi

echo "==> bench/throughput.sh"
SPE_BIN="$BUILD/spe" sh bench/throughput.sh

for b in "$BUILD"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo
  echo "==> $b"
  "$b"
done
