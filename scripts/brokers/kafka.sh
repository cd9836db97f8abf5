#!/usr/bin/env bash
# Install, start, stop, restart and report Apache Kafka for Boothby's tests
# and benchmark: one KRaft node that is both broker and controller, with the
# broker on 127.0.0.1:9092 and the controller on 127.0.0.1:9093. Run with
# --help for the subcommands.
#
# Kafka is not a Debian package. "install" resolves org.apache.kafka:kafka_2.13
# and kafka-tools with Maven from Maven Central and copies the jars with their
# runtime dependencies to .cache/kafka/ at the repository root, once.
#
# Extra subcommand: "run-class CLASS ARGS..." runs a main class from those jars
# with logging at WARN to stderr, for example
#   kafka.sh run-class org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# Environment: KAFKA_HEAP_OPTS sets the broker's JVM heap options
# (default "-Xms256m -Xmx512m").
set -euo pipefail

BROKER_NAME=kafka
PORT=9092
CONTROLLER_PORT=9093
START_TIMEOUT=90
STOP_GRACE=30

KAFKA_VERSION=4.4.0
# The log4j 2 version that kafka-server 4.4.0 depends on. log4j-slf4j-impl
# binds Kafka's SLF4J 1.7 logging to log4j 2, so that the broker logs to a file.
LOG4J_VERSION=2.25.5
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.11.0

BROKER_EXTRA_USAGE="
Extra subcommand:
  run-class CLASS ARGS...  run a main class from the Kafka jars, logging at WARN to stderr
Environment:
  KAFKA_HEAP_OPTS               JVM heap options of the broker (default: -Xms256m -Xmx512m)"

# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_CACHE="$REPO_ROOT/.cache/kafka"
KAFKA_LIBS="$KAFKA_CACHE/kafka-$KAFKA_VERSION/libs"
KAFKA_COMPLETE_MARKER="$KAFKA_CACHE/kafka-$KAFKA_VERSION/complete"
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
LOG_FILE="$LOG_DIR/server.log"
SERVER_PROPERTIES="$STATE_DIR/server.properties"

java_major_version() {
    java -XshowSettings:properties -version 2>&1 |
        awk -F'= ' '/java.specification.version/ {print $2}' | cut -d. -f1
}

broker_is_installed() {
    [ -f "$KAFKA_COMPLETE_MARKER" ] && command -v java >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1
}

# Kafka 4.x brokers need Java 17 or newer.
ensure_java() {
    if ! command -v java >/dev/null 2>&1; then
        apt_install openjdk-17-jre-headless
    fi
    local major
    major="$(java_major_version)"
    if [ -z "$major" ] || [ "$major" -lt 17 ]; then
        fail "Kafka $KAFKA_VERSION needs Java 17 or newer, but 'java' is version ${major:-unknown}; put a newer java first on PATH"
    fi
}

write_fetch_pom() {
    cat >"$KAFKA_CACHE/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/brokers/kafka.sh to fetch the Kafka jars; not a build. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.boothby.brokers</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- The broker, its storage tool and their runtime dependencies. -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- Command-line tools: TopicCommand, ConsoleProducer, ConsoleConsumer.
         Kafka Connect is excluded because no tool used here needs it. -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion>
          <groupId>org.apache.kafka</groupId>
          <artifactId>connect-runtime</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
}

