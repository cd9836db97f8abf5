"""The redis transport against the transport conformance suite; needs `scripts/brokers/redis.sh start`."""

import pytest

from boothby.testing import TransportConformance

from .brokers import RUN_PREFIX, closed_port, restart


@pytest.mark.redis
class TestRedisTransport(TransportConformance):
    transport_name = "redis"
    settings = {"url": "redis://127.0.0.1:6379/0", "key_prefix": RUN_PREFIX}
    unreachable_settings = {"url": f"redis://127.0.0.1:{closed_port()}/0", "key_prefix": RUN_PREFIX}
    broker_address = ("127.0.0.1", 6379)

    def restart_broker(self):
        restart("redis")
