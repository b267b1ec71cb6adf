#!/usr/bin/env bash
# Exec-run throughput: tickd running /bin/true through `jobs.run` with
# `wait: true` from CLIENTS clients (default 4), against a bare spawn+wait
# loop on as many threads, interleaved A B A B over ROUNDS rounds of SECS
# seconds. Prints runs/s of each and the ratio tickd/bare.
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
