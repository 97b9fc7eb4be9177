"""An MqttConnection stand-in that is a broker of its own, for fuzzing at thousands of examples.

The bridge, the MQTT relay and the MQTT sensors only ever subscribe, listen for
(dis)connects and publish; ``InProcessBroker`` does those on the event loop,
without a socket. A delivered message reaches every matching handler at once,
and a handler that raises fails the test: the real connection would log it and
carry on, which hides exactly what the campaign looks for. Everything published
is kept, in order, for the invariants (nothing on a command topic, nothing
retained but state). ``on_publish`` lets a test play a device that answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from paho.mqtt.client import topic_matches_sub

from stovectl.mqtt.connection import Message


@dataclass(frozen=True)
class Published:
    topic: str
    payload: bytes
    retain: bool
    correlation_data: bytes | None


class InProcessBroker:
    """Subscriptions, publishes and (dis)connect listeners, all on the running loop."""

    is_v5 = True

    def __init__(self) -> None:
        self.is_connected = True
        self.published: list[Published] = []
        self.on_publish: Callable[[Published], None] | None = None
        """Called with each publish as it happens: a test's device answering a command."""
        self._handlers: list[tuple[str, Callable[[Message], None]]] = []
        self._connect: list[Callable[[], None]] = []
        self._disconnect: list[Callable[[], None]] = []
        self._news = asyncio.Event()

    # -- what MqttConnection offers --------------------------------------------------

    def subscribe(self, topic_filter: str, handler: Callable[[Message], None]) -> None:
        self._handlers.append((topic_filter, handler))

    def resubscribe(self, topic_filter: str) -> None:
        """No retained store here: asking again brings nothing."""

    def on_connect(self, listener: Callable[[], None]) -> None:
        self._connect.append(listener)

    def on_disconnect(self, listener: Callable[[], None]) -> None:
        self._disconnect.append(listener)

    async def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        correlation_data: bytes | None = None,
        message_expiry: int | None = None,
        ack_timeout: float = 5.0,
    ) -> None:
        self._record(topic, payload, retain, correlation_data)

    def publish_soon(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        self._record(topic, payload, retain, None)

    # -- what a test does ----------------------------------------------------------------

    def deliver(self, message: Message) -> None:
        """Hand ``message`` to every handler whose filter matches, as the broker would."""
        for topic_filter, handler in list(self._handlers):
            if topic_matches_sub(topic_filter, message.topic):
                handler(message)

    async def next_publish(self, where: Callable[[Published], bool], after: int) -> Published:
        """The first publish from index ``after`` on that satisfies ``where``; waits for it."""
        while True:
            for published in self.published[after:]:
                if where(published):
                    return published
            self._news = asyncio.Event()
            await self._news.wait()

    def _record(
        self, topic: str, payload: str | bytes, retain: bool, correlation: bytes | None
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        published = Published(topic, data, retain, correlation)
        self.published.append(published)
        self._news.set()
        if self.on_publish is not None:
            self.on_publish(published)
