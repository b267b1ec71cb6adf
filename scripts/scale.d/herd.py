#!/usr/bin/env python3
"""The measuring half of scripts/scale.d/herd.sh (issue 16, item 6: a
thundering herd).

  run BIN N DIR     N jobs all due at the same second; prints one JSON
                    object: the lateness of their runs (queued_at -
                    scheduled_at, p50/p99/max in ms) and the latency of a
                    client pinging throughout (max and p99 in ms, over the
                    pings sent while the herd was being queued, and over
                    the whole window)
  ping ADDR UNTIL OUT
                    the pinging client: one connection, one `ping` in
                    flight at a time, until the wall time UNTIL; writes one
                    line per answer, "SENT_WALL_TIME LATENCY_SECONDS", to OUT

The jobs are `kind = "http"` against a closed loopback port: a run fails at
once and forks nothing, so what is measured is the daemon accepting the
runs, not the machine spawning processes (issue 16's item 5 setup).
HERD_KIND=exec makes them `exec` `true` instead. Each job has the cron
expression `S M H * * *` (seconds field; `tz = "UTC"`) of one instant a
little ahead (HERD_LEAD seconds after the daemon has started, default
5 + N/10000), so the measurement does not wait for a top of the hour.

`daemon.queue_capacity` is 2N (every run fits in the queue), `history = 1`
(one kept run per job: every run of the herd is still listed afterwards),
`workers = 2`; HERD_STATE_DIR=1 adds a `state_dir`.

Only the standard library (and scale.py next door).
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import scale  # noqa: E402  (scripts/scale.py: Daemon, start, log)

log = scale.log


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path, n, due, port, state_dir, again=0):
    """N jobs due at the wall time `due` (whole seconds, UTC), and `again`
    seconds later if not 0 (same minute)."""
    t = time.gmtime(due)
    seconds = f"{t.tm_sec},{t.tm_sec + again}" if again else f"{t.tm_sec}"
    cron = f"{seconds} {t.tm_min} {t.tm_hour} * * *"
    kind = os.environ.get("HERD_KIND", "http")
    if kind == "exec":
        body = 'kind = "exec"\ncommand = ["true"]\n'
    else:
        body = f'kind = "http"\nurl = "http://127.0.0.1:{port}/"\n'
    extra = f"queue_capacity = {min(max(2 * n, 1024), 1_000_000)}\nhistory = 1\n"
    if state_dir:
        extra += f'state_dir = "{state_dir}"\n'
    with open(path, "w") as f:
        table = scale.daemon_table(extra)
        workers = os.environ.get("HERD_WORKERS")
        if workers:
            table = table.replace("workers = 2\n", f"workers = {workers}\n")
        f.write(table)
        for i in range(n):
            f.write(f'[[jobs]]\nname = "herd-{i:07d}"\n{body}cron = "{cron}"\ntz = "UTC"\n\n')


def parse_ts(s):
    """An RFC 3339 timestamp of the daemon's (UTC, milliseconds) in seconds."""
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def quantile(sorted_values, q):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def scheduled_runs(d):
    """Every run still listed, newest first, through runs.list paging."""
    runs, before = [], None
    while True:
        params = {"limit": 2000}
        if before is not None:
            params["before"] = before
        page = d.call("runs.list", params)
        page = page["runs"] if isinstance(page, dict) else page
        if not page:
            return runs
        runs.extend(page)
        before = page[-1]["id"] if "id" in page[-1] else page[-1]["run_id"]


def cmd_ping(addr, until, out):
    host, port = addr.rsplit(":", 1)
    until = float(until)
    lines = []
    with socket.create_connection((host, int(port))) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'
        buf = b""
        while True:
            wall = time.time()
            if wall >= until:
                break
            t0 = time.perf_counter()
            s.sendall(req)
            while b"\n" not in buf:
                part = s.recv(65536)
                if not part:
                    raise RuntimeError("ping: connection closed")
                buf += part
            lat = time.perf_counter() - t0
            buf = buf[buf.index(b"\n") + 1:]
            lines.append(f"{wall:.6f} {lat:.6f}\n")
    with open(out, "w") as f:
        f.writelines(lines)


