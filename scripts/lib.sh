# Shared helpers for the measurement scripts: build, start tickd on a free
# loopback port, stop it. Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Both can be overridden, e.g. to measure a saved build of an older commit
# against the current one: TICKD=/tmp/old/tickd NO_BUILD=1 scripts/precision.sh
TICKD=${TICKD:-"$ROOT/target/release/tickd"}
LOAD=${LOAD:-"$ROOT/target/release/tickd-load"}

# Builds the daemon and the load generator (release), unless NO_BUILD=1.
build_release() {
  if [ "${NO_BUILD:-0}" = 1 ]; then
    return
  fi
  (cd "$ROOT" && cargo build --release --quiet --workspace --bins)
}

# start_tickd CONFIG LOGFILE: starts tickd, waits for "listening on", sets
# TICKD_PID and TICKD_ADDR.
start_tickd() {
  local config=$1 log=$2
  "$TICKD" run --config "$config" 2>"$log" &
  TICKD_PID=$!
  local deadline=$((SECONDS + 20))
  until grep -q "listening on " "$log" 2>/dev/null; do
    if ! kill -0 "$TICKD_PID" 2>/dev/null; then
      echo "tickd exited early:" >&2
      cat "$log" >&2
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "tickd did not start listening in time" >&2
      exit 1
    fi
    sleep 0.05
  done
  TICKD_ADDR=$(grep -o "listening on [0-9.:]*" "$log" | head -n1 | awk '{print $3}')
}

stop_tickd() {
  if [ -n "${TICKD_PID:-}" ] && kill -0 "$TICKD_PID" 2>/dev/null; then
    kill -TERM "$TICKD_PID" 2>/dev/null || true
    wait "$TICKD_PID" 2>/dev/null || true
  fi
}

# ctl METHOD [PARAMS]: one call to the running daemon.
ctl() {
  "$TICKD" ctl --connect "$TICKD_ADDR" "$@"
}
