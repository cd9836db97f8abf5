"""The rabbitmq transport against the transport conformance suite; needs `scripts/brokers/rabbitmq.sh start`."""

import pytest

from boothby.testing import TransportConformance

from .brokers import RUN_PREFIX, closed_port, restart


@pytest.mark.rabbitmq
class TestRabbitMQTransport(TransportConformance):
    transport_name = "rabbitmq"
    settings = {"url": "amqp://guest:guest@127.0.0.1:5672/%2F", "queue_prefix": RUN_PREFIX}
    unreachable_settings = {"url": f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F", "queue_prefix": RUN_PREFIX}
    broker_address = ("127.0.0.1", 5672)
    discards_expired = True  # invocations carry a per-message TTL until their deadline

    def restart_broker(self):
        restart("rabbitmq")
