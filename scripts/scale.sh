#!/usr/bin/env bash
# Scale on one host (issue 16): how tickd grows with its job count.
#
# Usage: scripts/scale.sh
#
# Generates configs of N jobs for each N in $JOBS (issue 16's mix: jobs
# alternating `cron = "M H * * *"` and `every = "1h"`, kind exec, command
# ["true"]; the cron hours kept 3 to 20 hours away from now) and, for each
# N and each build in $BUILDS, runs the sections in $SECTIONS:
#
#   memory   `tickd check` time and peak RSS; daemon start time (until
#            "listening on", and until `status` answers); RSS after start
#            (VmRSS) and RSS per job = (RSS(N) - RSS(0 jobs)) / N; a SIGHUP
#            reload with one job changed, timed by the daemon's own log
#            lines ("SIGHUP: reloading config" to "config reloaded"), and
#            its peak RSS. -> $OUT_DIR/scale.csv, charted in
#            $OUT_DIR/scale-rss.svg and $OUT_DIR/scale-time.svg
#   charts   the table and charts of an existing scale.csv, drawn again
#   history  what one finished run kept in history costs: HISTORY_RUNS runs
#            of one job with `history = HISTORY_RUNS` and with `history =
#            0`, the RSS difference over the run count.
#            -> $OUT_DIR/scale-history.csv
#
# A section is a function `section_NAME` (it walks $BUILDS itself). The
# memory, charts and history sections are below; each other one lives in
# its own file, scripts/scale.d/NAME.sh (with any Python it needs next to
# it), sourced here, and adds its name to the default of SECTIONS.
#
# Every figure is printed as a ratio where a baseline exists (start and
# reload against `tickd check` of the same file; each build against the
# first one).
#
# The `every = "1h"` jobs all come due at the top of each hour (issue 16's
# item 6, the herd), so each measurement waits, when needed, until it can
# finish before the next top of the hour (see wait_off_the_hour).
#
# Environment (defaults):
#   JOBS ("1000 10000 100000 1000000")  job counts
#   BUILDS ("tickd=$TICKD")  NAME=BINARY pairs, measured in turn for each
#       N; e.g. BUILDS="before=/tmp/tickd-old after=target/release/tickd"
#   MIX ("issue"): "distinct" gives each job its own command and cron
#       expression (nothing to share between jobs but the `every` text)
#   SECTIONS ("memory history reload durable"), HISTORY_RUNS (50000)
#   ROUNDS (3): check and start are each measured ROUNDS times, in turn,
#       and the medians kept (RSS and the reload are of the last start)
#   RELOAD_TIMEOUT (120) seconds a reload may take before the daemon is
#       killed and the figure left empty; START_TIMEOUT (900)
#   OUT_DIR (docs/bench), WORK (a fresh /tmp/scale.XXXXXX; the configs,
#       about 100 bytes a job each, are deleted on exit), NO_BUILD
#
# Absolute figures depend on the machine; compare builds in the same run.

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JOBS=${JOBS:-"1000 10000 100000 1000000"}
BUILDS=${BUILDS:-"tickd=$TICKD"}
SECTIONS=${SECTIONS:-"memory history reload durable herd"}
HISTORY_RUNS=${HISTORY_RUNS:-50000}
OUT_DIR=${OUT_DIR:-"$ROOT/docs/bench"}
PY="$ROOT/scripts/scale.py"
export RELOAD_TIMEOUT=${RELOAD_TIMEOUT:-120}
export ROUNDS=${ROUNDS:-3}
export START_TIMEOUT=${START_TIMEOUT:-900}

