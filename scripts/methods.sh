#!/usr/bin/env bash
# Throughput of status and jobs.list relative to ping, same daemon, same run:
# tickd with conf/tickd.toml's jobs on a free port, 50 connections, depth 1,
# ROUNDS rounds (default 3) of SECS seconds (default 4), methods interleaved.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
work=$(mktemp -d)
trap 'stop_tickd; rm -rf "$work"' EXIT

build_release
sed 's/^listen = .*/listen = "127.0.0.1:0"/' "$ROOT/conf/tickd.toml" >"$work/tickd.toml"
start_tickd "$work/tickd.toml" "$work/tickd.log"

declare -A rates
for round in $(seq 1 "$ROUNDS"); do
  for method in ping status jobs.list; do
    r=$("$LOAD" --connect "$TICKD_ADDR" --conns 50 --depth 1 --duration "${SECS}s" --warmup 1s \
          --request "{\"method\":\"$method\"}" --json \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["throughput"])')
    echo "round $round: $method $r req/s"
    rates[$method]="${rates[$method]:-} $r"
  done
done
python3 - "${rates[ping]}" "${rates[status]}" "${rates[jobs.list]}" <<'PY'
import statistics, sys
ping, status, jobs = (statistics.median(float(x) for x in a.split()) for a in sys.argv[1:4])
print(f"median req/s: ping {ping:.0f}, status {status:.0f}, jobs.list {jobs:.0f}")
print(f"ratio to ping: status {status / ping:.2f}, jobs.list {jobs / ping:.2f}")
PY
