# Section reload of scripts/scale.sh (issue 16, item 4): reload off the loop.
#
# For each N in $JOBS and each build in $BUILDS (scripts/scale.d/reload.py
# does the measuring): `tickd check` of the N-job file (every job changed;
# the median of $ROUNDS), a start, a SIGHUP reload changing one job and one
# changing every job with no client ("quiet"), the same two again with
# tickd-load pinging on one connection at depth 1 throughout, and a burst
# of $PUTS jobs.put over $PUT_CONNS connections ($PUT_DEPTH in flight on
# each) with the pinger, then as many jobs.delete. Reload seconds are the daemon's ("SIGHUP:
# reloading config" to "config reloaded"), printed over check's; ping
# latencies (max, p99) beside those of an idle window of the same run, and
# the loop's share: how many slices the whole-file change took, and the
# longest one's wall and CPU time (from the "config reloaded" line).
# -> $OUT_DIR/scale-reload.csv
#
# Environment: PUTS (10000), PUT_CONNS (4), PUT_DEPTH (16), and scale.sh's.

RELOAD_COLS="build,jobs,load_avg,check_s,start_s,quiet_one_s,quiet_one_over_check,quiet_every_s,quiet_every_over_check,idle_ping_max_ms,idle_ping_p99_ms,reload_one_s,reload_one_read_s,reload_one_over_check,reload_one_ping_max_ms,reload_one_ping_p99_ms,reload_every_s,reload_every_read_s,reload_every_over_check,reload_every_ping_max_ms,reload_every_ping_p99_ms,reload_every_slices,reload_every_longest_slice_ms,reload_every_longest_slice_cpu_ms,puts,put_errors,puts_per_s,put_ping_max_ms,put_ping_p99_ms,deletes,delete_errors,deletes_per_s,delete_ping_max_ms,delete_ping_p99_ms"

section_reload() {
  local csv="$OUT_DIR/scale-reload.csv" n pair build bin json
  echo "$RELOAD_COLS" >"$csv"
  for n in $JOBS; do
    echo "generating $n jobs ..." >&2
    python3 "$PY" gen "$n" "$WORK" >/dev/null
    for pair in $BUILDS; do
      build=${pair%%=*}
      bin=${pair#*=}
      # check ROUNDS times, start, two reloads of at most ~2x check, puts.
      wait_off_the_hour $(( 60 + (ROUNDS + 14) * n / 100000 ))
      echo "reload: $build, $n jobs ..." >&2
      json=$(python3 "$ROOT/scripts/scale.d/reload.py" run "$bin" "$LOAD" "$n" "$WORK")
      python3 - "$build" "$json" "$RELOAD_COLS" <<'PY' | tee -a "$csv" >&2
import json, sys
build, row, cols = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split(",")
row["build"] = build
print(",".join(str(row.get(c, "")) for c in cols))
PY
    done
    rm -f "$WORK/jobs-$n.toml" "$WORK/jobs-$n.hup.toml"
  done
  python3 - "$csv" <<'PY'
import sys
lines = [l.strip().split(",") for l in open(sys.argv[1]) if l.strip()]
rows = [dict(zip(lines[0], l)) for l in lines[1:]]
print()
print(f"{'build':<8} {'jobs':>8} {'check s':>8} {'start/check':>11} {'quiet 1/check':>13} "
      f"{'quiet all/check':>15}")
for r in rows:
    print(f"{r['build']:<8} {r['jobs']:>8} {r['check_s']:>8} "
          f"{float(r['start_s']) / float(r['check_s']):>11.2f} {r['quiet_one_over_check']:>13} "
          f"{r['quiet_every_over_check']:>15}")
print()
print("with a client pinging throughout (one connection, depth 1):")
print(f"{'build':<8} {'jobs':>8} {'check s':>8} {'reload 1':>9} {'/check':>7} {'ping max':>9} "
      f"{'reload all':>10} {'/check':>7} {'ping max':>9} {'idle max':>9} {'puts/s':>8} {'ping max':>9} "
      f"{'deletes/s':>9} {'ping max':>9}")
for r in rows:
    print(f"{r['build']:<8} {r['jobs']:>8} {r['check_s']:>8} {r['reload_one_s']:>9} "
          f"{r['reload_one_over_check']:>7} {r['reload_one_ping_max_ms']:>7}ms "
          f"{r['reload_every_s']:>10} {r['reload_every_over_check']:>7} "
          f"{r['reload_every_ping_max_ms']:>7}ms {r['idle_ping_max_ms']:>7}ms "
          f"{r['puts_per_s']:>8} {r['put_ping_max_ms']:>7}ms "
          f"{r['deletes_per_s']:>9} {r['delete_ping_max_ms']:>7}ms")
print("(targets: reload <= 2x check; ping max <= 50 ms during a reload and a put or delete burst)")
PY
  echo "wrote $csv" >&2
}
