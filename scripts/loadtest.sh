#!/usr/bin/env bash
# Load-test a tickd started just for this run, on loopback.
#
# Usage: scripts/loadtest.sh [tickd-load options...]
#   e.g. scripts/loadtest.sh --conns 50 --depth 32 --duration 5s --json
#
# Builds the release binaries (cargo only rebuilds what changed), starts
# tickd on 127.0.0.1 with a temporary config and a free port, runs tickd-load
# against it with the given options (default: {"method":"ping"}, 50
# connections, depth 1, 10 s after a 2 s warm-up), stops tickd with SIGTERM
# and prints the results. The script supplies --connect; do not pass it.
#
# Environment:
#   TICKD_BIN, TICKD_LOAD_BIN  use these binaries instead of building
#   CARGO_TARGET_DIR           where cargo builds (default: target/)
#
# compare.sh, durable.sh and ab.sh source this file for build_bins,
# start_tickd, stop_tickd, ensure_redis and csv_median; sourcing runs
# nothing.

# The repository root, from this file's location.
LOADTEST_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Installs redis-server with apt-get unless it is already there.
ensure_redis() {
    command -v redis-server >/dev/null && return
    local sudo=""
    [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
    echo "redis-server missing: installing it with apt-get ..." >&2
    if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server >&2; then
        $sudo apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q redis-server >&2
    fi
}

# csv_median COLUMN KEY1 VALUE1 KEY2 VALUE2 < file.csv: the median of
# COLUMN over the rows (header skipped) whose column KEY1 is VALUE1 and
# KEY2 is VALUE2 (columns numbered from 1); "nan" if none.
csv_median() {
    awk -F, -v col="$1" -v k1="$2" -v v1="$3" -v k2="$4" -v v2="$5" '
        NR > 1 && $k1 == v1 && $k2 == v2 { v[n++] = $col }
        END {
            if (n == 0) { print "nan"; exit }
            # insertion sort; n is small
            for (i = 1; i < n; i++) { x = v[i]; j = i - 1
                while (j >= 0 && v[j] + 0 > x + 0) { v[j + 1] = v[j]; j-- }
                v[j + 1] = x }
            if (n % 2) print v[int(n / 2)]; else print (v[n / 2 - 1] + v[n / 2]) / 2
        }'
}

# Sets TICKD_BIN and TICKD_LOAD_BIN, building them unless both are given.
build_bins() {
    if [[ -n "${TICKD_BIN:-}" && -n "${TICKD_LOAD_BIN:-}" ]]; then
        return
    fi
    local target_dir="${CARGO_TARGET_DIR:-$LOADTEST_ROOT/target}"
    echo "building release binaries in $target_dir ..." >&2
    (cd "$LOADTEST_ROOT" && cargo build --release --quiet --workspace --bins) >&2
    TICKD_BIN="$target_dir/release/tickd"
    TICKD_LOAD_BIN="$target_dir/release/tickd-load"
}

# Starts tickd on 127.0.0.1 with a free port. Sets TICKD_PID, TICKD_ADDR and
# TICKD_TMP (config and log). Extra lines for the [daemon] table may be
# given as arguments.
start_tickd() {
    TICKD_TMP="$(mktemp -d "${TMPDIR:-/tmp}/tickd-load.XXXXXX")"
    {
        echo '[daemon]'
        echo 'listen = "127.0.0.1:0"'
        echo 'log_level = "info"'
        local line
        for line in "$@"; do echo "$line"; done
    } >"$TICKD_TMP/tickd.toml"
    "$TICKD_BIN" run --config "$TICKD_TMP/tickd.toml" 2>"$TICKD_TMP/tickd.log" &
    TICKD_PID=$!
    TICKD_ADDR=""
    local i
    for i in $(seq 1 100); do
        TICKD_ADDR="$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$TICKD_TMP/tickd.log" | head -n 1)"
        [[ -n "$TICKD_ADDR" ]] && break
        if ! kill -0 "$TICKD_PID" 2>/dev/null; then
            echo "tickd exited at start; its log:" >&2
            cat "$TICKD_TMP/tickd.log" >&2
            return 1
        fi
        sleep 0.1
    done
    if [[ -z "$TICKD_ADDR" ]]; then
        echo "tickd did not log 'listening on' within 10 s; its log:" >&2
        cat "$TICKD_TMP/tickd.log" >&2
        stop_tickd
        return 1
    fi
    echo "tickd (pid $TICKD_PID) listening on $TICKD_ADDR" >&2
}

# Stops the tickd started by start_tickd (SIGTERM, then SIGKILL after 15 s)
# and removes its temporary directory. Safe to call twice.
stop_tickd() {
    if [[ -n "${TICKD_PID:-}" ]] && kill -0 "$TICKD_PID" 2>/dev/null; then
        kill -TERM "$TICKD_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 150); do
            kill -0 "$TICKD_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$TICKD_PID" 2>/dev/null || true
        wait "$TICKD_PID" 2>/dev/null || true
    fi
    TICKD_PID=""
    if [[ -n "${TICKD_TMP:-}" ]]; then
        rm -rf "$TICKD_TMP"
        TICKD_TMP=""
    fi
}

loadtest_main() {
    set -euo pipefail
    trap stop_tickd EXIT
    trap 'exit 130' INT TERM
    build_bins
    start_tickd
    local status=0
    "$TICKD_LOAD_BIN" --connect "$TICKD_ADDR" "$@" || status=$?
    stop_tickd
    return "$status"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    loadtest_main "$@"
fi
