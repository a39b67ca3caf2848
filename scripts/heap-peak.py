#!/usr/bin/env python3
"""Where a heap profile's peak is, by roster's own code: the bytes alive at heaptrack's peak, summed
by the innermost frames (up to DEPTH of them) that are in roster's source files.

heaptrack sees only the system allocator, so profile a build without mimalloc (comment out the
`#[global_allocator]` lines and the `mi_option_set` call in crates/roster/src/main.rs, by hand):

    heaptrack -o /tmp/plan roster --config roster.toml plan --format json > /dev/null
    heaptrack_print -f /tmp/plan.zst --flamegraph-cost-type peak -F /tmp/plan.stacks > /dev/null
    python3 scripts/heap-peak.py /tmp/plan.stacks [DEPTH [LINES]]
"""

import collections
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# heaptrack names a frame's file by its last component only: roster's files by that name (a
# file of the standard library with one of their names, `lifecycle.rs` of std's threads, shows up
# too; `mod.rs` and the like are left out, there are too many).
OURS = {p.name for p in ROOT.glob("crates/*/src/**/*.rs") if p.name not in ("mod.rs", "lib.rs", "main.rs")}


def main() -> None:
    stacks = sys.argv[1]
    depth = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    lines = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    peak = collections.Counter()
    total = 0
    for line in open(stacks, encoding="utf-8", errors="replace"):
        stack, _, count = line.rstrip().rpartition(" ")
        total += int(count)
        frames = []
        for frame in stack.split(";"):
            named = re.match(r"(.*) \((\S+)\)$", frame)
            if named and named.group(2) in OURS:
                here = f"{named.group(1)[:50]}@{named.group(2)}"
                if not frames or frames[-1] != here:
                    frames.append(here)
        peak[" <- ".join(reversed(frames[-depth:])) if frames else "(elsewhere)"] += int(count)
    print(f"peak {total / 1e6:.1f} MB")
    for where, count in peak.most_common(lines):
        print(f"{count / 1e6:8.1f} MB  {where}")


if __name__ == "__main__":
    main()
