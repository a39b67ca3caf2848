#!/usr/bin/env bash
# plan-instructions.sh ROSTER DIR [AS_OF]: the instructions one plan of DIR's data executes
# (DIR/roster.toml and DIR/hr.csv, as `roster-bench generate` writes them), counted by valgrind
# (cachegrind without its cache simulation), in a copy of DIR so that no store is left behind.
# Unlike wall time on a shared machine, the count changes by well under 1 % from run to run:
# docs/benchmarks.md (twenty-third pass) compares builds by it. Needs valgrind; a 100k plan takes
# a minute. The target's connection comes from the environment, as for any roster command.
set -euo pipefail
roster=$1
dir=$2
as_of=${3:-2026-12-01}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$dir/roster.toml" "$dir/hr.csv" "$work/"
cd "$work"
valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
  "$roster" --config roster.toml --as-of "$as_of" plan --format json > plan.json 2> valgrind.log
echo "$(basename "$roster"): $(grep -o 'I *refs: *[0-9,]*' valgrind.log | tr -s ' '); plan $(stat -c %s plan.json) bytes"