KEEP_WORK=${WORK:+1}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/scale.XXXXXX")}
mkdir -p "$WORK" "$OUT_DIR"
cleanup() {
  if [ -z "$KEEP_WORK" ]; then
    rm -rf "$WORK"
  else
    rm -f "$WORK"/*.toml
  fi
}
trap cleanup EXIT

# json_field NAME: a field of the one-line JSON object on stdin.
json_field() {
  python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1], ""); print(v)' "$1"
}

# wait_off_the_hour SECONDS: returns when SECONDS fit before the next top of
# the hour (UTC, where `every = "1h"` falls) with a minute to spare, and not
# within the first minute after one; sleeps until two minutes past if not.
wait_off_the_hour() {
  local need=$1 now into left
  now=$(date -u +%s)
  into=$((now % 3600))
  left=$((3600 - into))
  if [ "$into" -lt 60 ] || [ "$left" -lt $((need + 60)) ]; then
    local nap=$(( (left + 120) % 3600 ))
    [ "$into" -lt 60 ] && nap=$((120 - into))
    echo "waiting ${nap} s to stay clear of the top of the hour (every = \"1h\" jobs fire then)" >&2
    sleep "$nap"
  fi
}

# budget N: seconds one memory measurement of N jobs may take (generous).
budget() {
  local reload=$(( $1 / 1000 ))
  [ "$reload" -gt "$RELOAD_TIMEOUT" ] && reload=$RELOAD_TIMEOUT
  echo $(( 30 + ROUNDS * $1 / 20000 + $1 / 5000 + reload ))
}

MEMORY_CSV="$OUT_DIR/scale.csv"
MEMORY_COLS="build,jobs,check_s,check_peak_kib,listen_s,start_s,rss_kib,start_peak_kib,rss_per_job_bytes,reload_s,reload_peak_kib,start_over_check,reload_over_check"

# memory_row BUILD BINARY N EMPTY_RSS_KIB: one CSV row of section memory.
memory_row() {
  local build=$1 bin=$2 n=$3 empty=$4 json
  wait_off_the_hour "$(budget "$n")"
  echo "memory: $build, $n jobs ..." >&2
  json=$(python3 "$PY" memory "$bin" "$n" "$WORK")
  python3 - "$build" "$n" "$empty" "$json" <<'PY'
import json, sys
build, n, empty, row = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
def get(k):
    return row.get(k, "")
per_job = ""
if n > 0 and empty != "":
    per_job = round((row["rss_kib"] - int(empty)) * 1024 / n)
ratio = lambda a, b: "" if a in ("", None) or not b else f"{float(a) / float(b):.2f}"
print(",".join(str(x) for x in [
    build, n, get("check_s"), get("check_peak_kib"), get("listen_s"), get("start_s"),
    get("rss_kib"), get("start_peak_kib"), per_job, get("reload_s"), get("reload_peak_kib"),
    ratio(get("start_s"), get("check_s")), ratio(get("reload_s"), get("check_s")),
]))
PY
}

section_memory() {
  echo "$MEMORY_COLS" >"$MEMORY_CSV"
  local n pair build bin row
  declare -A empty
  python3 "$PY" gen 0 "$WORK" >/dev/null
  for pair in $BUILDS; do
    build=${pair%%=*}
    bin=${pair#*=}
    row=$(memory_row "$build" "$bin" 0 "")
    empty[$build]=$(cut -d, -f7 <<<"$row")
    echo "$row" >>"$MEMORY_CSV"
  done
  for n in $JOBS; do
    echo "generating $n jobs ..." >&2
    python3 "$PY" gen "$n" "$WORK" >/dev/null
    for pair in $BUILDS; do
      build=${pair%%=*}
      bin=${pair#*=}
      row=$(memory_row "$build" "$bin" "$n" "${empty[$build]}")
      echo "$row" | tee -a "$MEMORY_CSV" >&2
    done
    rm -f "$WORK/jobs-$n.toml" "$WORK/jobs-$n.hup.toml" "$WORK/run.toml"
  done
  print_memory
  chart_memory
}

# print_memory: the table of section memory, with ratios to the first build.
print_memory() {
  python3 - "$MEMORY_CSV" <<'PY'
import sys
lines = [l.strip().split(",") for l in open(sys.argv[1]) if l.strip()]
head, rows = lines[0], [dict(zip(lines[0], l)) for l in lines[1:]]
builds = list(dict.fromkeys(r["build"] for r in rows))
def f(v, unit=""):
    return "-" if v == "" else f"{v}{unit}"
print()
print(f"{'build':<10} {'jobs':>8} {'check s':>8} {'start s':>8} {'start/check':>11} "
      f"{'RSS MiB':>8} {'B/job':>7} {'reload s':>9} {'reload/check':>12}")
for r in rows:
    rss = f"{int(r['rss_kib']) / 1024:.1f}" if r["rss_kib"] else "-"
    print(f"{r['build']:<10} {r['jobs']:>8} {f(r['check_s']):>8} {f(r['start_s']):>8} "
          f"{f(r['start_over_check']):>11} {rss:>8} {f(r['rss_per_job_bytes']):>7} "
          f"{f(r['reload_s']):>9} {f(r['reload_over_check']):>12}")
if len(builds) > 1:
    first = builds[0]
    print()
    for b in builds[1:]:
        for r in rows:
            if r["build"] != b or r["jobs"] == "0":
                continue
            base = next((x for x in rows if x["build"] == first and x["jobs"] == r["jobs"]), None)
            if not base:
                continue
            parts = []
            for col, name in (("rss_per_job_bytes", "RSS/job"), ("check_s", "check"),
                              ("start_s", "start"), ("reload_s", "reload")):
                if r[col] and base[col] and float(base[col]) > 0:
                    parts.append(f"{name} {float(r[col]) / float(base[col]):.2f}x")
            print(f"{b}/{first} at {r['jobs']} jobs: " + ", ".join(parts))
PY
}

chart_memory() {
  local note long
  note="$(date -u +%Y-%m-%d), $(nproc) cores, MIX=${MIX:-issue} (issue 16: cron and every alternating, exec true); medians of $ROUNDS"
  long="$WORK/chart.csv"
  python3 "$PY" csv-long "$MEMORY_CSV" "$long" MiB "rss_kib:1024:RSS" \
    "check_peak_kib:1024:check peak"
  "$LOAD" chart --csv "$long" --series series --x jobs --metric MiB --log-y \
    --out "$OUT_DIR/scale-rss.svg" \
    --title "RSS after start, and check's peak, against job count" --note "$note"
  python3 "$PY" csv-long "$MEMORY_CSV" "$long" seconds "check_s:1:check" "start_s:1:start" \
    "reload_s:1:reload"
  "$LOAD" chart --csv "$long" --series series --x jobs --metric seconds --log-y \
    --out "$OUT_DIR/scale-time.svg" \
    --title "check, start and SIGHUP reload (1 job changed) against job count" \
    --note "$note"
  echo "wrote $MEMORY_CSV, $OUT_DIR/scale-rss.svg, $OUT_DIR/scale-time.svg" >&2
}

# section_charts: prints and draws an existing $OUT_DIR/scale.csv again.
section_charts() {
  print_memory
  chart_memory
}

section_history() {
  local csv="$OUT_DIR/scale-history.csv" pair build bin json
  echo "build,runs,bytes_per_run" >"$csv"
  for pair in $BUILDS; do
    build=${pair%%=*}
    bin=${pair#*=}
    echo "history: $build, $HISTORY_RUNS runs ..." >&2
    json=$(python3 "$PY" history "$bin" "$HISTORY_RUNS" "$WORK")
    echo "$build,$HISTORY_RUNS,$(json_field bytes_per_run <<<"$json")" >>"$csv"
    echo "$build: one finished run in history costs $(json_field bytes_per_run <<<"$json") bytes of RSS" >&2
  done
}

for part in "$ROOT"/scripts/scale.d/*.sh; do
  [ -e "$part" ] && source "$part"
done

main() {
  build_release
  local s
  for s in $SECTIONS; do
    "section_$s"
  done
}

main "$@"
