#!/usr/bin/env bash
# rss-timeline.sh ROSTER DIR [AS_OF]: plans DIR's data (DIR/roster.toml, as `roster-bench generate`
# writes it) into DIR/plan.json once, its store removed first, and prints every quarter second
# the seconds since the start, the plan's resident memory (MiB) and the MB of the plan file
# written so far (its first bytes mark the start of the JSON). The target's connection comes from
# the environment, as for any roster command. docs/benchmarks.md (twenty-second pass) reads one.
set -euo pipefail
roster=$1
dir=$2
as_of=${3:-2026-12-01}
cd "$dir"
rm -f roster.db roster.db-shm roster.db-wal plan.json
sync
"$roster" --config roster.toml --as-of "$as_of" plan --format json > plan.json 2>/dev/null &
pid=$!
start=$(date +%s.%N)
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$pid/status" 2>/dev/null || true)
  awk -v now="$(date +%s.%N)" -v start="$start" -v rss="${rss:-}" -v mb="$(( $(stat -c %s plan.json) / 1000000 ))" \
    'BEGIN { printf "%.1f %s %s\n", now - start, rss, mb }'
  sleep 0.25
done
wait "$pid"
