"""Conformance tests for transport plugins, run in-process against the real broker.

Subclass ``TransportConformance`` in a test module, set ``transport_name`` and ``settings``,
and pytest runs every rule of the transport contract against the plugin. Each test creates its
own client and server instances on a fresh event loop, uses function names no other run uses,
and closes everything it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, ClassVar, Mapping, Sequence

import pytest

from ..config import Config, FunctionConfig
from ..errors import TransportUnavailable
from ..plugins import Registry
from ..transport import Delivery, Transport
from .contract import covers
from .messages import encode_result, new_request_id
from .registration import SuiteBase, check_registration, get_backend, run_lifecycle_hooks
from .running import run_coroutine, run_then_close, stays_false, wait_until, within
from .transport_harness import (
    ClientEndpoint,
    PublishProbe,
    TransportFactory,
    TransportHarness,
    describe_difference,
    same_bytes,
)

_BODIES = ("no-body", "empty-body", "binary-body", "large-body")


class TransportConformance(SuiteBase):
    """Base class of a transport plugin's conformance tests; subclass it as ``Test...``.

    Set ``transport_name`` and ``settings``, or override the ``transport_settings`` fixture
    when the settings depend on other fixtures. The optional attributes and hooks below
    describe what the transport promises and enable the tests that need a broker restart.
    """

    transport_name: ClassVar[str] = ""
    settings: ClassVar[Mapping[str, Any]] = {}

    unreachable_settings: ClassVar[Mapping[str, Any] | None] = None
    """Settings that point at an address on 127.0.0.1 where no broker listens; enables the unreachable-broker test."""

    server_holds_queues: ClassVar[bool] = False
    """True when the server instance is itself the broker, as with the embedded transport.

    Then only one server may listen, a released invocation stays in that server, and the
    reconnect test restarts the server instead of calling ``restart_broker()``.
    """

    partitions_pin_invocations: ClassVar[bool] = False
    """True when each queued invocation belongs to one server until that server leaves, as with Kafka
    partitions: then an idle server cannot take what a busy one left queued, and the test of that
    rule is skipped. Document the consequence for your users."""

    discards_expired: ClassVar[bool] = False
    """True when the broker discards invocations after their deadline, so they may never be delivered."""

    large_payload_size: ClassVar[int] = 1_000_000
    """Body size in bytes of the large round-trip test."""

    time_limit: ClassVar[float] = 60.0
    """Seconds one test may take in total."""

    operation_timeout: ClassVar[float] = 10.0
    """Seconds one call or one expected message may take."""

    quiet_period: ClassVar[float] = 0.5
    """Seconds the tests wait to check that something does not arrive."""

    reconnect_timeout: ClassVar[float] = 60.0
    """Seconds a transport may take to work again after ``restart_broker()`` returns."""

    restart_broker: ClassVar[Callable[..., None] | None] = None
    """Define ``def restart_broker(self)`` to stop and start the broker; it enables the reconnect test.

    It runs in a worker thread while the test keeps publishing, and should return once the
    broker accepts connections again.
    """

    # Fixtures.

    @pytest.fixture
    def transport_settings(self) -> Mapping[str, Any]:
        return dict(self.settings)

    @pytest.fixture
    def unreachable_transport_settings(self) -> Mapping[str, Any] | None:
        return None if self.unreachable_settings is None else dict(self.unreachable_settings)

    @pytest.fixture
    def transport_factory(self, registry: Registry, transport_settings: Mapping[str, Any]) -> TransportFactory:
        """Return ``factory(settings=None, functions=()) -> Transport``, built as Boothby builds the plugin's class.

        ``functions`` become the configuration's functions, each with the default timeout of 30 s.
        """
        backend = get_backend(registry, "transport", self.transport_name)

        def create(settings: Mapping[str, Any] | None = None, functions: Sequence[str] = ()) -> Transport:
            chosen = transport_settings if settings is None else settings
            config = Config(
                transport=self.transport_name,
                transport_settings={self.transport_name: chosen},
                functions={name: FunctionConfig(name=name, source=Path("."), handler="index.handler") for name in functions},
            )
            return backend.factory(chosen, config)

        return create

    def run_scenario(self, factory: TransportFactory, scenario: Callable[[TransportHarness], Awaitable[None]]) -> None:
        """Run ``scenario`` on a fresh event loop, close everything it opened, then report contract breaks."""

        async def main() -> None:
            harness = TransportHarness(factory, self.operation_timeout)
            await run_then_close(scenario(harness), harness.close)
            problems = harness.problems()
            assert not problems, "contract broken during the test:\n" + "\n".join(problems)

        run_coroutine(main(), self.time_limit, self.use_uvloop)

    def body_for(self, kind: str) -> bytes | None:
        return {
            "no-body": None,
            "empty-body": b"",
            "binary-body": bytes(range(256)) * 4,
            "large-body": os.urandom(self.large_payload_size),
        }[kind]

    # Registration and lifecycle.

    @covers("hookspecs.boothby_register_transports", "Transport.name", "Transport.connection_errors")
    def test_registered_under_name(self, registry):
        check_registration(registry, "transport", self.transport_name, Transport)
        errors = get_backend(registry, "transport", self.transport_name).factory.connection_errors
        assert isinstance(errors, tuple), f"connection_errors must be a tuple of exception classes, got {errors!r}"
        assert all(isinstance(error, type) and issubclass(error, BaseException) for error in errors), (
            f"connection_errors must contain exception classes only, got {errors!r}"
        )

    @covers("hookspecs.boothby_startup", "hookspecs.boothby_shutdown")
    def test_lifecycle_hooks_accept_settings(self, registry, transport_settings):
        config = Config(transport=self.transport_name, transport_settings={self.transport_name: transport_settings})

        async def main() -> None:
            run_lifecycle_hooks(registry, config, ("grappler", "deflector"))

        run_coroutine(main(), self.time_limit, self.use_uvloop)

    # Moving bytes.

    @covers("Transport.start_client", "Transport.start_server", "Transport.publish", "Transport.receive",
            "Transport.reply", "Transport.close", "Transport.connected", "Delivery.payload", "Delivery.started",
            "Delivery.finished")
    @pytest.mark.parametrize("body_kind", _BODIES)
    def test_round_trip_keeps_bytes(self, transport_factory, body_kind):
        body = self.body_for(body_kind)

        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            server = await h.server([function])
            deflector = h.deflector(server, [function])
            client = await h.client()
            assert isinstance(client.address, str) and client.address, (
                f"start_client() must return a non-empty address string, got {client.address!r}"
            )
            await wait_until(lambda: client.transport.connected, self.operation_timeout, "connected to become true")

            request_id, payload = await client.publish(function, body=body, seconds=self.operation_timeout)
            result = await client.wait_for_result(request_id, self.operation_timeout)

            assert len(deflector.received) == 1, f"the server received {len(deflector.received)} deliveries for one publish"
            assert same_bytes(payload, deflector.received[0]), (
                "the payload received is not the payload published: " + describe_difference(payload, deflector.received[0])
            )
            replies = client.replies_for(request_id)
            assert len(replies) == 1, f"on_reply was called {len(replies)} times for one reply"
            sent = deflector.sent[request_id]
            assert same_bytes(sent, replies[0]), (
                "the reply received is not the reply sent: " + describe_difference(sent, replies[0])
            )
            assert (result["body"] is None) == (body is None), (
                f"the reply's body is {result['body']!r:.40}, expected {body!r:.40}"
            )
            assert same_bytes(body or b"", result["body"] or b""), describe_difference(body or b"", result["body"] or b"")

        self.run_scenario(transport_factory, scenario)

    @covers("Transport.publish", "Transport.receive", "Transport.reply")
    def test_opaque_payload_unchanged(self, transport_factory):
        payload = b"\x00\xff not an Avro message \xc3\x01\r\n" + bytes(range(256))

        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            server = await h.server([function])
            client = await h.client()

            await within(client.transport.publish(function, payload, request_id=new_request_id(), deadline=time.time() + 30),
                         self.operation_timeout, "publish()")
            deliveries = await within(server.receive(function, 1), self.operation_timeout, "receive()")
            assert len(deliveries) == 1
            assert same_bytes(payload, deliveries[0].payload), describe_difference(payload, deliveries[0].payload)
            await deliveries[0].started()
            await within(server.reply(client.address, payload, request_id=new_request_id()), self.operation_timeout,
                         "reply()")
            await deliveries[0].finished()
            await wait_until(lambda: bool(client.replies), self.operation_timeout, "the reply")
            assert same_bytes(payload, client.replies[0]), describe_difference(payload, client.replies[0])

        self.run_scenario(transport_factory, scenario)

    # Sharing a queue.

    @covers("Transport.start_server", "Transport.receive")
    def test_competing_consumers(self, transport_factory):
        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            first = await h.server([function])
            if self.server_holds_queues:
                with pytest.raises(TransportUnavailable):
                    await h.server([function])
                return

            second = await h.server([function])
            deflectors = [
                h.deflector(first, [function], work_time=0.02, label="first server"),
                h.deflector(second, [function], work_time=0.02, label="second server"),
            ]
            client = await h.client()
            published = []
            for _ in range(200):
                request_id, _ = await client.publish(function, seconds=self.operation_timeout)
                published.append(request_id)
                if len(published) >= 20 and all(deflector.received_ids for deflector in deflectors):
                    break
                await asyncio.sleep(0.01)
            await wait_until(lambda: set(client.reply_ids()) >= set(published), self.operation_timeout,
                             f"replies to all {len(published)} invocations")

            received = [request_id for deflector in deflectors for request_id in deflector.received_ids]
            duplicates = sorted({request_id for request_id in received if received.count(request_id) > 1})
            assert not duplicates, f"{len(duplicates)} invocations were delivered more than once: {duplicates[:5]}"
            assert sorted(received) == sorted(published)
            for deflector in deflectors:
                assert deflector.received_ids, (
                    f"the {deflector.label} received none of {len(published)} invocations; "
                    "competing servers must share one function's queue"
                )

        self.run_scenario(transport_factory, scenario)

    @covers("Transport.receive")
    def test_receive_respects_max_count(self, transport_factory):
        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            server = await h.server([function])
            client = await h.client()
            payloads = [(await client.publish(function, seconds=self.operation_timeout))[1] for _ in range(7)]

            collected: list[bytes] = []
            for max_count in [3, 1, 2, 3, 1, 2, 3] * 2:
                if len(collected) >= len(payloads):
                    break
                deliveries = await within(server.receive(function, max_count), self.operation_timeout,
                                          f"receive(max_count={max_count})")
                assert 1 <= len(deliveries) <= max_count, (
                    f"receive(max_count={max_count}) returned {len(deliveries)} deliveries"
                )
                for delivery in deliveries:
                    collected.append(bytes(delivery.payload))
                    await delivery.started()
                    await delivery.finished()
            assert sorted(collected) == sorted(payloads)

        self.run_scenario(transport_factory, scenario)

    @covers("Transport.receive")
    def test_receive_leaves_rest_to_other_servers(self, transport_factory):
        if self.server_holds_queues:
            pytest.skip("only one server can listen (server_holds_queues), so no other server could take the rest")
        if self.partitions_pin_invocations:
            pytest.skip("queued invocations stay with the server that owns their partition (partitions_pin_invocations)")

        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            first = await h.server([function])
            client = await h.client()
            payloads = [(await client.publish(function, seconds=self.operation_timeout))[1] for _ in range(6)]

            first_share = await within(first.receive(function, 2), self.operation_timeout, "receive(max_count=2)")
            assert 1 <= len(first_share) <= 2, f"receive(max_count=2) returned {len(first_share)} deliveries"
            second = await h.server([function])
            second_share: list[Delivery] = []
            while len(first_share) + len(second_share) < len(payloads):
                second_share += await within(second.receive(function, 10), self.operation_timeout,
                                             f"the second server to receive the {len(payloads) - len(first_share)} "
                                             "invocations the first server did not take")

            first_bytes = [bytes(delivery.payload) for delivery in first_share]
            second_bytes = [bytes(delivery.payload) for delivery in second_share]
            assert not set(first_bytes) & set(second_bytes), (
                "an invocation held by the first server was delivered to the second"
            )
            assert sorted(first_bytes + second_bytes) == sorted(payloads)
            for delivery in first_share + second_share:
                await delivery.started()
                await delivery.finished()

        self.run_scenario(transport_factory, scenario)

    @covers("Transport.receive")
    def test_cancelled_receive_takes_nothing(self, transport_factory):
        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            server = await h.server([function])
            client = await h.client()

            waiting = asyncio.create_task(server.receive(function, 1))
            await asyncio.sleep(0.2)
            assert not waiting.done(), "receive() returned while the queue was empty; it must wait for an invocation"
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await within(waiting, self.operation_timeout, "the cancelled receive()")

            _, payload = await client.publish(function, seconds=self.operation_timeout)
            deliveries = await within(server.receive(function, 1), self.operation_timeout,
                                      "receive() after a cancelled receive()")
            assert [bytes(delivery.payload) for delivery in deliveries] == [payload]
            await deliveries[0].started()
            await deliveries[0].finished()

        self.run_scenario(transport_factory, scenario)

    @covers("Delivery.started", "Delivery.finished")
    def test_finished_invocation_not_redelivered(self, transport_factory):
        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            server = await h.server([function])
            client = await h.client()
            await client.publish(function, seconds=self.operation_timeout)

            deliveries = await within(server.receive(function, 1), self.operation_timeout, "receive()")
            await within(deliveries[0].started(), self.operation_timeout, "Delivery.started()")
            await within(deliveries[0].finished(), self.operation_timeout, "Delivery.finished()")

            servers = [server] if self.server_holds_queues else [server, await h.server([function])]
            for index, candidate in enumerate(servers):
                try:
                    again = await asyncio.wait_for(candidate.receive(function, 1), self.quiet_period)
                except asyncio.TimeoutError:
                    continue
                raise AssertionError(f"server {index + 1} received {len(again)} invocations again after finished()")

        self.run_scenario(transport_factory, scenario)

    @covers("Delivery.release")
    def test_release_hands_invocation_to_another_server(self, transport_factory):
        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            first = await h.server([function])
            client = await h.client()
            _, payload = await client.publish(function, seconds=self.operation_timeout)

            deliveries = await within(first.receive(function, 1), self.operation_timeout, "receive()")
            await within(deliveries[0].release(), self.operation_timeout, "Delivery.release()")
            await h.close_server(first)
            if self.server_holds_queues:
                return  # the invocation was in the closed server's memory, so no other server can receive it

            second = await h.server([function])
            again = await within(second.receive(function, 1), self.operation_timeout,
                                 "another server to receive the released invocation")
            assert [bytes(delivery.payload) for delivery in again] == [payload]
            await again[0].started()
            await again[0].finished()

        self.run_scenario(transport_factory, scenario)

    # Replies.

    @covers("Transport.start_client", "Transport.reply")
    def test_reply_routed_to_its_client(self, transport_factory):
        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            server = await h.server([function])
            h.deflector(server, [function], max_count=4)
            first, second = await h.client(), await h.client()
            assert first.address != second.address, f"two clients got the same reply address {first.address!r}"

            published: dict[int, list[str]] = {0: [], 1: []}
            for _ in range(10):
                for index, client in enumerate((first, second)):
                    request_id, _ = await client.publish(function, seconds=self.operation_timeout)
                    published[index].append(request_id)
            for index, client in enumerate((first, second)):
                await wait_until(lambda client=client: len(client.replies) >= 10, self.operation_timeout,
                                 f"10 replies at client {index + 1}")
            await stays_false(lambda: len(first.replies) + len(second.replies) > 20, self.quiet_period)

            assert sorted(first.reply_ids()) == sorted(published[0]), "client 1 received replies meant for another client"
            assert sorted(second.reply_ids()) == sorted(published[1]), "client 2 received replies meant for another client"

        self.run_scenario(transport_factory, scenario)

    @covers("Transport.reply", "Transport.start_client")
    def test_late_reply_reaches_on_reply_only(self, transport_factory):
        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            server = await h.server([function])
            h.deflector(server, [function])
            client = await h.client()
            request_id, _ = await client.publish(function, seconds=self.operation_timeout)
            await client.wait_for_result(request_id, self.operation_timeout)
            late = encode_result(new_request_id(), b"late")

            await within(server.reply(client.address, late, request_id="not-waited-for"), self.operation_timeout, "reply()")
            await wait_until(lambda: len(client.replies) >= 2, self.operation_timeout, "the late reply at on_reply")
            assert await stays_false(lambda: len(client.replies) > 2, self.quiet_period), "on_reply got one reply twice"
            assert same_bytes(late, client.replies[1])
            assert client.disconnects == [], f"a late reply made the transport call on_disconnect: {client.disconnects}"
            assert client.transport.connected

            request_id, _ = await client.publish(function, seconds=self.operation_timeout)
            await client.wait_for_result(request_id, self.operation_timeout)

        self.run_scenario(transport_factory, scenario)

    @covers("Transport.reply", "Transport.close")
    def test_reply_to_closed_client_reaches_nobody(self, transport_factory):
        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            server = await h.server([function])
            listener = await h.client()
            closed_client = await h.client()
            await h.close_client(closed_client)

            try:
                await within(server.reply(closed_client.address, encode_result(new_request_id(), b"nobody"),
                                          request_id="for-a-closed-client"), self.operation_timeout, "reply()")
            except server.connection_errors + (TransportUnavailable,):
                pass  # the deflector logs these and carries on
            assert await stays_false(lambda: bool(listener.replies), self.quiet_period), (
                "a reply sent to a closed client's address reached another client"
            )
            assert closed_client.replies == [], "on_reply of a closed client was still called"

        self.run_scenario(transport_factory, scenario)

    # Deadlines.

    @covers("Transport.publish")
    def test_deadline_passed_through(self, transport_factory):
        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            server = await h.server([function])
            deflector = h.deflector(server, [function], max_count=3)
            client = await h.client()
            # A first round trip, so that the near deadline measures the transport, not the time
            # a broker takes to assign the queue to a new consumer.
            warm_up_id, _ = await client.publish(function, seconds=self.operation_timeout)
            await client.wait_for_result(warm_up_id, self.operation_timeout)

            past_id, past = await client.publish(function, body=b"past", deadline=time.time() - 5.0,
                                                 seconds=self.operation_timeout)
            near_id, near = await client.publish(function, body=b"near", deadline=time.time() + 3.0,
                                                 seconds=self.operation_timeout)
            live_id, live = await client.publish(function, body=b"live", deadline=time.time() + 30.0,
                                                 seconds=self.operation_timeout)
            await client.wait_for_result(live_id, self.operation_timeout)
            await client.wait_for_result(near_id, self.operation_timeout)
            if not self.discards_expired:
                await wait_until(lambda: past_id in deflector.received_ids, self.operation_timeout,
                                 "the invocation published after its deadline; only a transport with "
                                 "discards_expired = True may drop it")

            published = {past_id: past, near_id: near, live_id: live}
            for payload in deflector.received[1:]:
                assert any(same_bytes(payload, candidate) for candidate in published.values()), (
                    "a delivered payload differs from every published one"
                )
            assert past_id not in client.reply_ids(), "the expired invocation was answered"
            assert set(deflector.expired_ids) <= {past_id}

        self.run_scenario(transport_factory, scenario)

    # Broker failures.

    @covers("Transport.start_client", "Transport.publish", "Transport.connected", "Transport.connection_errors")
    def test_unreachable_broker_reported(self, transport_factory, unreachable_transport_settings):
        if unreachable_transport_settings is None:
            pytest.skip("set unreachable_settings to settings that point at a closed port on 127.0.0.1")

        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            transport = h.transport(unreachable_transport_settings)
            client = ClientEndpoint(transport)
            h.clients.append(client)
            try:
                await client.start(self.operation_timeout)
            except transport.connection_errors + (TransportUnavailable,):
                return  # reporting the broker as unreachable at start is allowed

            assert not transport.connected, "connected is true although the broker is unreachable"
            with pytest.raises(TransportUnavailable):
                await client.publish(function, seconds=self.operation_timeout)

        self.run_scenario(transport_factory, scenario)

    @covers("Transport.start_client", "Transport.publish", "Transport.receive", "Transport.connected",
            "Transport.connection_errors")
    def test_reconnects_after_broker_restart(self, transport_factory):
        if not self.server_holds_queues and self.restart_broker is None:
            pytest.skip("define restart_broker() to run the reconnect test")

        async def scenario(h: TransportHarness) -> None:
            function = h.function()
            server = await h.server([function])
            h.deflector(server, [function])
            client = await h.client()
            request_id, _ = await client.publish(function, seconds=self.operation_timeout)
            await client.wait_for_result(request_id, self.operation_timeout)

            probe = PublishProbe(client, function, self.operation_timeout)
            probe.start()
            if self.server_holds_queues:
                await h.close_server(server)
                await wait_until(lambda: bool(client.disconnects) or probe.unavailable > 0, self.operation_timeout,
                                 "on_disconnect or a TransportUnavailable from publish() while the server is down")
                server = await h.server([function])
                h.deflector(server, [function])
            else:
                await within(asyncio.to_thread(self.restart_broker), self.reconnect_timeout, "restart_broker()")
            await self._wait_for_round_trip(client, function)
            await probe.stop()

            assert probe.unexpected == [], (
                f"publish() raised other errors than TransportUnavailable while the broker was down: {probe.unexpected[:3]}"
            )
            assert client.disconnects or probe.unavailable, (
                "the broker restarted, but the client neither called on_disconnect nor raised TransportUnavailable"
            )
            assert client.transport.connected, "connected is false although a round trip just worked"

        self.run_scenario(transport_factory, scenario)

    async def _wait_for_round_trip(self, client: ClientEndpoint, function: str) -> None:
        deadline = time.monotonic() + self.reconnect_timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                request_id, _ = await client.publish(function, deadline=time.time() + 5.0, seconds=self.operation_timeout)
                await client.wait_for_result(request_id, 3.0)
                return
            except (TransportUnavailable, AssertionError) as error:
                last_error = error
                await asyncio.sleep(0.2)
        raise AssertionError(
            f"no round trip worked within {self.reconnect_timeout:g} s of the restart; last error: {last_error}"
        )
