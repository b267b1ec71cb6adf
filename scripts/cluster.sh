#!/usr/bin/env bash
# Cluster mode on Redis (issue 17): what the claim costs and how much three
# nodes can claim and run, on one host against a real redis-server.
#
# Usage: scripts/cluster.sh
#
# Builds the release binary (unless NO_BUILD=1 or TICKD=... is given, see
# lib.sh), installs redis-server when missing (ensure_redis, from
# loadtest.sh), starts one on a free loopback port without persistence,
# and measures, in one run:
#
#   lateness  LATE_JOBS jobs `every = "1s"` running `true`, all due each
#             second, in three modes taken in turn ROUNDS times:
#               local     one node without [cluster] (today's tickd)
#               cluster1  the same node with [cluster] (one claim, one
#                         Redis round trip, per occurrence)
#               cluster3  three such nodes with the same config
#             For each, the runs due in a window of SECS seconds (after
#             WARMUP seconds) are read back with runs.list (paged), and
#             give: the runs' lateness (`started_at - scheduled_at`,
#             `lateness_us`) p50 / p99 / max; occurrences expected, run,
#             run twice (must be 0), missed.
#   claim     the claim's Redis round trip as a client sees it:
#             CLAIMS sequential `SET NS:claim:JOB:AT NODE NX PX 60000` on
#             fresh keys over one connection (p50 / p99 / mean), and
#             `redis-cli --latency` (PING) for comparison; plus the daemon's
#             own `status.cluster.redis.rtt_ms` (from the lateness runs).
#   capacity  for each N in CAP_JOBS, three nodes with N jobs `every =
#             "1s"` for CAP_SECS seconds: distinct occurrences run per
#             second across the fleet (the claim-and-run throughput),
#             duplicates, missed, lateness p99.
#
# Prints a table and writes $OUT_DIR/cluster.csv, one row per measurement
# (column `section`: lateness, claim or capacity). Absolute figures depend
# on the machine (and on how many cores three nodes and Redis share):
# compare the modes of the same run.
#
# Environment (defaults):
#   LATE_JOBS (200), SECS (20), WARMUP (5), ROUNDS (2), MODES ("local
#   cluster1 cluster3"), CLAIMS (20000), CAP_JOBS ("250 500 1000 2000"; empty: no capacity section),
#   CAP_SECS (15), WORKERS (4, per node), OUT_DIR (docs/bench), WORK (a
#   fresh temp dir, removed on exit unless given), TICKD, NO_BUILD

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# ensure_redis (sourcing loadtest.sh runs nothing; its start_tickd and
# stop_tickd, which replace lib.sh's, are not used here).
source "$ROOT/scripts/loadtest.sh"

LATE_JOBS=${LATE_JOBS:-200}
SECS=${SECS:-20}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-2}
MODES=${MODES-"local cluster1 cluster3"}
CLAIMS=${CLAIMS:-20000}
CAP_JOBS=${CAP_JOBS-"250 500 1000 2000"}
CAP_SECS=${CAP_SECS:-15}
export WORKERS=${WORKERS:-4}
export WARMUP
OUT_DIR=${OUT_DIR:-"$ROOT/docs/bench"}

KEEP_WORK=${WORK:+1}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/cluster.XXXXXX")}
mkdir -p "$WORK" "$OUT_DIR"
REDIS_PID=""
REDIS_PORT=""

cleanup() {
  if [ -n "$REDIS_PID" ]; then
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  if [ -z "$KEEP_WORK" ]; then
    rm -rf "$WORK"
  fi
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts redis-server on the first free loopback port from 26379 on, in
# $WORK, without persistence; waits (with a deadline) for PONG. Sets
# REDIS_PID and REDIS_PORT.
start_redis() {
  local port
  for port in $(seq 26379 26479); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      REDIS_PORT=$port
      break
    fi
  done
  [ -n "$REDIS_PORT" ] || { echo "no free port in 26379..26479 for redis" >&2; return 1; }
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  local deadline=$((SECONDS + 20))
  until [ "$(redis-cli -p "$REDIS_PORT" PING 2>/dev/null)" = PONG ]; do
    if ! kill -0 "$REDIS_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "redis-server did not start; its log:" >&2
      cat "$WORK/redis.log" >&2
      return 1
    fi
    sleep 0.05
  done
  echo "redis-server $(redis-server --version | awk '{print $3}') (pid $REDIS_PID) on 127.0.0.1:$REDIS_PORT" >&2
}

COLS="section,mode,jobs,round,secs,expected,ran,duplicates,missed,runs_per_s,late_p50_ms,late_p99_ms,late_max_ms,rtt_ms,claims_won,claims_lost,claim_p50_us,claim_p99_us,claim_mean_us,ping_avg_ms"

# measure SUBCOMMAND ARGS...: one measurement, one JSON object on stdout.
#   fleet MODE N SECS WORK REDIS_URL   (MODE: local, cluster1, cluster3)
#   claim PORT COUNT
measure() {
  python3 - "$@" <<'PY'
import json, os, socket, statistics, sys, time, uuid
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.environ["ROOT"], "scripts"))
import scale  # noqa: E402  (scripts/scale.py: Daemon, start, log)

