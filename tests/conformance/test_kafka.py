"""The kafka transport and the kafka log sink against the conformance suites; needs `scripts/brokers/kafka.sh start`."""

import pytest
from aiokafka import AIOKafkaConsumer

from boothby.codec import log_record_schema
from boothby.testing import LogSinkConformance, TransportConformance

from .brokers import RUN_PREFIX, closed_port, restart

SERVERS = "127.0.0.1:9092"
LOG_TOPIC = f"{RUN_PREFIX}-logs"


@pytest.mark.kafka
class TestKafkaTransport(TransportConformance):
    transport_name = "kafka"
    settings = {"bootstrap_servers": SERVERS, "topic_prefix": RUN_PREFIX}
    unreachable_settings = {"bootstrap_servers": f"127.0.0.1:{closed_port()}", "topic_prefix": RUN_PREFIX}
    broker_address = ("127.0.0.1", 9092)
    partitions_pin_invocations = True
    operation_timeout = 30.0  # a consumer group takes seconds to join and rebalance
    time_limit = 180.0

    def restart_broker(self):
        restart("kafka")


@pytest.mark.kafka
class TestKafkaLogSink(LogSinkConformance):
    log_sink_name = "kafka"
    settings = {"bootstrap_servers": SERVERS, "topic": LOG_TOPIC}
    broker_address = ("127.0.0.1", 9092)
    read_timeout = 30.0

    async def read_records(self, sink):
        """Read the whole log topic from the start; the sink writes Avro single-object records."""
        consumer = AIOKafkaConsumer(LOG_TOPIC, bootstrap_servers=SERVERS, auto_offset_reset="earliest",
                                    enable_auto_commit=False)
        await consumer.start()
        records = []
        try:
            while batches := await consumer.getmany(timeout_ms=1000):
                for messages in batches.values():
                    records += [log_record_schema().decode(message.value) for message in messages]
        finally:
            await consumer.stop()
        return records
