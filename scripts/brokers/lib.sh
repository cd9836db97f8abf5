# Shared code for the broker scripts in this folder. Source it; do not run it.
#
# The sourcing script sets BROKER_NAME, PORT, START_TIMEOUT and STOP_GRACE
# (seconds), and defines these functions:
#   broker_install          install what is missing, or do nothing
#   broker_is_installed     succeed when broker_install has nothing to do
#   broker_launch           start the broker in the background, set LAUNCHED_PID
#   broker_probe            succeed when the broker responds to a client request
#   broker_owns_pid PID     succeed when PID is the broker this script started
# It may also define broker_before_start and broker_after_stop, and set
# BROKER_EXTRA_USAGE to text that --help adds. Then it calls broker_main "$@".

BROKERS_SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "$BROKERS_SCRIPT_DIR/../.." && pwd -P)"

# BOOTHBY_BROKERS_DIR may be relative. Make it absolute, because the brokers
# get it in their configuration and do not run from the caller's directory.
BROKERS_ROOT="${BOOTHBY_BROKERS_DIR:-$REPO_ROOT/.brokers}"
mkdir -p -- "$BROKERS_ROOT"
BROKERS_ROOT="$(cd -- "$BROKERS_ROOT" && pwd -P)"
STATE_DIR="$BROKERS_ROOT/$BROKER_NAME"
PID_FILE="$STATE_DIR/$BROKER_NAME.pid"
# Seconds that start waits for the broker to respond. Each script sets its
# own default; BOOTHBY_BROKER_START_TIMEOUT overrides it for a slow machine.
START_TIMEOUT="${BOOTHBY_BROKER_START_TIMEOUT:-$START_TIMEOUT}"
# Standard output and error of the broker process: startup errors that come
# before the broker opens its own log end up here.
OUTPUT_FILE="$STATE_DIR/$BROKER_NAME.out"

say() {
    printf '[%s] %s\n' "$BROKER_NAME" "$*"
}

fail() {
    printf '[%s] error: %s\n' "$BROKER_NAME" "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        fail "installing packages needs root, and sudo is not installed: run '$*' as root"
    fi
}

deb_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Install the Debian packages that are missing, without starting their services.
#
# Debian maintainer scripts start a service through invoke-rc.d, which first
# runs /usr/sbin/policy-rc.d. Exit code 101 from it means "action forbidden".
# When no policy-rc.d exists, this writes one for the length of the install and
# removes it afterwards, so the packaged redis-server or rabbitmq-server never
# starts and takes the ports that these scripts use. An existing policy-rc.d is
# left as it is. In that case any packaged service that it lets start is
# stopped again through its init script (see stop_packaged_service).
# NOTE: the branch that writes policy-rc.d has not been run yet, because the
# Debian container images tested so far already ship a policy-rc.d.
apt_install() {
    local missing=() package
    for package in "$@"; do
        deb_installed "$package" || missing+=("$package")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi

    local policy=/usr/sbin/policy-rc.d wrote_policy=0
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\n# Written by Boothby scripts/brokers during apt-get install; removed after it.\nexit 101\n' > $policy && chmod 755 $policy"
        wrote_policy=1
        # shellcheck disable=SC2064 # expand $policy now, while it is set.
        trap "as_root rm -f $policy" EXIT
    fi

    say "installing Debian packages: ${missing[*]}"
    local status=0
    {
        as_root apt-get update -q >/dev/null &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null
    } || status=$?

    if [ "$wrote_policy" -eq 1 ]; then
        as_root rm -f "$policy"
        trap - EXIT
    fi
    [ "$status" -eq 0 ] || fail "apt-get install ${missing[*]} failed (exit $status); run it by hand to see why"
}

# Stop a Debian-packaged service if its package install started it anyway
# (possible only when an existing policy-rc.d allowed the start).
stop_packaged_service() {
    local service="$1"
    local init_script="/etc/init.d/$service"
    [ -x "$init_script" ] || return 0
    if as_root "$init_script" status >/dev/null 2>&1; then
        say "the package install started the Debian $service service; stopping it with $init_script stop"
        as_root "$init_script" stop >/dev/null 2>&1 ||
            fail "$init_script stop failed; stop the packaged $service service by hand"
    fi
}

