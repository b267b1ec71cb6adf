#!/usr/bin/env bash
# The whole test suite, as README.md gives it and CI runs it: the unit and
# integration tests of the daemon and of its load client (with the fault-
# injection sites compiled in), then the status page in a real headless
# browser. Services the tests need are installed here when missing (as root,
# from Debian's packages); a test whose service cannot be had says so.
# With arguments it runs only `cargo test --features failpoints ARGS` (e.g.
# `scripts/test.sh --test integration http::`).
set -euo pipefail
cd "$(dirname "$0")/.."

# apt-get update once, only when something is missing.
apt_updated=
apt_install() {
  command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] || return 1
  if [ -z "$apt_updated" ]; then
    timeout 600 apt-get update -qq >/dev/null 2>&1 || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "$@" >/dev/null 2>&1
}

# The README's examples (tests/readme.rs) use curl and the OpenBSD netcat;
# without them those examples are skipped, with a note.
if ! command -v curl >/dev/null || ! command -v nc >/dev/null; then
  apt_install curl netcat-openbsd ||
    echo "could not install curl / netcat-openbsd; the README examples that use them will be skipped"
fi

# The TLS tests (tests/tls.rs) make their CA and certificates with the
# openssl CLI and fetch over https with curl; without openssl they fail,
# saying so.
if ! command -v openssl >/dev/null; then
  apt_install openssl ||
    echo "could not install openssl; the TLS tests will fail"
fi

# The cluster tests (tests/cluster.rs) start real redis-server processes and
# query them with their own client; Debian's redis-server package brings
# redis-server (and redis-cli, for scripts/cluster.sh). Without it those
# tests fail, saying so: cluster mode is not tested against a fake.
if ! command -v redis-server >/dev/null; then
  apt_install redis-server ||
    echo "could not install redis-server; the cluster tests will fail"
fi

# docs/openapi.yaml is checked by a real validator, and the daemon's answers
# against it (tests/openapi.rs, scripts/openapi_check.py), with PyPI's
# openapi-spec-validator (it brings jsonschema and PyYAML).
if ! python3 -c 'import openapi_spec_validator, yaml, referencing' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check openapi-spec-validator >/dev/null 2>&1 ||
    echo "could not install openapi-spec-validator; the OpenAPI tests will fail"
fi

# Socket activation's tests use systemd-analyze (both units verified) and
# systemd-socket-activate, from Debian's systemd package. Installing systemd
# in a container is not cheap and not done here: without them those two
# tests print "skipped: ..." and pass; the restart-under-load test uses its
# own launcher and always runs.
if ! command -v systemd-analyze >/dev/null || ! command -v systemd-socket-activate >/dev/null; then
  echo "systemd-analyze / systemd-socket-activate missing: the unit verify and systemd-socket-activate tests will be skipped"
fi

# With arguments, the caller asked for part of the suite: run just that.
if [ $# -gt 0 ]; then
  exec cargo test --features failpoints "$@"
fi

cargo test --workspace --all-targets --features failpoints

# The status page in a real headless browser. The script skips (exit 0) where
# chromium is missing; try to install it first, and carry on without it if
# Debian's packages cannot be reached.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt_install chromium chromium-driver ||
    echo "could not install chromium; the browser test will be skipped"
fi
SCREENSHOT="$(mktemp -d)/status-page.png" scripts/browser-test.sh
