#!/usr/bin/env bash
# Exec-run throughput: tickd running /bin/true through `jobs.run` with
# `wait: true` from CLIENTS clients (default 4), against a bare spawn+wait
# loop on as many threads, interleaved A B A B over ROUNDS rounds of SECS
# seconds. Prints runs/s of each and the ratio tickd/bare.
#
# Then, when `perf` works (COST=0 skips it), one more pair under
# `perf stat`: CPU time and context switches per run, of tickd plus its
# client against the bare loop. Throughput on a shared machine moves with
# whatever else runs; these per-run costs move much less, and their ratio
# is what the throughput ratio tends to on a machine the runs saturate.
#
# Usage: [CLIENTS=4] [ROUNDS=3] [SECS=5] [COST=1] scripts/exec.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CLIENTS=${CLIENTS:-4}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
work=$(mktemp -d)
trap 'stop_tickd; rm -rf "$work"' EXIT

build_release
cat >"$work/tickd.toml" <<CONF
[daemon]
listen = "127.0.0.1:0"
workers = $CLIENTS
history = 10

[[jobs]]
name = "true"
command = ["/bin/true"]
overlap = "allow"
CONF
start_tickd "$work/tickd.toml" "$work/tickd.log"

req='{"method":"jobs.run","params":{"name":"true","wait":true}}'
tickd_rates=(); bare_rates=()
for round in $(seq 1 "$ROUNDS"); do
  t=$("$LOAD" --connect "$TICKD_ADDR" --conns "$CLIENTS" --depth 1 --duration "${SECS}s" \
        --warmup 1s --request "$req" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["throughput"])')
  b=$("$LOAD" spawn --threads "$CLIENTS" --duration "${SECS}s" --json \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["throughput"])')
  echo "round $round: tickd ${t} runs/s, bare spawn+wait ${b} runs/s"
  tickd_rates+=("$t"); bare_rates+=("$b")
done
python3 - "${tickd_rates[*]}" "${bare_rates[*]}" <<'PY'
import statistics, sys
t = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
mt, mb = statistics.median(t), statistics.median(b)
print(f"median: tickd {mt:.0f} runs/s, bare {mb:.0f} runs/s, ratio tickd/bare {mt / mb:.2f}")
PY

if [ "${COST:-1}" = 1 ] && perf stat -e task-clock true >/dev/null 2>&1; then
  perf stat -x, -e task-clock,context-switches -p "$TICKD_PID" -o "$work/daemon.csv" &
  perf_pid=$!
  sleep 0.2
  perf stat -x, -e task-clock,context-switches -o "$work/client.csv" -- \
    "$LOAD" --connect "$TICKD_ADDR" --conns "$CLIENTS" --depth 1 --duration "${SECS}s" \
      --warmup 0s --request "$req" --json >"$work/tickd.json"
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  perf stat -x, -e task-clock,context-switches -o "$work/bare.csv" -- \
    "$LOAD" spawn --threads "$CLIENTS" --duration "${SECS}s" --json >"$work/bare.json"
  python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
def stat(name):
    out = {}
    for line in open(os.path.join(work, name)):
        f = line.strip().split(",")
        if len(f) > 2 and f[0] and f[0][0].isdigit():
            out[f[2]] = float(f[0])
    return out
d, c, b = stat("daemon.csv"), stat("client.csv"), stat("bare.csv")
runs_t = json.load(open(os.path.join(work, "tickd.json")))["requests"]
runs_b = json.load(open(os.path.join(work, "bare.json")))["runs"]
def per_run(s, n):
    return s["task-clock"] * 1000 / n, s["context-switches"] / n
dt, ds = per_run(d, runs_t)
ct, cs = per_run(c, runs_t)
bt, bs = per_run(b, runs_b)
print("cost per run (perf stat; CPU includes the /bin/true processes):")
print(f"  tickd daemon  {dt:6.0f} us CPU  {ds:5.2f} context switches")
print(f"  tickd client  {ct:6.0f} us CPU  {cs:5.2f} context switches")
print(f"  bare loop     {bt:6.0f} us CPU  {bs:5.2f} context switches")
print(f"  CPU per run, bare / (daemon + client): {bt / (dt + ct):.2f}")
PY
else
  echo "(perf not available or COST=0: no per-run cost)"
fi
