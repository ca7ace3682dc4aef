#!/bin/sh
# Throughput of many tiny commands, side by side in one run: N independent
# `true` commands, W at a time, through
#   - spe run (argv tasks, memory store; and the durable SQLite store),
#   - make -jW over N phony targets,
#   - xargs -PW -n1,
#   - GNU parallel -jW and ninja -jW (each if installed).
# Each is timed ROUNDS times and the best (shortest) run counts; GNU parallel,
# which is far slower, runs once. Prints tasks/s for each and the ratio of spe
# to each. The issue's target: spe at least 0.9 x make.
#
#   sh bench/throughput.sh            (from the repository's root, after a build)
#   N=2000 W=2 ROUNDS=5 SPE_BIN=build/spe sh bench/throughput.sh
set -eu

N=${N:-2000}
W=${W:-2}
ROUNDS=${ROUNDS:-3}
SPE=${SPE_BIN:-build/spe}
if [ ! -x "$SPE" ]; then
  echo "throughput: $SPE not found: build first (sh scripts/setup.sh)" >&2
  exit 2
fi
SPE=$(cd "$(dirname "$SPE")" && pwd)/$(basename "$SPE")

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM

# The inputs, written before any clock starts.
awk -v n="$N" 'BEGIN {
  printf "{\"name\": \"throughput\", \"tasks\": [";
  for (i = 1; i <= n; i++) printf "%s{\"name\": \"t%d\", \"argv\": [\"true\"]}", (i > 1 ? ", " : ""), i;
  print "]}";
}' > "$dir/job.json"
awk -v n="$N" 'BEGIN {
  printf "all:"; for (i = 1; i <= n; i++) printf " t%d", i; print "";
  printf ".PHONY: all"; for (i = 1; i <= n; i++) printf " t%d", i; print "";
  for (i = 1; i <= n; i++) printf "t%d:\n\t@true\n", i;
}' > "$dir/Makefile"
awk -v n="$N" 'BEGIN {
  print "rule t"; print "  command = true";
  for (i = 1; i <= n; i++) printf "build t%d: t\n", i;
}' > "$dir/build.ninja"
seq 1 "$N" > "$dir/args"

now_ns() { date +%s%N; }

# best_of ROUNDS COMMAND...: the shortest wall time in ns of COMMAND, run
# ROUNDS times with its output discarded; fails if the command fails.
best_of() {
  rounds=$1
  shift
  best=""
  i=0
  while [ "$i" -lt "$rounds" ]; do
    t0=$(now_ns)
    "$@" > /dev/null 2> "$dir/stderr" || {
      echo "throughput: $* failed:" >&2
      cat "$dir/stderr" >&2
      exit 1
    }
    t1=$(now_ns)
    t=$((t1 - t0))
    if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
    i=$((i + 1))
  done
  echo "$best"
}

run_spe() { "$SPE" run --workers "$W" --state memory: "$dir/job.json"; }
run_spe_sqlite() {
  rm -rf "$dir/spe-state"
  "$SPE" run --workers "$W" --state "sqlite:$dir/spe-state/state.db" "$dir/job.json"
}
run_spe_quiet() { "$SPE" run --workers "$W" --state memory: --log-level warn "$dir/job.json"; }
run_make() { make -s -C "$dir" -j"$W" all; }
run_xargs() { xargs -P"$W" -n1 true < "$dir/args"; }
run_parallel() { parallel -j"$W" true < "$dir/args"; }
run_ninja() { ninja -C "$dir" -j"$W"; }

results=""
measure() {
  label=$1
  rounds=$2
  shift 2
  ns=$(best_of "$rounds" "$@")
  results="$results$label	$ns
"
}

measure "spe run" "$ROUNDS" run_spe
measure "spe run --log-level warn" "$ROUNDS" run_spe_quiet
measure "spe run, sqlite store" "$ROUNDS" run_spe_sqlite
if command -v make > /dev/null; then measure "make -j$W" "$ROUNDS" run_make; fi
measure "xargs -P$W -n1" "$ROUNDS" run_xargs
if command -v ninja > /dev/null; then measure "ninja -j$W" "$ROUNDS" run_ninja; fi
if command -v parallel > /dev/null && parallel --version 2> /dev/null | grep -q GNU; then
  measure "GNU parallel -j$W" 1 run_parallel
fi

echo "$N independent 'true' commands, $W at a time (best of $ROUNDS runs; GNU parallel: 1 run)"
printf '%s' "$results" | awk -F '\t' -v n="$N" '
  { label[NR] = $1; rate[NR] = n / ($2 / 1e9); secs[NR] = $2 / 1e9 }
  END {
    for (i = 1; i <= NR; i++) printf "  %-28s %7.3f s  %7.0f tasks/s\n", label[i], secs[i], rate[i];
    print "ratios (spe run tasks/s over each):";
    for (i = 2; i <= NR; i++) {
      note = (label[i] ~ /^make/) ? "   (target >= 0.9)" : "";
      if (label[i] ~ /sqlite/) continue;
      printf "  spe / %-22s %5.2f%s\n", label[i], rate[1] / rate[i], note;
    }
    for (i = 1; i <= NR; i++)
      if (label[i] ~ /sqlite/)
        printf "durable: sqlite store / memory store %5.2f   (target >= 0.9); %.0f durable state changes/s (per task: 2 task records + 2 events)\n", rate[i] / rate[1], rate[i] * 4;
  }'