# Succeed when PID is a live process. A zombie counts as exited: it is a child
# of this shell that exited but was not yet reaped.
pid_alive() {
    local pid="$1" state
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Print the pid of the broker this script started, or nothing when it is not
# running. The pid comes from PID_FILE. When that file is missing or stale, the
# process listening on PORT is checked with broker_owns_pid, and PID_FILE is
# rewritten if it is ours.
running_pid() {
    local pid=""
    if [ -f "$PID_FILE" ]; then
        pid="$(tr -dc '0-9' <"$PID_FILE")"
    fi
    if [ -n "$pid" ] && pid_alive "$pid" && broker_owns_pid "$pid"; then
        printf '%s\n' "$pid"
        return 0
    fi

    local listener_pid
    for listener_pid in $(port_listener "$PORT" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
        if broker_owns_pid "$listener_pid"; then
            mkdir -p -- "$STATE_DIR"
            printf '%s\n' "$listener_pid" >"$PID_FILE"
            printf '%s\n' "$listener_pid"
            return 0
        fi
    done
}

# Succeed when something listens on 127.0.0.1:PORT.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Print one ss line, spaces squeezed, for each socket that listens on TCP port
# PORT on any address.
port_listener() {
    ss -Hltnp "sport = :$1" 2>/dev/null | tr -s ' ' || true
}

# Print the size of FILE in bytes, 0 when it does not exist.
file_size() {
    if [ -f "$1" ]; then
        wc -c <"$1"
    else
        echo 0
    fi
}

# Print to stderr the last lines that were appended to FILE after it was
# OFFSET bytes long, to explain a failed start without older runs' lines.
show_new_log_lines() {
    local file="$1" offset="$2"
    if [ "$(file_size "$file")" -gt "$offset" ]; then
        printf '[%s] last lines of %s:\n' "$BROKER_NAME" "$file" >&2
        tail -c +"$((offset + 1))" -- "$file" | tail -n 20 | sed 's/^/    /' >&2
    fi
}

# Send SIGTERM to PID, wait up to GRACE seconds for it to exit, then send
# SIGKILL and wait up to 10 more seconds.
terminate_pid() {
    local pid="$1" grace="$2" what="$3"
    local deadline=$((SECONDS + grace))

    kill -TERM "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "$what (pid $pid) still running after ${grace}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
            while pid_alive "$pid"; do
                [ "$SECONDS" -lt "$deadline" ] || fail "$what (pid $pid) did not exit after SIGKILL"
                sleep 0.1
            done
            break
        fi
        sleep 0.1
    done
}

# Start PROGRAM ARGS... in STATE_DIR, in its own session and detached from
# this shell, with its output appended to OUTPUT_FILE. Sets LAUNCHED_PID.
#
# The subshell execs nohup, which execs setsid. This shell has no job control,
# so the child does not lead a process group and setsid execs PROGRAM without
# forking: $! is the pid of PROGRAM itself. The child does not inherit the
# lock file descriptor, which would otherwise keep the lock held while the
# broker runs.
launch_detached() {
    (cd -- "$STATE_DIR" && exec nohup setsid "$@" >>"$OUTPUT_FILE" 2>&1 </dev/null {LOCK_FD}>&-) &
    LAUNCHED_PID=$!
}

# Take the state folder's lock, so that parallel start, stop and restart
# calls (for example from test workers) run one after another instead of
# launching the broker twice. The lock is released when this script exits.
acquire_lock() {
    mkdir -p -- "$STATE_DIR"
    exec {LOCK_FD}>"$STATE_DIR/.lock"
    flock -w 600 "$LOCK_FD" ||
        fail "timed out after 600s waiting for $STATE_DIR/.lock, which another start, stop or restart holds"
}

# Install ss (from iproute2), which the port checks need. Minimal Debian
# images do not include it.
ensure_ss() {
    if ! command -v ss >/dev/null 2>&1; then
        apt_install iproute2
    fi
}

cmd_install() {
    ensure_ss
    if broker_is_installed; then
        say "already installed"
        return 0
    fi
    local started=$SECONDS
    broker_install
    say "installed in $((SECONDS - started))s"
}

cmd_start() {
    ensure_ss
    broker_is_installed || cmd_install
    mkdir -p -- "$STATE_DIR"

    local pid
    pid="$(running_pid)"
    if [ -n "$pid" ]; then
        if wait_until_responding "$pid" "$START_TIMEOUT"; then
            say "already running (pid $pid) and responding on 127.0.0.1:$PORT"
            return 0
        fi
        fail "running (pid $pid) but not responding on 127.0.0.1:$PORT after ${START_TIMEOUT}s; see $LOG_FILE, or run '$0 restart'"
    fi
    rm -f -- "$PID_FILE"

    local listener
    listener="$(port_listener "$PORT")"
    if [ -n "$listener" ]; then
        fail "port $PORT is already in use by a process that this script did not start: $(printf '%s\n' "$listener" | paste -sd ';' -)"
    fi

    if declare -F broker_before_start >/dev/null; then
        broker_before_start
    fi

    local started=$SECONDS output_offset log_offset
    output_offset="$(file_size "$OUTPUT_FILE")"
    log_offset="$(file_size "$LOG_FILE")"
    say "starting on 127.0.0.1:$PORT (log: $LOG_FILE)"
    broker_launch
    printf '%s\n' "$LAUNCHED_PID" >"$PID_FILE"

    if ! wait_until_responding "$LAUNCHED_PID" "$START_TIMEOUT"; then
        if pid_alive "$LAUNCHED_PID"; then
            printf '[%s] error: not responding on 127.0.0.1:%s after %ss; stopping it\n' \
                "$BROKER_NAME" "$PORT" "$START_TIMEOUT" >&2
            show_new_log_lines "$OUTPUT_FILE" "$output_offset"
            show_new_log_lines "$LOG_FILE" "$log_offset"
            cmd_stop >&2
        else
            printf '[%s] error: the broker exited during startup\n' "$BROKER_NAME" >&2
            show_new_log_lines "$OUTPUT_FILE" "$output_offset"
            show_new_log_lines "$LOG_FILE" "$log_offset"
            rm -f -- "$PID_FILE"
            if declare -F broker_after_stop >/dev/null; then
                broker_after_stop
            fi
        fi
        fail "start failed; see $LOG_FILE and $OUTPUT_FILE"
    fi
    say "started (pid $(running_pid)) in $((SECONDS - started))s"
}

# Wait until broker_probe succeeds, for at most TIMEOUT seconds. Fail early when
# PID exits.
wait_until_responding() {
    local pid="$1" timeout="$2"
    local deadline=$((SECONDS + timeout))
    while true; do
        if broker_probe; then
            return 0
        fi
        if ! pid_alive "$pid"; then
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.2
    done
}

cmd_stop() {
    local pid
    pid="$(running_pid)"
    if [ -z "$pid" ]; then
        say "not running"
    else
        local started=$SECONDS
        say "stopping (pid $pid)"
        terminate_pid "$pid" "$STOP_GRACE" "$BROKER_NAME"
        say "stopped in $((SECONDS - started))s"
    fi
    rm -f -- "$PID_FILE"
    if declare -F broker_after_stop >/dev/null; then
        broker_after_stop
    fi
}

# Exit 0 when running and responding, 1 when running but not responding, and 3
# when not running (the LSB init script convention).
cmd_status() {
    local pid
    pid="$(running_pid)"
    if [ -z "$pid" ]; then
        say "not running"
        return 3
    fi
    if broker_probe; then
        say "running (pid $pid) and responding on 127.0.0.1:$PORT"
        return 0
    fi
    say "running (pid $pid) but not responding on 127.0.0.1:$PORT; see $LOG_FILE"
    return 1
}

broker_usage() {
    cat <<EOF
Usage: $0 install|start|stop|restart|status

  install   install the broker if it is missing
  start     install if missing, start on 127.0.0.1:$PORT and wait until it
            responds (at most ${START_TIMEOUT}s); does nothing if already running
  stop      stop the broker that this script started and wait until it exits
  restart   stop, then start; the data is kept
  status    exit 0 if running and responding, 1 if running but not responding,
            3 if not running

State, logs and data: $STATE_DIR
Environment:
  BOOTHBY_BROKERS_DIR           parent folder of the state folders
                                (default: .brokers at the repository root)
  BOOTHBY_BROKER_START_TIMEOUT  seconds that start waits (default: $START_TIMEOUT)
EOF
    if [ -n "${BROKER_EXTRA_USAGE:-}" ]; then
        printf '%s\n' "$BROKER_EXTRA_USAGE"
    fi
}

broker_main() {
    local command="${1:-}"
    case "$command" in
        start | stop | restart | install) acquire_lock ;;
    esac
    case "$command" in
        install) cmd_install ;;
        start) cmd_start ;;
        stop) cmd_stop ;;
        restart)
            cmd_stop
            cmd_start
            ;;
        status) cmd_status ;;
        -h | --help | help) broker_usage ;;
        *)
            broker_usage >&2
            exit 2
            ;;
    esac
}
