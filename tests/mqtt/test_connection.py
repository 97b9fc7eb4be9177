"""The daemon's broker connection against a real Mosquitto: versions, auth, TLS, faults."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from stovectl.mqtt.connection import (
    Message,
    MqttConnection,
    NotConnected,
    PublishFailed,
)
from stovectl.mqtt.options import ConnectionOptions
from tests.support.broker import PASSWORDS, Broker, Variant
from tests.support.mqtt_probe import Probe

WAIT = 5.0
NOT_AUTHORIZED = 135
_ids = itertools.count(1)

StartBroker = Callable[[Variant], Broker]
Connect = Callable[..., Probe]


def options(broker: Broker, **overrides: Any) -> ConnectionOptions:
    """Options for ``broker``'s variant: its password, or its TLS files."""
    settings: dict[str, Any] = {
        "host": broker.host, "port": broker.port, "client_id": f"conn-{next(_ids)}",
        "reconnect_max_seconds": 0.5, "will_topic": "stovectl/test/status",
    }
    if broker.variant == "password":
        settings.update(username="stovectl", password=PASSWORDS["stovectl"])
    if broker.tls is not None:
        settings.update(
            tls=True, ca_file=str(broker.tls.ca_cert), cert_file=str(broker.tls.client_cert),
            key_file=str(broker.tls.client_key),
        )
    settings.update(overrides)
    return ConnectionOptions(**settings)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


class Inbox:
    """Messages a subscription handed to the loop, awaited with a timeout."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue()

    def __call__(self, message: Message) -> None:
        self.queue.put_nowait(message)

    async def next(self, topic: str | None = None) -> Message:
        async with asyncio.timeout(WAIT):
            while True:
                message = await self.queue.get()
                if topic is None or message.topic == topic:
                    return message


def watch(connection: MqttConnection) -> tuple[asyncio.Event, asyncio.Event]:
    """Events set when ``connection`` comes up and when it drops, for the test to await."""
    up, down = asyncio.Event(), asyncio.Event()
    connection.on_connect(up.set)
    connection.on_disconnect(down.set)
    return up, down


async def reached(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), WAIT)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {WAIT}s") from None


@pytest.mark.parametrize("variant", ["anonymous", "password", "tls"])
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_connects_publishes_and_receives(
    start_broker: StartBroker, variant: Variant, protocol: str
) -> None:
    """Each broker variant and both MQTT versions: connect, subscribe, publish, receive."""
    broker = start_broker(variant)

    async def scenario() -> None:
        connection = MqttConnection(options(broker, protocol=protocol))
        inbox = Inbox()
        connection.subscribe("stovectl/test/echo", inbox)
        try:
            assert await connection.start(wait_seconds=WAIT), broker.log
            await connection.publish("stovectl/test/echo", b"hello")
            assert (await inbox.next()).payload == b"hello"
        finally:
            await connection.close()

    run(scenario())


def test_online_on_connect_and_offline_on_close_are_retained(
    start_broker: StartBroker, connect: Connect
) -> None:
    """The will topic says online (retained) once connected, and offline after a clean close."""
    broker = start_broker("anonymous")

    async def scenario() -> None:
        connection = MqttConnection(options(broker))
        assert await connection.start(wait_seconds=WAIT)
        probe = connect(broker)
        probe.subscribe("stovectl/test/status")
        message = probe.next_message()
        assert (message.payload, message.retain) == (b"online", True)
        await connection.close()
        message = probe.next_message()
        assert message.payload == b"offline"

    run(scenario())


def test_an_acl_denied_publish_is_an_error_under_v5(start_broker: StartBroker) -> None:
    """Publishing where the ACL forbids raises PublishFailed with reason code 135."""
    broker = start_broker("password")

    async def scenario() -> None:
        connection = MqttConnection(options(broker))
        try:
            assert await connection.start(wait_seconds=WAIT)
            with pytest.raises(PublishFailed, match="Not authorized") as caught:
                await connection.publish("denied/relay/set", b"OFF")
            assert caught.value.reason_code == NOT_AUTHORIZED
            await connection.publish("stovectl/test/allowed", b"fine")
        finally:
            await connection.close()

    run(scenario())


def test_a_wrong_password_is_logged_once_and_start_goes_on(
    start_broker: StartBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused CONNECT does not raise: start returns False and the log names the refusal."""
    broker = start_broker("password")

    async def scenario() -> None:
        connection = MqttConnection(options(broker, password="wrong"))
        try:
            assert not await connection.start(wait_seconds=WAIT)
            assert not connection.is_connected
            with pytest.raises(NotConnected):
                await connection.publish("stovectl/test/x", b"x")
        finally:
            await connection.close()

    with caplog.at_level(logging.ERROR, logger="stovectl.mqtt.connection"):
        run(scenario())
    refusals = [r for r in caplog.records if "refused the connection" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in caplog.records]


