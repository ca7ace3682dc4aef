#!/bin/sh
# C function (`exec`) tasks, every mode of bench_functions in turn, each with
# its baseline measured in the same process, then a summary table
# (docs/benchmarks.md, "C function tasks"):
#
#   sh bench/functions.sh                 (from the repository's root)
#   sh bench/functions.sh wide dag        (only those modes)
#   BUILD=build-rel ARGS="rounds=6" sh bench/functions.sh wide
#
# Builds a Release build in $BUILD (default build-rel) first. ARGS are passed
# to every mode (key=value: tasks jobs workers maxpred window rounds check seed).
# Each mode runs in its own process: a mode's memory (a million tasks' state)
# is gone before the next starts.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-rel}
ARGS=${ARGS:-}
MODES=${*:-wide dag process durable}

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$BUILD" -j2 --target bench_functions > /dev/null

out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM
for m in $MODES; do
  echo "==> bench_functions $m $ARGS"
  # shellcheck disable=SC2086 # ARGS is a list of words
  "$BUILD/bench/bench_functions" "$m" $ARGS | tee -a "$out"
  echo
done

echo "summary ($(date +%F), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)):"
awk '
function v(key,   i, kv) {
  for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) return kv[2] }
  return ""
}
BEGIN { printf "  %-8s %8s  %-22s %-22s %s\n", "mode", "tasks", "spe", "baseline", "ratio (target)" }
$1 == "summary" && ($2 == "wide" || $2 == "dag") {
  printf "  %-8s %8s  %-22s %-22s spe/pool %s (<= 2)\n", $2, v("tasks"),
    v("spe_ns") " ns/task", "pool " v("pool_ns") " ns/task", v("ratio")
}
$1 == "summary" && $2 == "process" {
  printf "  %-8s %8s  %-22s %-22s %s tasks/s (>= 20000)\n", $2, v("tasks"),
    v("spe_tps") " tasks/s", "raw " v("raw_tps") "/s", v("spe_tps")
}
$1 == "summary" && $2 == "durable" {
  printf "  %-8s %8s  %-22s %-22s sqlite/memory %s; %s tasks/s (>= 50000)\n", $2, v("tasks"),
    v("sqlite_tps") " tasks/s", "memory " v("memory_tps") "/s", v("ratio"), v("sqlite_tps")
}
$1 == "summary" && $2 == "pool" {
  printf "  %-8s %8s  %-22s %-22s\n", $2, v("tasks"), "", v("pool_ns") " ns/task"
}' "$out"
