#!/bin/sh
# Installs tickd: the binary, a starting config, the init script and its
# defaults file and/or the systemd unit, the logrotate config, the system
# user and the state and log directories.
#
# Usage: scripts/install.sh [systemd|init|both]     (default: systemd if
#        systemd is running, else init; "both" when DESTDIR is set)
#
# Environment:
#   BIN         the binary to install        (target/release/tickd)
#   PREFIX      where bin/ goes              (/usr/local)
#   DESTDIR     staging root for packaging   (empty = the real system)
#   TICKD_USER  the system user              (tickd)
#
# Idempotent: running it twice gives the same result. Files an operator
# edits (the config, /etc/default/tickd) are only written when missing;
# the rest is replaced. With DESTDIR set nothing outside DESTDIR is
# touched: no user is created and no ownership changed; the script prints
# what it would do instead.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
BIN=${BIN:-$root/target/release/tickd}
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
TICKD_USER=${TICKD_USER:-tickd}
STATE_DIR=/var/lib/tickd
LOG_DIR=/var/log/tickd
RUN_DIR=/run/tickd

mode=${1:-}
if [ -z "$mode" ]; then
    if [ -n "$DESTDIR" ]; then
        mode=both
    elif [ -d /run/systemd/system ]; then
        mode=systemd
    else
        mode=init
    fi
fi
case "$mode" in
    systemd|init|both) ;;
    *) echo "usage: $0 [systemd|init|both]" >&2; exit 2 ;;
esac

[ -x "$BIN" ] || { echo "install.sh: $BIN is not an executable; run cargo build --release or set BIN" >&2; exit 1; }

say() { echo "install.sh: $*"; }

# install_file MODE SOURCE TARGET: copy, replacing what is there.
install_file() {
    install -D -m "$1" "$2" "$DESTDIR$3"
    say "installed $3"
}

# keep_or_write MODE TARGET: write stdin to TARGET unless it exists.
keep_or_write() {
    if [ -e "$DESTDIR$2" ]; then
        cat >/dev/null
        say "kept existing $2"
    else
        mkdir -p "$(dirname "$DESTDIR$2")"
        cat >"$DESTDIR$2"
        chmod "$1" "$DESTDIR$2"
        say "wrote $2"
    fi
}

install_file 0755 "$BIN" "$PREFIX/bin/tickd"

keep_or_write 0640 /etc/tickd/tickd.toml <<CONF
# tickd configuration; see docs/configuration.md and docs/deployment.md.
[daemon]
listen = "127.0.0.1:7070"
workers = 4
state_dir = "$STATE_DIR"
log_file = "$LOG_DIR/tickd.log"
# Started as root (init script), tickd drops to this user after binding.
# Under systemd, User= in the unit already runs it as this user.
user = "$TICKD_USER"

# [[jobs]]
# name = "nightly-backup"
# cron = "0 30 2 * * *"
# command = ["/usr/local/sbin/backup"]
# timeout = "1h"
CONF

if [ "$mode" = init ] || [ "$mode" = both ]; then
    install_file 0755 "$here/init.d/tickd" /etc/init.d/tickd
    keep_or_write 0644 /etc/default/tickd <<DEFAULTS
# Settings for /etc/init.d/tickd.
DAEMON=$PREFIX/bin/tickd
CONFIG=/etc/tickd/tickd.toml
PIDFILE=$RUN_DIR/tickd.pid
# Start as this user directly; empty = start as root and let daemon.user drop.
USER=
# yes = run under tickd's own supervisor (tickd run --supervise): the
# listening socket stays open and the daemon is restarted after a crash.
SUPERVISE=yes
DEFAULTS
fi

if [ "$mode" = systemd ] || [ "$mode" = both ]; then
    mkdir -p "$DESTDIR/etc/systemd/system"
    sed "s|/usr/local/bin/tickd|$PREFIX/bin/tickd|g; s|^User=tickd|User=$TICKD_USER|; s|^Group=tickd|Group=$TICKD_USER|" \
        "$here/tickd.service" >"$DESTDIR/etc/systemd/system/tickd.service"
    chmod 0644 "$DESTDIR/etc/systemd/system/tickd.service"
    say "installed /etc/systemd/system/tickd.service"
    install -m 0644 "$here/tickd.socket" "$DESTDIR/etc/systemd/system/tickd.socket"
    say "installed /etc/systemd/system/tickd.socket"
fi

mkdir -p "$DESTDIR/etc/logrotate.d"
sed "s|create 0640 tickd tickd|create 0640 $TICKD_USER $TICKD_USER|" "$here/logrotate.conf" \
    >"$DESTDIR/etc/logrotate.d/tickd"
chmod 0644 "$DESTDIR/etc/logrotate.d/tickd"
say "installed /etc/logrotate.d/tickd"

install -d -m 0750 "$DESTDIR$STATE_DIR" "$DESTDIR$LOG_DIR"
say "created $STATE_DIR and $LOG_DIR"

if [ -n "$DESTDIR" ]; then
    say "DESTDIR is set; not touching the system. On the target, run:"
    say "  useradd --system --user-group --home-dir $STATE_DIR --no-create-home --shell /usr/sbin/nologin $TICKD_USER"
    say "  chown $TICKD_USER:$TICKD_USER $STATE_DIR $LOG_DIR"
    say "  chgrp $TICKD_USER /etc/tickd/tickd.toml"
    exit 0
fi

if getent passwd "$TICKD_USER" >/dev/null; then
    say "user $TICKD_USER exists"
else
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin "$TICKD_USER"
    say "created system user $TICKD_USER"
fi
chown "$TICKD_USER:$TICKD_USER" "$STATE_DIR" "$LOG_DIR"
# A reload re-reads the config as the unprivileged user.
chgrp "$TICKD_USER" /etc/tickd/tickd.toml

case "$mode" in
    systemd|both) say "next: systemctl daemon-reload && systemctl enable --now tickd.socket tickd" ;;
esac
case "$mode" in
    init|both) say "next: update-rc.d tickd defaults && /etc/init.d/tickd start" ;;
esac
