"""One MQTT connection for the whole daemon, with paho-mqtt's edges absorbed.

paho runs its network loop in a thread of its own (``loop_start``); every
callback here only hands what arrived to the asyncio loop, so the rest of
stovectl sees plain coroutines and ``Message`` values and never a paho type
(STYLE rule 4: only this module and the MQTT relay name paho).

What it promises its users:

* MQTT v5 by default (3.1.1 on request), a stable client id and a persistent
  session (``clean_start`` false, a session expiry), so QoS 1 commands the
  broker kept while the daemon was away are delivered when it is back.
* A last will: ``<will_topic>`` retained ``offline``; ``online`` is published
  retained on every connect.
* Reconnect with backoff (paho's, capped at ``reconnect_max_interval``);
  every subscription is sent again on each connect, and ``on_connect``
  listeners (state republishing, device queries) run after that.
* ``publish`` waits for the PUBACK and raises PublishFailed when it carries a
  v5 failure code (135: not authorised by the ACL), or when it does not come.
  Under 3.1.1 a broker acknowledges even a denied publish: nothing can tell.
* ``publish`` refuses at once, with NotConnected, while the broker is away:
  a relay command queued for later could land long after its moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from stovectl.errors import StovectlError
from stovectl.mqtt.options import ConnectionOptions

log = logging.getLogger(__name__)

PUBACK_TIMEOUT_SECONDS = 5.0
RECONNECT_MIN_SECONDS = 0.2


class MqttError(StovectlError):
    """Talking to the broker failed."""


class NotConnected(MqttError):
    """The broker is away right now; nothing was sent."""


class PublishFailed(MqttError):
    """The broker refused a publish (v5 reason code), or never acknowledged it."""

    def __init__(self, topic: str, message: str, reason_code: int | None = None) -> None:
        super().__init__(f"publish to {topic!r} failed: {message}")
        self.topic = topic
        self.reason_code = reason_code


@dataclass(frozen=True)
class Message:
    """A message as it arrived, in stovectl's terms."""

    topic: str
    payload: bytes
    retain: bool = False
    response_topic: str | None = None
    correlation_data: bytes | None = None
    message_expiry: int | None = None
    """Seconds of life left (v5 message expiry interval), as the broker forwarded it."""


Handler = Callable[[Message], None]
Listener = Callable[[], None]