log = scale.log


def parse_ts(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def quantile(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q * len(v) + 0.5)) - 1))]


def config(n, secs, redis_url, ns, node):
    workers = int(os.environ.get("WORKERS", "4"))
    lines = [
        "[daemon]",
        'listen = "127.0.0.1:0"',
        f"workers = {workers}",
        f"queue_capacity = {max(1000, 4 * n)}",
        f"history = {secs + int(os.environ.get('WARMUP', '5')) + 20}",
        "",
    ]
    for i in range(n):
        lines += ["[[jobs]]", f'name = "j{i:05d}"', 'every = "1s"', 'command = ["true"]', ""]
    if node is not None:
        lines += [
            "[cluster]",
            f'redis = "{redis_url}"',
            f'node = "{node}"',
            f'namespace = "{ns}"',
            'claim_ttl = "10s"',
        ]
    return "\n".join(lines) + "\n"


def runs_since(d, since):
    """Every listed run queued at or after `since` (s), newest first, paged."""
    runs, before = [], None
    while True:
        params = {"limit": 1000}
        if before is not None:
            params["before"] = before
        page = d.call("runs.list", params)
        if not page:
            return runs
        runs.extend(page)
        before = page[-1]["run_id"]
        if parse_ts(page[-1]["queued_at"]) < since:
            return runs


def lateness_ms(r):
    if r.get("lateness_us") is not None:
        return r["lateness_us"] / 1000
    if r.get("started_at") and r.get("scheduled_at"):
        return (parse_ts(r["started_at"]) - parse_ts(r["scheduled_at"])) * 1000
    return None


def fleet(mode, n, secs, work, redis_url):
    n, secs = int(n), int(secs)
    warmup = int(os.environ.get("WARMUP", "5"))
    nodes = {"local": [None], "cluster1": ["c1"], "cluster3": ["c1", "c2", "c3"]}[mode]
    ns = "bench-" + uuid.uuid4().hex[:12]
    daemons = []
    try:
        for node in nodes:
            path = os.path.join(work, f"{mode}-{node}.toml")
            with open(path, "w") as f:
                f.write(config(n, secs, redis_url, ns, node))
            d, _, _ = scale.start(scale_bin, path, os.path.join(work, f"{mode}-{node}.log"), 120)
            daemons.append(d)
        if mode != "local":
            deadline = time.monotonic() + 30
            while True:
                cls = [d.call("status")["cluster"] for d in daemons]
                if all(c["redis"]["connected"] and len(c["nodes"]) == len(nodes) for c in cls):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the nodes did not join: {cls}")
                time.sleep(0.05)
        t0 = int(time.time()) + 1 + warmup
        t1 = t0 + secs  # occurrences due in [t0, t1)
        time.sleep(max(0.0, t1 + 3 - time.time()))
        runs = runs_since(daemons[0], t0 - 2)
        row = {"mode": mode, "jobs": n, "secs": secs}
        if mode != "local":
            cls = [d.call("status")["cluster"] for d in daemons]
            row["rtt_ms"] = statistics.median(c["redis"]["rtt_ms"] for c in cls)
            row["claims_won"] = sum(c["claims"]["won"] for c in cls)
            row["claims_lost"] = sum(c["claims"]["lost"] for c in cls)
    finally:
        for d in daemons:
            d.stop()
    window = [
        r for r in runs
        if r.get("trigger") == "schedule" and r.get("scheduled_at")
        and t0 <= parse_ts(r["scheduled_at"]) < t1
    ]
    keys = [(r["job"], r["scheduled_at"]) for r in window]
    distinct = len(set(keys))
    late = [x for x in (lateness_ms(r) for r in window) if x is not None]
    row.update(
        expected=n * secs,
        ran=distinct,
        duplicates=len(keys) - distinct,
        missed=n * secs - distinct,
        runs_per_s=round(distinct / secs, 1),
        late_p50_ms=round(quantile(late, 0.5), 3) if late else None,
        late_p99_ms=round(quantile(late, 0.99), 3) if late else None,
        late_max_ms=round(max(late), 3) if late else None,
    )
    return row


def claim(port, count):
    count = int(count)
    s = socket.create_connection(("127.0.0.1", int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    ns = "bench-" + uuid.uuid4().hex[:12]
    at = int(time.time() * 1000) // 1000 * 1000
    times = []
    for i in range(count):
        key = f"{ns}:claim:job{i % 200:03d}:{at + (i // 200) * 1000}"
        args = ["SET", key, "bench-node", "NX", "PX", "60000"]
        req = f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)
        t = time.perf_counter()
        s.sendall(req.encode())
        line = f.readline()
        times.append((time.perf_counter() - t) * 1e6)
        if line != b"+OK\r\n":
            raise RuntimeError(f"SET NX on a fresh key answered {line!r}")
    s.close()
    return {
        "jobs": count,
        "claim_p50_us": round(quantile(times, 0.5), 1),
        "claim_p99_us": round(quantile(times, 0.99), 1),
        "claim_mean_us": round(statistics.mean(times), 1),
    }


scale_bin = os.environ["TICKD"]
cmd, args = sys.argv[1], sys.argv[2:]
print(json.dumps({"fleet": fleet, "claim": claim}[cmd](*args)))
PY
}

