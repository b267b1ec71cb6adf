#!/usr/bin/env bash
# Soak tickd: load on several connections (every method, runs and submits),
# a SIGHUP reload every second alternating two configs (a scheduled job comes
# and goes), connection churn, scheduled jobs, state_dir on; prints the
# daemon's RSS and open fds once a second and fails if the second half of
# the run grew beyond noise compared with the first.
#
# Usage: scripts/soak.sh [MINUTES]     (default 5)
#
# It runs tests/soak.rs (the 30-second CI version) for longer, so the
# scenario and the checks are the same in both places.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-5}
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [ "$minutes" -lt 1 ]; then
  echo "usage: $0 [MINUTES]" >&2
  exit 2
fi
echo "soaking tickd for $minutes minute(s)..." >&2
TICKD_SOAK_SECS=$((minutes * 60)) exec cargo test --quiet --features failpoints \
  --test integration soak:: -- --nocapture --test-threads 1