class MqttConnection:
    """A paho client whose callbacks land on the asyncio loop."""

    def __init__(self, options: ConnectionOptions) -> None:
        self.options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._subscriptions: dict[str, list[Handler]] = {}
        self._connect_listeners: list[Listener] = []
        self._disconnect_listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._waiting: dict[int, asyncio.Future[ReasonCode]] = {}
        self._early: dict[int, ReasonCode] = {}
        self._abandoned: set[int] = set()
        self._connected = False
        self._first_connack: asyncio.Future[ReasonCode] | None = None
        self._ever_connected = False
        self._last_refusal: str | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._failing: set[str] = set()

    # -- life -------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def refusal(self) -> str | None:
        """Why the broker refused the last connection attempt, while it does."""
        return self._last_refusal

    @property
    def is_v5(self) -> bool:
        return self.options.protocol == "5"

    async def start(self, wait_seconds: float = 0) -> bool:
        """Connect in the background; wait up to ``wait_seconds`` for the first CONNACK.

        Never fails because the broker is away or refuses: it keeps trying, and
        says so in the log. Returns whether the connection is up.
        """
        self._loop = asyncio.get_running_loop()
        self._first_connack = self._loop.create_future()
        client = self._build_client()
        self._client = client
        client.connect_async(
            self.options.host, self.options.port, keepalive=self.options.keepalive_seconds,
            clean_start=self._clean_start(), properties=self._connect_properties(),
        )
        client.loop_start()
        thread = getattr(client, "_thread", None)
        if isinstance(thread, threading.Thread):
            thread.name = f"mqtt-{self.options.client_id}"
        if wait_seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._first_connack), wait_seconds)
        return self._connected

    async def drain(self, wait_seconds: float = PUBACK_TIMEOUT_SECONDS) -> None:
        """Wait for the publishes ``publish_soon`` started, up to ``wait_seconds``."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=wait_seconds)

    async def close(self) -> None:
        """Send what is pending, say ``offline`` (retained), disconnect; safe to call twice."""
        if self._client is not None and self._connected:
            await self.drain(wait_seconds=1.0)
        client, self._client = self._client, None
        if client is None:
            return
        if self._connected and self.options.will_topic is not None:
            with contextlib.suppress(Exception):
                info = client.publish(
                    self.options.will_topic, self.options.will_payloads[1], qos=1, retain=True
                )
                await asyncio.to_thread(info.wait_for_publish, 1.0)
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        # paho leaves loop_start()'s wake-up socket pair open until garbage collection,
        # which then warns (ResourceWarning); close it now, as its __del__ would.
        client._reset_sockets()  # no public way to close them
        self._connected = False
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()

    async def abort(self, drop_timeout: float = 2.0) -> None:
        """Drop the connection without a DISCONNECT, as a power cut would, then stop.

        The broker publishes the last will. The simulated devices use it to go
        offline the way a real relay does.
        """
        client = self._client
        if client is None:
            return
        dropped = asyncio.Event()
        self._disconnect_listeners.append(dropped.set)
        sock = client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dropped.wait(), drop_timeout)
        # Disconnected now, so close() neither says offline nor sends a DISCONNECT.
        await self.close()

    def _clean_start(self) -> bool | Literal[3]:
        # Under 3.1.1 the session is chosen by the client's clean_session instead.
        return self.options.clean_start if self.is_v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY

    def _connect_properties(self) -> Properties | None:
        if not self.is_v5:
            return None
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho's hint gap
        properties.SessionExpiryInterval = self.options.session_expiry_seconds
        return properties

    def _build_client(self) -> mqtt.Client:
        options = self.options
        protocol = MQTTProtocolVersion.MQTTv5 if self.is_v5 else MQTTProtocolVersion.MQTTv311
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=options.client_id,
            protocol=protocol,
            clean_session=None if self.is_v5 else options.clean_start,
        )
        client.reconnect_delay_set(
            min_delay=RECONNECT_MIN_SECONDS,  # type: ignore[arg-type]  # floats work; hinted int
            max_delay=options.reconnect_max_seconds,  # type: ignore[arg-type]
        )
        if options.username is not None:
            client.username_pw_set(options.username, options.password)
        if options.tls:
            context = ssl.create_default_context(
                cafile=options.ca_file
            )
            if options.cert_file is not None:
                context.load_cert_chain(options.cert_file, options.key_file)
            client.tls_set_context(context)
        if options.will_topic is not None:
            client.will_set(options.will_topic, options.will_payloads[1], qos=1, retain=True)
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # -- subscriptions and listeners --------------------------------------------------

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Call ``handler`` on the loop for each message matching ``topic_filter``.

        Kept across reconnects; subscribing after start sends it at once.
        """
        first = topic_filter not in self._subscriptions
        self._subscriptions.setdefault(topic_filter, []).append(handler)
        if first and self._connected and self._client is not None:
            self._client.subscribe(topic_filter, qos=1)

    def resubscribe(self, topic_filter: str) -> None:
        """Subscribe to a subscribed filter again: the broker resends its retained messages.

        MQTT replaces an identical subscription and sends the retained messages
        anew (3.1.1 §3.8.4; retain handling 0 under v5): a query for firmware
        that keeps its state retained and offers no other.
        """
        if topic_filter in self._subscriptions and self._connected and self._client is not None:
            self._client.subscribe(topic_filter, qos=1)

    def on_connect(self, listener: Listener) -> None:
        """Run ``listener`` on the loop after every (re)connect and resubscribe."""
        self._connect_listeners.append(listener)

    def on_disconnect(self, listener: Listener) -> None:
        self._disconnect_listeners.append(listener)

    # -- publishing -------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        correlation_data: bytes | None = None,
        message_expiry: int | None = None,
        ack_timeout: float = PUBACK_TIMEOUT_SECONDS,
    ) -> None:
        """Publish and wait for the broker's acknowledgement; raise MqttError if refused."""
        client = self._client
        if client is None or not self._connected:
            raise NotConnected(f"not connected to the broker at {self._where}")
        properties = None
        if self.is_v5 and (correlation_data is not None or message_expiry is not None):
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho's hint gap
            if correlation_data is not None:
                properties.CorrelationData = correlation_data
            if message_expiry is not None:
                properties.MessageExpiryInterval = message_expiry
        info = client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise NotConnected(f"not connected to the broker at {self._where}")
        if qos == 0:
            return
        assert self._loop is not None
        future: asyncio.Future[ReasonCode] = self._loop.create_future()
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._waiting[info.mid] = future
        if early is not None:
            code = early
        else:
            try:
                code = await asyncio.wait_for(future, ack_timeout)
            except TimeoutError:
                with self._lock:
                    self._abandoned.add(info.mid)  # a late PUBACK must not be kept forever
                raise PublishFailed(topic, f"no acknowledgement within {ack_timeout:g}s") from None
            finally:
                with self._lock:
                    self._waiting.pop(info.mid, None)
        if code.is_failure:
            raise PublishFailed(topic, f"the broker said {code.getName()!r} ({code.value})",
                                code.value)

    def publish_soon(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        """Publish from synchronous code; a failure is logged, never raised."""
        if self._loop is None:
            return
        task = self._loop.create_task(self._publish_logged(topic, payload, retain),
                                      name=f"mqtt-publish-{topic}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish_logged(self, topic: str, payload: str | bytes, retain: bool) -> None:
        # A broker's ACL that denies a topic denies it every second: say so once per
        # topic, and again only after it worked in between.
        try:
            await self.publish(topic, payload, retain=retain)
        except NotConnected:
            return  # republished on reconnect by whoever owns the topic
        except MqttError as error:
            if topic not in self._failing:
                self._failing.add(topic)
                log.warning("%s (said once until it works)", error)
            return
        if topic in self._failing:
            self._failing.discard(topic)
            log.info("publishing to %r works again", topic)

    @property
    def _where(self) -> str:
        return f"{self.options.host}:{self.options.port}"

    # -- paho's thread: hand everything to the loop ----------------------------------

    def _call(self, function: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us at shutdown
            loop.call_soon_threadsafe(function, *args)

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, code: ReasonCode, _props: Any
    ) -> None:
        if code.is_failure:
            self._call(self._refused, str(code.getName()), code.value)
            return
        # Subscribe from paho's thread, before any listener publishes: replies to
        # queries a listener sends must find the subscription in place.
        for topic_filter in list(self._subscriptions):
            client.subscribe(topic_filter, qos=1)
        self._call(self._connected_now, code)

    def _refused(self, name: str, value: int) -> None:
        message = f"the broker at {self._where} refused the connection: {name} ({value})"
        if message != self._last_refusal:
            log.error("%s; retrying", message)
            self._last_refusal = message
        if self._first_connack is not None and not self._first_connack.done():
            self._first_connack.set_result(ReasonCode(PacketTypes.CONNACK, identifier=value))

    def _connected_now(self, code: ReasonCode) -> None:
        self._connected = True
        self._last_refusal = None
        if self._ever_connected:
            log.info("MQTT connection to %s is back", self._where)
        else:
            log.info("connected to the MQTT broker at %s", self._where)
        self._ever_connected = True
        if self._first_connack is not None and not self._first_connack.done():
            self._first_connack.set_result(code)
        if self.options.will_topic is not None:
            self.publish_soon(self.options.will_topic, self.options.will_payloads[0], retain=True)
        _notify(self._connect_listeners, "connect")

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, code: ReasonCode, _props: Any
    ) -> None:
        self._call(self._disconnected_now, code)

    def _disconnected_now(self, code: ReasonCode) -> None:
        was_connected, self._connected = self._connected, False
        if was_connected and self._client is not None:
            log.warning("lost the MQTT connection to %s (%s); reconnecting", self._where,
                        code.getName())
        if was_connected:
            _notify(self._disconnect_listeners, "disconnect")

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, code: ReasonCode, _props: Any
    ) -> None:
        # Called with paho's own lock held: take ours only briefly, never call paho here.
        with self._lock:
            future = self._waiting.get(mid)
            if future is None:
                if mid in self._abandoned:
                    self._abandoned.discard(mid)
                else:
                    self._early[mid] = code
                return
        self._call(_resolve, future, code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, raw: mqtt.MQTTMessage) -> None:
        try:
            message = _translate(raw)
        except Exception:  # a topic that is not UTF-8: nothing can route it
            log.warning("dropped an MQTT message whose topic is not UTF-8")
            return
        self._call(self._dispatch, message)

    def _dispatch(self, message: Message) -> None:
        for topic_filter, handlers in list(self._subscriptions.items()):
            if not mqtt.topic_matches_sub(topic_filter, message.topic):
                continue
            for handler in list(handlers):
                try:
                    handler(message)
                except Exception:
                    log.exception("handling an MQTT message on %s failed", message.topic)


