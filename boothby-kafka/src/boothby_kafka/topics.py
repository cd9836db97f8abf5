"""Topic and consumer group names, and the admin calls that create, delete and sweep topics."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError, for_code

logger = logging.getLogger(__name__)

DEFAULT_MAX_REPLICATION = 3
"""Without ``replication_factor``, topics get this many replicas, or one per broker on smaller clusters."""

_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")
_GROUP_ALIVE_STATES = {"Stable", "PreparingRebalance", "CompletingRebalance"}
_GROUP_NOT_FOUND = 69
_UNKNOWN_TOPIC = 3


def request_topic(prefix: str, function: str) -> str:
    """Return the topic that contains the invocations of ``function``."""
    return f"{prefix}.requests.{function}"


def deflector_group(prefix: str, function: str) -> str:
    """Return the consumer group that the deflectors of ``function`` share."""
    return f"{prefix}.deflectors.{function}"


def reply_topic_prefix(prefix: str) -> str:
    return f"{prefix}.replies."


def new_reply_topic(prefix: str) -> str:
    """Return a fresh reply topic name for this process: ``PREFIX.replies.HOST.PID.UNIXTIME.RANDOM``.

    The host and pid tell an operator whose topic it is. The creation time lets the sweep skip
    topics too young to have a consumer yet, and the random part keeps names unique when a pid is
    reused.
    """
    host = _HOST_UNSAFE.sub("-", socket.gethostname()).strip("-")[:60] or "host"
    return f"{reply_topic_prefix(prefix)}{host}.{os.getpid()}.{int(time.time())}.{secrets.token_hex(3)}"


def reply_topic_created_at(topic: str, prefix: str) -> float | None:
    """Return the creation time written into a reply topic name, or ``None`` when the name is not one."""
    if not topic.startswith(reply_topic_prefix(prefix)):
        return None
    parts = topic[len(reply_topic_prefix(prefix)):].split(".")
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return float(parts[2])


@dataclass(frozen=True)
class TopicSpec:
    """The partition count, replication factor and topic configuration used when Boothby creates a topic."""

    partitions: int
    replication_factor: int | None
    configs: dict[str, str] = field(default_factory=dict)


class TopicAdmin:
    """Creates and deletes Boothby's topics through one admin client; every call raises ``KafkaError`` on failure."""

    def __init__(self, admin: AIOKafkaAdminClient, timeout_ms: int) -> None:
        self.admin = admin
        self.timeout_ms = timeout_ms

    async def ensure(self, topics: dict[str, TopicSpec]) -> list[str]:
        """Create the topics that do not exist yet and return the names created.

        Creation comes first because a metadata request for a missing topic makes a broker with
        ``auto.create.topics.enable`` create it with the broker's defaults. An existing topic is
        left as it is, and a partition count that differs from the setting is logged.
        """
        replication = None
        if any(spec.replication_factor is None for spec in topics.values()):
            replication = await self._default_replication()
        new_topics = [
            NewTopic(name, spec.partitions, spec.replication_factor or replication, topic_configs=spec.configs)
            for name, spec in topics.items()
        ]
        response = await self.admin.create_topics(new_topics, timeout_ms=self.timeout_ms)
        created = []
        existing = []
        for topic, code, message in (entry[:3] for entry in response.topic_errors):
            if code == 0:
                created.append(topic)
                continue
            error = for_code(code)
            if error is TopicAlreadyExistsError:
                existing.append(topic)
                continue
            raise error(f"creating topic {topic} failed: {message or error.__name__}")
        if created:
            logger.info("kafka: created topics %s", ", ".join(sorted(created)))
            await self._wait_for_leaders(created)
        if existing:
            await self._check_partitions(existing, topics)
        return created

    async def _wait_for_leaders(self, names: list[str]) -> None:
        """Wait until the broker's metadata lists a leader for every partition of the new topics.

        A consumer that joins its group before then is assigned no partitions, and aiokafka
        requests new metadata only every ``metadata_max_age_ms`` (5 minutes by default).
        """
        deadline = time.monotonic() + self.timeout_ms / 1000
        waiting = list(names)
        while waiting:
            entries = await self.admin.describe_topics(waiting)
            waiting = [entry["topic"] for entry in entries if entry["error_code"] != 0 or not entry["partitions"]
                       or any(partition["leader"] < 0 for partition in entry["partitions"])]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise KafkaTimeoutError(f"the new topics {', '.join(waiting)} have no partition leader after "
                                        f"{self.timeout_ms} ms")
            await asyncio.sleep(0.05)

    async def _check_partitions(self, names: list[str], topics: dict[str, TopicSpec]) -> None:
        for entry in await self.admin.describe_topics(names):
            wanted = topics[entry["topic"]].partitions
            if entry["error_code"] == 0 and len(entry["partitions"]) != wanted:
                logger.warning("kafka: topic %s exists with %d partitions, not the %d configured; it is used as it is",
                               entry["topic"], len(entry["partitions"]), wanted)

    async def _default_replication(self) -> int:
        cluster = await self.admin.describe_cluster()
        return max(1, min(DEFAULT_MAX_REPLICATION, len(cluster["brokers"])))

    async def delete(self, topics: list[str]) -> None:
        response = await self.admin.delete_topics(topics, timeout_ms=self.timeout_ms)
        for topic, code in response.topic_error_codes:
            if code and code != _UNKNOWN_TOPIC:
                error = for_code(code)
                raise error(f"deleting topic {topic} failed: {error.__name__}")

    async def idle_reply_topics(self, prefix: str, min_age: float, exclude: str) -> list[str]:
        """Return reply topics older than ``min_age`` seconds whose consumer group has no member.

        Each grappler process reads its reply topic in a consumer group named after the topic,
        so a reply topic whose group is empty or gone belongs to a process that stopped without
        deleting it.
        """
        now = time.time()
        candidates = []
        for topic in await self.admin.list_topics():
            created = reply_topic_created_at(topic, prefix)
            if created is not None and topic != exclude and now - created >= min_age:
                candidates.append(topic)
        if not candidates:
            return []

        idle = []
        for topic in candidates:
            # One group per request: aiokafka 0.14 decodes DescribeGroups v3 responses with the v2
            # schema, which misreads every group after the first.
            for response in await self.admin.describe_consumer_groups([topic]):
                for group in response.groups:
                    code, group_id, state = group[0], group[1], group[2]
                    memberless = code == _GROUP_NOT_FOUND or (code == 0 and state not in _GROUP_ALIVE_STATES)
                    if group_id == topic and memberless:
                        idle.append(topic)
        return sorted(idle)


def describe_error(error: BaseException) -> str:
    """Describe a Kafka or network error in one line, with its class name when the message is empty."""
    text = str(error).strip().rstrip(".")
    name = type(error).__name__
    if not text or text == name:
        return name
    return text if isinstance(error, KafkaError) and text.startswith(name) else f"{name}: {text}"
