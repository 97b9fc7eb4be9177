"""Specification of ``stovectl doctor``: one verdict per step, for each configured device.

The real command runs against simulated miIO devices over UDP on loopback, with
short timeouts so a silent device costs little. ``--socket`` names a socket
nobody listens on, so no daemon on the machine changes what doctor says,
except in the test that starts one on purpose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import hob_config, run_cli, running_daemon
from tests.tools.miio_lan import OTHER_TOKEN, TOKEN, running_device, stovectl

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def doctor_config(host: str, token: str = TOKEN, model: str = "yeelink.switch.sw1",
                  mapping: str = "") -> str:
    """Burners left and right on miIO device ``relay``, and burner back on a simulated device."""
    return f"""\
[[devices]]
id = "relay"
kind = "miio"
host = "{host}"
token = "{token}"
model = "{model}"
timeout = "200ms"
handshake_timeout = "200ms"
{mapping}

[[devices]]
id = "sim"
kind = "simulated"

[[burners]]
id = "left"
device = "relay"
channel = 1

[[burners]]
id = "right"
device = "relay"
channel = 2

[[burners]]
id = "back"
device = "sim"
"""


async def doctor(tmp_path: Path, config: str, *args: str) -> Any:
    path = tmp_path / "stovectl.toml"
    path.write_text(config, encoding="utf-8")
    return await stovectl("--socket", str(tmp_path / "nobody.sock"), "doctor",
                          "--config", str(path), *args)


def verdicts(stdout: str) -> dict[str, tuple[str, str]]:
    """Each step's (verdict, message) from doctor's text output, for the device ``relay``."""
    block = stdout.split("relay (miio)\n", 1)[1].split("\n\n", 1)[0].split("\nsim (", 1)[0]
    found = re.findall(r"^  (ok|warn|FAIL|skip)\s+(\w+): (.*)$", block, re.MULTILINE)
    return {step: (verdict, message) for verdict, step, message in found}


def test_a_healthy_device_passes_every_step(real: Run, tmp_path: Path) -> None:
    """Reachable, token, state and mapping are all ok; the simulated device has nothing to check."""

    async def scenario() -> Any:
        async with running_device() as device:
            return device.host, await doctor(tmp_path, doctor_config(device.host))

    host, result = real(scenario())
    assert result.returncode == 0, result.output
    steps = verdicts(result.stdout)
    assert {step: verdict for step, (verdict, _) in steps.items()} == {
        "reachable": "ok", "token": "ok", "state": "ok", "mapping": "ok"}
    assert steps["reachable"][1].startswith(f"{host} answered hello")
    assert "model yeelink.switch.sw1" in steps["token"][1]
    assert steps["state"][1] == "channel 1 off (left: armed), channel 2 off (right: armed)"
    assert "channel 2 (right) switch 3-1, off-delay 3-3" in steps["mapping"][1]
    assert "ok    simulated: nothing to check" in result.stdout
    assert TOKEN not in result.output


@pytest.mark.parametrize("leak_token", [False, True])
def test_a_wrong_token_is_named_and_never_printed(
    real: Run, tmp_path: Path, leak_token: bool
) -> None:
    """The device answers hello but not commands: doctor says the token is wrong, exit 1."""

    async def scenario() -> Any:
        async with running_device(leak_token=leak_token) as device:
            result = await doctor(tmp_path, doctor_config(device.host, OTHER_TOKEN))
            return result, len(device.traffic.replies)

    result, replies = real(scenario())
    assert result.returncode == 1
    steps = verdicts(result.stdout)
    assert steps["reachable"][0] == "ok"
    assert steps["token"][0] == "FAIL"
    assert steps["token"][1].startswith("wrong:")
    assert steps["state"] == ("skip", "skipped: token failed")
    assert replies == 0  # the device never answered a command
    assert TOKEN not in result.output
    assert OTHER_TOKEN not in result.output


def test_an_offline_device_is_unreachable(real: Run, tmp_path: Path) -> None:
    """Hello reaches a silent device: unreachable, and every later step is skipped."""

    async def scenario() -> Any:
        async with running_device() as device:
            device.offline = True
            result = await doctor(tmp_path, doctor_config(device.host), "--json")
            return result, device.traffic.datagrams

    result, datagrams = real(scenario())
    assert result.returncode == 1
    assert datagrams >= 3  # the hellos did reach it
    report = json.loads(result.stdout)
    relay = next(d for d in report["devices"] if d["device"] == "relay")
    assert report["ok"] is False
    assert [(c["step"], c["verdict"]) for c in relay["checks"]] == [
        ("reachable", "FAIL"), ("token", "skip"), ("state", "skip"), ("mapping", "skip")]
    assert relay["checks"][0]["message"].startswith("unreachable: no answer to hello")


@pytest.mark.parametrize(
    ("mapping", "failing"),
    [
        ("channels = [{ siid = 2, piid = 1 }, { siid = 9, piid = 1 }]",
         "channel 2 (right) switch siid 9 piid 1: code -4003 (no such property)"),
        ("channels = [{ siid = 2, piid = 2 }, { siid = 3, piid = 1 }]",
         "channel 1 (left) switch siid 2 piid 2: reads 0, not true/false: not a switch"),
        ("channels = [{ siid = 2, piid = 1, off_delay_piid = 4 }, { siid = 3, piid = 1 }]",
         "channel 1 (left) off-delay siid 2 piid 4: code -4003 (no such property)"),
    ],
    ids=["unknown-switch", "not-a-switch", "unknown-off-delay"],
)
def test_a_bad_mapping_names_the_property_that_fails(
    real: Run, tmp_path: Path, mapping: str, failing: str
) -> None:
    """Each mapped property is read; the one the device refuses is named, the others are not."""

    async def scenario() -> Any:
        async with running_device() as device:
            return await doctor(tmp_path, doctor_config(device.host, mapping=mapping))

    result = real(scenario())
    assert result.returncode == 1, result.output
    steps = verdicts(result.stdout)
    assert steps["token"][0] == "ok"
    assert steps["mapping"] == ("FAIL", failing)


def test_a_device_that_refuses_miot_says_what_it_is(real: Run, tmp_path: Path) -> None:
    """A legacy plug configured as a MiOT relay refuses get_properties; doctor names its model."""

    async def scenario() -> Any:
        async with running_device("chuangmi.plug.m1") as device:
            return await doctor(tmp_path, doctor_config(device.host, model="generic.relay.2"))

    result = real(scenario())
    assert result.returncode == 1
    steps = verdicts(result.stdout)
    assert "model chuangmi.plug.m1" in steps["token"][1]
    assert steps["state"][0] == "FAIL"
    verdict, message = steps["mapping"]
    assert verdict == "FAIL"
    assert message.startswith("get_properties failed: answered with an error")
    assert message.endswith("(the device says it is chuangmi.plug.m1; is model right?)")


def test_a_device_that_cannot_report_state_is_not_read(real: Run, tmp_path: Path) -> None:
    """With verify = false, state and mapping are skipped, not failed: exit 0."""

    async def scenario() -> Any:
        async with running_device() as device:
            result = await doctor(tmp_path, doctor_config(device.host, mapping="verify = false"))
            return result, [r.get("method") for r in device.traffic.requests]

    result, methods = real(scenario())
    assert result.returncode == 0, result.output
    steps = verdicts(result.stdout)
    assert (steps["state"][0], steps["mapping"][0]) == ("skip", "skip")
    assert methods == ["miIO.info"]


def test_a_bad_config_exits_78(tmp_path: Path) -> None:
    """A config doctor cannot load names its problem and exits 78, contacting nothing."""
    path = tmp_path / "stovectl.toml"
    path.write_text(doctor_config("127.0.4.1").replace('kind = "simulated"',
                                                      'kind = "simulated"\ncolour = "red"'))
    result = run_cli("--socket", str(tmp_path / "nobody.sock"), "doctor", "--config", str(path))
    assert result.returncode == 78
    assert "colour" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_running_daemon_is_mentioned_and_harmless() -> None:
    """With the daemon up, doctor says its requests interleave with the polls, and passes."""
    with running_daemon(hob_config()) as daemon:
        result = daemon.cli("doctor", "--config", str(daemon.config_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("note: a stovectl daemon is running")
    assert "interleave with its polls" in result.stdout
    assert "ok    simulated: nothing to check" in result.stdout
