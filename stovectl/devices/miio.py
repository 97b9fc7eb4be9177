"""A Mi Home relay on the LAN, driven through python-miio, with its sharp edges absorbed.

python-miio 0.5.12 is blocking, not thread-safe, waits a fixed 5 s for a
handshake, does not check MiOT per-item codes, and lets socket errors escape
unwrapped (PROTOCOLS.md). So each device gets one serial lane (``MiioLane``,
which the Xiaoai speaker uses too: a thread of its own, so a dead device
delays only its own burners), a handshake bounded by ``handshake_timeout``,
request ids that continue from the last ones used (a device silently drops
ids it saw recently), only explicit states on the wire,
every per-item code checked, and every foreign exception translated here and
nowhere else: DeviceRefused when the device answered no, DeviceUnavailable
when the outcome is unknown (the controller then reads back).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from miio.exceptions import DeviceError as MiioDeviceError
from miio.exceptions import DeviceException
from miio.miioprotocol import MiIOProtocol
from miio.protocol import Message
from pydantic import SecretStr

from stovectl.devices.base import Capabilities, RelayState
from stovectl.devices.miio_models import MiotChannel
from stovectl.errors import DeviceRefused, DeviceUnavailable
from stovectl.settings import MiioDeviceSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
HELLO = bytes.fromhex("21310020" + "ff" * 28)
PORT = 54321
MAX_ID = 9999
ID_SKIP = 200
"""Ids skipped on start beyond the last one saved, past any used since the save."""
ID_SAVE_EVERY = 50
CODES = {
    -4001: "not readable", -4002: "not writable", -4003: "no such property",
    -4004: "internal error", -4005: "bad value", -4006: "bad parameter",
}
OFF_DELAY_DISABLED = -1
OFF_DELAY_MAX_SECONDS = 43200
DETAIL_MAX_CHARS = 200
"""How much of a python-miio error an alarm quotes."""


def _one_line(error: BaseException, limit: int = DETAIL_MAX_CHARS) -> str:
    """python-miio's parser errors run over lines and hundreds of characters: an alarm
    and a journal line want one short line."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RequestIds(Protocol):
    """Where the last request id of each device is kept across restarts."""

    def load_request_id(self, device: str) -> int | None: ...

    def save_request_id(self, device: str, request_id: int) -> None: ...


class _Protocol(MiIOProtocol):
    """python-miio's protocol with a handshake that waits ``handshake_timeout``, not 5 s.

    Its own handshake also leaves its socket open; this one closes it.
    """

    def __init__(self, ip: str, token: str, start_id: int, timeout: float, hello: float) -> None:
        super().__init__(ip, token, start_id, 0, True, timeout)  # type: ignore[arg-type]  # a float timeout works; the hint says int
        self._hello_timeout = hello

    def send_handshake(self, *, retry_count: int = 0) -> Any:
        try:
            expected = socket.gethostbyname(self.ip)
        except OSError as error:
            raise DeviceException(f"cannot resolve {self.ip!r}: {error}") from None
        deadline = time.monotonic() + self._hello_timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(3):  # as python-miio does: hellos are cheap, answers get lost
                sock.sendto(HELLO, (expected, PORT))
            while True:
                # Only the device we asked may answer: a stray datagram from another
                # host must not become this device's id and clock.
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeviceException(f"no answer to hello within {self._hello_timeout:g}s")
                sock.settimeout(left)
                try:
                    data, address = sock.recvfrom(1024)
                except TimeoutError:
                    continue
                if address[0] == expected:
                    break
        reply = Message.parse(data)
        header = reply.header.value
        self._device_id = header.device_id
        self._device_ts = header.ts
        self._discovered = True
        return reply

    def exchange(self, method: str, params: Any) -> Any:
        """One request, no hidden retries: the controller retries, with backoff.

        A failed handshake raises _NotSent (the request never left); after a lost
        reply the next request handshakes again, as the device may have restarted.
        """
        if not self._discovered:
            try:
                self.send_handshake()
            except Exception as error:  # also a garbage hello reply or a socket error
                raise _NotSent(str(error) or type(error).__name__) from None
        sent_id = self.raw_id + 1 if self.raw_id + 1 < MAX_ID else 1
        try:
            result = self.send(method, params, 0)
        except DeviceException:
            self._discovered = False
            raise
        finally:
            # python-miio takes the reply's id as its own: a reply whose id is not a
            # number would break every later request. Ours continue from what we sent.
            reply_id = self.raw_id
            if type(reply_id) is not int or not 0 < reply_id < MAX_ID:
                self._MiIOProtocol__id = sent_id  # python-miio keeps it name-mangled
        if reply_id != sent_id:
            # Not the answer to this request: its result must not be taken for one.
            self._MiIOProtocol__id = sent_id
            raise DeviceException(f"a reply with id {reply_id!r} to request {sent_id}")
        return result


