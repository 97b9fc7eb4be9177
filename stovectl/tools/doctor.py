"""``stovectl doctor``: check each configured device, one step and one verdict at a time.

Doctor talks to the devices itself, through the daemon's own drivers, so it
works without a daemon and what passes here works there (MQTT relays and their
broker: ``doctor_mqtt``). For a miIO device the
steps are: reachable (hello answered within ``handshake_timeout``), token (the
device answers ``miIO.info``; one that answers hello but ignores commands has
another token), state (every channel reads), mapping (each channel's switch,
and its off-delay when ``device_pulse``, answers MiOT code 0). A step that
cannot go on without the one before is skipped. No token is ever printed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import click

from stovectl.control.client import ControlClient
from stovectl.devices.base import RelayState
from stovectl.devices.miio import CODES, MiioRelay
from stovectl.durations import format_duration
from stovectl.errors import DeviceError, DeviceRefused, DeviceUnavailable, StovectlError
from stovectl.settings import BurnerSettings, MiioDeviceSettings, MqttDeviceSettings, Settings
from stovectl.tools.discover import say_hello

TOKEN_ATTEMPTS = 3
"""miIO.info tries before calling the token wrong: one lost reply is not a verdict."""
DAEMON_PING_SECONDS = 1.0
EXIT_OK = 0
EXIT_FAILED = 1
STEPS = ("reachable", "token", "state", "mapping")


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """One step's verdict, in one line."""

    step: str
    verdict: Verdict
    message: str


@dataclass
class DeviceReport:
    """Every step's verdict for one device, in the order they ran."""

    device: str
    kind: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.verdict is not Verdict.FAIL for check in self.checks)

    def add(self, step: str, verdict: Verdict, message: str) -> bool:
        """Record a verdict; True when the next step may run on it."""
        self.checks.append(Check(step, verdict, message))
        return verdict is not Verdict.FAIL

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "kind": self.kind, "ok": self.ok,
                "checks": [asdict(check) for check in self.checks]}


def detail(error: DeviceError) -> str:
    """The error's message without the device name the report already shows."""
    return str(error).removeprefix(f"device {error.device!r}: ")


def describe_channels(
    states: Mapping[int, RelayState], burners: Iterable[BurnerSettings]
) -> str:
    """``channel 1 off (left: armed), channel 2 off``: each state, and what it means."""
    by_channel = {burner.channel: burner for burner in burners}
    parts = []
    for channel, state in sorted(states.items()):
        burner = by_channel.get(channel)
        meaning = ""
        if burner is not None:
            meaning = f" ({burner.id}: {'cut' if state.value == burner.cut_state else 'armed'})"
        parts.append(f"channel {channel} {state.value}{meaning}")
    return ", ".join(parts)