broker_install() {
    ensure_java
    # python3 runs probe.py, which sends the Kafka Metadata request.
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3
    fi
    if [ -f "$KAFKA_COMPLETE_MARKER" ]; then
        return 0
    fi
    if ! command -v mvn >/dev/null 2>&1; then
        apt_install maven
    fi

    mkdir -p -- "$KAFKA_CACHE"
    write_fetch_pom
    local staging="$KAFKA_CACHE/kafka-$KAFKA_VERSION.partial"
    local maven_log="$KAFKA_CACHE/maven.log"
    rm -rf -- "$staging"
    say "fetching kafka_2.13 $KAFKA_VERSION and its runtime dependencies with Maven (log: $maven_log)"
    if ! mvn -B -f "$KAFKA_CACHE/pom.xml" "$DEPENDENCY_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$staging/libs" >"$maven_log" 2>&1; then
        tail -n 20 -- "$maven_log" | sed 's/^/    /' >&2
        fail "Maven could not fetch the Kafka jars; the full log is $maven_log"
    fi
    [ -f "$staging/libs/kafka_2.13-$KAFKA_VERSION.jar" ] ||
        fail "Maven finished, but $staging/libs has no kafka_2.13-$KAFKA_VERSION.jar; see $maven_log"

    rm -rf -- "$KAFKA_CACHE/kafka-$KAFKA_VERSION"
    mv -- "$staging" "$KAFKA_CACHE/kafka-$KAFKA_VERSION"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$KAFKA_COMPLETE_MARKER"
    say "cached $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
}

write_config() {
    mkdir -p -- "$DATA_DIR" "$LOG_DIR"
    cat >"$SERVER_PROPERTIES" <<EOF
# Written by scripts/brokers/kafka.sh on every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR

# One node: every internal topic has a single replica.
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF

    cat >"$STATE_DIR/log4j2.properties" <<EOF
# Written by scripts/brokers/kafka.sh on every start; edits are lost.
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $LOG_FILE
appender.file.filePattern = $LOG_DIR/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
EOF

    cat >"$STATE_DIR/tools-log4j2.properties" <<'EOF'
# Written by scripts/brokers/kafka.sh; used by "kafka.sh run-class".
status = warn
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = stderr
EOF
}

# Format the data folder once, as a single-node dynamic controller quorum
# (--standalone) with a random cluster id. Restarts reuse the formatted folder.
format_storage_once() {
    if [ -f "$DATA_DIR/meta.properties" ]; then
        return 0
    fi
    local cluster_id
    cluster_id="$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid)"
    say "formatting $DATA_DIR with cluster id $cluster_id"
    java -Dlog4j2.configurationFile="$STATE_DIR/tools-log4j2.properties" -cp "$KAFKA_LIBS/*" \
        kafka.tools.StorageTool format --config "$SERVER_PROPERTIES" --cluster-id "$cluster_id" --standalone \
        >"$STATE_DIR/format.log" 2>&1 ||
        fail "formatting the Kafka storage failed; see $STATE_DIR/format.log"
}

broker_before_start() {
    write_config
    format_storage_once
}

broker_launch() {
    local heap_opts="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
    local java_path
    java_path="$(command -v java)"
    # Kafka logs its shutdown from its own shutdown hook. Log4j's shutdown
    # hook would run at the same time and stop the file logger first, so the
    # log4j hook is disabled. The file appender flushes every line anyway.
    # shellcheck disable=SC2086 # heap_opts holds several JVM options.
    launch_detached "$java_path" $heap_opts \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
        -Dlog4j2.configurationFile="$STATE_DIR/log4j2.properties" \
        -Dlog4j2.shutdownHookEnabled=false \
        -Dkafka.logs.dir="$LOG_DIR" \
        -cp "$KAFKA_LIBS/*" \
        kafka.Kafka "$SERVER_PROPERTIES"
}

broker_probe() {
    python3 "$BROKERS_SCRIPT_DIR/probe.py" --quiet --timeout 2 kafka --port "$PORT" 2>/dev/null
}

broker_owns_pid() {
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = java ] &&
        tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF "$SERVER_PROPERTIES"
}

if [ "${1:-}" = run-class ]; then
    shift
    [ "$#" -ge 1 ] || fail "usage: $0 run-class CLASS [ARGS...]"
    broker_is_installed || cmd_install >&2
    mkdir -p -- "$STATE_DIR"
    [ -f "$STATE_DIR/tools-log4j2.properties" ] || write_config
    exec java -Dlog4j2.configurationFile="$STATE_DIR/tools-log4j2.properties" -Dlog4j2.shutdownHookEnabled=false -cp "$KAFKA_LIBS/*" "$@"
fi
broker_main "$@"
