#!/usr/bin/env python3
"""The measuring half of scripts/scale.sh (issue 16, "Scale on one host").

One subcommand per job of the script, each printing what it measured as one
JSON object on stdout (progress goes to stderr):

  gen N DIR           writes DIR/jobs-N.toml (N jobs of the mix) and
                      DIR/jobs-N.hup.toml (the same with one job changed)
  memory BIN N DIR    tickd check, start, RSS and one SIGHUP reload of the
                      N-job config with the binary BIN
  history BIN K DIR   what K finished runs kept in history cost in RSS
  csv-long IN OUT UNIT COLUMN...
                      turns the wide scale.csv into the long form that
                      `tickd-load chart` draws (one line per build and
                      column; the values in a column named UNIT)

The mix is issue 16's: jobs alternating `cron = "M H * * *"` and
`every = "1h"`, kind exec, command ["true"]. The cron jobs' hours are kept
at least three hours away from the hour the config is generated in, so none
is due while it is measured; the `every = "1h"` jobs are due at the top of
each hour, which the caller keeps away from (see `wait_off_the_hour` in
scale.sh).

Only the standard library: the script must run wherever tickd builds.
"""

import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time

LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def config_path(work, n):
    return os.path.join(work, f"jobs-{n}.toml")


def daemon_table(extra=""):
    return (
        "[daemon]\n"
        'listen = "127.0.0.1:0"\n'
        'log_level = "info"\n'
        "workers = 2\n" + extra + "\n"
    )


