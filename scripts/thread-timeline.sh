#!/usr/bin/env bash
# thread-timeline.sh ROSTER DIR [AS_OF]: plans DIR's data (DIR/roster.toml, as `roster-bench
# generate` writes it) into DIR/plan.json once under `perf record` (the cpu-clock event, 500
# samples a second per thread: no hardware counters are needed), its store removed first, and
# prints for each second of the run how busy each thread was (percent of one core) and the
# function most sampled on the busiest. A second where one thread is near 100 and the others are
# idle is a stretch on one core: docs/benchmarks.md (twenty-sixth pass) reads one. STEP=0.25
# bins by a quarter second instead (the twenty-seventh pass). The target's connection comes from
# the environment, as for any roster command.
set -euo pipefail
export STEP=${STEP:-1}
roster=$1
dir=$2
as_of=${3:-2026-12-01}
cd "$dir"
rm -f roster.db roster.db-shm roster.db-wal plan.json
sync
data=$(mktemp)
trap 'rm -f "$data"' EXIT
perf record -q -e cpu-clock -F 500 -o "$data" "$roster" --config roster.toml --as-of "$as_of" plan --format json \
  > plan.json 2>/dev/null
perf script -i "$data" -F tid,time,ip,sym 2>/dev/null | python3 -c '
import collections, os, sys
step = float(os.environ["STEP"])
busy = collections.defaultdict(collections.Counter)
top = collections.defaultdict(collections.Counter)
start = None
tid = second = None
for line in sys.stdin:
    fields = line.split()
    if len(fields) >= 2 and fields[1].endswith(":"):
        tid, at = fields[0], float(fields[1][:-1])
        start = at if start is None else start
        second = int((at - start) / step)
        busy[second][tid] += 1
        if len(fields) > 3:
            top[(second, tid)][" ".join(fields[3:])] += 1
    elif len(fields) > 1 and second is not None:
        top[(second, tid)][" ".join(fields[1:])] += 1
for second in sorted(busy):
    threads = busy[second].most_common()
    first = threads[0][0]
    symbol = top[(second, first)].most_common(1)
    print(f"{second * step:7.2f}s", " ".join(f"{n / 5 / step:4.0f}" for _, n in threads[:6]).ljust(30),
          symbol[0][0][:70] if symbol else "")
'
