"""Where a fleet phase's time went: for each operation in one of bench-fleet's
call timelines (target/bench/fleet-PHASE.calls.csv: milliseconds since the
CLI started, service:Operation, 1 when an enforced limit refused it), how
many calls, the first and the last, the longest gap between two, and the
refused ones. usage: python3 tests/bench/timeline.py target/bench/fleet-code.calls.csv"""
import collections
import sys

rows = []
for line in open(sys.argv[1]):
    if line.strip():
        at, op, refused = line.strip().split(",")
        rows.append((float(at) / 1000, op, refused == "1"))
if not rows:
    sys.exit("no calls")
print(f"{len(rows)} calls from {rows[0][0]:.2f} s to {rows[-1][0]:.2f} s")
by_op = collections.defaultdict(list)
for at, op, refused in rows:
    by_op[op].append((at, refused))
for op, calls in sorted(by_op.items(), key=lambda kv: kv[1][0][0]):
    times = [at for at, _ in calls]
    gap = max((b - a for a, b in zip(times, times[1:])), default=0.0)
    refused = sum(r for _, r in calls)
    print(f"{op:<42} {len(calls):>5} first {times[0]:7.2f} last {times[-1]:7.2f} "
          f"longest gap {gap:5.2f}" + (f" refused {refused}" if refused else ""))
