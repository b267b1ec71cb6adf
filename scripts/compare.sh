#!/usr/bin/env bash
# Compare tickd with redis-server on loopback, with the same load generator.
#
# Usage: scripts/compare.sh
#
# In one run: starts tickd and redis-server (installed with apt-get when
# missing; no persistence), then
#   1. at depth 1 and depth 32, $CONNS connections: $ROUNDS rounds of
#      tickd {"method":"ping"} then redis PING (A B A B ...), $SECS s each
#      after a $WARMUP s warm-up; prints the medians and the tickd/redis
#      ratios for throughput and p99, and writes docs/bench/compare.csv;
#   2. a sweep at depth 1 over $SWEEP_CONNS connections, tickd and redis in
#      turn, $SWEEP_SECS s each -> docs/bench/sweep.csv, charted in
#      docs/bench/throughput.svg and docs/bench/p99.svg.
# Both servers are stopped on exit. About 2.5 minutes with the defaults.
#
# Environment (defaults): ROUNDS (3), SECS (5), WARMUP (1), CONNS (50),
#   SWEEP_SECS (2), SWEEP_WARMUP (0.5), SWEEP_CONNS ("1 2 4 8 16 32 64 128 256"),
#   OUT_DIR (docs/bench), plus TICKD_BIN, TICKD_LOAD_BIN, CARGO_TARGET_DIR
#   as for loadtest.sh.
#
# Absolute figures depend on the machine and on what else runs on it; only
# the ratios between the two servers, measured in the same run, mean much.

set -euo pipefail

# shellcheck source=loadtest.sh
source "$(dirname "${BASH_SOURCE[0]}")/loadtest.sh"

ROUNDS="${ROUNDS:-3}"
SECS="${SECS:-5}"
WARMUP="${WARMUP:-1}"
CONNS="${CONNS:-50}"
SWEEP_SECS="${SWEEP_SECS:-2}"
SWEEP_WARMUP="${SWEEP_WARMUP:-0.5}"
SWEEP_CONNS="${SWEEP_CONNS:-1 2 4 8 16 32 64 128 256}"
OUT_DIR="${OUT_DIR:-$LOADTEST_ROOT/docs/bench}"

REDIS_PID=""
REDIS_PORT=""
WORK=""

cleanup() {
    stop_tickd
    if [[ -n "$REDIS_PID" ]]; then
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    fi
    [[ -n "$WORK" ]] && rm -rf "$WORK"
    return 0
}

# Starts redis-server on 127.0.0.1 at the first free port from 16379 on,
# without persistence. Sets REDIS_PID and REDIS_PORT.
start_redis() {
    local port
    for port in $(seq 16379 16479); do
        # A port where nothing answers a connect is free (for now).
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            REDIS_PORT="$port"
            break
        fi
    done
    [[ -n "$REDIS_PORT" ]] || { echo "no free port in 16379..16479 for redis" >&2; return 1; }
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize no >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    local i
    for i in $(seq 1 100); do
        if "$TICKD_LOAD_BIN" --connect "127.0.0.1:$REDIS_PORT" --raw --request PING \
            --expect PONG --conns 1 --warmup 0s --duration 1s --max-requests 1 \
            --json >/dev/null 2>&1; then
            echo "redis-server (pid $REDIS_PID) listening on 127.0.0.1:$REDIS_PORT" >&2
            return 0
        fi
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "redis-server did not start; its log:" >&2
    cat "$WORK/redis.log" >&2
    return 1
}

# measure SERVER CONNS DEPTH SECS WARMUP: one tickd-load run, one JSON line.
measure() {
    local server="$1" conns="$2" depth="$3" secs="$4" warm="$5"
    local args
    case "$server" in
    tickd) args=(--connect "$TICKD_ADDR") ;;
    redis) args=(--connect "127.0.0.1:$REDIS_PORT" --raw --request PING --expect PONG) ;;
    *) echo "unknown server $server" >&2; return 1 ;;
    esac
    "$TICKD_LOAD_BIN" "${args[@]}" --conns "$conns" --depth "$depth" \
        --duration "${secs}s" --warmup "${warm}s" --json
}