class _NotSent(Exception):
    """The device did not answer the handshake, so the request was never sent."""


class MiioLane:
    """One miIO device's serial lane: a thread of its own, continued request ids, our errors.

    Relays and speakers alike send through one. ``name`` labels its errors and its
    thread; its request ids are kept in ``ids`` under ``ids_key`` (default: the name).
    """

    def __init__(
        self,
        name: str,
        host: str,
        token: SecretStr,
        timeout_seconds: float,
        handshake_timeout_seconds: float,
        ids: RequestIds | None = None,
        ids_key: str | None = None,
    ) -> None:
        self.name = name
        self._ids_key = ids_key or name
        self._host = host
        self._token = token
        self._timeout_seconds = timeout_seconds
        self._handshake_timeout_seconds = handshake_timeout_seconds
        self._ids = ids
        self._executor: ThreadPoolExecutor | None = None
        self._protocol: _Protocol | None = None
        self._saved_id = 0

    async def start(self) -> None:
        saved = self._ids.load_request_id(self._ids_key) if self._ids else None
        # Continue past the ids the device may still remember, or start anywhere.
        start_id = (saved + ID_SKIP) % MAX_ID if saved else random.randint(1, MAX_ID - ID_SKIP)  # noqa: S311  # not cryptographic
        self._saved_id = start_id
        self._protocol = _Protocol(
            self._host, self._token.get_secret_value(), start_id,
            self._timeout_seconds, self._handshake_timeout_seconds,
        )
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"miio-{self.name}"
        )

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._save_id(force=True)

    async def send(self, method: str, params: Any) -> Any:
        """One request, after those before it; python-miio's errors arrive translated."""
        protocol = self._protocol
        if protocol is None or self._executor is None:
            raise DeviceUnavailable(self.name, "not started")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor,
                lambda: self._translate(lambda: protocol.exchange(method, params)),
            )
        finally:
            self._save_id()

    def _translate(self, call: Callable[[], T]) -> T:
        """Run a python-miio call, turning whatever it raises into our tree (STYLE 4)."""
        try:
            return call()
        except _NotSent as error:
            raise DeviceUnavailable(
                self.name, f"no answer ({error})", may_have_acted=False
            ) from None
        except MiioDeviceError as error:
            detail = error.args[0] if error.args else error
            raise DeviceRefused(self.name, f"answered with an error: {detail}") from None
        except DeviceException as error:
            cause = error.__cause__
            if cause is not None and "Checksum" in type(cause).__name__:
                raise DeviceUnavailable(
                    self.name, "reply checksum does not match: is the token right?"
                ) from None
            raise DeviceUnavailable(self.name, f"no answer ({_one_line(error)})") from None
        except OSError as error:
            raise DeviceUnavailable(self.name, f"network error: {error}") from None
        except Exception as error:
            # A stray datagram can make python-miio raise TypeError and the like: the
            # outcome is unknown, which the controller settles by reading back.
            raise DeviceUnavailable(
                self.name, "outcome unknown: a reply that could not be decoded "
                f"({type(error).__name__}: {_one_line(error)})",
            ) from None

    def _save_id(self, *, force: bool = False) -> None:
        if self._ids is None or self._protocol is None:
            return
        current = int(self._protocol.raw_id)
        if force or abs(current - self._saved_id) >= ID_SAVE_EVERY:
            self._ids.save_request_id(self._ids_key, current)
            self._saved_id = current


