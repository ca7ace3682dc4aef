#!/bin/sh
# `spe serve` under load (bench/bench_serve.c): one-task jobs submitted with
# ?start=true by 8 clients over the Unix socket, the memory store and SQLite
# side by side. Arguments are passed on: [JOBS [CLIENTS [WORKERS]]].
#
#   sh bench/serve.sh                    (after a build; BUILD=dir for another)
#   BUILD=build-rel sh bench/serve.sh 4000 8 2
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ ! -x "$BUILD/spe" ] || [ ! -x "$BUILD/bench/bench_serve" ]; then
  echo "serve: $BUILD/spe or $BUILD/bench/bench_serve not found: build first (sh scripts/setup.sh)" >&2
  exit 2
fi
SPE_BIN="$BUILD/spe" exec "$BUILD/bench/bench_serve" "$@"