# field NAME: a numeric field of the flat JSON line on stdin.
field() {
    sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p"
}

# csv_row SERVER JSON: "throughput,p99_us,p50_us,errors" of one run.
csv_row() {
    local json="$2"
    local t p99 p50 err
    t="$(field throughput <<<"$json")"
    p99="$(field p99_us <<<"$json")"
    p50="$(field p50_us <<<"$json")"
    err="$(field errors <<<"$json")"
    if [[ "$err" != "0" ]]; then
        echo "warning: $1 answered $err errors in this run" >&2
    fi
    echo "$t,$p99,$p50,$err"
}

# median COLUMN SERVER DEPTH < compare.csv: median of one column.
median() { csv_median "$1" 3 "$2" 1 "$3"; }

main() {
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ensure_redis
    build_bins
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/compare.XXXXXX")"
    mkdir -p "$OUT_DIR"
    start_tickd
    start_redis

    local compare_csv="$OUT_DIR/compare.csv"
    echo "depth,round,server,conns,throughput,p99_us,p50_us,errors" >"$compare_csv"
    local depth round server json
    for depth in 1 32; do
        for round in $(seq 1 "$ROUNDS"); do
            for server in tickd redis; do
                echo "depth $depth round $round/$ROUNDS: $server ..." >&2
                json="$(measure "$server" "$CONNS" "$depth" "$SECS" "$WARMUP")"
                echo "$depth,$round,$server,$CONNS,$(csv_row "$server" "$json")" >>"$compare_csv"
            done
        done
    done

    echo
    echo "tickd {\"method\":\"ping\"} vs redis PING, $CONNS connections, medians of $ROUNDS rounds of ${SECS} s"
    printf '%-6s %-6s %14s %10s\n' depth server "req/s" "p99 µs"
    local t_tp r_tp t_p99 r_p99
    for depth in 1 32; do
        for server in tickd redis; do
            printf '%-6s %-6s %14s %10s\n' "$depth" "$server" \
                "$(median 5 "$server" "$depth" <"$compare_csv")" \
                "$(median 6 "$server" "$depth" <"$compare_csv")"
        done
    done
    echo
    for depth in 1 32; do
        t_tp="$(median 5 tickd "$depth" <"$compare_csv")"
        r_tp="$(median 5 redis "$depth" <"$compare_csv")"
        t_p99="$(median 6 tickd "$depth" <"$compare_csv")"
        r_p99="$(median 6 redis "$depth" <"$compare_csv")"
        awk -v d="$depth" -v a="$t_tp" -v b="$r_tp" -v c="$t_p99" -v e="$r_p99" 'BEGIN {
            printf "depth %-3s tickd/redis  throughput %.2f   p99 %.2f\n", d,
                (b > 0 ? a / b : 0), (e > 0 ? c / e : 0) }'
    done

    echo
    local sweep_csv="$OUT_DIR/sweep.csv" conns
    echo "server,conns,depth,throughput,p99_us,p50_us,errors" >"$sweep_csv"
    for conns in $SWEEP_CONNS; do
        for server in tickd redis; do
            echo "sweep: $conns connection(s), $server ..." >&2
            json="$(measure "$server" "$conns" 1 "$SWEEP_SECS" "$SWEEP_WARMUP")"
            echo "$server,$conns,1,$(csv_row "$server" "$json")" >>"$sweep_csv"
        done
    done
    local note
    note="one run, $(date -u +%Y-%m-%d), depth 1, ${SWEEP_SECS} s per point, shared 2-core machine: compare the lines"
    "$TICKD_LOAD_BIN" chart --csv "$sweep_csv" --metric throughput --out "$OUT_DIR/throughput.svg" \
        --title "Throughput against connections: tickd ping vs redis PING" --note "$note"
    "$TICKD_LOAD_BIN" chart --csv "$sweep_csv" --metric p99_us --out "$OUT_DIR/p99.svg" \
        --title "p99 latency against connections: tickd ping vs redis PING" --note "$note"
    echo "wrote $compare_csv, $sweep_csv, $OUT_DIR/throughput.svg, $OUT_DIR/p99.svg"
}

main "$@"
