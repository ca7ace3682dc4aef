#!/bin/sh
# Set up (packages and build, see setup.sh), then run the example job: the
# statistics of this repository's sources, a pipeline of seven tasks. Then a
# job that fails on purpose, to show what failure looks like.
#
#   sh scripts/demo.sh
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh

echo
echo "==> build/spe validate examples/source-stats.json"
build/spe validate examples/source-stats.json

echo
echo "==> build/spe run --json examples/source-stats.json"
build/spe run --json examples/source-stats.json > build/source-stats.result.json
echo
echo "==> its report (the result of the last task):"
jq '.tasks.report.result' build/source-stats.result.json

echo
echo "==> build/spe run examples/broken-pipeline.json (fails on purpose)"
status=0
build/spe run examples/broken-pipeline.json || status=$?
echo "==> exit status $status (1: a job failed)"
