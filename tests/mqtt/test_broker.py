"""The test broker (tests.support.broker) behaves as PROTOCOLS.md says Mosquitto does.

Later MQTT tests rely on these facts; here they are checked against the real
broker, over real sockets, with paho-mqtt as the client.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from tests.support.broker import PASSWORDS, Broker, Variant
from tests.support.mqtt_probe import REPLY_TIMEOUT_SECONDS, Probe

StartBroker = Callable[[Variant], Broker]
Connect = Callable[..., Probe]

NOT_AUTHORIZED = 135
TCP_LISTEN = "0A"

# How a client that may read and write stovectl/# logs in, per variant.
CREDENTIALS: dict[Variant, dict[str, Any]] = {
    "anonymous": {},
    "password": {"user": "stovectl", "password": PASSWORDS["stovectl"]},
    "tls": {},  # the client certificate's name is the user name
}
PROTOCOLS = [
    pytest.param(MQTTProtocolVersion.MQTTv5, id="v5"),
    pytest.param(MQTTProtocolVersion.MQTTv311, id="v311"),
]


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel prints them) with a TCP socket listening on ``port``."""
    addresses = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for row in table.read_text(encoding="ascii").splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == TCP_LISTEN and int(hex_port, 16) == port:
                addresses.add(address)
    return addresses


@pytest.mark.parametrize("variant", ["anonymous", "password", "tls"])
def test_each_variant_delivers_qos1_messages(
    start_broker: StartBroker, connect: Connect, variant: Variant
) -> None:
    """A client of each variant subscribes, publishes at QoS 1, is acknowledged and receives it."""
    broker = start_broker(variant)
    probe = connect(broker, **CREDENTIALS[variant])

    assert [code.value for code in probe.subscribe("stovectl/#")] == [1]
    assert probe.publish("stovectl/hob/state", b"ON").value == 0
    message = probe.next_message()

    assert (message.topic, message.payload, message.qos) == ("stovectl/hob/state", b"ON", 1)


def test_listener_binds_loopback_only(start_broker: StartBroker) -> None:
    """The broker listens on 127.0.0.1 alone, never on every interface."""
    broker = start_broker("anonymous")

    assert listening_addresses(broker.port) == {"0100007F"}  # 127.0.0.1, little-endian hex


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_password_is_refused(
    start_broker: StartBroker, start_probe: Callable[..., Probe], protocol: MQTTProtocolVersion
) -> None:
    """A wrong password gets a CONNACK refusing with "not authorized"."""
    broker = start_broker("password")
    probe = start_probe(broker, protocol=protocol, user="stovectl", password="wrong")

    # Mosquitto answers 135 (v5), or 5 (3.1.1), which paho reports as 135 too.
    assert probe.connack().value == NOT_AUTHORIZED


def test_password_variant_refuses_anonymous_clients(
    start_broker: StartBroker, start_probe: Callable[..., Probe]
) -> None:
    """A client without a user name gets a CONNACK refusing with "not authorized"."""
    broker = start_broker("password")
    probe = start_probe(broker)

    assert probe.connack().value == NOT_AUTHORIZED


@pytest.mark.parametrize(
    ("protocol", "expected_puback"),
    [
        pytest.param(MQTTProtocolVersion.MQTTv5, NOT_AUTHORIZED, id="v5"),
        pytest.param(MQTTProtocolVersion.MQTTv311, 0, id="v311"),
    ],
)
def test_acl_denied_publish_is_acknowledged_but_not_delivered(
    start_broker: StartBroker,
    connect: Connect,
    protocol: MQTTProtocolVersion,
    expected_puback: int,
) -> None:
    """A read-only user's publish gets PUBACK 135 (v5) or plain PUBACK (3.1.1); it never arrives."""
    broker = start_broker("password")
    observer = connect(broker, protocol=protocol, **CREDENTIALS["password"])
    reader = connect(broker, protocol=protocol, user="reader", password=PASSWORDS["reader"])
    assert [code.value for code in observer.subscribe("stovectl/#")] == [1]
    assert [code.value for code in reader.subscribe("stovectl/#")] == [1]

    assert reader.publish("stovectl/hob/set", b"OFF").value == expected_puback
    # The broker acknowledged the denied publish before this one was sent, so had it been
    # routed it would reach the subscribers first: the barrier arriving first proves it was not.
    assert observer.publish("stovectl/barrier", b"").value == 0

    assert observer.next_message().topic == "stovectl/barrier"
    assert reader.next_message().topic == "stovectl/barrier"


def test_acl_lets_stovectl_read_but_not_write_homeassistant_status(
    start_broker: StartBroker, connect: Connect
) -> None:
    """User stovectl may subscribe to homeassistant/status, and its v5 publish there gets 135."""
    broker = start_broker("password")
    probe = connect(broker, **CREDENTIALS["password"])

    assert [code.value for code in probe.subscribe("homeassistant/status")] == [1]
    assert probe.publish("homeassistant/status", b"online").value == NOT_AUTHORIZED


def test_tls_client_without_certificate_is_refused(
    start_broker: StartBroker, start_probe: Callable[..., Probe]
) -> None:
    """A TLS client that trusts the CA but shows no certificate is dropped before any CONNACK."""
    broker = start_broker("tls")
    # Under TLS 1.3 (OpenSSL 3, Debian 12) the client's handshake completes; the broker's
    # "certificate required" alert then closes the connection.
    probe = start_probe(broker, certificate=False)

    assert probe.disconnected.wait(REPLY_TIMEOUT_SECONDS), "the connection was not dropped"
    assert probe.connacks.empty()


def test_kill9_then_restart_serves_new_connections_on_the_same_port(
    start_broker: StartBroker, connect: Connect
) -> None:
    """After SIGKILL the old client sees the connection drop; after restart a new client works."""
    broker = start_broker("anonymous")
    before = connect(broker)
    port = broker.port

    broker.kill9()
    assert before.disconnected.wait(REPLY_TIMEOUT_SECONDS), "the old client did not notice"
    broker.restart()
    after = connect(broker)

    assert broker.port == port
    assert [code.value for code in after.subscribe("stovectl/#")] == [1]
    assert after.publish("stovectl/hob/state", b"OFF").value == 0
    assert after.next_message().payload == b"OFF"
