# Section `herd` of scripts/scale.sh (issue 16, item 6: a thundering
# herd). Sourced by scale.sh; run it with SECTIONS=herd scripts/scale.sh.
#
# HERD_JOBS (100000) jobs are all due at the same second: a cron
# expression with a seconds field for an instant a few seconds after the
# daemon has started (`tz = "UTC"`), so nothing waits for a top of the
# hour. The jobs are `kind = "http"` against a closed loopback port (a run
# fails at once and forks nothing: what is measured is the daemon queueing
# the runs, as in issue 16's item 5); `queue_capacity` = 2 x HERD_JOBS,
# `history = 1`, `workers = 2`. While the herd is queued a client pings on
# one connection, one request in flight (scripts/scale.d/herd.py ping).
#
# For each build of $BUILDS, HERD_ROUNDS (3) rounds, one row each in
# $OUT_DIR/scale-herd.csv:
#   late_p50_ms, late_p99_ms, late_max_ms  queued_at - scheduled_at of
#       every run (all of them, from runs.list pages)
#   ping_max_ms, ping_p99_ms  the pings in flight while the herd was being
#       queued (from its due time to the last run's queued_at)
#   herd_span_ms  due time to the last run queued
#   loop_cpu_share, loop_cpu_us_per_run  the event loop thread's CPU time
#       over the herd (/proc/PID/task/PID/schedstat), as a share of the
#       span and per run; loadavg  the 1-minute load average around it
#   ping_window_max_ms, ping_window_max_at_ms  the slowest ping of the
#       whole window (a second before the herd to HERD_WINDOW after its
#       due time: the runs' ends included), and when it was sent (ms after
#       the due time)
# and prints the medians, each build's as a ratio to the first build's.
#
# Targets (issue 16): ping max <= 50 ms and late_p99 <= 100 ms.
#
#   again_*  with HERD_AGAIN=S, the same jobs due again S seconds later
#       (the next hourly herd: every job has run once): its lateness and
#       the ping max during it
#
# Environment: HERD_JOBS, HERD_ROUNDS, HERD_AGAIN, HERD_KIND (http; "exec" for
# `command = ["true"]`, forking a process per run), HERD_STATE_DIR=1 (a
# state_dir), HERD_WORKERS, HERD_LEAD and HERD_WINDOW (seconds, see
# herd.py), HERD_PERF=FILE (a `perf record -g` of the daemon around the
# herd; HERD_PERF_ARGS, HERD_PERF_SECONDS).

HERD_COLS="build,round,jobs,kind,state_dir,runs,late_p50_ms,late_p99_ms,late_max_ms,ping_max_ms,ping_p99_ms,pings_during,herd_span_ms,loop_cpu_share,loop_cpu_us_per_run,ping_window_max_ms,ping_window_max_at_ms,again_late_p50_ms,again_late_p99_ms,again_late_max_ms,again_ping_max_ms,loadavg"

section_herd() {
  local csv="$OUT_DIR/scale-herd.csv" n=${HERD_JOBS:-100000} rounds=${HERD_ROUNDS:-3}
  local pair build bin round json
  echo "$HERD_COLS" >"$csv"
  for round in $(seq 1 "$rounds"); do
    for pair in $BUILDS; do
      build=${pair%%=*}
      bin=${pair#*=}
      echo "herd: $build, $n jobs, round $round/$rounds ..." >&2
      json=$(python3 "$ROOT/scripts/scale.d/herd.py" run "$bin" "$n" "$WORK/herd")
      python3 - "$build" "$round" "$json" "$HERD_COLS" >>"$csv" <<'PY'
import json, sys
build, rnd, row, cols = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4].split(",")
row.update(build=build, round=rnd)
print(",".join("" if row.get(c) is None else str(row.get(c)) for c in cols))
PY
    done
  done
  rm -rf "$WORK/herd"
  print_herd "$csv"
}

# print_herd CSV: medians per build, and ratios to the first build.
print_herd() {
  python3 - "$1" <<'PY'
import statistics, sys
lines = [l.strip().split(",") for l in open(sys.argv[1]) if l.strip()]
head, rows = lines[0], [dict(zip(lines[0], l)) for l in lines[1:]]
builds = list(dict.fromkeys(r["build"] for r in rows))
cols = ["late_p50_ms", "late_p99_ms", "late_max_ms", "ping_max_ms", "ping_p99_ms",
        "herd_span_ms", "loop_cpu_us_per_run", "loop_cpu_share", "loadavg"]
med = {}
for b in builds:
    med[b] = {}
    for c in cols:
        v = [float(r[c]) for r in rows if r["build"] == b and r[c] != ""]
        med[b][c] = statistics.median(v) if v else None
print()
print(f"herd of {rows[0]['jobs']} jobs ({rows[0]['kind']}), medians of "
      f"{len(rows) // max(1, len(builds))} rounds; targets: ping max <= 50 ms, late p99 <= 100 ms")
print(f"{'build':<10}" + "".join(f"{c:>21}" for c in cols))
for b in builds:
    print(f"{b:<10}" + "".join(
        f"{'-' if med[b][c] is None else round(med[b][c], 2):>21}" for c in cols))
first = builds[0]
for b in builds[1:]:
    parts = [f"{c} {med[b][c] / med[first][c]:.2f}x" for c in cols[:7]
             if med[b][c] is not None and med[first][c]]
    print(f"{b}/{first}: " + ", ".join(parts))
PY
}