# row SECTION ROUND JSON: one CSV line of $COLS.
row() {
  python3 - "$1" "$2" "$3" "$COLS" <<'PY'
import json, sys
section, rnd, obj, cols = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4].split(",")
obj.update(section=section, round=rnd)
print(",".join("" if obj.get(c) is None else str(obj[c]) for c in cols))
PY
}

main() {
  ensure_redis
  build_release
  export ROOT TICKD
  [ -x "$TICKD" ] || { echo "no tickd binary at $TICKD" >&2; exit 1; }
  start_redis
  local url="redis://127.0.0.1:$REDIS_PORT/0"
  local csv="$OUT_DIR/cluster.csv" round mode n json ping
  echo "$COLS" >"$csv"

  for round in $(seq 1 "$ROUNDS"); do
    for mode in $MODES; do
      echo "lateness: $mode, $LATE_JOBS jobs, ${SECS} s, round $round/$ROUNDS ..." >&2
      json=$(measure fleet "$mode" "$LATE_JOBS" "$SECS" "$WORK" "$url")
      row lateness "$round" "$json" >>"$csv"
    done
  done

  echo "claim: $CLAIMS SET NX PX, and redis-cli --latency ..." >&2
  json=$(measure claim "$REDIS_PORT" "$CLAIMS")
  # "min max avg samples" in ms, sampled for 3 s (non-tty output).
  ping=$(redis-cli -p "$REDIS_PORT" --latency -i 3 --raw | awk '{print $3}')
  json=$(python3 -c 'import json,sys; o=json.loads(sys.argv[1]); o["ping_avg_ms"]=float(sys.argv[2]); print(json.dumps(o))' "$json" "$ping")
  row claim 1 "$json" >>"$csv"

  for n in $CAP_JOBS; do
    echo "capacity: 3 nodes, $n jobs every second, ${CAP_SECS} s ..." >&2
    json=$(measure fleet cluster3 "$n" "$CAP_SECS" "$WORK" "$url")
    row capacity 1 "$json" >>"$csv"
  done

  echo "wrote $csv" >&2
  python3 - "$csv" <<'PY'
import csv, statistics, sys

rows = list(csv.DictReader(open(sys.argv[1])))


def num(r, c):
    return float(r[c]) if r.get(c) not in (None, "") else None


def med(rs, c):
    v = [x for x in (num(r, c) for r in rs) if x is not None]
    return statistics.median(v) if v else float("nan")


late = [r for r in rows if r["section"] == "lateness"]
modes = list(dict.fromkeys(r["mode"] for r in late))
if late:
    base = med([r for r in late if r["mode"] == modes[0]], "late_p99_ms")
    print(f"lateness of {late[0]['jobs']} jobs every second (medians of the rounds, ms)")
    print(f"  {'mode':<10}{'p50':>9}{'p99':>9}{'max':>9}{'p99/' + modes[0]:>12}{'ran':>8}{'dup':>5}{'missed':>8}{'rtt':>8}")
    for m in modes:
        rs = [r for r in late if r["mode"] == m]
        p99 = med(rs, "late_p99_ms")
        print(f"  {m:<10}{med(rs, 'late_p50_ms'):>9.2f}{p99:>9.2f}{med(rs, 'late_max_ms'):>9.2f}"
              f"{p99 / base if base else float('nan'):>12.2f}{med(rs, 'ran'):>8.0f}"
              f"{sum(int(r['duplicates']) for r in rs):>5}{med(rs, 'missed'):>8.0f}{med(rs, 'rtt_ms'):>8.3f}")
for r in (r for r in rows if r["section"] == "claim"):
    print(f"claim (SET NX PX, one connection, {r['jobs']} fresh keys): p50 {r['claim_p50_us']} us, "
          f"p99 {r['claim_p99_us']} us, mean {r['claim_mean_us']} us; redis-cli --latency avg {r['ping_avg_ms']} ms")
cap = [r for r in rows if r["section"] == "capacity"]
if cap:
    print("capacity: three nodes, N jobs every second")
    print(f"  {'jobs':>6}{'ran/s':>9}{'expected/s':>12}{'dup':>5}{'missed':>8}{'late p99 ms':>13}")
    for r in cap:
        print(f"  {r['jobs']:>6}{float(r['runs_per_s']):>9.1f}{int(r['jobs']):>12}{r['duplicates']:>5}"
              f"{r['missed']:>8}{num(r, 'late_p99_ms') or float('nan'):>13.2f}")
PY
}

main "$@"
