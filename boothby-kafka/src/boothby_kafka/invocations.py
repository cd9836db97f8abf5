"""The deflector side: one consumer per function's request topic, with commits made before a worker runs.

Delivery semantics, per invocation:

- Not started yet (fetched but waiting, released at shutdown, or held by a deflector that
  crashed): never committed, so after a rebalance or a restart the group fetches it again.
- Started: ``Delivery.started`` returns only after a commit that includes the invocation is
  confirmed by the group coordinator. A deflector that dies while running it leaves it
  committed, so no other deflector runs it again: at most once. The grappler answers 504, or
  502 with a body saying that the request may or may not have run when it lost the broker.
- When that commit fails, ``started`` raises ``InvocationWithdrawn`` and the worker does not
  run it. A failed commit during a rebalance means another deflector may own the partition now
  and fetches the invocation from the last commit. Any other failure rewinds the partition to
  its last confirmed commit, so this deflector fetches the invocation again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NoReturn

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import TopicPartition
from boothby.errors import TransportError
from boothby.transport import Delivery

from .offsets import OffsetTracker, State, Ticket
from .settings import TransportSettings
from .topics import describe_error

logger = logging.getLogger(__name__)

FETCH_WAIT_MS = 1000
"""How long one ``getmany`` call waits for records before ``receive`` calls it again."""

REWIND_PAUSE = 0.5
"""Seconds a partition stays paused after a failed commit rewound it."""

LAZY_COMMIT_DELAY = 1.0
"""Seconds between an expired or undecodable invocation being dropped and the commit that records it."""


class InvocationWithdrawn(TransportError):
    """The invocation must not run here: its commit failed, or its partition moved to another consumer."""


class KafkaDelivery(Delivery):
    """One fetched invocation and its place in the partition's offset bookkeeping."""

    __slots__ = ("consumer", "ticket")

    def __init__(self, payload: bytes, consumer: FunctionConsumer, ticket: Ticket) -> None:
        super().__init__(payload)
        self.consumer = consumer
        self.ticket = ticket

    async def started(self) -> None:
        await self.consumer.start_run(self.ticket)

    async def finished(self) -> None:
        self.consumer.finish(self.ticket)

    async def release(self) -> None:
        self.consumer.release(self.ticket)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: FunctionConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.owner.partitions_assigned(set(assigned))


