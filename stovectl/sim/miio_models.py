"""What each simulated miIO model is, and how it answers a request's method.

The application layer of ``SimulatedMiioDevice``, kept apart from its sockets,
faults and timers: an explicit model table (STYLE rule 3) and ``answer``, a
pure function of the device's state that turns a method and its params into a
reply's ``result`` or ``error``. Mappings follow PROTOCOLS.md, "MiOT relay and
speaker mappings"; what the document does not say is marked unconfirmed. Every
MiOT model has the standard read-only device-information service (siid 1),
which also gives tests a property that refuses writes with -4002.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeGuard

from stovectl.devices.base import RelayState

Iid = tuple[int, int]
Value = bool | int | float | str  # float: sensor readings such as a temperature
OFF_DELAY_MAX_SECONDS = 43200
METHOD_NOT_FOUND = {"code": -32601, "message": "Method not found"}
INVALID_PARAMS = {"code": -32602, "message": "Invalid params"}
# What chuangmi plugs answer to an argument they do not take (unconfirmed).
INVALID_ARG = {"code": -5001, "message": "invalid_arg"}
OK, NOT_WRITABLE, NOT_FOUND, BAD_VALUE, BAD_PARAMETER = 0, -4002, -4003, -4005, -4006


@dataclass(frozen=True)
class MiotProperty:
    """One MiOT property: its JSON type, initial value, access and integer range."""

    kind: type[bool] | type[int] | type[str]
    initial: Value
    writable: bool = True
    minimum: int | None = None
    maximum: int | None = None

    def accepts(self, value: Any) -> bool:
        # bool is an int in Python but not in JSON: true is no integer, 1 is no boolean.
        if isinstance(value, bool) or self.kind is bool:
            return isinstance(value, bool) and self.kind is bool
        if not isinstance(value, self.kind):
            return False
        if isinstance(value, int):
            low = self.minimum if self.minimum is not None else value
            high = self.maximum if self.maximum is not None else value
            return low <= value <= high
        return True


@dataclass(frozen=True)
class ModelSpec:
    """A model: MiOT switches (one per channel, bool) or a single legacy power channel."""

    switches: tuple[Iid, ...] = ()
    """The (siid, piid) of each channel's on/off property, in channel order."""
    legacy_power: bool = False
    """One channel, switched by ``set_power`` and read by ``get_prop`` (no MiOT)."""
    properties: Mapping[Iid, MiotProperty] = field(default_factory=dict)
    off_delays: tuple[Iid, ...] = ()
    """Per channel, the property whose positive value switches the channel off after it."""
    speak: Iid | None = None
    """The (siid, aiid) of the action that speaks its text argument."""
    execute: Iid | None = None
    """The (siid, aiid) of the action that runs its text as a spoken command."""
    fw_ver: str = "1.0.0_0001"
    hw_ver: str = "esp32"

    @property
    def channel_count(self) -> int:
        return 1 if self.legacy_power else len(self.switches)


def _information(model: str, fw_ver: str) -> dict[Iid, MiotProperty]:
    """MiOT service 1, device-information: manufacturer, model, firmware; read-only."""
    return {
        (1, 1): MiotProperty(str, model.split(".", maxsplit=1)[0], writable=False),
        (1, 2): MiotProperty(str, model, writable=False),
        (1, 4): MiotProperty(str, fw_ver, writable=False),
    }


def miot_model(
    model: str,
    switches: tuple[Iid, ...],
    base: ModelSpec | None = None,
    **extra: Any,
) -> ModelSpec:
    """A MiOT model with the given switches, device information and ``extra`` fields."""
    spec = replace(base or ModelSpec(), switches=switches, **extra)
    return replace(spec, properties={**_information(model, spec.fw_ver), **spec.properties})


def _sw1_channel(siid: int) -> dict[Iid, MiotProperty]:
    return {
        # Power-on default state: 0 off, 1 on, 2 as before the power cut (unconfirmed values).
        (siid, 2): MiotProperty(int, 0, minimum=0, maximum=2),
        # Off-delay: -1 (or 0) disables it; 1..43200 s switches the channel off after that.
        (siid, 3): MiotProperty(int, -1, minimum=-1, maximum=OFF_DELAY_MAX_SECONDS),
    }


MODELS: Mapping[str, ModelSpec] = {
    "generic.relay.1": miot_model("generic.relay.1", ((2, 1),)),
    "generic.relay.2": miot_model("generic.relay.2", ((2, 1), (3, 1))),
    "yeelink.switch.sw1": miot_model(
        "yeelink.switch.sw1",
        ((2, 1), (3, 1)),
        properties={**_sw1_channel(2), **_sw1_channel(3)},
        off_delays=((2, 3), (3, 3)),
        fw_ver="2.1.5_0021",
    ),
    "chuangmi.plug.m1": ModelSpec(legacy_power=True, fw_ver="1.2.4_16", hw_ver="MW300"),
    "xiaomi.wifispeaker.lx06": miot_model(
        "xiaomi.wifispeaker.lx06",
        (),
        # Speaker volume and mute (unconfirmed against the lx06 spec; not used by stovectl).
        properties={
            (2, 1): MiotProperty(int, 50, minimum=0, maximum=100),
            (2, 2): MiotProperty(bool, False),
        },
        speak=(5, 1),
        execute=(5, 5),
        fw_ver="1.70.9",
        hw_ver="LX06",
    ),
}