class _MiioCheckup:
    """The steps for one miIO device, through a MiioRelay of its own."""

    def __init__(self, device: MiioDeviceSettings, burners: list[BurnerSettings]) -> None:
        self.device = device
        self.burners = {b.channel: b for b in burners if b.device == device.id}
        self.report = DeviceReport(device.id, "miio")
        self._leaked_token: str | None = None
        self._model: str | None = None

    async def run(self) -> DeviceReport:
        relay = MiioRelay(self.device)
        steps: tuple[Callable[[MiioRelay], Awaitable[bool]], ...] = (
            self._reachable, self._token, self._state, self._mapping,
        )
        await relay.start()
        try:
            for index, step in enumerate(steps):
                if not await step(relay):
                    for skipped in STEPS[index + 1:]:
                        self.report.add(skipped, Verdict.SKIP, f"skipped: {STEPS[index]} failed")
                    break
        finally:
            await relay.close()
        return self.report

    async def _reachable(self, relay: MiioRelay) -> bool:
        host = self.device.host
        timeout = self.device.handshake_timeout.total_seconds()
        started = time.monotonic()
        try:
            answers = await asyncio.to_thread(say_hello, host, timeout, first_only=True)
        except OSError as error:
            return self.report.add("reachable", Verdict.FAIL,
                                   f"cannot send to {host}: {error.strerror or error}")
        if not answers:
            return self.report.add(
                "reachable", Verdict.FAIL,
                f"unreachable: no answer to hello from {host} within "
                f"{format_duration(timeout)} (handshake_timeout); is it powered, on this "
                "network, and is host right? `stovectl discover` lists the devices that answer",
            )
        elapsed_ms = (time.monotonic() - started) * 1000
        self._leaked_token = answers[0].token
        return self.report.add(
            "reachable", Verdict.OK,
            f"{host} answered hello in {elapsed_ms:.0f} ms (device id {answers[0].device_id:08x})",
        )

    async def _token(self, relay: MiioRelay) -> bool:
        token = self.device.token
        assert token is not None  # resolved at load
        configured = token.get_secret_value().lower()
        if self._leaked_token is not None and self._leaked_token != configured:
            return self.report.add(
                "token", Verdict.FAIL,
                "wrong: the device's hello carries its token, and it is not the configured one "
                "(`stovectl discover` shows it)",
            )
        handshake_failures = 0
        for _ in range(TOKEN_ATTEMPTS):
            try:
                info = await relay.send("miIO.info", [])
            except DeviceRefused as error:
                # It decrypted the request and answered, which only the right token allows.
                return self.report.add("token", Verdict.OK,
                                       f"right: the device answers (miIO.info: {detail(error)})")
            except DeviceUnavailable as error:
                handshake_failures += not error.may_have_acted
                continue
            return self._describe(info)
        if handshake_failures == TOKEN_ATTEMPTS:
            return self.report.add("token", Verdict.FAIL,
                                   "unknown: the device stopped answering hello; a flaky network?")
        return self.report.add(
            "token", Verdict.FAIL,
            f"wrong: the device answers hello but not commands (miIO.info timed out "
            f"{TOKEN_ATTEMPTS} times). Get the token again (`stovectl discover`, a Mi Home "
            "backup or your Xiaomi account); it changes when the device is reset or re-paired",
        )

    def _describe(self, info: Any) -> bool:
        info = info if isinstance(info, dict) else {}
        model, firmware = info.get("model"), info.get("fw_ver")
        self._model = model if isinstance(model, str) else None
        self.report.add("token", Verdict.OK,
                        f"right: miIO.info answered (model {model}, firmware {firmware})")
        configured = self.device.model
        generic = configured.startswith("generic.")  # a placeholder, not a real model name
        if self._model and self.device.channels is None and not generic and (
            self._model != configured
        ):
            self.report.add(
                "model", Verdict.WARN,
                f"the device says it is {self._model}, the config says {configured}, "
                "whose table gives the channel mapping",
            )
        return True

    def _model_hint(self) -> str:
        if self._model is None or self._model == self.device.model:
            return ""
        return f" (the device says it is {self._model}; is model right?)"

    async def _state(self, relay: MiioRelay) -> bool:
        if not self.device.verify:
            return self.report.add("state", Verdict.SKIP,
                                   "verify = false: this device's state is not read back")
        try:
            states = await relay.read()
        except DeviceUnavailable as error:
            return self.report.add("state", Verdict.FAIL, f"no answer: {detail(error)}")
        except DeviceRefused as error:
            # The mapping step says which property is to blame, so it still runs.
            self.report.add("state", Verdict.FAIL,
                            f"cannot read: {detail(error)}{self._model_hint()}")
            return True
        return self.report.add(
            "state", Verdict.OK, describe_channels(states, self.burners.values()))

    async def _mapping(self, relay: MiioRelay) -> bool:
        mapping = self.device.mapping
        missing = [
            f"burner {b.id}: channel {b.channel} does not exist (the device has "
            f"{len(mapping.channels)})"
            for b in self.burners.values() if b.channel > len(mapping.channels)
        ]
        if missing:
            return self.report.add("mapping", Verdict.FAIL, "; ".join(missing))
        if not self.device.verify:
            return self.report.add(
                "mapping", Verdict.SKIP, "verify = false: nothing can be read back; "
                "`stovectl doctor --wiring-test BURNER` proves each burner's channel",
            )
        if mapping.protocol == "legacy":
            return await self._legacy_mapping(relay)
        probes: list[_Probe] = []
        for number, channel in enumerate(mapping.channels, start=1):
            burner = self.burners.get(number)
            who = f"channel {number} ({burner.id if burner else 'no burner'})"
            probes.append(_Probe(who, "switch", channel.siid, channel.piid, bool))
            if self.device.device_pulse and channel.off_delay_piid is not None:
                probes.append(_Probe(who, "off-delay", channel.siid, channel.off_delay_piid, int))
        items = [{"did": f"doctor-{n}", "siid": p.siid, "piid": p.piid}
                 for n, p in enumerate(probes)]
        try:
            reply = await relay.send("get_properties", items)
        except DeviceError as error:
            return self.report.add("mapping", Verdict.FAIL,
                                   f"get_properties failed: {detail(error)}{self._model_hint()}")
        answers = {item.get("did"): item for item in reply if isinstance(item, dict)} if (
            isinstance(reply, list)) else {}
        problems = []
        for item, probe in zip(items, probes, strict=True):
            problem = _property_problem(answers.get(item["did"]), probe.kind)
            if problem:
                problems.append(f"{probe.who} {probe.role} siid {probe.siid} piid {probe.piid}: "
                                f"{problem}")
        if problems:
            return self.report.add("mapping", Verdict.FAIL,
                                   "; ".join(problems) + self._model_hint())
        by_channel: dict[str, list[str]] = {}
        for probe in probes:
            by_channel.setdefault(probe.who, []).append(f"{probe.role} {probe.siid}-{probe.piid}")
        return self.report.add(
            "mapping", Verdict.OK,
            "every property answers code 0: "
            + "; ".join(f"{who} {', '.join(found)}" for who, found in by_channel.items()),
        )

    async def _legacy_mapping(self, relay: MiioRelay) -> bool:
        try:
            reply = await relay.send("get_prop", ["power"])
        except DeviceError as error:
            return self.report.add("mapping", Verdict.FAIL,
                                   f"get_prop power failed: {detail(error)}{self._model_hint()}")
        if not (isinstance(reply, list) and reply and reply[0] in ("on", "off")):
            return self.report.add("mapping", Verdict.FAIL,
                                   f"get_prop power answers {reply!r}, not on/off")
        return self.report.add("mapping", Verdict.OK,
                               "legacy power: get_prop power answers on/off")


