#!/usr/bin/env bash
# Interleaved A/B of tickd builds on the request path, with redis-server
# measured in the same run as the outside reference.
#
# Usage: scripts/ab.sh NAME=TICKD_BINARY [NAME=TICKD_BINARY ...]
#   e.g. git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release)
#        scripts/ab.sh old=/tmp/old/target/release/tickd new=target/release/tickd
#
# Each of ROUNDS rounds (default 5) runs, for every build in turn (the order
# rotates from round to round), one daemon on conf/tickd.toml's jobs and a
# free loopback port, and measures with tickd-load, SECS seconds (default 4)
# after a 1 s warm-up each, 50 connections: ping at depth 1 and 32, status
# and jobs.list at depth 1; then redis PING at depth 1 and 32. It prints the
# median of each figure per build, the ratio of each build to the first one,
# and ping's ratio to redis, and writes docs/bench/ab.csv (OUT_DIR).
#
# Absolute figures depend on the machine and on what else runs on it: run it
# on a quiet machine, and quote ratios measured in one run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/loadtest.sh"

ROUNDS="${ROUNDS:-5}"
SECS="${SECS:-4}"
CONNS="${CONNS:-50}"
OUT_DIR="${OUT_DIR:-$LOADTEST_ROOT/docs/bench}"
[[ $# -ge 1 ]] || { sed -n '2,17p' "$0" >&2; exit 2; }

names=() bins=()
for arg in "$@"; do
    names+=("${arg%%=*}")
    bins+=("$(cd "$(dirname "${arg#*=}")" && pwd)/$(basename "${arg#*=}")")
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ab.XXXXXX")"
REDIS_PID="" REDIS_PORT=""
cleanup() {
    stop_tickd
    [[ -n "$REDIS_PID" ]] && { kill -TERM "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TICKD_BIN="${bins[0]}"
build_bins
ensure_redis
for port in $(seq 16379 16479); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then REDIS_PORT=$port; break; fi
done
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!

sed 's/^listen = .*/listen = "127.0.0.1:0"/' "$LOADTEST_ROOT/conf/tickd.toml" >"$WORK/tickd.toml"

# one TARGET_ARGS... : throughput and p99 of one tickd-load run.
one() {
    "$TICKD_LOAD_BIN" "$@" --conns "$CONNS" --duration "${SECS}s" --warmup 1s --json |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["throughput"], j["p99_us"], j["errors"])'
}

mkdir -p "$OUT_DIR"
csv="$OUT_DIR/ab.csv"
echo "round,build,figure,throughput,p99_us" >"$csv"
n=${#names[@]}
for round in $(seq 1 "$ROUNDS"); do
    for k in $(seq 0 $((n - 1))); do
        i=$(((k + round) % n))
        name="${names[$i]}"
        log="$WORK/tickd-$name-$round.log" # a fresh log: the address is read from it
        "${bins[$i]}" run --config "$WORK/tickd.toml" 2>"$log" &
        TICKD_PID=$!
        TICKD_ADDR=""
        for _ in $(seq 1 200); do
            TICKD_ADDR="$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$log" | head -n 1)"
            [[ -n "$TICKD_ADDR" ]] && break
            sleep 0.05
        done
        [[ -n "$TICKD_ADDR" ]] || { echo "$name did not start:" >&2; cat "$log" >&2; exit 1; }
        for fig in "ping 1" "ping 32" "status 1" "jobs.list 1"; do
            set -- $fig
            read -r tp p99 errs < <(one --connect "$TICKD_ADDR" --depth "$2" --request "{\"method\":\"$1\"}")
            [[ "$errs" == 0 ]] || echo "warning: $name $1 answered $errs errors" >&2
            awk -v t="$tp" 'BEGIN { exit !(t > 0) }' || { echo "$name: $1 got no answers" >&2; exit 1; }
            echo "$round,$name,$1 d$2,$tp,$p99" >>"$csv"
            echo "round $round: $name $1 depth $2: $tp req/s, p99 $p99 us" >&2
        done
        stop_tickd
        TICKD_PID=""
    done
    for d in 1 32; do
        read -r tp p99 _ < <(one --connect "127.0.0.1:$REDIS_PORT" --raw --request PING --expect PONG --depth "$d")
        echo "$round,redis,ping d$d,$tp,$p99" >>"$csv"
        echo "round $round: redis PING depth $d: $tp req/s, p99 $p99 us" >&2
    done
done

python3 - "$csv" "${names[@]}" <<'PY'
import csv, statistics, sys
path, names = sys.argv[1], sys.argv[2:]
rows = list(csv.DictReader(open(path)))
def med(build, fig, col):
    v = [float(r[col]) for r in rows if r["build"] == build and r["figure"] == fig]
    return statistics.median(v) if v else float("nan")
figs = ["ping d1", "ping d32", "status d1", "jobs.list d1"]
print(f"medians of {len(set(r['round'] for r in rows))} interleaved rounds (req/s, p99 us)")
for b in names + ["redis"]:
    print(f"  {b:10}", "  ".join(f"{f}: {med(b, f, 'throughput'):.0f} / {med(b, f, 'p99_us'):.0f}"
                               for f in figs if med(b, f, 'throughput') == med(b, f, 'throughput')))
base = names[0]
for b in names[1:]:
    print(f"{b}/{base} throughput:", "  ".join(f"{f} {med(b, f, 'throughput') / med(base, f, 'throughput'):.3f}" for f in figs))
for b in names:
    print(f"{b}/redis ping:", "  ".join(
        f"{f} throughput {med(b, f, 'throughput') / med('redis', f, 'throughput'):.2f} p99 {med(b, f, 'p99_us') / med('redis', f, 'p99_us'):.2f}"
        for f in ["ping d1", "ping d32"]))
PY
echo "wrote $csv"
