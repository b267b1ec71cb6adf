#!/usr/bin/env bash
# Browser test of the status page (GET /): starts tickd on a free loopback
# port with a temp config, drives headless chromium through chromedriver
# (scripts/webdriver.py), and saves a screenshot to docs/status-page.png.
#
# Skips (exit 0) when chromium or chromedriver is missing. On Debian:
#   apt-get install -y chromium chromium-driver
# Environment: TICKD_BIN (default target/debug/tickd, built if needed),
# CHROMIUM (default /usr/bin/chromium), SCREENSHOT (default docs/status-page.png).
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
SCREENSHOT=${SCREENSHOT:-$ROOT/docs/status-page.png}

if [ ! -x "$CHROMIUM" ]; then
  echo "skipped: chromium not installed ($CHROMIUM)"
  exit 0
fi
if ! command -v chromedriver >/dev/null 2>&1; then
  echo "skipped: chromedriver not installed (Debian package chromium-driver)"
  exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "browser-test: python3 is required" >&2; exit 1; }

if [ -z "${TICKD_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --quiet --bin tickd)
  TICKD_BIN=$ROOT/target/debug/tickd
fi

WORK=$(mktemp -d)
DRIVER_PID=""
cleanup() {
  # chromedriver runs in its own session: kill its whole group (the browser too).
  if [ -n "$DRIVER_PID" ]; then
    kill -TERM -- "-$DRIVER_PID" 2>/dev/null || true
    wait "$DRIVER_PID" 2>/dev/null || true
  fi
  stop_tickd
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A manual job that takes about 2 s and reports progress, and two scheduled
# ones; a long one under a concurrency limit (to cancel) and one that prints
# a line a second (to follow).
cat >"$WORK/tickd.toml" <<'EOF'
[daemon]
listen = "127.0.0.1:0"
workers = 3
shutdown_grace = "2s"

[concurrency.db]
max_running = 1

[[jobs]]
name = "slow"
kind = "exec"
concurrency = "db"
command = ["sh", "-c", "echo slow started; sleep 60"]

[[jobs]]
name = "chatty"
kind = "exec"
command = ["sh", "-c", "echo line-1; sleep 3; echo line-2; sleep 3; echo line-3"]

[[jobs]]
name = "manual"
kind = "exec"
command = ["sh", "-c", "echo tickd-progress: 0.3; sleep 1; echo tickd-progress: 0.7; sleep 1"]
timeout = "30s"

[[jobs]]
name = "tick"
kind = "exec"
every = "2s"
command = ["true"]

[[jobs]]
name = "nightly"
kind = "exec"
cron = "0 3 * * *"
command = ["true"]
EOF
# More jobs than the page shows at once (100), named to sort after the
# jobs above: the pager's test.
for i in $(seq 0 149); do
  printf '\n[[jobs]]\nname = "zz-filler-%03d"\nkind = "exec"\ncommand = ["true"]\n' "$i"
done >>"$WORK/tickd.toml"

TICKD=$TICKD_BIN
start_tickd "$WORK/tickd.toml" "$WORK/tickd.log"
ADDR=$TICKD_ADDR

DRIVER_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid chromedriver --port="$DRIVER_PORT" >"$WORK/chromedriver.log" 2>&1 &
DRIVER_PID=$!

echo "browser test: tickd on $ADDR, chromedriver on 127.0.0.1:$DRIVER_PORT"
if ! timeout 180 python3 "$ROOT/scripts/webdriver.py" \
  --base "http://$ADDR" \
  --driver "http://127.0.0.1:$DRIVER_PORT" \
  --binary "$CHROMIUM" \
  --user-data-dir "$WORK/chromium-profile" \
  --manual manual --scheduled tick --filler 150 \
  --cron nightly --limited slow --chatty chatty \
  --screenshot "$SCREENSHOT" \
  --stop-pid "$TICKD_PID"; then
  echo "--- tickd log ---" >&2
  tail -n 30 "$WORK/tickd.log" >&2
  echo "--- chromedriver log ---" >&2
  tail -n 30 "$WORK/chromedriver.log" >&2
  exit 1
fi
