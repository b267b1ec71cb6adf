#!/usr/bin/env python3
"""The measuring half of scripts/scale.d/reload.sh (issue 16, item 4).

  run BIN LOAD N DIR   with the N-job config DIR/jobs-N.toml (scale.py gen):
                       `tickd check` of it, a start, a SIGHUP reload
                       changing one job and one changing every job with
                       no client ("quiet"), the same two again with LOAD
                       (tickd-load) pinging on one connection at depth 1
                       throughout each, and a burst of PUTS jobs.put
                       (PUT_CONNS connections, PUT_DEPTH in flight on
                       each) with the pinger too, then as many
                       jobs.delete of them. Prints one JSON object.

On two cores the pinger (client, loop and a request thread, flat out)
leaves the reload thread about a third of a core: the quiet reloads are
the ones to hold against `tickd check`, the pinged ones show the loop.

Reload times come from the daemon's own log lines ("SIGHUP: reloading
config" to "config reloaded"), as scale.py's memory section takes them;
"read and checked" marks the end of the part done on the reload thread.
A ping window with no reload nor put gives the idle figure of the same
run, the baseline of the latencies.

Only the standard library.
"""

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import scale  # noqa: E402  (scripts/scale.py: Daemon, start, log_time, timed_child)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Pinger:
    """tickd-load pinging `addr` on one connection at depth 1 for `secs`."""

    def __init__(self, load, addr, secs):
        self.proc = subprocess.Popen(
            [load, "--connect", addr, "--conns", "1", "--depth", "1",
             "--duration", f"{secs:.1f}s", "--warmup", "0s", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        self.secs = secs

    def result(self):
        out, _ = self.proc.communicate(timeout=self.secs + 60)
        r = json.loads(out)
        return {"max_ms": round(r["max_us"] / 1000, 2), "p99_ms": round(r["p99_us"] / 1000, 3),
                "pings": r["requests"], "errors": r["errors"]}


def reload_window(d, load, config, text, timeout, window):
    """Writes `text` to `config`, sends SIGHUP with a pinger running (none
    if `load` is None); the reload's seconds by the log, the read part's,
    and the pings."""
    with open(config, "w") as f:
        f.write(text)
    seen = len(open(d.log_path, errors="replace").read())
    pinger = Pinger(load, d.addr, window) if load else None
    time.sleep(0.3)
    d.proc.send_signal(signal.SIGHUP)
    t_done, line = d.wait_line_after(seen, "config reloaded", timeout, also="reload rejected")
    pings = pinger.result() if pinger else {}
    if t_done is None or "rejected" in line:
        raise RuntimeError(f"reload did not finish: {line}")
    lines = open(d.log_path, errors="replace").read()[seen:].splitlines()
    begin = next(l for l in lines if "SIGHUP: reloading config" in l)
    read = next(l for l in lines if "read and checked" in l)
    done = next(l for l in lines if "config reloaded" in l)
    t0 = scale.log_time(begin)
    m = re.search(r"applied in (\d+) slice\(s\).*longest ([0-9.]+) ms \(([0-9.]+) ms of CPU", done)
    return {
        "slices": int(m.group(1)) if m else "",
        "longest_slice_ms": float(m.group(2)) if m else "",
        "longest_slice_cpu_ms": float(m.group(3)) if m else "",
        "s": round(scale.log_time(done) - t0, 3),
        "read_s": round(scale.log_time(read) - t0, 3),
        "in_window": scale.log_time(done) - t0 < window - 0.3,
        **pings,
    }


def put_burst(addr, n, conns, depth, method="jobs.put"):
    """`n` jobs.put of new API jobs (or, `method` = "jobs.delete", their
    deletes) over `conns` connections, `depth` in flight on each;
    (seconds, requests, errors)."""
    host, port = addr.rsplit(":", 1)
    per = n // conns
    errors = [0] * conns

    def worker(k):
        s = socket.create_connection((host, int(port)))
        f = s.makefile("rb")
        def params(name):
            if method == "jobs.delete":
                return {"name": name}
            return {"job": {"name": name, "command": ["true"], "cron": "0 4 1 1 *"}}
        lines = [
            json.dumps({"id": i, "method": method, "params": params(f"api-{k}-{i}")}).encode()
            + b"\n"
            for i in range(per)
        ]
        for at in range(0, per, depth):
            s.sendall(b"".join(lines[at:at + depth]))
            for _ in lines[at:at + depth]:
                if b'"error"' in f.readline():
                    errors[k] += 1
        s.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0, per * conns, sum(errors)


def wait_line_after(self, seen, needle, timeout, also=None):
    """Like Daemon.wait_line, for lines after the first `seen` characters."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = open(self.log_path, errors="replace").read()[seen:]
        cut = text.rfind("\n") + 1
        for line in text[:cut].splitlines():
            if needle in line or (also and also in line):
                return time.monotonic(), line
        if self.proc.poll() is not None:
            raise RuntimeError(f"tickd exited ({self.proc.returncode}); log: {self.tail()}")
        time.sleep(0.005)
    return None, None


scale.Daemon.wait_line_after = wait_line_after


def cmd_run(binary, load, n, work):
    n = int(n)
    rounds = max(1, int(os.environ.get("ROUNDS", "3")))
    timeout = float(os.environ.get("RELOAD_TIMEOUT", "300"))
    puts = int(os.environ.get("PUTS", "10000"))
    put_conns = int(os.environ.get("PUT_CONNS", "4"))
    put_depth = int(os.environ.get("PUT_DEPTH", "16"))
    base = open(scale.config_path(work, n)).read()
    base = base.replace("[daemon]\n", "[daemon]\nallow_job_api = true\n", 1)
    one = open(scale.config_path(work, n).replace(".toml", ".hup.toml")).read()
    one = one.replace("[daemon]\n", "[daemon]\nallow_job_api = true\n", 1)
    # base -> one (job 0 changed) -> every (every job changed) quiet, then
    # every -> every_one (job 0 changed) -> base (every job changed) pinged.
    every = base.replace('command = ["true"]', 'command = ["true", "changed"]')
    every_one = one.replace('command = ["true"]', 'command = ["true", "changed"]')
    config = os.path.join(work, "reload-run.toml")
    every_path = os.path.join(work, "reload-every.toml")
    with open(every_path, "w") as f:
        f.write(every)
    with open(config, "w") as f:
        f.write(base)
    row = {"jobs": n, "load_avg": os.getloadavg()[0]}
    checks = []
    for _ in range(rounds):
        secs, _, code, out = scale.timed_child([binary, "check", "--config", every_path])
        if code != 0:
            raise RuntimeError(f"tickd check failed: {out[-2000:]}")
        checks.append(secs)
    row["check_s"] = round(statistics.median(checks), 3)
    os.remove(every_path)
    d, _, start_s = scale.start(binary, config, os.path.join(work, "reload.log"), 900)
    row["start_s"] = round(start_s, 3)
    try:
        idle = Pinger(load, d.addr, 2.0).result()
        row["idle_ping_max_ms"], row["idle_ping_p99_ms"] = idle["max_ms"], idle["p99_ms"]
        window = 3 + 4 * row["check_s"]
        for name, text in (("one", one), ("every", every)):
            r = reload_window(d, None, config, text, timeout, window)
            log(f"  quiet reload ({name} changed): {r['s']} s (read and checked after "
                f"{r['read_s']} s)")
            row[f"quiet_{name}_s"] = r["s"]
            row[f"quiet_{name}_over_check"] = round(r["s"] / row["check_s"], 2)
        for name, text in (("one", every_one), ("every", base)):
            r = reload_window(d, load, config, text, timeout, window)
            log(f"  reload ({name} changed): {r['s']} s (read and checked after {r['read_s']} s), "
                f"ping max {r['max_ms']} ms, p99 {r['p99_ms']} ms over {r['pings']} pings; "
                f"{r['slices']} slices, the longest {r['longest_slice_ms']} ms "
                f"({r['longest_slice_cpu_ms']} ms CPU)")
            row[f"reload_{name}_s"] = r["s"]
            row[f"reload_{name}_read_s"] = r["read_s"]
            row[f"reload_{name}_over_check"] = round(r["s"] / row["check_s"], 2)
            row[f"reload_{name}_ping_max_ms"] = r["max_ms"]
            row[f"reload_{name}_ping_p99_ms"] = r["p99_ms"]
            row[f"reload_{name}_in_window"] = r["in_window"]
            for k in ("slices", "longest_slice_ms", "longest_slice_cpu_ms"):
                row[f"reload_{name}_{k}"] = r[k]
        # Settled first: the reload thread frees the old definitions.
        time.sleep(1)
        for method, key in (("jobs.put", "put"), ("jobs.delete", "delete")):
            pinger = Pinger(load, d.addr, 4.0)
            time.sleep(0.3)
            secs, done, errors = put_burst(d.addr, puts, put_conns, put_depth, method)
            p = pinger.result()
            row[f"{key}s"], row[f"{key}_errors"] = done, errors
            row[f"{key}s_per_s"] = round(done / secs)
            row[f"{key}_ping_max_ms"], row[f"{key}_ping_p99_ms"] = p["max_ms"], p["p99_ms"]
            row[f"{key}_in_window"] = secs < 3.7
            log(f"  {done} {method} ({errors} errors) in {secs:.3f} s: {row[f'{key}s_per_s']}/s; "
                f"ping max {p['max_ms']} ms, p99 {p['p99_ms']} ms")
    finally:
        d.stop()
        os.remove(config)
    print(json.dumps(row))


def main():
    if len(sys.argv) != 6 or sys.argv[1] != "run":
        sys.exit(__doc__)
    cmd_run(*sys.argv[2:])


if __name__ == "__main__":
    main()
