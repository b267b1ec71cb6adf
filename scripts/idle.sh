#!/usr/bin/env bash
# What an idle daemon costs: CPU, wake-ups and memory.
#
# 1. Starts tickd with 100 hourly jobs and no clients, waits WARMUP seconds,
#    then over WINDOW seconds (default 10) reads /proc: CPU time used (utime +
#    stime of all threads), context switches of all threads per second (each
#    one is a thread waking up), and RSS.
# 2. Opens CONNS idle connections (default 10,000) from one client process and
#    reports RSS again: (RSS with connections - RSS without) / CONNS.
#
# Usage: scripts/idle.sh [WINDOW_SECONDS] [CONNS]
# Needs: python3 (holds the idle connections).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

WINDOW=${1:-10}
CONNS=${2:-10000}
WARMUP=2
work=$(mktemp -d)
trap 'stop_tickd; [ -n "${HOLDER:-}" ] && kill "$HOLDER" 2>/dev/null; rm -rf "$work"' EXIT

ulimit -n $((CONNS + 1024)) 2>/dev/null || {
  echo "cannot raise the open-file limit to $((CONNS + 1024)); run as root or lower CONNS" >&2
  exit 1
}

build_release
{
  echo '[daemon]'
  echo 'listen = "127.0.0.1:0"'
  echo "max_connections = $((CONNS + 100))"
  echo 'idle_timeout = "0s"'
  echo 'log_level = "info"'
  for i in $(seq 0 99); do
    printf '\n[[jobs]]\nname = "h%03d"\ncron = "%d %d * * * *"\ncommand = ["true"]\n' "$i" $((i % 60)) $(((i * 7) % 60))
  done
} >"$work/tickd.toml"
start_tickd "$work/tickd.toml" "$work/tickd.log"
sleep "$WARMUP"

cpu_ticks() { # utime + stime of the whole process, in clock ticks
  awk '{print $14 + $15}' "/proc/$TICKD_PID/stat"
}
switches() { # voluntary + involuntary context switches of every thread
  cat /proc/"$TICKD_PID"/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'
}
rss_kib() {
  awk '/VmRSS/ {print $2}' "/proc/$TICKD_PID/status"
}
threads() {
  ls /proc/"$TICKD_PID"/task | wc -l
}

hz=$(getconf CLK_TCK)
c0=$(cpu_ticks); s0=$(switches)
sleep "$WINDOW"
c1=$(cpu_ticks); s1=$(switches)
rss0=$(rss_kib)
cpu_ms=$(( (c1 - c0) * 1000 / hz ))
echo "idle, 100 hourly jobs, ${WINDOW}s window, $(threads) threads:"
echo "  cpu: ${cpu_ms} ms (clock tick resolution $((1000 / hz)) ms)"
echo "  wake-ups: $(( s1 - s0 )) context switches = $(awk -v n=$((s1 - s0)) -v w="$WINDOW" 'BEGIN {printf "%.2f", n / w}')/s"
echo "  rss: ${rss0} KiB"

python3 - "$TICKD_ADDR" "$CONNS" "$work/ready" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
n = int(sys.argv[2])
socks = []
for _ in range(n):
    s = socket.create_connection((host, int(port)))
    socks.append(s)
# One request on the last one proves the daemon has accepted them all.
socks[-1].sendall(b'{"method":"ping"}\n')
socks[-1].recv(100)
open(sys.argv[3], "w").write("ok")
time.sleep(600)
PY
HOLDER=$!
deadline=$((SECONDS + 120))
until [ -f "$work/ready" ]; do
  if [ $SECONDS -ge $deadline ] || ! kill -0 "$HOLDER" 2>/dev/null; then
    echo "could not open $CONNS connections" >&2
    exit 1
  fi
  sleep 0.2
done
sleep 1
rss1=$(rss_kib)
conns=$(ctl status | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"])')
echo "with $conns idle connections:"
echo "  rss: ${rss1} KiB, $(awk -v a="$rss0" -v b="$rss1" -v n="$CONNS" 'BEGIN {printf "%.2f", (b - a) * 1024 / n}') bytes per connection"
