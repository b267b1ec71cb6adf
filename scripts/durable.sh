#!/usr/bin/env bash
# Durable writes: tickd `jobs.run` with state_dir against redis-server
# `RPUSH` with `appendfsync always`, side by side, same client.
#
# Usage: scripts/durable.sh
#
# In one run: starts redis-server (installed with apt-get when missing)
# with `--appendonly yes --appendfsync always` and a tickd with
# `state_dir`, both on free loopback ports, their files in one temporary
# directory on the same file system ($TMPDIR, default /tmp: it must be a
# real disk, not tmpfs, or fdatasync costs nothing); then for each
# connection count of $CONNS and $ROUNDS rounds, one $SECS-second window
# (after a $WARMUP-second warm-up) of each:
#   tickd-durable  {"method":"jobs.run","params":{"name":"refused"}}, state_dir set
#   redis-always   RPUSH q x, appendfsync always
#   tickd-put      jobs.put of one job (replaced each time), state_dir set
#   tickd-memory   the same jobs.run, no state_dir (reference: what durability costs)
#   redis-none     RPUSH q x, no AOF (reference)
# with tickd-load in raw line mode, counting only answers that carry a
# result (`"result"` for tickd, `:` for redis; anything else is an error).
# The job is `kind = "http"` against a closed loopback port: it fails at
# once and forks nothing, so this measures acceptance, not the runs
# (`overlap = "allow"`, `queue_capacity = 1000000`).
#
# Prints the medians and the ratios (durable jobs.run / RPUSH always,
# durable jobs.put / durable jobs.run) and writes $OUT_DIR/durable.csv.
#
# Then compaction off the loop: a tickd with `history = 100000` takes
# jobs.run on 8 connections for $COMPACT_SECS s, so that its journal is
# compacted several times with tens of thousands of runs in memory; the
# script prints its log lines, which say how many records the loop handed
# over, in how many loop turns, and the most CPU one turn spent on it.
# About 3 minutes with the defaults.
#
# Environment (defaults): CONNS ("1 50"), ROUNDS (3), SECS (4), WARMUP (1),
#   TARGETS (all five above, in that order), COMPACT_SECS (12; 0 skips it), OUT_DIR (docs/bench), plus TICKD_BIN, TICKD_LOAD_BIN,
#   CARGO_TARGET_DIR as for loadtest.sh.

set -euo pipefail

# shellcheck source=loadtest.sh
source "$(dirname "${BASH_SOURCE[0]}")/loadtest.sh"

CONNS="${CONNS:-1 50}"
ROUNDS="${ROUNDS:-3}"
SECS="${SECS:-4}"
WARMUP="${WARMUP:-1}"
COMPACT_SECS="${COMPACT_SECS:-12}"
TARGETS="${TARGETS:-tickd-durable redis-always tickd-put tickd-memory redis-none}"
OUT_DIR="${OUT_DIR:-$LOADTEST_ROOT/docs/bench}"

WORK=""
REDIS_PID=""
REDIS_PORT=""

cleanup() {
    stop_tickd
    stop_redis
    [[ -n "$WORK" ]] && rm -rf "$WORK"
    return 0
}

# free_port FROM: the first port from FROM on where nothing answers.
free_port() {
    local port
    for port in $(seq "$1" $(($1 + 200))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port from $1" >&2
    return 1
}

# start_redis MODE: redis-server on a free port, MODE "always" (AOF,
# appendfsync always, in $WORK/redis) or "none". Sets REDIS_PID, REDIS_PORT.
start_redis() {
    local mode="$1" dir="$WORK/redis-$1"
    mkdir -p "$dir"
    REDIS_PORT="$(free_port 16379)"
    local persist=(--appendonly no)
    [[ "$mode" == always ]] && persist=(--appendonly yes --appendfsync always)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' "${persist[@]}" \
        --dir "$dir" --daemonize no >"$dir/redis.log" 2>&1 &
    REDIS_PID=$!
    local i
    for i in $(seq 1 100); do
        if "$TICKD_LOAD_BIN" --connect "127.0.0.1:$REDIS_PORT" --raw --request PING \
            --expect PONG --conns 1 --warmup 0s --duration 1s --max-requests 1 \
            --json >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "redis-server did not start; its log:" >&2
    cat "$dir/redis.log" >&2
    return 1
}

stop_redis() {
    if [[ -n "$REDIS_PID" ]]; then
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    fi
}

# start_tickd_with STATE_DIR [DAEMON_LINE...]: a tickd with the job
# `refused` (and state_dir = STATE_DIR unless empty); sets TICKD_PID,
# TICKD_ADDR, TICKD_TMP.
start_tickd_with() {
    local state=()
    [[ -n "$1" ]] && state=("state_dir = \"$1\"")
    shift
    start_tickd "${state[@]}" "$@" 'queue_capacity = 1000000' 'allow_job_api = true' \
        '[[jobs]]' 'name = "refused"' 'kind = "http"' \
        "url = \"http://127.0.0.1:$CLOSED_PORT/\"" 'overlap = "allow"'
}

# start_target WHAT: a fresh server for one window (a new state_dir for
# tickd, a new AOF for redis), so that no window inherits the runs still
# queued, or the journal, of another.
start_target() {
    case "$1" in
    tickd-durable | tickd-put)
        rm -rf "$WORK/state"
        mkdir -m 0700 "$WORK/state"
        start_tickd_with "$WORK/state"
        ;;
    tickd-memory) start_tickd_with "" ;;
    redis-always) start_redis always ;;
    redis-none) start_redis none ;;
    esac
}