SWITCH = MiotProperty(bool, initial=False)


class DeviceState(Protocol):
    """What ``answer`` reads and changes on a device."""

    spec: ModelSpec
    stuck: bool
    refuse_writes: bool
    spoken: list[str]
    executed: list[str]
    values: dict[Iid, Value]
    """Current values of the model's non-switch properties."""

    def state(self, channel: int) -> RelayState: ...

    def command(self, channel: int, state: RelayState) -> None:
        """A client asks the channel to switch (``answer`` has already applied ``stuck``)."""

    def write_value(self, iid: Iid, value: Value) -> None: ...

    def info(self) -> dict[str, Any]: ...


def answer(device: DeviceState, method: str, params: Any) -> dict[str, Any]:
    """``{"result": ...}`` or ``{"error": {...}}`` for one request to ``device``."""
    if method == "miIO.info":
        return {"result": device.info()}
    handlers: dict[str, Callable[[DeviceState, Any], dict[str, Any]]] = (
        {"get_prop": _get_prop, "set_power": _set_power}
        if device.spec.legacy_power
        else {"get_properties": _get_properties, "set_properties": _set_properties,
              "action": _action}
    )
    handler = handlers.get(method)
    return handler(device, params) if handler else {"error": METHOD_NOT_FOUND}


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _addressed(item: Any, member: str) -> tuple[dict[str, Any], Iid | None]:
    """The echo of an item's address (did, siid, piid or aiid) and its (siid, member) pair."""
    if not isinstance(item, dict):
        return {}, None
    reply = {key: item[key] for key in ("did", "siid", member) if key in item}
    siid, iid = item.get("siid"), item.get(member)
    return reply, ((siid, iid) if _is_int(siid) and _is_int(iid) else None)


def _get_properties(device: DeviceState, params: Any) -> dict[str, Any]:
    if not isinstance(params, list):
        return {"error": INVALID_PARAMS}
    return {"result": [_get_item(device, item) for item in params]}


def _set_properties(device: DeviceState, params: Any) -> dict[str, Any]:
    if not isinstance(params, list):
        return {"error": INVALID_PARAMS}
    return {"result": [_set_item(device, item) for item in params]}


def _get_item(device: DeviceState, item: Any) -> dict[str, Any]:
    reply, iid = _addressed(item, "piid")
    if iid is None:
        return {**reply, "code": BAD_PARAMETER}
    if iid in device.spec.switches:
        channel = device.spec.switches.index(iid) + 1
        return {**reply, "code": OK, "value": device.state(channel) is RelayState.ON}
    if iid in device.values:
        return {**reply, "code": OK, "value": device.values[iid]}
    return {**reply, "code": NOT_FOUND}


def _set_item(device: DeviceState, item: Any) -> dict[str, Any]:
    reply, iid = _addressed(item, "piid")
    if iid is None:
        return {**reply, "code": BAD_PARAMETER}
    prop = SWITCH if iid in device.spec.switches else device.spec.properties.get(iid)
    value = item.get("value")
    if prop is None:
        return {**reply, "code": NOT_FOUND}
    if not prop.writable:
        return {**reply, "code": NOT_WRITABLE}
    if device.refuse_writes or not prop.accepts(value):
        return {**reply, "code": BAD_VALUE}
    if iid not in device.spec.switches:
        device.write_value(iid, value)
    elif not device.stuck:
        channel = device.spec.switches.index(iid) + 1
        device.command(channel, RelayState.ON if value else RelayState.OFF)
    return {**reply, "code": OK}


def _action(device: DeviceState, params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        return {"error": INVALID_PARAMS}
    reply, iid = _addressed(params, "aiid")
    records = {device.spec.speak: device.spoken, device.spec.execute: device.executed}
    arguments = params.get("in")
    if iid is None or iid not in records:
        return {"result": {**reply, "code": BAD_PARAMETER if iid is None else NOT_FOUND}}
    if not (isinstance(arguments, list) and arguments and isinstance(arguments[0], str)):
        return {"result": {**reply, "code": BAD_PARAMETER}}
    records[iid].append(arguments[0])
    return {"result": {**reply, "code": OK, "out": []}}


def _get_prop(device: DeviceState, params: Any) -> dict[str, Any]:
    if not isinstance(params, list):
        return {"error": INVALID_PARAMS}
    power = device.state(1).value
    return {"result": [power if name == "power" else None for name in params]}


def _set_power(device: DeviceState, params: Any) -> dict[str, Any]:
    if device.refuse_writes or params not in (["on"], ["off"]):
        return {"error": INVALID_ARG}
    if not device.stuck:
        device.command(1, RelayState(params[0]))
    return {"result": ["ok"]}