def ms(x):
    return None if x is None else round(x * 1000, 2)


def cmd_run(binary, n, work):
    n = int(n)
    os.makedirs(work, exist_ok=True)
    config = os.path.join(work, "herd.toml")
    state_dir = None
    if os.environ.get("HERD_STATE_DIR", "0") == "1":
        state_dir = os.path.join(work, "state")
        subprocess.run(["rm", "-rf", state_dir], check=True)
        os.makedirs(state_dir, mode=0o700)
    lead = float(os.environ.get("HERD_LEAD", 5 + n / 10000))
    # The start itself takes a while (a second or so at 100,000 jobs):
    # measure it first with a config due far away, then aim `lead` beyond.
    port = closed_port()
    t0 = time.time()
    write_config(config, n, int(t0) + 3 * 3600, port, None)
    d, _, start_s = scale.start(binary, config, os.path.join(work, "herd.log"), 600)
    d.stop()
    due = int(time.time() + start_s * 1.5 + lead) + 1
    # HERD_AGAIN=S: the same jobs due again S seconds later (the hourly
    # herd after the first one: every job has run once, its history and
    # the tables are there already); both in the same minute.
    again = int(os.environ.get("HERD_AGAIN", "0"))
    if again and due % 60 + again > 59:
        due += 60 - due % 60
    write_config(config, n, due, port, state_dir, again)
    d, _, start_s = scale.start(binary, config, os.path.join(work, "herd.log"), 600)
    row = {"jobs": n, "kind": os.environ.get("HERD_KIND", "http"),
           "state_dir": bool(state_dir), "start_s": round(start_s, 3)}
    try:
        left = due - time.time()
        if left < 1:
            raise RuntimeError(f"the daemon took too long to start: {left:.2f} s before due")
        window = float(os.environ.get("HERD_WINDOW", 10 + n / 10000 + again))
        pings = os.path.join(work, "pings.txt")
        # The pinger starts a second before the herd and runs HERD_WINDOW
        # seconds past it.
        time.sleep(max(0.0, left - 1.0))
        pinger = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "ping", d.addr, str(due + window), pings])
        perf = None
        if os.environ.get("HERD_PERF"):
            # A profile of the daemon from just before the herd (call graphs).
            perf = subprocess.Popen(
                ["perf", "record"] + os.environ.get("HERD_PERF_ARGS", "-g -F 2000").split()
                + ["-p", str(d.proc.pid), "-o",
                 os.environ["HERD_PERF"], "--", "sleep", str(1.5 + float(
                     os.environ.get("HERD_PERF_SECONDS", "3")))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load0 = os.getloadavg()[0]
        # The loop thread's CPU time and run-queue wait around the herd
        # (/proc/PID/task/PID/schedstat: ns on the CPU, ns waiting for it).
        sched = []
        stat_path = f"/proc/{d.proc.pid}/task/{d.proc.pid}/schedstat"
        while time.time() < due + min(window, 3.0) and pinger.poll() is None:
            with open(stat_path) as f:
                on_cpu, waiting = (int(x) for x in f.read().split()[:2])
            sched.append((time.time(), on_cpu, waiting))
            time.sleep(0.005)
        row["loadavg"] = round(max(load0, os.getloadavg()[0]), 2)
        # Every run queued? (They fail at once; their records stay, history = 1.)
        deadline = time.monotonic() + 300
        while True:
            runs = [r for r in scheduled_runs(d) if r.get("trigger") == "schedule"
                    and abs(parse_ts(r["scheduled_at"]) - due) < 0.0005]
            if len(runs) >= n or time.monotonic() > deadline:
                break
            time.sleep(1)
        if again:
            if time.time() > due + again - 1:
                raise RuntimeError("the first herd's runs were listed too late")
            again_runs = []
            while time.time() < due + again + 3 or len(again_runs) < n:
                time.sleep(1)
                again_runs = [r for r in scheduled_runs(d)
                              if abs(parse_ts(r["scheduled_at"]) - (due + again)) < 0.0005]
                if time.time() > due + again + 300:
                    break
            late2 = sorted(parse_ts(r["queued_at"]) - parse_ts(r["scheduled_at"])
                           for r in again_runs)
            row["again_runs"] = len(again_runs)
            row["again_late_p50_ms"] = ms(quantile(late2, 0.50))
            row["again_late_p99_ms"] = ms(quantile(late2, 0.99))
            row["again_late_max_ms"] = ms(late2[-1] if late2 else None)
        if pinger.wait() != 0:
            raise RuntimeError("the pinging client failed")
        if perf is not None:
            perf.wait()
        late = sorted(parse_ts(r["queued_at"]) - parse_ts(r["scheduled_at"]) for r in runs)
        wrong = sum(1 for r in runs if abs(parse_ts(r["scheduled_at"]) - due) > 0.0005)
        row["runs"] = len(runs)
        row["wrong_scheduled_at"] = wrong
        row["late_p50_ms"] = ms(quantile(late, 0.50))
        row["late_p99_ms"] = ms(quantile(late, 0.99))
        row["late_max_ms"] = ms(late[-1] if late else None)
        herd_end = due + (late[-1] if late else 0)
        samples = []
        with open(pings) as f:
            for line in f:
                sent, lat = line.split()
                samples.append((float(sent), float(lat)))
        during = sorted(lat for sent, lat in samples
                        if sent + lat >= due and sent <= herd_end)
        whole = sorted(lat for _, lat in samples)
        row["pings_during"] = len(during)
        row["ping_max_ms"] = ms(during[-1] if during else None)
        row["ping_p99_ms"] = ms(quantile(during, 0.99))
        row["ping_window_max_ms"] = ms(whole[-1] if whole else None)
        if again:
            end2 = due + again + (row["again_late_max_ms"] or 0) / 1000
            during2 = sorted(lat for sent, lat in samples
                             if sent + lat >= due + again and sent <= end2)
            row["again_ping_max_ms"] = ms(during2[-1] if during2 else None)
        slow = [(round((sent - due) * 1000, 1), round(lat * 1000, 1))
                for sent, lat in samples if lat > 0.05]
        if slow:
            log(f"  pings over 50 ms (sent ms after due, latency ms): {slow[:20]}")
        worst = max(samples, key=lambda x: x[1]) if samples else None
        row["ping_window_max_at_ms"] = ms(worst[0] - due) if worst else None
        row["ping_window_p99_ms"] = ms(quantile(whole, 0.99))
        row["pings_window"] = len(whole)
        row["herd_span_ms"] = ms(herd_end - due)
        inside = [x for x in sched if due - 0.01 <= x[0] <= herd_end + 0.01]
        if len(inside) >= 2:
            (t0, c0, w0), (t1, c1, w1) = inside[0], inside[-1]
            row["loop_cpu_share"] = round((c1 - c0) / 1e9 / (t1 - t0), 2)
            row["loop_runqueue_wait_share"] = round((w1 - w0) / 1e9 / (t1 - t0), 2)
            row["loop_cpu_us_per_run"] = round((c1 - c0) / 1e3 / max(1, len(runs)), 2)
        if herd_end > due + window:
            log(f"  warning: the herd ended {herd_end - due:.1f} s after due, past the "
                f"{window:.0f} s ping window")
        log(f"  {len(runs)}/{n} runs; lateness p50 {row['late_p50_ms']} ms, p99 "
            f"{row['late_p99_ms']} ms, max {row['late_max_ms']} ms; ping during the herd "
            f"({len(during)}): max {row['ping_max_ms']} ms, p99 {row['ping_p99_ms']} ms; "
            f"load {row['loadavg']}")
    finally:
        d.stop()
        os.remove(config)
        if state_dir:
            subprocess.run(["rm", "-rf", state_dir], check=True)
    print(json.dumps(row))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    {"run": cmd_run, "ping": cmd_ping}[cmd](*args)


if __name__ == "__main__":
    main()