class MiioRelay:
    """A relay device speaking miIO; MiOT properties or legacy ``set_power``."""

    def __init__(self, settings: MiioDeviceSettings, ids: RequestIds | None = None) -> None:
        self._settings = settings
        self._mapping = settings.mapping
        token = settings.token
        assert token is not None  # resolved at load
        self._lane = MiioLane(
            settings.id, settings.host, token, settings.timeout.total_seconds(),
            settings.handshake_timeout.total_seconds(), ids,
        )

    @property
    def id(self) -> str:
        return self._settings.id

    @property
    def capabilities(self) -> Capabilities:
        pulse = self._settings.device_pulse and any(
            c.off_delay_piid is not None for c in self._mapping.channels
        )
        return Capabilities(read_back=self._settings.verify, device_pulse=pulse)

    @property
    def poll_interval_seconds(self) -> float:
        return self._settings.poll_interval.total_seconds()

    @property
    def lane(self) -> MiioLane:
        """This device's one lane, for MiOT sensors read from the same device."""
        return self._lane

    def pulse_supported(self, channel: int, state: RelayState) -> bool:
        # An off-delay only ever switches a channel off: it pulses ON, never OFF.
        return (
            self.capabilities.device_pulse and state is RelayState.ON
            and self._channel(channel).off_delay_piid is not None
        )

    async def start(self) -> None:
        await self._lane.start()

    async def close(self) -> None:
        await self._lane.close()

    async def write(self, channel: int, state: RelayState) -> None:
        mapping = self._channel(channel)
        if self._mapping.protocol == "legacy":
            self._expect_ok(await self._lane.send("set_power", [state.value]), "set_power")
            return
        items = []
        if mapping.off_delay_piid is not None and state is RelayState.ON:
            # A plain on must never switch itself off later (a lock is a plain on).
            items.append(self._item(mapping, mapping.off_delay_piid, OFF_DELAY_DISABLED))
        items.append(self._item(mapping, mapping.piid, state is RelayState.ON))
        self._check_codes(await self._lane.send("set_properties", items), len(items))

    async def pulse(self, channel: int, state: RelayState, seconds: float) -> None:
        """Switch ON and let the device switch OFF by itself after ``seconds``."""
        mapping = self._channel(channel)
        if not self.pulse_supported(channel, state) or mapping.off_delay_piid is None:
            raise DeviceRefused(self.id, f"channel {channel} cannot pulse {state}")
        delay = min(OFF_DELAY_MAX_SECONDS, max(1, math.ceil(seconds)))
        items = [
            self._item(mapping, mapping.off_delay_piid, delay),
            self._item(mapping, mapping.piid, True),
        ]
        self._check_codes(await self._lane.send("set_properties", items), len(items))

    async def read(self) -> dict[int, RelayState]:
        if self._mapping.protocol == "legacy":
            reply = await self._lane.send("get_prop", ["power"])
            if not (isinstance(reply, list) and reply and reply[0] in ("on", "off")):
                raise DeviceRefused(self.id, f"get_prop power answered {reply!r}")
            return {1: RelayState(reply[0])}
        items = [
            {"did": f"ch{n}", "siid": c.siid, "piid": c.piid}
            for n, c in enumerate(self._mapping.channels, start=1)
        ]
        reply = await self._lane.send("get_properties", items)
        self._check_codes(reply, len(items))
        states = {}
        for n, (asked, item) in enumerate(zip(items, reply, strict=True), start=1):
            # An item about another property must never pass for this channel's state:
            # read as "cut", it would verify a shutoff that did not happen.
            if (item.get("siid"), item.get("piid")) != (asked["siid"], asked["piid"]):
                raise DeviceRefused(
                    self.id, f"channel {n}: asked for siid {asked['siid']} piid "
                    f"{asked['piid']}, answered siid {item.get('siid')!r} piid "
                    f"{item.get('piid')!r}",
                )
            value = item.get("value")
            if not isinstance(value, bool):
                raise DeviceRefused(self.id, f"channel {n} reads {value!r}, not true/false")
            states[n] = RelayState.ON if value else RelayState.OFF
        return states

    async def send(self, method: str, params: Any) -> Any:
        """One raw request in this device's lane (doctor, voice triggers)."""
        return await self._lane.send(method, params)

    # -- payloads ---------------------------------------------------------------------

    def _channel(self, channel: int) -> MiotChannel:
        if not 1 <= channel <= len(self._mapping.channels):
            raise DeviceRefused(self.id, f"has no channel {channel}")
        return self._mapping.channels[channel - 1]

    @staticmethod
    def _item(mapping: MiotChannel, piid: int, value: bool | int) -> dict[str, Any]:
        return {"did": f"{mapping.siid}-{piid}", "siid": mapping.siid, "piid": piid,
                "value": value}

    def _check_codes(self, reply: Any, expected: int) -> None:
        """python-miio does not check MiOT per-item codes; a refused item is a failure."""
        if not isinstance(reply, list) or len(reply) != expected:
            raise DeviceRefused(self.id, f"unexpected reply {reply!r}")
        for item in reply:
            code = item.get("code") if isinstance(item, dict) else None
            if code not in (0, 1):
                meaning = CODES.get(code, "unknown code") if isinstance(code, int) else "no code"
                raise DeviceRefused(
                    self.id,
                    f"refused siid {item.get('siid')} piid {item.get('piid')}: "
                    f"code {code} ({meaning})" if isinstance(item, dict) else f"bad item {item!r}",
                )

    def _expect_ok(self, reply: Any, method: str) -> None:
        if reply != ["ok"]:
            raise DeviceRefused(self.id, f"{method} answered {reply!r}")
