#!/usr/bin/env bash
# Schedule precision: how late do scheduled runs start?
#
# Starts tickd with 1,000 `every` jobs whose intervals run from 10.000 s to
# 10.999 s, so that (with tickd's epoch-aligned schedules) their due times
# spread over every 10 s window. The job is cheap (`true`). After DURATION
# seconds (default 35) it reads every job's history and prints the lateness
# of each scheduled run: started_at - scheduled_at, as p50/p99/max in ms,
# split into the loop's part (queued_at - scheduled_at: timer wake-up and
# dispatch) and the pool's part (started_at - queued_at: waiting for a worker).
#
# Two sets of figures: from the run objects' `lateness_us` / `pickup_us`
# fields (microsecond resolution; absent from builds before they existed),
# and from the wire timestamps (millisecond resolution, so each value is
# off by up to 1 ms).
#
# Then, in the same run with tickd stopped, it measures the machine's own
# floor: `tickd-load timers` sleeps to random deadlines at the same rate
# (100/s) and hands each to one of 4 threads that run `true`, with nothing
# of tickd in the path. The last lines compare tickd with that baseline.
#
# Usage: scripts/precision.sh [DURATION_SECONDS]
# (TICKD=path NO_BUILD=1 measure another build; see lib.sh.)
# Needs: python3 (for the statistics).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DURATION=${1:-35}
JOBS=1000
work=$(mktemp -d)
trap 'stop_tickd; rm -rf "$work"' EXIT

build_release
{
  echo '[daemon]'
  echo 'listen = "127.0.0.1:0"'
  echo 'workers = 4'
  echo 'history = 50'
  echo 'log_level = "info"'
  for i in $(seq 0 $((JOBS - 1))); do
    printf '\n[[jobs]]\nname = "p%04d"\nevery = "%dms"\ncommand = ["true"]\n' "$i" $((10000 + i))
  done
} >"$work/tickd.toml"

start_tickd "$work/tickd.toml" "$work/tickd.log"
echo "tickd pid $TICKD_PID on $TICKD_ADDR: $JOBS jobs, measuring for ${DURATION}s"
sleep "$DURATION"

for i in $(seq 0 $((JOBS - 1))); do
  printf '{"id":%d,"method":"jobs.get","params":{"name":"p%04d"}}\n' "$i" "$i"
done >"$work/requests"
python3 - "$TICKD_ADDR" "$work/requests" "$work/tickd.json" <<'PY'
import json, socket, sys
from datetime import datetime

host, port = sys.argv[1].rsplit(":", 1)
lines = open(sys.argv[2], "rb").read().splitlines(keepends=True)
s = socket.create_connection((host, int(port)))
f = s.makefile("rb")
answers = []
for i in range(0, len(lines), 50):  # pipeline 50 at a time
    chunk = lines[i:i + 50]
    s.sendall(b"".join(chunk))
    answers += [f.readline() for _ in chunk]
buf = b"".join(answers)

def ms(t):
    return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000

late, loop_late, pickup = [], [], []
late_us, loop_us, pickup_us = [], [], []
for line in buf.splitlines():
    job = json.loads(line)["result"]
    for run in job["history"]:
        if run["trigger"] == "schedule" and run["started_at"]:
            due, queued, started = (ms(run[k]) for k in ("scheduled_at", "queued_at", "started_at"))
            late.append(started - due)
            loop_late.append(queued - due)
            pickup.append(started - queued)
            if run.get("lateness_us") is not None and run.get("pickup_us") is not None:
                late_us.append(run["lateness_us"] / 1000)
                pickup_us.append(run["pickup_us"] / 1000)
                loop_us.append((run["lateness_us"] - run["pickup_us"]) / 1000)
if not late:
    sys.exit("no scheduled runs recorded")
def show(name, xs):
    xs.sort()
    pct = lambda p: xs[min(len(xs) - 1, int(p / 100 * len(xs)))]
    print(f"{name}: p50 {pct(50):.2f}  p99 {pct(99):.2f}  max {xs[-1]:.2f}  min {xs[0]:.2f}")
print(f"scheduled runs: {len(late)}")
if late_us:
    print("from lateness_us / pickup_us (microsecond resolution), in ms:")
    show("lateness (started_at - scheduled_at)", late_us)
    show("  loop: queued_at - scheduled_at    ", loop_us)
    show("  pickup: started_at - queued_at    ", pickup_us)
else:
    print("(this build has no lateness_us / pickup_us fields)")
print("from the wire timestamps (millisecond resolution), in ms:")
show("lateness (started_at - scheduled_at)", late)
show("  loop: queued_at - scheduled_at    ", loop_late)
show("  pickup: started_at - queued_at    ", pickup)
xs = sorted(late_us or late)
json.dump({"p50": xs[len(xs) // 2], "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))], "max": xs[-1]},
          open(sys.argv[3], "w"))
PY
stop_tickd
echo "baseline on this machine, same run: tickd-load timers (sleep to a deadline, hand it to a worker, run true; default scheduling), ${DURATION}s at 100/s"
"$LOAD" timers --duration "${DURATION}s" --rate 100 --workers 4 --json >"$work/baseline.json"
python3 - "$work/tickd.json" "$work/baseline.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
w, p = b["woke"], b["picked_up"]
print(f"baseline woke (timer only)      : p50 {w['p50_ms']:.2f}  p99 {w['p99_ms']:.2f}  max {w['max_ms']:.2f}")
print(f"baseline picked up (+ hand-off) : p50 {p['p50_ms']:.2f}  p99 {p['p99_ms']:.2f}  max {p['max_ms']:.2f}")
ratio = lambda a, b: f"{a / b:.2f}" if b > 0 else "n/a"
print(f"tickd lateness / baseline picked up: p50 {ratio(t['p50'], p['p50_ms'])}  "
      f"p99 {ratio(t['p99'], p['p99_ms'])}  max {ratio(t['max'], p['max_ms'])}")
PY