stop_target() {
    stop_tickd
    stop_redis
    rm -rf "$WORK/state" "$WORK"/redis-*
}

# measure WHAT CONNS: one tickd-load run against the server started for
# it, one JSON line.
measure() {
    local what="$1" conns="$2" args
    local run='{"jsonrpc":"2.0","id":1,"method":"jobs.run","params":{"name":"refused"}}'
    local put="{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"jobs.put\",\"params\":{\"job\":{\"name\":\"put\",\"kind\":\"http\",\"url\":\"http://127.0.0.1:$CLOSED_PORT/\"}}}"
    case "$what" in
    tickd-durable | tickd-memory)
        args=(--connect "$TICKD_ADDR" --raw --expect '"result"' --request "$run") ;;
    tickd-put)
        args=(--connect "$TICKD_ADDR" --raw --expect '"result"' --request "$put") ;;
    redis-always | redis-none)
        args=(--connect "127.0.0.1:$REDIS_PORT" --raw --expect ':' --request 'RPUSH q x') ;;
    *) echo "unknown target $what" >&2; return 1 ;;
    esac
    "$TICKD_LOAD_BIN" "${args[@]}" --conns "$conns" --depth 1 \
        --duration "${SECS}s" --warmup "${WARMUP}s" --json
}

# field NAME: a numeric field of the flat JSON line on stdin.
field() {
    sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p"
}

# median COLUMN WHAT CONNS < durable.csv
median() { csv_median "$1" 1 "$2" 2 "$3"; }

main() {
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ensure_redis
    build_bins
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/durable.XXXXXX")"
    mkdir -p "$OUT_DIR"
    CLOSED_PORT="$(free_port 17900)"

    local csv="$OUT_DIR/durable.csv"
    echo "what,conns,round,throughput,p99_us,p50_us,errors" >"$csv"
    local conns round what json err
    for conns in $CONNS; do
        for round in $(seq 1 "$ROUNDS"); do
            for what in $TARGETS; do
                start_target "$what"
                echo "$conns connection(s), round $round/$ROUNDS: $what ..." >&2
                json="$(measure "$what" "$conns")"
                stop_target
                err="$(field errors <<<"$json")"
                [[ "$err" != "0" ]] && echo "warning: $what: $err answers without a result" >&2
                echo "$what,$conns,$round,$(field throughput <<<"$json"),$(field p99_us <<<"$json"),$(field p50_us <<<"$json"),$err" >>"$csv"
            done
        done
    done

    echo
    echo "durable writes: medians of $ROUNDS rounds of ${SECS} s, depth 1"
    printf '%-14s %6s %12s %10s\n' what conns "answers/s" "p99 µs"
    for conns in $CONNS; do
        for what in tickd-durable redis-always tickd-put tickd-memory redis-none; do
            printf '%-14s %6s %12s %10s\n' "$what" "$conns" \
                "$(median 4 "$what" "$conns" <"$csv")" "$(median 5 "$what" "$conns" <"$csv")"
        done
    done
    echo
    local a b c d e
    for conns in $CONNS; do
        a="$(median 4 tickd-durable "$conns" <"$csv")"
        b="$(median 4 redis-always "$conns" <"$csv")"
        c="$(median 5 tickd-durable "$conns" <"$csv")"
        d="$(median 5 redis-always "$conns" <"$csv")"
        e="$(median 4 tickd-put "$conns" <"$csv")"
        awk -v n="$conns" -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v e="$e" 'BEGIN {
            printf "%3s conns: durable jobs.run / RPUSH appendfsync always: throughput %.2fx, p99 %.2fx; durable jobs.put / durable jobs.run: %.2fx\n",
                n, (b > 0 ? a / b : 0), (d > 0 ? c / d : 0), (a > 0 ? e / a : 0) }'
    done
    echo "wrote $csv"

    [[ "$COMPACT_SECS" == 0 ]] && return 0
    echo
    echo "compaction off the loop: history = 100000, jobs.run on 8 connections for ${COMPACT_SECS} s"
    mkdir -m 0700 "$WORK/compact"
    start_tickd_with "$WORK/compact" 'history = 100000'
    "$TICKD_LOAD_BIN" --connect "$TICKD_ADDR" --raw --expect '"result"' \
        --request '{"jsonrpc":"2.0","id":1,"method":"jobs.run","params":{"name":"refused"}}' \
        --conns 8 --duration "${COMPACT_SECS}s" --warmup 0s --json >/dev/null
    grep -o 'journal compacted from .*' "$TICKD_TMP/tickd.log" || echo "(no compaction)"
    stop_tickd
}

main "$@"
