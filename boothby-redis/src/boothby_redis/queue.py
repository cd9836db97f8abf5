"""The deflector's side of the work queues: read invocations, mark them started, hand back the rest.

Each function has one stream, and every deflector joins its consumer group as a consumer of
its own. An entry a deflector has read but not started stays in the group's pending entries
list under that deflector's name. Starting an entry acknowledges and deletes it, so that only
unstarted entries can ever be handed to another deflector. A deflector that stops refreshing
its heartbeat key is considered dead, and the janitor of any other deflector moves the entries
it had not started back to the tail of the stream (see ``janitor.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Sequence

import redis.asyncio as aioredis
import redis.exceptions

from boothby.errors import TransportError, TransportUnavailable
from boothby.transport import Delivery

from . import scripts
from .channel import CommandChannel
from .connection import CONNECTION_ERRORS, reconnect_delay
from .heartbeat import Heartbeat
from .janitor import Janitor
from .keys import GROUP, Keys, process_name
from .settings import RedisSettings

logger = logging.getLogger(__name__)

BLOCK_SECONDS = 2.0
"""How long one XREADGROUP waits on the server before it is sent again; bounds the time to notice a silently dead connection."""


class RedisDelivery(Delivery):
    """One stream entry read by this deflector; ``settled`` is set once it is acknowledged or handed back."""

    __slots__ = ("queue", "stream", "entry_id", "request_id", "read_at", "settled")

    def __init__(self, queue: WorkQueue, stream: str, entry_id: bytes, request_id: str, payload: bytes,
                 read_at: float) -> None:
        super().__init__(payload)
        self.queue = queue
        self.stream = stream
        self.entry_id = entry_id
        self.request_id = request_id
        self.read_at = read_at
        self.settled = False

    async def started(self) -> None:
        await self.queue.mark_started(self)

    async def finished(self) -> None:
        if not self.settled:
            await self.queue.discard(self)

    async def release(self) -> None:
        if not self.settled:
            await self.queue.requeue(self)


class WorkQueue:
    """The work queues of one deflector's functions, with its heartbeat and its janitor."""

    def __init__(self, settings: RedisSettings, keys: Keys, client: aioredis.Redis) -> None:
        self.settings = settings
        self.keys = keys
        self.client = client
        self.commands = CommandChannel(client, settings.socket_timeout, "acknowledgement and reply")
        self.consumer = process_name()
        self.functions: list[str] = []
        self.heartbeat = Heartbeat(client, keys.heartbeat(self.consumer), settings.heartbeat_timeout)
        self.janitor = Janitor(self)
        self.start_script = client.register_script(scripts.START)
        self.requeue_script = client.register_script(scripts.REQUEUE)
        self.reap_script = client.register_script(scripts.REAP)
        self._held: dict[bytes, RedisDelivery] = {}
        self._unconfirmed: dict[bytes, tuple[RedisDelivery, asyncio.Future[int]]] = {}
        self._acknowledgements: set[asyncio.Future[int]] = set()
        self._readers: dict[str, CommandChannel] = {}
        self._read_failures: dict[str, int] = {}

    # Start and stop.

    async def start(self, functions: Sequence[str]) -> None:
        """Join every function's consumer group and start the heartbeat and the janitor.

        When Redis cannot be reached yet, this logs it and returns; reading retries until it can.
        """
        self.functions = list(functions)
        # One connection per function, because a blocked XREADGROUP holds its connection.
        self._readers = {
            function: CommandChannel(self.client, BLOCK_SECONDS + self.settings.socket_timeout, f"{function} reads")
            for function in self.functions
        }
        try:
            await self.heartbeat.beat()
            for function in self.functions:
                await self._create_group(self.keys.stream(function))
        except CONNECTION_ERRORS as error:
            logger.warning("redis transport: Redis at %s is not reachable yet: %s; the deflector keeps retrying",
                           self.settings.server, error)
        self.heartbeat.start()
        self.janitor.start()
        logger.info("redis transport: deflector consumer %s reading %s at %s", self.consumer,
                    ", ".join(self.keys.stream(function) for function in self.functions), self.settings.server)

    async def close(self) -> None:
        """Stop the heartbeat and the janitor, hand back every entry still owned and leave the consumer groups."""
        await self.janitor.stop()
        if self._acknowledgements:
            await asyncio.wait(set(self._acknowledgements), timeout=self.settings.socket_timeout)
        moved = 0
        try:
            await self.heartbeat.stop()
            for function in self.functions:
                stream = self.keys.stream(function)
                await self.confirm_acknowledgements(stream)
                moved += await self.janitor.reap(stream, self.consumer)
        except CONNECTION_ERRORS + (redis.exceptions.ResponseError,) as error:
            logger.warning("redis transport: could not leave the consumer groups at %s: %s; other deflectors "
                           "requeue what consumer %s held once its heartbeat key expires",
                           self.settings.server, error, self.consumer)
            return
        logger.info("redis transport: consumer %s left the consumer groups; %d unstarted invocations handed back",
                    self.consumer, moved)
        for channel in (self.commands, *self._readers.values()):
            await channel.close()

    async def _create_group(self, stream: str) -> None:
        try:
            # Id 0: a deflector that starts after a grappler still gets what was queued before.
            await self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            logger.info("redis transport: created consumer group %s on %s", GROUP, stream)
        except redis.exceptions.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    # Reading.

    async def receive(self, function: str, max_count: int) -> list[Delivery]:
        """Wait for up to ``max_count`` new entries of ``function``; retry through connection failures."""
        stream = self.keys.stream(function)
        reader = self._readers[function]
        while True:
            read_at = time.monotonic()
            try:
                response = await self._read_group(reader, stream, max_count)
            except redis.exceptions.ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise TransportError(f"reading invocations of {function} from {stream} failed: {error}",
                                         backend="redis") from error
                logger.warning("redis transport: consumer group %s on %s is missing (was Redis emptied?); creating it",
                               GROUP, stream)
                await self._create_group(stream)
                continue
            except CONNECTION_ERRORS as error:
                await self._read_failed(function, error)
                continue

            failures = self._read_failures.pop(function, 0)
            if failures:
                logger.info("redis transport: reading invocations of %s from %s works again after %d failed attempts",
                            function, self.settings.server, failures)
            deliveries = self._deliveries(stream, response, read_at)
            if deliveries:
                return deliveries

    async def _read_group(self, reader: CommandChannel, stream: str, max_count: int) -> object:
        """Send one blocking XREADGROUP and return its response; hand back what a cancelled read still got."""
        response = await reader.send("XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", max_count,
                                     "BLOCK", int(BLOCK_SECONDS * 1000), "STREAMS", stream, ">")
        try:
            async with asyncio.timeout(reader.timeout):
                return await asyncio.shield(response)
        except TimeoutError:
            reader.abort(f"no response to XREADGROUP within {reader.timeout:g}s")
            raise redis.exceptions.TimeoutError(f"no response to XREADGROUP on {stream} within {reader.timeout:g}s") from None
        except asyncio.CancelledError:
            # The read may still be blocked on the server, or its entries may be on their way.
            # Dropping the connection ends the read, and entries that arrived anyway go back.
            response.add_done_callback(functools.partial(self._hand_back_unreceived, stream))
            reader.abort("the read was cancelled")
            raise

    def _hand_back_unreceived(self, stream: str, response: asyncio.Future[object]) -> None:
        if response.cancelled() or response.exception() is not None or not response.result():
            return
        entry_ids = [entry_id for _, entries in response.result() for entry_id, _ in entries]  # type: ignore[union-attr]
        logger.info("redis transport: handing back %d entries of %s that a cancelled read received", len(entry_ids), stream)
        self._track(asyncio.get_running_loop().create_task(self._requeue_entries(stream, entry_ids)))

    async def _requeue_entries(self, stream: str, entry_ids: list[bytes]) -> None:
        try:
            await self.requeue_script(keys=[stream], args=[GROUP, self.consumer, *entry_ids])
        except (CONNECTION_ERRORS + (redis.exceptions.ResponseError,)) as error:
            logger.warning("redis transport: handing back %d entries of %s failed: %s; the janitor moves them "
                           "back once they have been pending for %gs", len(entry_ids), stream, error,
                           self.settings.heartbeat_timeout)

    async def _read_failed(self, function: str, error: BaseException) -> None:
        attempt = self._read_failures.get(function, 0) + 1
        self._read_failures[function] = attempt
        delay = reconnect_delay(attempt)
        logger.warning("redis transport: reading invocations of %s from %s failed (attempt %d): %s; reconnecting in %.2fs",
                       function, self.settings.server, attempt, error, delay)
        await asyncio.sleep(delay)

    def _deliveries(self, stream: str, response: object, read_at: float) -> list[Delivery]:
        # With RESP2 (see make_client) the response is None after BLOCK ran out, or else
        # [[stream, [[id, [field, value, ...]], ...]]].
        deliveries: list[Delivery] = []
        for _, entries in response or []:  # type: ignore[union-attr]
            for entry_id, flat_fields in entries:
                fields = dict(zip(flat_fields[::2], flat_fields[1::2], strict=True)) if flat_fields else {}
                payload = fields.get(b"p")
                if payload is None:
                    logger.error("redis transport: entry %s of %s has no payload; acknowledging and dropping it",
                                 entry_id, stream)
                    self._track(asyncio.get_running_loop().create_task(self._drop(stream, entry_id)))
                    continue
                request_id = fields.get(b"i", b"?").decode("utf-8", "replace")
                delivery = RedisDelivery(self, stream, entry_id, request_id, payload, read_at)
                self._held[entry_id] = delivery
                deliveries.append(delivery)
        return deliveries

    def is_tracked(self, entry_id: bytes) -> bool:
        """Return whether this deflector has the entry in hand or still waits for its acknowledgement to be confirmed."""
        return entry_id in self._held or entry_id in self._unconfirmed

    # Acknowledgements.

    async def mark_started(self, delivery: RedisDelivery) -> None:
        """Acknowledge and delete the entry as it starts; raise if this deflector no longer owns it.

        When the heartbeat proves that no other deflector can have taken the entry since it was
        read, a plain XACK and XDEL go out without waiting for the response, which keeps a round
        trip to Redis off every invocation's path. Otherwise this waits for the START script,
        which checks ownership on the server.
        """
        self._held.pop(delivery.entry_id, None)
        if self.heartbeat.covers(delivery.read_at):
            try:
                await self._acknowledge_without_waiting(delivery)
                return
            except CONNECTION_ERRORS as error:
                logger.info("redis transport: sending the acknowledgement of request %s failed: %s; "
                            "waiting for the START script instead", delivery.request_id, error)

        try:
            owned = await self.start_script(keys=[delivery.stream], args=[GROUP, self.consumer, delivery.entry_id])
        except CONNECTION_ERRORS as error:
            raise TransportUnavailable(
                f"request {delivery.request_id} not started: marking it started in Redis at {self.settings.server} "
                f"failed: {error}; it stays queued and is handed back once Redis responds again", backend="redis",
            ) from error
        except redis.exceptions.RedisError as error:
            raise TransportError(f"request {delivery.request_id} not started: Redis rejected marking it started: {error}",
                                 backend="redis") from error
        delivery.settled = True
        if not owned:
            raise TransportError(
                f"request {delivery.request_id} not started: another deflector requeued it while consumer "
                f"{self.consumer} sent no heartbeat for {self.settings.heartbeat_timeout:g}s, so it runs there instead",
                backend="redis",
            )

    async def _acknowledge_without_waiting(self, delivery: RedisDelivery) -> None:
        acknowledgement, deletion = await self.commands.send_many(
            [("XACK", delivery.stream, GROUP, delivery.entry_id), ("XDEL", delivery.stream, delivery.entry_id)]
        )
        delivery.settled = True
        self._unconfirmed[delivery.entry_id] = (delivery, acknowledgement)
        self._track(acknowledgement)
        acknowledgement.add_done_callback(functools.partial(self._acknowledged, delivery))
        # The XACK reply reports failures; this only keeps asyncio from warning about them.
        deletion.add_done_callback(lambda future: future.cancelled() or future.exception())

    async def _acknowledge(self, stream: str, entry_id: bytes) -> int:
        """Acknowledge and delete an entry in one round trip; return 1 if the group still had it pending, else 0."""
        acknowledgement, deletion = await self.commands.send_many([("XACK", stream, GROUP, entry_id), ("XDEL", stream, entry_id)])
        async with asyncio.timeout(self.settings.socket_timeout):
            acknowledged = await acknowledgement
            await deletion
        return acknowledged

    def _acknowledged(self, delivery: RedisDelivery, acknowledgement: asyncio.Future[int]) -> None:
        if acknowledgement.cancelled():
            return
        error = acknowledgement.exception()
        if error is not None:
            # The entry stays in _unconfirmed, and the janitor sends the acknowledgement again.
            logger.warning("redis transport: acknowledging started request %s failed: %s; the janitor retries it",
                           delivery.request_id, error)
            return
        self._unconfirmed.pop(delivery.entry_id, None)
        if not acknowledgement.result():
            logger.error("redis transport: request %s started here although another deflector had requeued it; "
                         "it may run twice (was the heartbeat key %s evicted?)", delivery.request_id, self.heartbeat.key)

    async def confirm_acknowledgements(self, stream: str) -> None:
        """Send again the acknowledgements of started entries of ``stream`` that failed in the background."""
        for entry_id, (delivery, acknowledgement) in list(self._unconfirmed.items()):
            # Acknowledgements still on their way are left alone; only failed ones are sent again.
            if delivery.stream != stream or not acknowledgement.done():
                continue
            await self._acknowledge(stream, entry_id)
            self._unconfirmed.pop(entry_id, None)

    async def discard(self, delivery: RedisDelivery) -> None:
        """Acknowledge and delete an entry the deflector dropped without running it (expired or undecodable)."""
        self._held.pop(delivery.entry_id, None)
        delivery.settled = True
        await self._drop(delivery.stream, delivery.entry_id)

    async def _drop(self, stream: str, entry_id: bytes) -> None:
        try:
            await self._acknowledge(stream, entry_id)
        except CONNECTION_ERRORS as error:
            logger.warning("redis transport: acknowledging entry %s of %s failed: %s; the janitor requeues it later "
                           "and a deflector drops it then", entry_id, stream, error)

    async def requeue(self, delivery: RedisDelivery) -> None:
        """Move an unstarted entry back to the tail of its stream, for any deflector to read."""
        self._held.pop(delivery.entry_id, None)
        delivery.settled = True
        try:
            await self.requeue_script(keys=[delivery.stream], args=[GROUP, self.consumer, delivery.entry_id])
        except CONNECTION_ERRORS as error:
            logger.warning("redis transport: handing back request %s failed: %s; other deflectors requeue it "
                           "once the heartbeat key of consumer %s expires", delivery.request_id, error, self.consumer)

    def _track(self, acknowledgement: asyncio.Future[int]) -> None:
        self._acknowledgements.add(acknowledgement)
        acknowledgement.add_done_callback(self._acknowledgements.discard)

