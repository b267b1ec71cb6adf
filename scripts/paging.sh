#!/usr/bin/env bash
# Paging and /metrics at large job counts: what a client of jobs.list and a
# Prometheus scrape cost as the job count grows.
#
# Usage: scripts/paging.sh [JOBS ...]        (default: 1000 100000)
#
# For each job count N, in one run: writes a config of N jobs (alternating
# `cron = "M H * * *"` and `every = "1h"`, command `true`, as in issue 16),
# starts the release tickd on it, and measures
#   - `jobs.list` without params (the whole list, or its refusal): time of
#     the first call and median of $REPEAT more (cached), bytes;
#   - one page of $PAGE jobs at the start, the middle and the end of the
#     names (median of $REPEAT calls each), and a walk through every page;
#   - `GET /metrics` read to the end: time, bytes, the daemon's RSS growth
#     during the scrape (VmRSS sampled every 10 ms), and the longest `ping`
#     round trip of a client pinging on another connection meanwhile;
#   - the same scrape with `metrics_per_job = false` (a second start).
# Prints a table with the ratios of each figure to the first job count's
# (the baseline, measured in the same run), and writes $OUT (CSV).
#
# Environment (defaults): TICKD (target/release/tickd; built unless
# NO_BUILD=1), PAGE (1000), REPEAT (20), OUT (docs/bench/paging.csv),
# WORK (/tmp/tickd-paging, removed at the end).
# A million jobs needs several GB of RAM and a few minutes.

