#!/usr/bin/env bash
# Install, start, stop, restart and report RabbitMQ for Boothby's tests and
# benchmark: Debian's rabbitmq-server with AMQP on 127.0.0.1:5672 and the
# default guest/guest user, run by this script instead of the Debian init
# script. Run with --help for the subcommands.
#
# Everything the node writes is under the state folder: node name
# boothby@localhost, mnesia database, logs, pid file and Erlang cookie (HOME is
# set to the state folder). Unless an epmd already listens on port 4369, the
# script runs its own epmd on 127.0.0.1:4369 and stops it with the node. The
# Erlang distribution port is 127.0.0.1:25672.
#
# Extra subcommand: "ctl ARGS..." runs rabbitmqctl against this node, for
# example "rabbitmq.sh ctl list_queues".
set -euo pipefail

BROKER_NAME=rabbitmq
PORT=5672
START_TIMEOUT=90
STOP_GRACE=30
EPMD_PORT=4369
DIST_PORT=25672

BROKER_EXTRA_USAGE="
Extra subcommand:
  ctl ARGS...  run rabbitmqctl against this node, for example: $0 ctl list_queues"

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

MNESIA_BASE="$STATE_DIR/mnesia"
LOG_DIR="$STATE_DIR/log"
LOG_FILE="$LOG_DIR/rabbitmq.log"
EPMD_PID_FILE="$STATE_DIR/epmd.pid"
RABBITMQ_SBIN=/usr/lib/rabbitmq/bin

# Environment read by rabbitmq-server, rabbitmqctl and by every Erlang VM they
# start. The scripts in RABBITMQ_SBIN are called directly: the /usr/sbin
# wrappers would switch to the rabbitmq user and to /var/lib/rabbitmq.
export_rabbitmq_environment() {
    export HOME="$STATE_DIR/home"
    export RABBITMQ_NODENAME=boothby@localhost
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$PORT"
    export RABBITMQ_DIST_PORT="$DIST_PORT"
    export ERL_EPMD_ADDRESS=127.0.0.1
    export ERL_EPMD_PORT="$EPMD_PORT"
    # Every Erlang VM started from here (the node, rabbitmqctl, and the short
    # VM that RabbitMQ starts to check epmd) listens for distribution on
    # loopback only. None of them starts an epmd daemon of its own, because
    # "ctl" while the node is down would otherwise leave an epmd running that
    # stop cannot find. Only start_epmd below starts epmd.
    export ERL_AFLAGS="-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false"
    # An empty env file, so that /etc/rabbitmq/rabbitmq-env.conf is not read.
    export RABBITMQ_CONF_ENV_FILE="$STATE_DIR/rabbitmq-env.conf"
    export RABBITMQ_CONFIG_FILE="$STATE_DIR/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$STATE_DIR/advanced.config"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$STATE_DIR/enabled_plugins"
    export RABBITMQ_MNESIA_BASE="$MNESIA_BASE"
    export RABBITMQ_LOG_BASE="$LOG_DIR"
    export RABBITMQ_LOGS="$LOG_FILE"
    export RABBITMQ_PID_FILE="$PID_FILE"
    export ERL_CRASH_DUMP="$STATE_DIR/erl_crash.dump"
}

broker_is_installed() {
    deb_installed rabbitmq-server && [ -x "$RABBITMQ_SBIN/rabbitmq-server" ] &&
        command -v epmd >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1
}

broker_install() {
    # python3 runs probe.py, which checks the AMQP login.
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3
    fi
    apt_install rabbitmq-server
    stop_packaged_service rabbitmq-server
}

write_config() {
    mkdir -p -- "$STATE_DIR/home" "$MNESIA_BASE" "$LOG_DIR"
    : >"$RABBITMQ_CONF_ENV_FILE"
    # No plugins: the tests need only AMQP, and each plugin adds startup time.
    printf '[].\n' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
    cat >"$RABBITMQ_CONFIG_FILE" <<'EOF'
# Written by scripts/brokers/rabbitmq.sh on every start; edits are lost.
# guest/guest may log in only over loopback connections (the RabbitMQ default).
loopback_users.guest = true
log.console = false
log.file.level = info
EOF
}

# Start epmd on 127.0.0.1 unless one is already listening on EPMD_PORT. An epmd
# that this script did not start is used as it is and never stopped.
start_epmd() {
    local pid=""
    [ -f "$EPMD_PID_FILE" ] && pid="$(tr -dc '0-9' <"$EPMD_PID_FILE")"
    if [ -n "$pid" ] && pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = epmd ]; then
        return 0
    fi
    rm -f -- "$EPMD_PID_FILE"

    local listener
    listener="$(port_listener "$EPMD_PORT")"
    if [ -n "$listener" ]; then
        say "using the epmd that already listens on port $EPMD_PORT, which this script did not start: $(printf '%s\n' "$listener" | paste -sd ';' -)"
        if printf '%s\n' "$listener" | awk '{print $4}' | grep -qvE '^(127\.0\.0\.1|\[::1\]):'; then
            say "warning: that epmd also listens on addresses other than loopback"
        fi
        return 0
    fi

    local epmd_path
    epmd_path="$(command -v epmd)"
    (cd -- "$STATE_DIR" && exec nohup setsid "$epmd_path" -address 127.0.0.1 -port "$EPMD_PORT" \
        >>"$STATE_DIR/epmd.out" 2>&1 </dev/null {LOCK_FD}>&-) &
    printf '%s\n' "$!" >"$EPMD_PID_FILE"

    local deadline=$((SECONDS + 10))
    until port_open "$EPMD_PORT"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "epmd did not listen on 127.0.0.1:$EPMD_PORT within 10s; see $STATE_DIR/epmd.out"
        sleep 0.1
    done
}

stop_epmd() {
    local pid=""
    [ -f "$EPMD_PID_FILE" ] && pid="$(tr -dc '0-9' <"$EPMD_PID_FILE")"
    if [ -n "$pid" ] && pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = epmd ]; then
        terminate_pid "$pid" 5 epmd
    fi
    rm -f -- "$EPMD_PID_FILE"
}

broker_before_start() {
    write_config
    start_epmd
}

broker_after_stop() {
    stop_epmd
}

broker_launch() {
    # RABBITMQ_ALLOW_INPUT makes rabbitmq-server exec the Erlang VM instead of
    # running it as a child of a signal-forwarding shell, so the launched pid
    # is the node's pid. -noinput keeps the VM from reading standard input.
    # The node shuts down cleanly on SIGTERM.
    RABBITMQ_ALLOW_INPUT=true RABBITMQ_SERVER_START_ARGS=-noinput \
        launch_detached "$RABBITMQ_SBIN/rabbitmq-server"
}

broker_probe() {
    python3 "$BROKERS_SCRIPT_DIR/probe.py" --quiet --timeout 2 amqp --port "$PORT" 2>/dev/null
}

# The node's environment contains this state folder, which distinguishes it
# from any other RabbitMQ node on the machine.
broker_owns_pid() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = beam.smp ] &&
        tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep -qxF "RABBITMQ_MNESIA_BASE=$MNESIA_BASE"
}

export_rabbitmq_environment

if [ "${1:-}" = ctl ]; then
    shift
    broker_is_installed || fail "RabbitMQ is not installed; run '$0 install' first"
    exec "$RABBITMQ_SBIN/rabbitmqctl" "$@"
fi
broker_main "$@"