def _notify(listeners: list[Listener], what: str) -> None:
    """Call each listener; one that raises is logged and does not stop the others."""
    for listener in list(listeners):
        try:
            listener()
        except Exception:
            log.exception("MQTT %s listener %r failed", what, listener)


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Turn Nagle's algorithm off: a relay command must not wait ~40 ms for a delayed ACK.

    A Tasmota shutoff is two small publishes in a row; with Nagle the second
    waits for the broker to acknowledge the first at TCP level.
    """
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _resolve(future: asyncio.Future[ReasonCode], code: ReasonCode) -> None:
    if not future.done():
        future.set_result(code)


def _translate(raw: mqtt.MQTTMessage) -> Message:
    properties = getattr(raw, "properties", None)
    response_topic = getattr(properties, "ResponseTopic", None) if properties else None
    correlation = getattr(properties, "CorrelationData", None) if properties else None
    expiry = getattr(properties, "MessageExpiryInterval", None) if properties else None
    return Message(
        topic=raw.topic,
        payload=bytes(raw.payload),
        retain=bool(raw.retain),
        response_topic=response_topic if isinstance(response_topic, str) else None,
        correlation_data=bytes(correlation) if correlation is not None else None,
        message_expiry=expiry if isinstance(expiry, int) else None,
    )
