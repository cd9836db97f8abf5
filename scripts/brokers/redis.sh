#!/usr/bin/env bash
# Install, start, stop, restart and report Redis for Boothby's tests and
# benchmark: Debian's redis-server on 127.0.0.1:6379, run by this script
# instead of the Debian init script. Run with --help for the subcommands.
set -euo pipefail

BROKER_NAME=redis
PORT=6379
START_TIMEOUT=20
STOP_GRACE=20

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

DATA_DIR="$STATE_DIR/data"
LOG_FILE="$STATE_DIR/redis.log"

broker_is_installed() {
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1
}

broker_install() {
    # redis-tools, a dependency of redis-server, provides redis-cli.
    apt_install redis-server
    stop_packaged_service redis-server
}

broker_launch() {
    mkdir -p -- "$DATA_DIR"
    # No snapshots or AOF while running, so no fork or disk writes under load.
    # "shutdown-on-sigterm save" writes one snapshot when stop sends SIGTERM,
    # so restart keeps the data. Redis also writes PID_FILE itself, and it chdirs to
    # DATA_DIR, which is how broker_owns_pid recognises it.
    launch_detached redis-server \
        --bind 127.0.0.1 \
        --port "$PORT" \
        --protected-mode yes \
        --daemonize no \
        --supervised no \
        --pidfile "$PID_FILE" \
        --logfile "$LOG_FILE" \
        --dir "$DATA_DIR" \
        --dbfilename dump.rdb \
        --save '' \
        --appendonly no \
        --shutdown-on-sigterm save
}

broker_probe() {
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = PONG ]
}

# Redis rewrites its process title, so the command line does not show the
# state folder; the working directory does.
broker_owns_pid() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = redis-server ] &&
        [ "$(readlink "/proc/$1/cwd" 2>/dev/null)" = "$DATA_DIR" ]
}

broker_main "$@"