set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PAGE="${PAGE:-1000}"
REPEAT="${REPEAT:-20}"
OUT="${OUT:-$ROOT/docs/bench/paging.csv}"
WORK="${WORK:-/tmp/tickd-paging}"
COUNTS=("$@")
if [ ${#COUNTS[@]} -eq 0 ]; then
  COUNTS=(1000 100000)
fi

if [ "${NO_BUILD:-0}" != 1 ]; then
  (cd "$ROOT" && cargo build --release --quiet --bin tickd)
fi
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

python3 - "$TICKD" "$WORK" "$OUT" "$PAGE" "$REPEAT" "${COUNTS[@]}" <<'PY'
import json, os, socket, statistics, subprocess, sys, threading, time

tickd, work, out_csv, page, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
counts = [int(n) for n in sys.argv[6:]]

def write_config(path, n, per_job):
    # No cron job fires within the next two hours (their hours start 3
    # hours from now), and the `every = "1h"` ones fire at the top of the
    # hour, which the run keeps away from (see `away_from_the_hour`).
    hour = time.gmtime().tm_hour
    with open(path, "w") as f:
        f.write('[daemon]\nlisten = "127.0.0.1:0"\nworkers = 2\n')
        f.write(f"metrics_per_job = {'true' if per_job else 'false'}\n\n")
        for i in range(n):
            cron = f'cron = "{(i * 7 + 31) % 60} {(hour + 3 + i % 18) % 24} * * *"\ntz = "UTC"'
            sched = cron if i % 2 == 0 else 'every = "1h"'
            f.write(f'[[jobs]]\nname = "job{i:07d}"\n{sched}\ncommand = ["true"]\n\n')

class Daemon:
    def __init__(self, config):
        self.log = open(config + ".log", "w+")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([tickd, "run", "--config", config], stderr=self.log,
                                     stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        # Ready once the jobs are loaded and scheduled ("started"), which
        # comes after the listeners are bound ("listening on").
        while True:
            self.log.seek(0)
            text = self.log.read()
            if "listening on " in text and " started (pid " in text:
                addr = text.split("listening on ")[1].split()[0]
                host, port = addr.rsplit(":", 1)
                self.addr = (host, int(port))
                break
            if self.proc.poll() is not None:
                sys.exit("tickd exited:\n" + text)
            if time.monotonic() - t0 > 600:
                sys.exit("tickd did not start in 10 minutes")
            time.sleep(0.02)
        self.start_s = time.monotonic() - t0

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

class Rpc:
    def __init__(self, addr):
        self.s = socket.create_connection(addr)
        self.f = self.s.makefile("rb")
        self.id = 0

    def call(self, method, params=None):
        self.id += 1
        req = {"id": self.id, "method": method}
        if params is not None:
            req["params"] = params
        t0 = time.perf_counter()
        self.s.sendall((json.dumps(req) + "\n").encode())
        line = self.f.readline()
        dt = time.perf_counter() - t0
        return json.loads(line), len(line), dt

def ms(x):
    return round(x * 1000, 3)

def page_ms(c, params):
    times = []
    for _ in range(repeat):
        resp, _, dt = c.call("jobs.list", params)
        assert "result" in resp, resp
        times.append(dt)
    return statistics.median(times)

def scrape(d):
    """GET /metrics to the end; (seconds, bytes, RSS growth MB, ping max ms)."""
    done = threading.Event()
    pings, rss = [], []
    def pinger():
        c = Rpc(d.addr)
        while not done.is_set():
            _, _, dt = c.call("ping")
            pings.append(dt)
    def sampler():
        while not done.is_set():
            rss.append(d.rss_kb())
            time.sleep(0.01)
    before = d.rss_kb()
    threads = [threading.Thread(target=pinger), threading.Thread(target=sampler)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    s = socket.create_connection(d.addr)
    t0 = time.perf_counter()
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    total = 0
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    secs = time.perf_counter() - t0
    done.set()
    for t in threads:
        t.join()
    return secs, total, (max(rss) - before) / 1024, ms(max(pings)), len(pings)

def away_from_the_hour():
    """Waits until the run of one job count cannot reach the top of the
    hour, when every `every = "1h"` job fires at once."""
    t = time.gmtime()
    if t.tm_min >= 48:
        wait = (60 - t.tm_min) * 60 - t.tm_sec + 90
        print(f"waiting {wait} s, past the top of the hour", flush=True)
        time.sleep(wait)

rows = []
for n in counts:
    away_from_the_hour()
    config = os.path.join(work, f"{n}.toml")
    write_config(config, n, True)
    d = Daemon(config)
    c = Rpc(d.addr)
    row = {"jobs": n, "start_s": round(d.start_s, 2), "rss_mb": round(d.rss_kb() / 1024, 1)}
    resp, size, dt = c.call("jobs.list")
    row["whole_first_ms"] = ms(dt)
    row["whole_bytes"] = size
    row["whole"] = "answer" if "result" in resp else f"refused {resp['error']['code']}"
    again = [c.call("jobs.list")[2] for _ in range(repeat)]
    row["whole_again_ms"] = ms(statistics.median(again))
    names_mid = f"job{n // 2:07d}"
    names_end = f"job{max(n - page, 0):07d}"
    row["page_first_ms"] = ms(page_ms(c, {"limit": page}))
    row["page_mid_ms"] = ms(page_ms(c, {"limit": page, "after": names_mid}))
    row["page_end_ms"] = ms(page_ms(c, {"limit": page, "after": names_end}))
    t0 = time.perf_counter()
    after, pages, worst, seen = None, 0, 0.0, 0
    while True:
        params = {"limit": page}
        if after:
            params["after"] = after
        resp, _, dt = c.call("jobs.list", params)
        pages += 1
        worst = max(worst, dt)
        seen += len(resp["result"]["jobs"])
        after = resp["result"]["next_after"]
        if after is None:
            break
    row["walk_s"] = round(time.perf_counter() - t0, 3)
    row["pages"] = pages
    row["walk_page_max_ms"] = ms(worst)
    assert seen == n, (seen, n)
    secs, size, grow, ping_max, npings = scrape(d)
    row.update(metrics_s=round(secs, 3), metrics_mb=round(size / 1e6, 1), metrics_rss_growth_mb=round(grow, 1),
               metrics_ping_max_ms=ping_max, metrics_pings=npings)
    d.stop()
    write_config(config, n, False)
    d = Daemon(config)
    secs, size, grow, ping_max, npings = scrape(d)
    row.update(off_metrics_ms=ms(secs), off_metrics_bytes=size, off_ping_max_ms=ping_max)
    d.stop()
    os.remove(config)
    rows.append(row)
    print(json.dumps(row), flush=True)

keys = list(rows[0].keys())
os.makedirs(os.path.dirname(out_csv), exist_ok=True)
with open(out_csv, "w") as f:
    f.write(",".join(keys) + "\n")
    for r in rows:
        f.write(",".join(str(r[k]) for k in keys) + "\n")

base = rows[0]
print()
print(f"{'figure':<24}" + "".join(f"{r['jobs']:>16,}" for r in rows) + "   ratio to the first")
for k in ["start_s", "rss_mb", "whole_first_ms", "whole_again_ms", "page_first_ms", "page_mid_ms", "page_end_ms", "walk_s",
          "walk_page_max_ms", "metrics_s", "metrics_mb", "metrics_rss_growth_mb", "metrics_ping_max_ms",
          "off_metrics_ms", "off_metrics_bytes", "off_ping_max_ms"]:
    vals = [r[k] for r in rows]
    ratios = " ".join(f"{v / base[k]:.2f}x" if isinstance(v, (int, float)) and base[k] else "-" for v in vals[1:])
    print(f"{k:<24}" + "".join(f"{v:>16}" for v in vals) + "   " + ratios)
print(f"{'whole list':<24}" + "".join(f"{r['whole']:>16}" for r in rows))
print(f"\nwritten: {out_csv}")
PY
