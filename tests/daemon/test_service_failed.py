"""`stovectl service-failed`, systemd's OnFailure= hook: the guard going down is never silent.

It is told through every channel the config has, each on its own: the history,
a real Mosquitto (``<base>/events``) and a simulated Xiaoai speaker on
127.0.20.x. The command runs as systemd runs it, a subprocess with the config.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from stovectl.core.store import Store
from stovectl.daemon.app import DATABASE_NAME
from stovectl.daemon.failed import MESSAGE, SPOKEN, how_it_failed
from stovectl.sim.miio_device import SimulatedMiioDevice
from tests.support.broker import Broker
from tests.support.daemon import hob_config, run_cli, running_daemon
from tests.support.mqtt_probe import Probe

pytestmark = pytest.mark.filterwarnings(
    # python-miio 0.5.12 never closes its per-request UDP sockets (PROTOCOLS.md, "Warnings").
    "ignore:unclosed <socket.socket:ResourceWarning",
)

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]
TOKEN = "00112233445566778899aabbccddeeff"
SPEAKER_HOST = "127.0.20.20"


def recorded(state: Path) -> list[Any]:
    store = Store(state / DATABASE_NAME)
    store.open()
    try:
        return [e for e in store.history() if e.kind == "service_failed"]
    finally:
        store.close()


def hook(config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("service-failed", "--config", str(config), "--state-dir", str(state))


def test_it_is_recorded_published_and_spoken(
    real: Run[Any], broker: Broker, tmp_path: Path
) -> None:
    config = tmp_path / "stovectl.toml"
    config.write_text(hob_config(extra=f"""
[mqtt]
host = "{broker.host}"
port = {broker.port}

[speaker]
host = "{SPEAKER_HOST}"
token = "{TOKEN}"
model = "xiaomi.wifispeaker.lx06"
"""), encoding="utf-8")
    probe = Probe(broker)
    probe.start()
    probe.connack()
    probe.subscribe("stovectl/testhob/events")

    async def scenario() -> tuple[subprocess.CompletedProcess[str], list[str]]:
        speaker = SimulatedMiioDevice(SPEAKER_HOST, TOKEN, 0x5BEA4E, "xiaomi.wifispeaker.lx06")
        await speaker.start()
        try:
            result = await asyncio.to_thread(hook, config, tmp_path / "state")
            return result, list(speaker.spoken)
        finally:
            await speaker.close()

    try:
        result, spoken = real(scenario())
        message = probe.next_message()
    finally:
        probe.close()

    assert result.returncode == 0, result.stderr
    assert MESSAGE in result.stderr and "CRITICAL" in result.stderr
    assert spoken == [SPOKEN["zh"]]
    event = json.loads(message.payload)
    assert (event["kind"], event["source"], event["result"]) == (
        "service_failed", "systemd", "failed")
    assert not message.retain
    [stored] = recorded(tmp_path / "state")
    assert stored.message == MESSAGE


def test_a_broker_that_is_away_does_not_keep_the_history_quiet(tmp_path: Path) -> None:
    config = tmp_path / "stovectl.toml"
    config.write_text(hob_config(extra="""
[mqtt]
host = "127.0.20.21"
port = 9
connect_timeout = "300ms"
"""), encoding="utf-8")

    result = hook(config, tmp_path / "state")

    assert result.returncode == 1, result.stderr
    assert "cannot tell MQTT: the broker at 127.0.20.21:9 did not answer" in result.stderr
    assert len(recorded(tmp_path / "state")) == 1


def test_a_bad_config_still_reaches_the_journal(tmp_path: Path) -> None:
    config = tmp_path / "stovectl.toml"
    config.write_text("[stove\n", encoding="utf-8")

    result = hook(config, tmp_path / "state")

    assert result.returncode == 78
    assert MESSAGE in result.stderr
    assert "its configuration is bad, so nobody else can be told" in result.stderr


def test_history_shows_when_the_guard_went_down() -> None:
    """The operator's view: once the service runs again, `stovectl history` lists the failure."""
    with running_daemon(hob_config(), start=False) as daemon:
        assert hook(daemon.config_path, daemon.state_dir).returncode == 0
        daemon.start()

        [failure] = [e for e in daemon.history() if e["kind"] == "service_failed"]
        text = daemon.cli("history").stdout

        assert failure["source"] == "systemd"
        assert "service_failed" in text and "NOT guarded" in text


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        ({"MONITOR_SERVICE_RESULT": "start-limit-hit"}, "start-limit-hit"),
        ({"MONITOR_SERVICE_RESULT": "exit-code", "MONITOR_EXIT_CODE": "exited",
          "MONITOR_EXIT_STATUS": "78"}, "exit status 78: its configuration is bad"),
        ({"MONITOR_SERVICE_RESULT": "exit-code", "MONITOR_EXIT_CODE": "exited",
          "MONITOR_EXIT_STATUS": "1"}, "exit status 1"),
        ({"MONITOR_SERVICE_RESULT": "watchdog", "MONITOR_EXIT_CODE": "killed",
          "MONITOR_EXIT_STATUS": "ABRT"}, "watchdog, killed by SIGABRT"),
        ({}, ""),
    ],
)
def test_it_says_how_the_service_failed(environ: dict[str, str], said: str) -> None:
    assert how_it_failed(environ) == said


def test_systemds_account_reaches_the_journal_and_the_history(tmp_path: Path) -> None:
    config = tmp_path / "stovectl.toml"
    config.write_text(hob_config(), encoding="utf-8")

    result = run_cli("service-failed", "--config", str(config), "--state-dir",
                     str(tmp_path / "state"), env={"MONITOR_SERVICE_RESULT": "start-limit-hit"})

    assert result.returncode == 0, result.stderr
    assert "the stovectl service has failed (start-limit-hit): until it runs again" in (
        result.stderr)
    [stored] = recorded(tmp_path / "state")
    assert stored.message.startswith("the stovectl service has failed (start-limit-hit)")
