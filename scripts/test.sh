#!/bin/sh
# Set up (packages and build, see setup.sh), then run the whole test suite
# through CTest, in four builds:
#
#   1. build/        gcc, RelWithDebInfo: every test (unit, end-to-end, timing)
#   2. build/        the library's unit tests again under valgrind (leaks, bad reads)
#   3. build-asan/   clang, AddressSanitizer + UndefinedBehaviorSanitizer
#                    (-fno-sanitize-recover=all): every test but the timing ones
#   4. build-tsan/   gcc, ThreadSanitizer: every test but the timing ones (the
#                    engine, executor, store and bus threads, also inside `spe`)
#   5. fuzz/run.sh   each fuzz target for a bounded time (if present)
#
# Any failure, any sanitizer report, any leak fails the run.
#
#   sh scripts/test.sh                 everything (a few minutes on 2 cores)
#   SPE_TEST_QUICK=1 sh scripts/test.sh    only build 1
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh

step() { echo; echo "==> $*"; }

step "ctest (build/)"
ctest --test-dir build --output-on-failure -j2 -LE valgrind

if [ "${SPE_TEST_QUICK:-0}" = 1 ]; then
  echo "SPE_TEST_QUICK=1: sanitizer, valgrind and fuzz runs skipped"
  exit 0
fi

step "valgrind: the unit tests (build/)"
cmake -S . -B build -DSPE_VALGRIND=ON > /dev/null
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2 -L valgrind

# Sanitizer reports abort the test that triggers them (-fno-sanitize-recover).
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"

step "AddressSanitizer + UndefinedBehaviorSanitizer, clang (build-asan/)"
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSPE_SANITIZE=address,undefined > /dev/null
cmake --build build-asan -j2
ctest --test-dir build-asan --output-on-failure -j2 -LE 'timing|valgrind'

step "ThreadSanitizer, gcc (build-tsan/)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSPE_SANITIZE=thread > /dev/null
cmake --build build-tsan -j2
ctest --test-dir build-tsan --output-on-failure -j2 -LE 'timing|valgrind'

if [ -f fuzz/run.sh ]; then
  step "fuzzing, ${SPE_FUZZ_SECONDS:-30} s per target (build-fuzz/)"
  sh fuzz/run.sh "${SPE_FUZZ_SECONDS:-30}"
fi

step "all test runs passed"
