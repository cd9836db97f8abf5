"""Bookkeeping of fetched invocations per partition, so that a commit never passes one no worker started.

Kafka commits one offset per partition: everything below it counts as consumed. A deflector runs
the invocations of a partition concurrently and they start in fetch order, so the offset to
commit is the lowest one still *pending* (fetched, not yet started or dropped), or the fetch
position when none is pending. A *ticket* names one fetched record together with the *epoch* of
its partition's bookkeeping. The epoch changes when the partition is revoked, assigned again or
rewound, and that makes every older ticket stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from aiokafka.structs import TopicPartition

MAX_RETIRED = 1000
"""How many revoked or rewound partition epochs ``covered`` still reports on."""


class State(Enum):
    PENDING = "pending"
    STARTED = "started"
    DONE = "done"


@dataclass(frozen=True)
class Ticket:
    """One fetched record: its partition, the epoch it was fetched in and its offset."""

    partition: TopicPartition
    epoch: int
    offset: int


class PartitionOffsets:
    """The records of one partition fetched since its last confirmed commit."""

    def __init__(self, epoch: int, committed: int | None = None) -> None:
        self.epoch = epoch
        self.committed = committed
        self.states: dict[int, State] = {}
        self.next_offset: int | None = committed

    def target(self) -> int | None:
        """Return the offset that may be committed now: the lowest pending one, or the fetch position."""
        for offset, state in self.states.items():
            if state is State.PENDING:
                return offset
        return self.next_offset

    def confirm(self, offset: int) -> None:
        """Record a successful commit of ``offset`` and forget the records below it."""
        if self.committed is not None and offset <= self.committed:
            return
        self.committed = offset
        for below in [known for known in self.states if known < offset]:
            del self.states[below]


class OffsetTracker:
    """The bookkeeping of every partition a consumer owns; see the module docstring for the rules."""

    def __init__(self) -> None:
        self.partitions: dict[TopicPartition, PartitionOffsets] = {}
        self.retired: dict[int, PartitionOffsets] = {}
        self._epochs = 0

    def _next_epoch(self) -> int:
        self._epochs += 1
        return self._epochs

    def assign(self, partitions: set[TopicPartition]) -> None:
        for partition in partitions:
            self.partitions[partition] = PartitionOffsets(self._next_epoch())

    def revoke(self, partitions: set[TopicPartition]) -> None:
        for partition in partitions:
            offsets = self.partitions.pop(partition, None)
            if offsets is not None:
                self._retire(offsets)

    def _retire(self, offsets: PartitionOffsets) -> None:
        # A ticket whose record the last commit of its epoch included may still run: ``covered``
        # looks here, so a commit made while giving up a partition is not wasted.
        self.retired[offsets.epoch] = offsets
        while len(self.retired) > MAX_RETIRED:
            del self.retired[next(iter(self.retired))]

    def rewind(self, partition: TopicPartition) -> int | None:
        """Forget every record fetched after the last confirmed commit and return the offset to seek to.

        Without a confirmed commit the lowest fetched offset is returned instead. Returns ``None``
        when the partition is not owned, or when nothing was fetched and nothing committed.
        """
        offsets = self.partitions.get(partition)
        if offsets is None:
            return None
        position = offsets.committed
        if position is None and offsets.states:
            position = min(offsets.states)
        self._retire(offsets)
        self.partitions[partition] = PartitionOffsets(self._next_epoch(), offsets.committed)
        return position

    def fetched(self, partition: TopicPartition, offset: int) -> Ticket | None:
        """Record a fetched record; return ``None`` when the partition is no longer owned."""
        offsets = self.partitions.get(partition)
        if offsets is None:
            return None
        offsets.states[offset] = State.PENDING
        offsets.next_offset = offset + 1
        return Ticket(partition, offsets.epoch, offset)

    def current(self, ticket: Ticket) -> PartitionOffsets | None:
        """Return the bookkeeping the ticket belongs to, or ``None`` when the ticket is stale."""
        offsets = self.partitions.get(ticket.partition)
        if offsets is None or offsets.epoch != ticket.epoch or ticket.offset not in offsets.states and not (
            offsets.committed is not None and ticket.offset < offsets.committed
        ):
            return None
        return offsets

    def mark(self, ticket: Ticket, state: State) -> bool:
        """Set the state of a ticket's record; return ``False`` when the ticket is stale."""
        offsets = self.current(ticket)
        if offsets is None:
            return False
        if ticket.offset in offsets.states:
            offsets.states[ticket.offset] = state
        return True

    def state(self, ticket: Ticket) -> State | None:
        offsets = self.current(ticket)
        if offsets is None:
            return None
        return offsets.states.get(ticket.offset, State.DONE)

    def covered(self, ticket: Ticket) -> bool:
        """Return whether a confirmed commit includes the ticket's record, also after its partition was revoked."""
        offsets = self.current(ticket) or self.retired.get(ticket.epoch)
        return offsets is not None and offsets.committed is not None and offsets.committed > ticket.offset

    def targets(self) -> dict[TopicPartition, int]:
        """Return the offsets to commit now: per partition, the target when it is past the confirmed commit."""
        result = {}
        for partition, offsets in self.partitions.items():
            target = offsets.target()
            if target is not None and (offsets.committed is None or target > offsets.committed):
                result[partition] = target
        return result

    def confirm(self, committed: dict[TopicPartition, int], epochs: dict[TopicPartition, int]) -> None:
        """Record a successful commit made while each partition had the epoch in ``epochs``."""
        for partition, offset in committed.items():
            offsets = self.partitions.get(partition)
            if offsets is not None and offsets.epoch == epochs.get(partition):
                offsets.confirm(offset)

    def epochs(self) -> dict[TopicPartition, int]:
        return {partition: offsets.epoch for partition, offsets in self.partitions.items()}