class FunctionConsumer:
    """The consumer of one function's request topic in the deflectors' shared group."""

    def __init__(self, function: str, topic: str, group: str, settings: TransportSettings,
                 client_options: dict[str, Any], client_id: str) -> None:
        self.function = function
        self.topic = topic
        self.group = group
        self.commit_timeout = settings.commit_timeout_ms / 1000
        self.consumer = AIOKafkaConsumer(
            group_id=group,
            client_id=client_id,
            enable_auto_commit=False,
            # A new group starts at the oldest retained invocation: ones published before any
            # deflector joined are run if still within their deadline, and dropped otherwise.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            request_timeout_ms=max(40_000, settings.session_timeout_ms + 10_000),
            **client_options,
        )
        self.tracker = OffsetTracker()
        self._commit_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._lazy_commit: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.withdrawn = 0

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))

    async def stop(self) -> None:
        """Commit what is settled, then leave the group so that its partitions move at once."""
        if self._lazy_commit is not None:
            self._lazy_commit.cancel()
        try:
            await asyncio.wait_for(self.commit_settled(), self.commit_timeout)
        except (KafkaError, asyncio.TimeoutError) as error:
            logger.warning("kafka transport: function %s: final commit failed: %s; invocations not committed "
                           "are fetched again by the next owner of their partition",
                           self.function, describe_error(error))
        for task in list(self._tasks):
            task.cancel()
        await self.consumer.stop()

    # Fetching.

    async def fetch(self, max_count: int) -> list[KafkaDelivery]:
        """Wait for invocations and return between 1 and ``max_count`` of them."""
        while True:
            batches = await self.consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=max_count)
            deliveries = []
            for partition, records in batches.items():
                for record in records:
                    ticket = self.tracker.fetched(partition, record.offset)
                    if ticket is not None:
                        deliveries.append(KafkaDelivery(record.value or b"", self, ticket))
            if deliveries:
                return deliveries

    # Acknowledgement.

    async def start_run(self, ticket: Ticket) -> None:
        """Commit past ``ticket`` before its invocation runs; raise ``InvocationWithdrawn`` when that fails."""
        if not self.tracker.mark(ticket, State.STARTED):
            self._withdraw(ticket, "its partition was reassigned since it was fetched")
        await self._notify()
        # One turn of the event loop lets the other invocations of the same fetch mark themselves
        # started too, so that one commit covers them all.
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.commit_timeout
        while not self.tracker.covered(ticket):
            if self.tracker.current(ticket) is None:
                self._withdraw(ticket, "its partition was reassigned before the commit completed")
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._rewind(ticket, f"no commit included it within commit_timeout_ms = {self.commit_timeout * 1000:g}")
            try:
                await asyncio.wait_for(self.commit_settled(), remaining)
            except (CommitFailedError, IllegalStateError) as error:
                self._withdraw(ticket, f"the group rebalanced during its commit ({describe_error(error)})")
            except (KafkaError, OSError, asyncio.TimeoutError) as error:
                reason = "the commit timed out" if isinstance(error, asyncio.TimeoutError) else describe_error(error)
                self._rewind(ticket, f"the commit failed: {reason}")
            if not self.tracker.covered(ticket):
                await self._wait_for_change(deadline - loop.time())

    def finish(self, ticket: Ticket) -> None:
        state = self.tracker.state(ticket)
        self.tracker.mark(ticket, State.DONE)
        if state is State.PENDING:
            self._schedule_lazy_commit()
        self._notify_soon()

    def release(self, ticket: Ticket) -> None:
        # A released invocation stays pending: no commit passes it, so the next owner of its
        # partition fetches it again once this consumer leaves the group.
        if self.tracker.state(ticket) is State.PENDING:
            logger.debug("kafka transport: function %s: offset %d of %s released unstarted",
                         self.function, ticket.offset, ticket.partition)

    async def commit_settled(self) -> None:
        """Commit every partition up to its lowest pending invocation.

        Calls are serialised, so concurrent callers share commits. The caller that gets the
        lock next finds its record already committed, or commits it together with the records
        of the callers still waiting.
        """
        async with self._commit_lock:
            targets = self.tracker.targets()
            if not targets:
                return
            epochs = self.tracker.epochs()
            await self.consumer.commit(targets)
            self.tracker.confirm(targets, epochs)

    def _withdraw(self, ticket: Ticket, reason: str) -> NoReturn:
        self.withdrawn += 1
        raise InvocationWithdrawn(
            f"function {self.function}: invocation at offset {ticket.offset} of {ticket.partition.topic}"
            f"[{ticket.partition.partition}] is not run here because {reason}; the partition's owner fetches "
            "it again from the last commit", backend="kafka",
        )

    def _rewind(self, ticket: Ticket, reason: str) -> NoReturn:
        partition = ticket.partition
        if self.tracker.current(ticket) is not None:
            position = self.tracker.rewind(partition)
            if position is not None and partition in self.consumer.assignment():
                self.consumer.seek(partition, position)
                # A pause keeps a commit that keeps failing from turning into a busy loop of fetches.
                self.consumer.pause(partition)
                asyncio.get_running_loop().call_later(REWIND_PAUSE, self._resume, partition)
                logger.warning("kafka transport: function %s: %s; partition %s[%d] rewound to offset %d, to fetch "
                               "the invocations not started again in %gs", self.function, reason,
                               partition.topic, partition.partition, position, REWIND_PAUSE)
        self._withdraw(ticket, reason)

    def _resume(self, partition: TopicPartition) -> None:
        if partition in self.consumer.assignment():
            self.consumer.resume(partition)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _notify_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self._notify())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait_for_change(self, timeout: float) -> None:
        if timeout <= 0:
            return
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _schedule_lazy_commit(self) -> None:
        if self._lazy_commit is None:
            self._lazy_commit = asyncio.get_running_loop().call_later(LAZY_COMMIT_DELAY, self._run_lazy_commit)

    def _run_lazy_commit(self) -> None:
        self._lazy_commit = None
        task = asyncio.get_running_loop().create_task(self._commit_in_background())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit_in_background(self) -> None:
        try:
            await asyncio.wait_for(self.commit_settled(), self.commit_timeout)
        except (KafkaError, OSError, asyncio.TimeoutError) as error:
            # Only dropped invocations wait for this commit; if it is lost they are fetched and
            # dropped again after a rebalance.
            logger.info("kafka transport: function %s: commit of dropped invocations failed: %s",
                        self.function, describe_error(error))

    # Rebalancing, called by aiokafka from its coordination task.

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        try:
            await asyncio.wait_for(self.commit_settled(), self.commit_timeout)
        except (KafkaError, OSError, asyncio.TimeoutError) as error:
            logger.warning("kafka transport: function %s: commit before giving up partitions %s failed: %s",
                           self.function, _numbers(revoked), describe_error(error))
        self.tracker.revoke(revoked)
        await self._notify()
        logger.info("kafka transport: function %s: revoked partitions %s of %s",
                    self.function, _numbers(revoked), self.topic)

    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.tracker.assign(assigned)
        logger.info("kafka transport: function %s: assigned partitions %s of %s",
                    self.function, _numbers(assigned), self.topic)


def _numbers(partitions: set[TopicPartition]) -> list[int]:
    return sorted(partition.partition for partition in partitions)