@dataclass(frozen=True)
class _Probe:
    """One mapped property to read: whose it is, its role and address, its value's type."""

    who: str
    role: str
    siid: int
    piid: int
    kind: type


def _property_problem(item: dict[str, Any] | None, kind: type) -> str | None:
    """What is wrong with one get_properties answer, or None."""
    if item is None:
        return "no answer for it in the reply"
    code = item.get("code")
    if code != 0:
        meaning = CODES.get(code, "unknown code") if isinstance(code, int) else "no code"
        return f"code {code} ({meaning})"
    value = item.get("value")
    if kind is bool and not isinstance(value, bool):
        return f"reads {value!r}, not true/false: not a switch"
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        return f"reads {value!r}, not a number of seconds: not an off-delay"
    return None


async def diagnose(settings: Settings) -> list[DeviceReport]:
    """Check every configured device at once; reports in config order."""

    async def checkup(device: Any) -> DeviceReport:
        if isinstance(device, MiioDeviceSettings):
            return await _MiioCheckup(device, settings.burners).run()
        report = DeviceReport(device.id, device.kind)
        report.add("simulated", Verdict.OK, "nothing to check")
        return report

    # Imported here: doctor_mqtt builds on this module's reports.
    from stovectl.tools.doctor_mqtt import diagnose_mqtt  # noqa: PLC0415

    others = [d for d in settings.devices if not isinstance(d, MqttDeviceSettings)]
    over_mqtt, reports = await asyncio.gather(
        diagnose_mqtt(settings), asyncio.gather(*(checkup(d) for d in others))
    )
    return [*over_mqtt, *reports]


def daemon_is_running(socket: Path) -> bool:
    """True when a daemon answers ``ping`` on the control socket."""
    try:
        with ControlClient(socket, DAEMON_PING_SECONDS) as client:
            return bool(client.call("ping").get("ok"))
    except StovectlError:
        return False


def format_reports(reports: list[DeviceReport]) -> str:
    lines = []
    for report in reports:
        lines.append(f"{report.device} ({report.kind})")
        lines += [f"  {c.verdict.value:<4}  {c.step}: {c.message}" for c in report.checks]
    failed = [report.device for report in reports if not report.ok]
    lines.append("")
    brokers = sum(report.kind == "mqtt broker" for report in reports)
    checked = f"{len(reports) - brokers} device(s)" + (" and the MQTT broker" if brokers else "")
    lines.append(f"doctor: {', '.join(failed)} failed a check" if failed
                 else f"doctor: all {checked} passed")
    return "\n".join(lines)


def run_doctor(settings: Settings, socket: Path, as_json: bool) -> int:
    """Check the devices, print the verdicts, return 0 when all passed and 1 otherwise."""
    # python-miio logs every lost datagram as an error, and the MQTT parts log what the
    # daemon's operator should hear; here the verdicts say what matters.
    for noisy in ("miio", "stovectl.devices.mqtt", "stovectl.mqtt.connection"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    daemon_running = daemon_is_running(socket)
    reports = asyncio.run(diagnose(settings))
    passed = all(report.ok for report in reports)
    if as_json:
        click.echo(json.dumps({"ok": passed, "daemon_running": daemon_running,
                               "devices": [report.as_dict() for report in reports]}, indent=2))
    else:
        if daemon_running:
            click.echo(f"note: a stovectl daemon is running ({socket}); doctor's requests "
                       "interleave with its polls, which is harmless\n")
        click.echo(format_reports(reports))
    return EXIT_OK if passed else EXIT_FAILED
