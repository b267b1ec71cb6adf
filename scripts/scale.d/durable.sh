# Section `durable` of scripts/scale.sh (issue 16 item 5): durable writes
# against redis-server. For each build of $BUILDS, runs scripts/durable.sh
# (durable `jobs.run` and `jobs.put` with state_dir against `RPUSH` with
# `appendfsync always`, at 1 and 50 connections, same client, same run; see
# that script's header for the setup) and gathers its medians into
# $OUT_DIR/scale-durable.csv: build, conns, what, median throughput,
# median p99, and the ratio of each figure to redis `always` (jobs.put:
# to durable jobs.run) of the same run. Its rounds are in
# $OUT_DIR/durable-BUILD.csv. Job count plays no part here (one job).

section_durable() {
  local csv="$OUT_DIR/scale-durable.csv" pair build bin
  echo "build,conns,what,throughput,p99_us,ratio,ratio_to" >"$csv"
  for pair in $BUILDS; do
    build=${pair%%=*}
    bin=${pair#*=}
    echo "durable: $build ..." >&2
    TICKD_BIN=$bin TICKD_LOAD_BIN=$LOAD OUT_DIR="$WORK/durable-$build" \
      "$ROOT/scripts/durable.sh" >&2
    cp "$WORK/durable-$build/durable.csv" "$OUT_DIR/durable-$build.csv"
    python3 - "$build" "$WORK/durable-$build/durable.csv" >>"$csv" <<'PY'
import csv, statistics, sys
build, path = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(path)))
def med(what, conns, col):
    v = [float(r[col]) for r in rows if r["what"] == what and r["conns"] == conns]
    return statistics.median(v) if v else None
for conns in sorted({r["conns"] for r in rows}, key=int):
    base = {"tickd-durable": "redis-always", "tickd-put": "tickd-durable",
            "tickd-memory": "redis-always", "redis-none": "redis-always"}
    for what in ["tickd-durable", "redis-always", "tickd-put", "tickd-memory", "redis-none"]:
        t = med(what, conns, "throughput")
        if t is None:
            continue
        to = base.get(what, "")
        b = med(to, conns, "throughput") if to else None
        ratio = f"{t / b:.2f}" if b else ""
        print(f"{build},{conns},{what},{t:.0f},{med(what, conns, 'p99_us'):.0f},{ratio},{to}")
PY
  done
  echo >&2
  column -s, -t <"$csv" >&2
  echo "wrote $csv" >&2
}
