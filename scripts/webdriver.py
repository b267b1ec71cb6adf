#!/usr/bin/env python3
"""Drive the tickd status page in headless chromium through chromedriver.

Used by scripts/browser-test.sh. Speaks the W3C WebDriver HTTP protocol
with the standard library only (urllib), so no npm or pip is needed.

Steps: load the page; click "run" on the manual job and see its run
appear running, then succeeded; click "pause" on the scheduled job and
see it paused on the page and enabled=false through the JSON API. Then,
with the keyboard only (Tab, Enter, Space, Escape): open the cron job's
next runs and compare them with GET /jobs/NAME?next=5; see the
concurrency limit count a run; cancel a run after its confirmation (and
keep it once with Escape), checked through JSON-RPC; open a run's output
panel and follow the output to "run finished". Start the manual job again and save a screenshot while
it runs; with --stop-pid, stop the daemon and see the "unreachable" banner.

Exit status 0 when every step passed, 1 with a message otherwise.
"""

import argparse
import base64
import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
# WebDriver key codes.
TAB, ENTER, ESCAPE, SPACE = "\ue004", "\ue007", "\ue00c", " "
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1200,780",
]


class Failure(Exception):
    """A step of the test did not pass."""


def http(method, url, body=None, headers=None, timeout=30):
    """One HTTP request; returns (status, parsed JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def error_text(answer):
    """The message of a WebDriver error answer, without its stack trace."""
    try:
        value = answer["value"]
        return f"{value['error']}: {value['message'].splitlines()[0]}"
    except (KeyError, TypeError, IndexError, AttributeError):
        return str(answer)[:500]


class Browser:
    """A WebDriver session on chromedriver at `driver`."""

    def __init__(self, driver, binary, user_data_dir):
        self.driver = driver.rstrip("/")
        args = CHROME_ARGS + ["--user-data-dir=" + user_data_dir]
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": binary, "args": args},
                }
            }
        }
        status, answer = http("POST", self.driver + "/session", caps, timeout=60)
        if status != 200:
            raise Failure(f"cannot start a browser session: {error_text(answer)}")
        self.session = answer["value"]["sessionId"]

    def call(self, method, path, body=None):
        url = f"{self.driver}/session/{self.session}{path}"
        status, answer = http(method, url, body)
        if status != 200:
            raise Failure(f"{method} {path}: {error_text(answer)}")
        return answer["value"]

    def close(self):
        try:
            http("DELETE", f"{self.driver}/session/{self.session}", timeout=10)
        except OSError:
            pass

    def go(self, url):
        self.call("POST", "/url", {"url": url})

    def find(self, css):
        """The element matching `css`, or None."""
        url = f"{self.driver}/session/{self.session}/element"
        status, answer = http("POST", url, {"using": "css selector", "value": css})
        if status == 200:
            return answer["value"][ELEMENT]
        if status == 404 and answer["value"].get("error") == "no such element":
            return None
        raise Failure(f"find {css}: {error_text(answer)}")

    def text(self, element):
        """The element's text, or None once the page has replaced it."""
        url = f"{self.driver}/session/{self.session}/element/{element}/text"
        status, answer = http("GET", url)
        if status == 200:
            return answer["value"]
        if status == 404 and answer["value"].get("error") == "stale element reference":
            return None
        raise Failure(f"text of {element}: {error_text(answer)}")

    def click(self, css):
        element = self.wait_for(css)
        self.call("POST", f"/element/{element}/click", {})

    def type(self, css, keys):
        """Types `keys` into the element matching `css` (as key presses, so
        the page sees input events; "\ue003" is Backspace)."""
        element = self.wait_for(css)
        self.call("POST", f"/element/{element}/value", {"text": keys})

    def count(self, css):
        """How many elements match `css`."""
        return len(self.call("POST", "/elements", {"using": "css selector", "value": css}))

    def wait_count(self, css, n, within=20.0):
        """Polls until exactly `n` elements match `css`."""
        deadline = time.monotonic() + within
        while True:
            got = self.count(css)
            if got == n:
                return
            if time.monotonic() > deadline:
                raise Failure(f"timed out waiting for {n} of {css} (last count: {got})")
            time.sleep(0.1)

    def wait_for(self, css, text=None, within=20.0):
        """Polls until `css` matches (and its text contains `text`)."""
        deadline = time.monotonic() + within
        last = None
        while True:
            element = self.find(css)
            if element is not None:
                current = self.text(element)
                if current is not None:
                    last = current
                    if text is None or text in current:
                        return element
            if time.monotonic() > deadline:
                want = f"{css} containing {text!r}" if text else css
                raise Failure(f"timed out waiting for {want} (last text: {last!r})")
            time.sleep(0.1)

    def script(self, body, *args):
        """Runs `body` (a function body) in the page with `args`."""
        return self.call("POST", "/execute/sync", {"script": body, "args": list(args)})

    def press(self, *keys):
        """Presses and releases each key in turn, as a keyboard would, on
        whatever has the focus."""
        actions = []
        for k in keys:
            actions += [{"type": "keyDown", "value": k}, {"type": "keyUp", "value": k}]
        self.call("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})

    def focused(self, css):
        """Whether the focused element matches `css`."""
        return self.script("const a = document.activeElement; return !!a && a.matches(arguments[0]);", css)

    def wait_focused(self, css, within=5.0):
        deadline = time.monotonic() + within
        while not self.focused(css):
            if time.monotonic() > deadline:
                what = self.script("const a = document.activeElement; return a ? a.outerHTML.slice(0, 200) : null;")
                raise Failure(f"timed out waiting for the focus on {css} (it is on {what})")
            time.sleep(0.05)

    def tab_to(self, css, start, most=40):
        """Focuses `start` (a place a keyboard user reaches anyway: a
        heading or the filter), then presses Tab until `css` has the focus."""
        self.script("document.querySelector(arguments[0]).focus();", start)
        for _ in range(most):
            self.press(TAB)
            if self.focused(css):
                return
        raise Failure(f"{most} Tabs from {start} never reached {css}")

    def wait_gone(self, css, within=20.0):
        deadline = time.monotonic() + within
        while self.find(css) is not None:
            if time.monotonic() > deadline:
                raise Failure(f"timed out waiting for {css} to go")
            time.sleep(0.1)

    def screenshot(self, path):
        png = base64.b64decode(self.call("GET", "/screenshot"))
        with open(path, "wb") as f:
            f.write(png)


def wait_ready(driver, within=30.0):
    """Waits until chromedriver answers GET /status with ready: true."""
    deadline = time.monotonic() + within
    while True:
        try:
            status, answer = http("GET", driver.rstrip("/") + "/status", timeout=5)
            if status == 200 and answer["value"].get("ready"):
                return
        except (OSError, KeyError, TypeError, AttributeError):
            pass
        if time.monotonic() > deadline:
            raise Failure(f"chromedriver at {driver} did not become ready")
        time.sleep(0.1)


def step(msg):
    print(f"  ok: {msg}", flush=True)


def rpc(base, method, params):
    """One JSON-RPC call on a fresh TCP connection to the daemon."""
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(json.dumps({"id": 1, "method": method, "params": params}).encode() + b"\n")
        line = s.makefile("rb").readline()
    answer = json.loads(line)
    if "result" not in answer:
        raise Failure(f"{method} {params}: {answer}")
    return answer["result"]


def start(base, job):
    status, answer = http("POST", f"{base}/jobs/{job}/run")
    if status != 202:
        raise Failure(f"POST /jobs/{job}/run: {status} {answer}")
    return answer["run_id"]


def next_runs(b, base, cron_job):
    """A cron job's next runs, opened and closed from the keyboard."""
    button = f'tr[data-job="{cron_job}"] button[data-action="next"]'
    b.tab_to(button, "#jobs-filter")
    b.press(ENTER)
    b.wait_count(f'tr[data-next-for="{cron_job}"] li', 5)
    b.wait_for(f'{button}[aria-expanded="true"]')
    shown = b.script("return [...document.querySelectorAll(arguments[0])].map(li => li.dataset.at);",
                     f'tr[data-next-for="{cron_job}"] li')
    status, job = http("GET", f"{base}/jobs/{cron_job}?next=5")
    if status != 200 or job.get("next_runs") != shown:
        raise Failure(f"the page shows next runs {shown}; GET /jobs/{cron_job}?next=5: {status} {job}")
    step(f"Tab to 'Next runs' of {cron_job}, Enter: its next 5 runs, as GET /jobs/NAME?next=5 gives them")
    b.press(SPACE)
    b.wait_gone(f'tr[data-next-for="{cron_job}"]')
    b.wait_for(f'{button}[aria-expanded="false"]')
    if not b.focused(button):
        raise Failure("the focus left the 'Next runs' button")
    b.press(ENTER)  # open again, for the screenshot
    b.wait_count(f'tr[data-next-for="{cron_job}"] li', 5)
    step("Space closes them, Enter opens them again; the focus stays on the button")


def cancel(b, base, limited):
    """Cancels a run of `limited` (a job under [concurrency.db], max 1)
    with the keyboard; Escape keeps it the first time."""
    b.wait_for('#limits tr[data-limit="db"]', text="0 / 1")
    run_id = start(base, limited)
    row = f'#running li[data-run="{run_id}"]'
    b.wait_for(f'{row}[data-state="running"]')
    b.wait_for('#limits tr[data-limit="db"]', text="1 / 1")
    step("the concurrency limit db shows 0 / 1, then 1 / 1 while a run of its job runs")

    button = f'{row} button[data-action="cancel"]'
    b.tab_to(button, "#running-h")
    b.press(ENTER)
    b.wait_for("#confirm[open]")
    b.wait_focused('#confirm [data-action="dismiss"]')
    b.press(ESCAPE)
    b.wait_gone("#confirm[open]")
    b.wait_focused(button)
    if rpc(base, "runs.get", {"run_id": run_id})["state"] != "running":
        raise Failure("Escape on the confirmation cancelled the run")
    step("Enter on Cancel opens the confirmation (focus on 'Keep it'); Escape closes it, the run goes on")

    b.press(ENTER)
    b.wait_focused('#confirm [data-action="dismiss"]')
    b.press(TAB)
    b.wait_focused('#confirm [data-action="confirm"]')
    if not b.script("const a = document.activeElement; return a.matches(':focus-visible')"
                    " && getComputedStyle(a).outlineStyle !== 'none';"):
        raise Failure("the focused 'Cancel run' button shows no focus outline")
    b.press(SPACE)
    b.wait_for("#feedback", text=f"Run {run_id} cancelled")
    b.wait_for(f'#recent tr[data-run="{run_id}"][data-state="cancelled"]')
    b.wait_gone(row)
    state = rpc(base, "runs.get", {"run_id": run_id})["state"]
    if state != "cancelled":
        raise Failure(f"runs.get says {state} after the page cancelled the run")
    b.wait_for('#limits tr[data-limit="db"]', text="0 / 1")
    step(f"Tab, Space on 'Cancel run' (focus visible): run {run_id} cancelled on the page and in runs.get")
    return run_id


def output(b, base, chatty):
    """The output panel: follow a running run's output to its end."""
    run_id = start(base, chatty)
    button = f'#running li[data-run="{run_id}"] button[data-action="output"]'
    b.wait_for(button)  # the page's next refresh shows the run
    b.tab_to(button, "#running-h")
    b.press(ENTER)
    b.wait_for("#output[open]")
    b.wait_for("#output-text", text="line-1")
    b.wait_for('#output-status[data-state="following"]')
    step("Enter on Output of a running run: the panel follows its output")
    b.wait_for('#output-status[data-state="finished"]', text="run finished", within=30)
    shown = b.script("return document.querySelector('#output-text').textContent;")
    status, whole = http("GET", f"{base}/runs/{run_id}/output")
    if status != 200 or shown != whole or "line-3" not in shown:
        raise Failure(f"the panel shows {shown!r}; GET /runs/{run_id}/output: {status} {whole!r}")
    step("...to 'run finished', with the whole output as GET /runs/ID/output gives it")
    b.press(ESCAPE)
    b.wait_gone("#output[open]")
    step("Escape closes the output panel")


def pager(b, base, filler):
    """The jobs table shows one page of 100; `filler` jobs named
    zz-filler-000 ... sort after the others, so the first page ends inside
    them and the last one holds the rest."""
    total = http("GET", f"{base}/status")[1]["jobs"]
    b.wait_count("#jobs tbody tr[data-job]", 100)
    b.wait_for("#jobs-page", text="1–100")
    b.wait_for("#jobs-count", text=f"({total})")
    if b.find('tr[data-job="zz-filler-149"]') is not None:
        raise Failure("the first page shows a job of the second")
    b.click("#jobs-next")
    b.wait_for('tr[data-job="zz-filler-149"]')
    b.wait_count("#jobs tbody tr[data-job]", total - 100)
    b.wait_for("#jobs-page", text=f"101–{total}")
    if b.find('tr[data-job="manual"]') is not None:
        raise Failure("the second page still shows a job of the first")
    step(f"the jobs table pages: 1–100, then Next shows 101–{total}")
    b.click("#jobs-prev")
    b.wait_for('tr[data-job="manual"]')
    b.type("#jobs-filter", "zz-filler-14")
    b.wait_count("#jobs tbody tr[data-job]", 10)
    b.wait_for('tr[data-job="zz-filler-140"]')
    step("Previous goes back; the filter 'zz-filler-14' shows exactly its 10 jobs")
    b.type("#jobs-filter", "\ue003" * len("zz-filler-14"))
    b.wait_count("#jobs tbody tr[data-job]", 100)


def scenario(b, base, a):
    manual, scheduled, screenshot, stop_pid, filler = a.manual, a.scheduled, a.screenshot, a.stop_pid, a.filler
    b.go(base + "/")
    b.wait_for(f'tr[data-job="{manual}"]')
    b.wait_for(f'tr[data-job="{scheduled}"]')
    step("the page lists both jobs")
    if filler:
        pager(b, base, filler)

    b.click(f'tr[data-job="{manual}"] button[data-action="run"]')
    b.wait_for("#feedback", text=f"of {manual} started")
    b.wait_for(f'#running li[data-job="{manual}"][data-state="running"]')
    step("run clicked; the run shows up as running, with a progress bar")
    b.wait_for(f'#recent tr[data-job="{manual}"][data-state="succeeded"]', within=30)
    b.wait_for(f'tr[data-job="{manual}"] [data-field="last_state"]', text="succeeded")
    if b.find(f'#running li[data-job="{manual}"]') is not None:
        raise Failure("the finished run is still listed as running")
    step("the run then shows as succeeded")

    b.click(f'tr[data-job="{scheduled}"] button[data-action="pause"]')
    b.wait_for(f'tr[data-job="{scheduled}"][data-enabled="false"]')
    b.wait_for(f'tr[data-job="{scheduled}"] [data-field="next_run"]', text="paused")
    b.wait_for(f'tr[data-job="{scheduled}"] button[data-action="resume"]')
    status, job = http("GET", f"{base}/jobs/{scheduled}")
    if status != 200 or job.get("enabled") is not False:
        raise Failure(f"GET /jobs/{scheduled} after pause: {status} {job}")
    step("pause clicked; the page and GET /jobs/NAME both say enabled=false")

    if a.cron:
        next_runs(b, base, a.cron)
    if a.limited:
        cancel(b, base, a.limited)
        if a.chatty:
            output(b, base, a.chatty)

    if a.limited:  # for the picture: a limit in use
        start(base, a.limited)
        b.wait_for('#limits tr[data-limit="db"]', text="1 / 1")
    b.click(f'tr[data-job="{manual}"] button[data-action="run"]')
    b.wait_for(f'#running li[data-job="{manual}"][data-state="running"]')
    # Let the progress bar reach the first reported value before the picture.
    b.wait_for(f'#running li[data-job="{manual}"] [data-field="elapsed"]', text="%")
    b.script("document.activeElement.blur(); window.scrollTo(0, 0);")  # the top of the page
    time.sleep(0.5)  # for the picture only: the bar's 0.4 s CSS transition
    b.screenshot(screenshot)
    step(f"screenshot saved to {screenshot}")

    if stop_pid:
        os.kill(stop_pid, signal.SIGTERM)
        b.wait_for("#banner", text="unreachable", within=30)
        step("daemon stopped; the page shows the unreachable banner")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the daemon, e.g. http://127.0.0.1:7070")
    p.add_argument("--driver", required=True, help="chromedriver, e.g. http://127.0.0.1:9515")
    p.add_argument("--binary", default="/usr/bin/chromium")
    p.add_argument("--user-data-dir", required=True)
    p.add_argument("--manual", default="manual", help="a manual job that runs ~1-2 s")
    p.add_argument("--scheduled", default="tick", help="a job with an `every` schedule")
    p.add_argument("--cron", help="a job with a cron schedule: its next runs")
    p.add_argument("--limited", help="a manual job that runs long, under [concurrency.db] max_running = 1")
    p.add_argument("--chatty", help="a manual job printing line-1, line-2, line-3 over ~6 s")
    p.add_argument("--screenshot", default="docs/status-page.png")
    p.add_argument("--filler", type=int, default=0,
                   help="the config also has this many jobs zz-filler-NNN (> 100): test the pager")
    p.add_argument("--stop-pid", type=int, help="at the end, SIGTERM this daemon and expect the banner")
    a = p.parse_args()
    browser = None
    try:
        wait_ready(a.driver)
        browser = Browser(a.driver, a.binary, a.user_data_dir)
        scenario(browser, a.base.rstrip("/"), a)
    except (Failure, OSError, KeyError, ValueError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        if browser is not None:
            browser.close()
    print("browser test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