def test_publish_without_a_broker_fails_at_once(start_broker: StartBroker) -> None:
    """With the broker gone, publish raises NotConnected instead of queueing a relay command."""
    broker = start_broker("anonymous")

    async def scenario() -> None:
        connection = MqttConnection(options(broker))
        _up, down = watch(connection)
        try:
            assert await connection.start(wait_seconds=WAIT)
            broker.kill9()
            await reached(down, "noticing the drop")
            with pytest.raises(NotConnected):
                await connection.publish("stovectl/test/x", b"OFF")
        finally:
            await connection.close()
            broker.start()

    run(scenario())


def test_after_a_broker_restart_it_reconnects_resubscribes_and_calls_listeners(
    start_broker: StartBroker, connect: Connect
) -> None:
    """kill -9 and restart: the last will says offline; within 5 s we are back and subscribed."""
    broker = start_broker("anonymous")

    async def scenario() -> None:
        connection = MqttConnection(options(broker, clean_start=True))
        inbox = Inbox()
        connects: list[bool] = []
        connection.subscribe("stovectl/test/echo", inbox)
        connection.on_connect(lambda: connects.append(True))
        up, down = watch(connection)
        try:
            assert await connection.start(wait_seconds=WAIT)
            up.clear()
            broker.kill9()
            await reached(down, "noticing the drop")
            broker.start()
            await reached(up, "reconnecting")
            assert len(connects) == 2
            probe = connect(broker)
            probe.publish("stovectl/test/echo", b"after")
            assert (await inbox.next()).payload == b"after"
        finally:
            await connection.close()

    run(scenario())


def test_the_session_keeps_commands_published_while_away(
    start_broker: StartBroker, connect: Connect
) -> None:
    """A QoS 1 message sent while the client was away arrives when it comes back (v5 session)."""
    broker = start_broker("anonymous")
    client_id = f"persistent-{next(_ids)}"

    async def scenario() -> None:
        first = MqttConnection(options(broker, client_id=client_id))
        first.subscribe("stovectl/test/set", Inbox())
        assert await first.start(wait_seconds=WAIT)
        await first.close()

        connect(broker).publish("stovectl/test/set", b"OFF", qos=1)

        second = MqttConnection(options(broker, client_id=client_id))
        inbox = Inbox()
        second.subscribe("stovectl/test/set", inbox)
        try:
            assert await second.start(wait_seconds=WAIT)
            assert (await inbox.next()).payload == b"OFF"
        finally:
            await second.close()

    run(scenario())


def test_v5_properties_arrive_translated(start_broker: StartBroker, connect: Connect) -> None:
    """Response topic, correlation data and message expiry reach the handler as plain values."""
    broker = start_broker("anonymous")

    async def scenario() -> None:
        connection = MqttConnection(options(broker))
        inbox = Inbox()
        connection.subscribe("stovectl/test/set", inbox)
        try:
            assert await connection.start(wait_seconds=WAIT)
            probe = connect(broker, protocol=MQTTProtocolVersion.MQTTv5)
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho's hint gap
            properties.ResponseTopic = "client/replies"
            properties.CorrelationData = b"\x01\x02"
            properties.MessageExpiryInterval = 30
            probe.client.publish("stovectl/test/set", b"OFF", qos=1, properties=properties)
            message = await inbox.next()
            assert message.response_topic == "client/replies"
            assert message.correlation_data == b"\x01\x02"
            assert message.message_expiry is not None
            assert 0 < message.message_expiry <= 30
            assert not message.retain
        finally:
            await connection.close()

    run(scenario())


def test_a_failing_handler_does_not_stop_the_others(
    start_broker: StartBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that raises is logged; the next handler and the next message still arrive."""
    broker = start_broker("anonymous")

    def broken(message: Message) -> None:
        raise ValueError("a bug in a handler")

    async def scenario() -> None:
        connection = MqttConnection(options(broker))
        inbox = Inbox()
        connection.subscribe("stovectl/test/#", broken)
        connection.subscribe("stovectl/test/#", inbox)
        try:
            assert await connection.start(wait_seconds=WAIT)
            await connection.publish("stovectl/test/a", b"1")
            await connection.publish("stovectl/test/b", b"2")
            assert (await inbox.next("stovectl/test/a")).payload == b"1"
            assert (await inbox.next("stovectl/test/b")).payload == b"2"
        finally:
            await connection.close()

    with caplog.at_level(logging.ERROR):
        run(scenario())
    assert any("handling an MQTT message" in r.getMessage() for r in caplog.records)


def test_a_denied_background_publish_is_logged_once(
    start_broker: StartBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """State published again and again where the ACL denies it is one warning, not a flood."""
    broker = start_broker("password")

    async def scenario() -> None:
        connection = MqttConnection(options(broker))
        try:
            assert await connection.start(wait_seconds=WAIT)
            for n in range(5):
                connection.publish_soon("denied/state", f"{n}".encode(), retain=True)
            await connection.drain()
        finally:
            await connection.close()

    with caplog.at_level(logging.WARNING, logger="stovectl.mqtt.connection"):
        run(scenario())
    denied = [r for r in caplog.records if "denied/state" in r.getMessage()]
    assert len(denied) == 1, [r.getMessage() for r in denied]
