"""A paho-mqtt client that tests use to observe and poke a broker.

The client runs paho's network loop in its own thread; its callbacks only hand
what arrived (CONNACK, SUBACK, PUBACK, messages, a dropped connection) to
queues and an event, and the test thread waits on those with a timeout. So a
test never sleeps in the hope that something has happened, and a missing reply
fails with a message instead of hanging.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.broker import Broker

REPLY_TIMEOUT_SECONDS = 5.0
KEEPALIVE_SECONDS = 30
RECONNECT_MIN_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 0.4

T = TypeVar("T")
_client_numbers = itertools.count(1)


def _get(source: queue.Queue[T], what: str, timeout: float) -> T:
    try:
        return source.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no {what} within {timeout}s") from None


class Probe:
    """One MQTT connection to a test broker, with TLS when the broker has it."""

    def __init__(
        self,
        broker: Broker,
        *,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        user: str | None = None,
        password: str | None = None,
        certificate: bool = True,
    ) -> None:
        self.broker = broker
        self.client_id = f"probe-{next(_client_numbers)}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol
        )
        # paho's loop thread sleeps out a reconnect wait (default 1 s, then doubling) before
        # loop_stop() can return: short waits keep teardown quick after a dropped connection.
        self.client.reconnect_delay_set(
            min_delay=RECONNECT_MIN_SECONDS,  # type: ignore[arg-type]  # floats work; hinted int
            max_delay=RECONNECT_MAX_SECONDS,  # type: ignore[arg-type]
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        if broker.tls is not None:
            if certificate:
                self.client.tls_set(
                    ca_certs=str(broker.tls.ca_cert),
                    certfile=str(broker.tls.client_cert),
                    keyfile=str(broker.tls.client_key),
                )
            else:
                self.client.tls_set(ca_certs=str(broker.tls.ca_cert))
        self.connacks: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[tuple[int, list[ReasonCode]]] = queue.Queue()
        self.pubacks: queue.Queue[tuple[int, ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.disconnected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    # Callbacks, on paho's loop thread: hand over, nothing else.
    def _on_connect(self, _c: Any, _u: Any, _f: Any, code: ReasonCode, _p: Any) -> None:
        self.disconnected.clear()
        self.connacks.put(code)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        self.subacks.put((mid, codes))

    def _on_publish(self, _c: Any, _u: Any, mid: int, code: ReasonCode, _p: Any) -> None:
        self.pubacks.put((mid, code))

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _code: ReasonCode, _p: Any) -> None:
        self.disconnected.set()

    def start(self) -> None:
        """Open the connection (TCP, and TLS if any) and start the loop thread; no waiting."""
        self.client.connect(self.broker.host, self.broker.port, keepalive=KEEPALIVE_SECONDS)
        self.client.loop_start()

    def close(self) -> None:
        """Disconnect and stop the loop thread; safe whether or not it connected."""
        self.client.disconnect()
        self.client.loop_stop()
        # paho leaves loop_start()'s wake-up socket pair open until garbage collection,
        # which then warns (ResourceWarning); close it now, as its __del__ would.
        self.client._reset_sockets()  # no public way to close them

    def connack(self, timeout: float = REPLY_TIMEOUT_SECONDS) -> ReasonCode:
        """The reason code of the next CONNACK."""
        return _get(self.connacks, f"CONNACK for {self.client_id}", timeout)

    def subscribe(self, topic: str, qos: int = 1) -> list[ReasonCode]:
        """Subscribe and return the SUBACK's reason codes (granted QoS, or a refusal)."""
        result, mid = self.client.subscribe(topic, qos=qos)
        assert result == MQTTErrorCode.MQTT_ERR_SUCCESS, f"subscribe {topic}: {result}"
        acked_mid, codes = _get(self.subacks, f"SUBACK for {topic}", REPLY_TIMEOUT_SECONDS)
        assert acked_mid == mid
        return codes

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> ReasonCode:
        """Publish at QoS 1 or 2 and return the acknowledgement's reason code."""
        info = self.client.publish(topic, payload, qos=qos)
        assert info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS, f"publish {topic}: {info.rc}"
        acked_mid, code = _get(self.pubacks, f"PUBACK for {topic}", REPLY_TIMEOUT_SECONDS)
        assert acked_mid == info.mid
        return code

    def next_message(self, timeout: float = REPLY_TIMEOUT_SECONDS) -> mqtt.MQTTMessage:
        """The next message delivered to this client's subscriptions."""
        return _get(self.messages, f"message for {self.client_id}", timeout)
