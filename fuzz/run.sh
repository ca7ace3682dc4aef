#!/bin/sh
# Build the fuzz targets (clang, libFuzzer, ASan + UBSan) into build-fuzz/ and
# run each for SECONDS (default 60), as many at once as there are CPUs, each
# on a copy of its seed corpus and regression inputs (the committed corpus
# never grows by itself). Prints executions, exec/s and coverage per target;
# exits non-zero if any target found a crash, a leak, a sanitizer report, a
# broken property or a timeout. docs/fuzzing.md says more.
#
#   sh fuzz/run.sh [SECONDS]
#
# SPE_FUZZ_TARGETS="job plan" runs only those; SPE_FUZZ_JOBS=N runs N at once.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-60}
build=build-fuzz

cpus=$(nproc 2> /dev/null || echo 1)
jobs=${SPE_FUZZ_JOBS:-$cpus}
targets=${SPE_FUZZ_TARGETS:-$(ls fuzz/fuzz_*.c | sed -e 's|fuzz/fuzz_||' -e 's|\.c$||' | grep -v '^common$')}

echo "==> building the fuzz targets into $build/"
# -O1 -g without NDEBUG: fast enough, readable stacks, assertions kept.
CC=${CC:-clang} cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DSPE_FUZZ=ON \
  -DSPE_SANITIZE=address,undefined -DBUILD_TESTING=OFF > "$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
rm -f "$build.configure.log"
cmake --build "$build" --target fuzz_targets -j "$cpus"

# A report ends the run with the input saved; a leak counts as a failure.
export ASAN_OPTIONS="${SPE_FUZZ_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# One target: fresh working copies, then libFuzzer; leaves its log and a
# one-line summary in $build/run/<target>/.
run_target() {
  t=$1
  dir=$root/$build/run/$t
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp fuzz/corpus/"$t"/* "$dir/corpus/"
  if [ -d fuzz/regressions/"$t" ] && [ -n "$(ls fuzz/regressions/"$t")" ]; then
    cp fuzz/regressions/"$t"/* "$dir/corpus/"
  fi
  dict=""
  [ -f fuzz/"$t".dict ] && dict="-dict=$root/fuzz/$t.dict"
  # Scratch files of the target (the recovery target's store, the http
  # target's socket): in memory when /dev/shm is there, and gone afterwards
  # even when the target crashed. The target runs there too (every path below
  # is absolute): a command that the http target's jobs run writes nowhere else.
  scratch=$(mktemp -d /dev/shm/spe-fuzz.XXXXXX 2> /dev/null || mktemp -d)
  start=$(date +%s)
  rc=0
  (cd "$scratch" && SPE_FUZZ_TMP=$scratch exec "$root/$build/fuzz/fuzz_$t" \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
    -artifact_prefix="$dir/artifacts/" $dict "$dir/corpus") > "$dir/log" 2>&1 || rc=$?
  rm -rf "$scratch"
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$dir/log" | tail -n 1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$dir/log" | tail -n 1 | cut -d' ' -f2)
  corp=$(ls "$dir/corpus" | wc -l)
  echo "$t $took ${execs:-?} ${rate:-?} ${cov:-?} ${ft:-?} $corp $rc" > "$dir/summary"
}

echo "==> fuzzing: ${seconds} s per target, $jobs at once: $(echo $targets)"
n=0
for t in $targets; do
  run_target "$t" &
  n=$((n + 1))
  if [ $((n % jobs)) -eq 0 ]; then wait; fi
done
wait

failed=0
printf '%-10s %6s %12s %8s %6s %7s %7s  %s\n' target seconds executions exec/s cov ft corpus result
for t in $targets; do
  dir=$build/run/$t
  if [ ! -f "$dir/summary" ]; then
    echo "$t: no summary (see $dir/log)"
    failed=1
    continue
  fi
  read -r name took execs rate cov ft corp rc < "$dir/summary"
  result=ok
  [ "$rc" -ne 0 ] && result="FAILED (exit $rc)" && failed=1
  printf '%-10s %6s %12s %8s %6s %7s %7s  %s\n' "$name" "$took" "$execs" "$rate" "$cov" "$ft" \
    "$corp" "$result"
done

if [ "$failed" -ne 0 ]; then
  for t in $targets; do
    dir=$build/run/$t
    [ -f "$dir/summary" ] && [ "$(cut -d' ' -f8 "$dir/summary")" = 0 ] && continue
    echo
    echo "==> $t: the end of $dir/log"
    tail -n 60 "$dir/log"
    echo "inputs saved in $dir/artifacts/: $(ls "$dir/artifacts" | tr '\n' ' ')"
    echo "reproduce: $build/fuzz/fuzz_$t $dir/artifacts/<file>"
    echo "then keep it: cp $dir/artifacts/<file> fuzz/regressions/$t/<what-it-found>"
  done
  exit 1
fi