def job_tables(n, changed=None):
    """N job tables of the mix; `changed` = index of a job written differently.

    MIX=distinct (environment) gives every job its own command
    (["true", NAME]) and every cron job its own expression ("S M H D *"),
    so that nothing but the `every` text is shared between jobs: the cost
    of a job when its settings are its own."""
    distinct = os.environ.get("MIX", "issue") == "distinct"
    h0 = time.localtime().tm_hour
    # Hours 3..20 after the current one: nothing due for the next 3 hours.
    hours = [(h0 + 3 + k) % 24 for k in range(18)]
    out = []
    for i in range(n):
        name = f"job-{i:07d}"
        if i % 2 == 0:
            j = i // 2
            minute = j % 60
            hour = hours[(j // 60) % len(hours)]
            if i == changed:
                minute = (minute + 1) % 60
            if distinct:
                second, day = (j // 1080) % 60, 1 + (j // 64800) % 28
                sched = f'cron = "{second} {minute} {hour} {day} * *"'
            else:
                sched = f'cron = "{minute} {hour} * * *"'
        else:
            sched = 'every = "2h"' if i == changed else 'every = "1h"'
        command = f'["true", "{name}"]' if distinct else '["true"]'
        out.append(f'[[jobs]]\nname = "{name}"\nkind = "exec"\n{sched}\ncommand = {command}\n')
    return "\n".join(out)


def cmd_gen(n, work):
    n = int(n)
    os.makedirs(work, exist_ok=True)
    base = config_path(work, n)
    with open(base, "w") as f:
        f.write(daemon_table())
        f.write(job_tables(n))
    with open(base.replace(".toml", ".hup.toml"), "w") as f:
        f.write(daemon_table())
        f.write(job_tables(n, changed=0 if n > 0 else None))
    print(json.dumps({"jobs": n, "bytes": os.path.getsize(base)}))


def timed_child(argv):
    """Runs argv to its end; (seconds, peak RSS in KiB, exit status, stdout)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - t0, usage.ru_maxrss, p.returncode, out.decode(errors="replace")


def proc_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


class Daemon:
    """A tickd run on a free loopback port, its stderr in a file."""

    def __init__(self, binary, config, logfile):
        self.log_path = logfile
        self.logf = open(logfile, "w")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [binary, "run", "--config", config], stdout=subprocess.DEVNULL, stderr=self.logf
        )
        self.addr = None

    def wait_line(self, needle, timeout, also=None):
        """Seconds since start when a log line containing `needle` (or `also`)
        appears; the line itself. None on timeout or exit."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(seen)
                chunk = f.read()
            # Only whole lines.
            cut = chunk.rfind(b"\n") + 1
            for line in chunk[:cut].decode(errors="replace").splitlines():
                if needle in line or (also and also in line):
                    return time.monotonic(), line
            seen += cut
            if self.proc.poll() is not None:
                raise RuntimeError(f"tickd exited ({self.proc.returncode}); log: {self.tail()}")
            time.sleep(0.001)
        return None, None

    def tail(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-2000:]

    def call(self, method, params=None, timeout=600):
        host, port = self.addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            req = {"id": 1, "method": method}
            if params is not None:
                req["params"] = params
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                part = s.recv(1 << 20)
                if not part:
                    raise RuntimeError(f"{method}: connection closed")
                buf += part
        answer = json.loads(buf)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def rss(self):
        return proc_kib(self.proc.pid, "VmRSS")

    def hwm(self):
        return proc_kib(self.proc.pid, "VmHWM")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def log_time(line):
    """The line's timestamp (env_logger's, milliseconds, UTC) in seconds."""
    m = LOG_TIME.match(line)
    if not m:
        return None
    stamp = m.group(1)
    whole, _, frac = stamp.partition(".")
    t = time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return t + (float("0." + frac) if frac else 0.0)


def start(binary, config, logfile, timeout):
    """Starts tickd; (daemon, seconds to `listening on`, seconds to a status answer)."""
    d = Daemon(binary, config, logfile)
    t_listen, line = d.wait_line("listening on ", timeout)
    if t_listen is None:
        d.proc.kill()
        raise RuntimeError(f"no 'listening on' within {timeout} s")
    d.addr = re.search(r"listening on ([0-9.:]+)", line).group(1)
    d.call("status", timeout=timeout)
    t_status = time.monotonic()
    return d, t_listen - d.t0, t_status - d.t0


def cmd_memory(binary, n, work):
    """check, start, RSS and a reload of one N-job config with one binary."""
    n = int(n)
    timeout = float(os.environ.get("START_TIMEOUT", "900"))
    reload_timeout = float(os.environ.get("RELOAD_TIMEOUT", "300"))
    base = config_path(work, n)
    config = os.path.join(work, "run.toml")
    hup = os.path.join(work, "run.hup.toml")
    # The daemon reads `config`; the reload swaps the changed copy in.
    subprocess.run(["cp", base, config], check=True)
    subprocess.run(["cp", base.replace(".toml", ".hup.toml"), hup], check=True)
    row = {"jobs": n}

    # ROUNDS rounds of check then start, alternating, medians kept: the
    # machine is shared, and a single pair can land on a busy moment.
    rounds = max(1, int(os.environ.get("ROUNDS", "3")))
    checks, peaks, listens, starts = [], [], [], []
    d = None
    for k in range(rounds):
        secs, peak, code, out = timed_child([binary, "check", "--config", config])
        if code != 0:
            raise RuntimeError(f"tickd check failed ({code}): {out[-2000:]}")
        checks.append(secs)
        peaks.append(peak)
        d, listen_s, status_s = start(binary, config, os.path.join(work, "tickd.log"), timeout)
        listens.append(listen_s)
        starts.append(status_s)
        log(f"  round {k + 1}/{rounds}: check {secs:.3f} s (peak {peak / 1024:.0f} MiB), "
            f"start: listening {listen_s:.3f} s, status {status_s:.3f} s")
        if k + 1 < rounds:
            d.stop()
    row["check_s"] = round(statistics.median(checks), 3)
    row["check_peak_kib"] = max(peaks)
    try:
        row["listen_s"] = round(statistics.median(listens), 3)
        row["start_s"] = round(statistics.median(starts), 3)
        row["rss_kib"] = d.rss()
        row["start_peak_kib"] = d.hwm()
        log(f"  medians: check {row['check_s']} s, start {row['start_s']} s; "
            f"RSS {row['rss_kib'] / 1024:.1f} MiB (peak {row['start_peak_kib'] / 1024:.0f} MiB)")
        # SIGHUP with one job changed; the daemon logs when it begins
        # ("SIGHUP: reloading config") and ends ("config reloaded"), and
        # the two timestamps give the time it reports.
        os.replace(hup, config)
        d.proc.send_signal(signal.SIGHUP)
        t_sent = time.monotonic()
        t_done, line = d.wait_line("config reloaded", reload_timeout, also="reload rejected")
        if t_done is None:
            log(f"  reload: no answer within {reload_timeout:.0f} s; stopping the daemon")
            row["reload_s"] = ""
            d.proc.kill()
        elif "rejected" in line:
            raise RuntimeError(f"reload rejected: {line}")
        else:
            begin = [l for l in d.tail().splitlines() if "SIGHUP: reloading config" in l]
            t_begin = log_time(begin[-1]) if begin else None
            t_end = log_time(line)
            if t_begin is not None and t_end is not None:
                row["reload_s"] = round(t_end - t_begin, 3)
            else:
                row["reload_s"] = round(t_done - t_sent, 3)
            row["reload_peak_kib"] = d.hwm()
            row["rss_after_reload_kib"] = d.rss()
            log(f"  reload: {row['reload_s']} s, peak {row['reload_peak_kib'] / 1024:.0f} MiB")
    finally:
        d.stop()
    print(json.dumps(row))


def cmd_history(binary, k, work):
    """RSS cost of K finished runs held in history: the same K runs with
    `history = K` and with `history = 0`, the difference over K."""
    k = int(k)
    out = {"runs": k}
    for keep in (k, 0):
        config = os.path.join(work, f"history-{keep}.toml")
        with open(config, "w") as f:
            f.write(daemon_table(f"history = {keep}\nqueue_capacity = {k + 10}\n"))
            f.write('[[jobs]]\nname = "h"\nkind = "exec"\noverlap = "allow"\ncommand = ["true"]\n')
        d, _, _ = start(binary, config, os.path.join(work, "history.log"), 60)
        try:
            before = d.rss()
            host, port = d.addr.rsplit(":", 1)
            with socket.create_connection((host, int(port))) as s:
                req = b'{"method":"jobs.run","params":{"name":"h","wait":true}}\n'
                sent = got = 0
                buf = b""
                # At most 16 runs in flight (`wait`: answered when done), so little else
                # than the kept runs stays allocated.
                while got < k:
                    while sent < k and sent - got < 16:
                        s.sendall(req)
                        sent += 1
                    buf += s.recv(1 << 16)
                    got += buf.count(b"\n")
                    buf = buf[buf.rfind(b"\n") + 1:]
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                job = d.call("jobs.list")
                job = job["jobs"][0] if isinstance(job, dict) else job[0]
                if job["runs_total"] >= k:
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError("runs did not finish in time")
            after = d.rss()
            out[f"delta_kib_history_{keep}"] = after - before
            log(f"  history = {keep}: {k} runs, RSS {before} -> {after} KiB")
        finally:
            d.stop()
    out["bytes_per_run"] = round(
        (out[f"delta_kib_history_{k}"] - out["delta_kib_history_0"]) * 1024 / k
    )
    print(json.dumps(out))


def cmd_csv_long(src, dst, unit, *columns):
    """build,jobs,COLUMN... -> series,jobs,UNIT with one series per
    (build, column); `COLUMN:scale:label` divides the value by scale and
    names the series `build label`."""
    with open(src) as f:
        lines = [l.strip() for l in f if l.strip()]
    header = lines[0].split(",")
    rows = [dict(zip(header, l.split(","))) for l in lines[1:]]
    builds = list(dict.fromkeys(r["build"] for r in rows))
    with open(dst, "w") as f:
        f.write(f"series,jobs,{unit}\n")
        for spec in columns:
            col, scale, label = (spec.split(":", 2) + ["1", spec])[:3]
            for b in builds:
                for r in rows:
                    v = r.get(col, "")
                    if r["build"] != b or v == "" or int(r["jobs"]) <= 0:
                        continue
                    name = f"{b} {label}" if len(builds) > 1 else label
                    f.write(f"{name},{r['jobs']},{float(v) / float(scale):g}\n")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    {
        "gen": cmd_gen,
        "memory": cmd_memory,
        "history": cmd_history,
        "csv-long": cmd_csv_long,
    }[cmd](*args)


if __name__ == "__main__":
    main()
