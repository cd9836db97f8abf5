#!/usr/bin/env bash
# Run one subcommand for Redis, RabbitMQ and Kafka in turn, through redis.sh,
# rabbitmq.sh and kafka.sh in this folder.
#
#   all.sh install|start|stop|restart|status
#
# start stops at the first broker that fails to start. stop, restart and
# status go through all three brokers and exit non-zero if any of them failed
# (status: if any broker is not running and responding).
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
BROKERS=(redis rabbitmq kafka)

usage() {
    echo "Usage: $0 install|start|stop|restart|status" >&2
    exit 2
}

[ "$#" -eq 1 ] || usage
command="$1"
case "$command" in
    install | start)
        for broker in "${BROKERS[@]}"; do
            "$SCRIPT_DIR/$broker.sh" "$command"
        done
        ;;
    stop | restart | status)
        failed=()
        for broker in "${BROKERS[@]}"; do
            "$SCRIPT_DIR/$broker.sh" "$command" || failed+=("$broker")
        done
        if [ "${#failed[@]}" -gt 0 ]; then
            if [ "$command" = status ]; then
                echo "[all] not running and responding: ${failed[*]}" >&2
            else
                echo "[all] $command failed for: ${failed[*]}" >&2
            fi
            exit 1
        fi
        ;;
    *) usage ;;
esac
