"""Spoken announcements: the sentences, the [speaker] section, and a Xiaoai speaker over UDP.

The speaker is the miIO simulator's ``xiaomi.wifispeaker.lx06`` on a loopback
address of its own (127.0.5.x), spoken to by the real daemon in this process
on an ordinary event loop in real time. What it said is awaited with a
deadline; that something was *not* said is shown by a later sentence arriving
alone, since sentences are said in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from stovectl.announce.announcer import QUEUE_LIMIT, Announcer
from stovectl.announce.texts import (
    DEFAULT_SUBJECTS,
    Language,
    announcement,
    spoken_duration,
    subject_of,
)
from stovectl.announce.xiaoai import XiaoaiSpeaker
from stovectl.core.events import Event, EventBus, Kind, Result
from stovectl.daemon.app import Daemon
from stovectl.errors import ConfigError
from stovectl.settings import Settings, redacted, settings_from_mapping
from stovectl.sim.miio_device import SimulatedMiioDevice
from tests.support.daemon import hob_config, run_cli
from tests.support.kitchen import Kitchen, kitchen_config

pytestmark = pytest.mark.filterwarnings(
    # python-miio 0.5.12 never closes its per-request UDP sockets (PROTOCOLS.md, "Warnings").
    "ignore:unclosed <socket.socket:ResourceWarning",
)

TOKEN = "00112233445566778899aabbccddeeff"
SPEAKER_MODEL = "xiaomi.wifispeaker.lx06"
DEADLINE_SECONDS = 5.0
_hosts = itertools.count()
Run = Callable[[Coroutine[Any, Any, Any]], Any]


def fresh_host() -> str:
    """A loopback address of its own: 127.0.5.x is this module's, ten per concurrent run."""
    return f"127.0.5.{2 + os.getpid() % 24 * 10 + next(_hosts) % 10}"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the host's STOVECTL_… variables and systemd credentials out of every test."""
    for name in list(os.environ):
        if name.upper().startswith("STOVECTL_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


@pytest.fixture
def real() -> Iterator[Run]:
    """Run a coroutine on an ordinary event loop, closed (with its threads) afterwards."""
    with asyncio.Runner() as runner:
        yield runner.run
    # python-miio's unclosed sockets can hang in reference cycles; collect them here,
    # under this module's filter, not during a later test.
    gc.collect()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A private folder with a short path (Unix socket paths are limited)."""
    path = Path(tempfile.mkdtemp(prefix="stv"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def event(kind: Kind, result: Result | None = None, **fields: Any) -> Event:
    return Event(kind=kind, time=0.0, **{"source": "cli", "burner": "left", "result": result,
                                         **fields})


NAMES = {"left": "左灶", "right": "右灶"}
EN_NAMES = {"left": "Left burner", "right": "Right burner"}


# -- the sentences ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "language", "names", "said"),
    [
        (event(Kind.SHUTOFF, Result.VERIFIED), "zh", NAMES, "左灶已关火"),
        (event(Kind.SHUTOFF, Result.VERIFIED), "en", EN_NAMES, "Left burner is off"),
        (event(Kind.SHUTOFF, Result.UNVERIFIED), "zh", NAMES, "左灶已发出关火指令，但无法确认"),
        (event(Kind.SHUTOFF, Result.FAILED), "zh", NAMES, "左灶关火失败，请立即检查"),
        (event(Kind.ALARM, Result.FAILED, message="left: cut not verified after 10s"),
         "zh", NAMES, "左灶关火失败，请立即检查"),
        (event(Kind.ALARM, Result.FAILED, message="left: cut not verified after 10s"),
         "en", EN_NAMES, "Left burner could not be shut off: check it now"),
        (event(Kind.ALARM, Result.FAILED, reason="rearm",
               message="left: re-arm not verified after 10s"),
         "en", EN_NAMES, "Left burner could not be re-armed: check it"),
        (event(Kind.LOCK, Result.VERIFIED, reason="child"), "zh", NAMES, "左灶已锁定"),
        (event(Kind.LOCK, Result.FAILED, reason="child"), "zh", NAMES, "左灶关火失败，请立即检查"),
        (event(Kind.LOCK, Result.VERIFIED, reason="hazard"), "zh", NAMES,
         "所有灶头已锁定，请检查后在本地解锁"),
        (event(Kind.LOCK, Result.VERIFIED, reason="hazard"), "en", EN_NAMES,
         "All burners are locked: check the kitchen, then unlock them locally"),
        (event(Kind.LOCK, Result.UNVERIFIED, reason="hazard"), "zh", NAMES,
         "左灶已发出锁定指令，但无法确认"),
        (event(Kind.LOCK, Result.VERIFIED, reason="failsafe"), "zh", NAMES,
         "左灶多次开火过久，已锁定，请在本地解锁"),
        (event(Kind.SHUTOFF, Result.VERIFIED, source="failsafe"), "zh", NAMES,
         "左灶开得太久，已自动关火"),
        (event(Kind.SHUTOFF, Result.VERIFIED, source="unattended"), "en", EN_NAMES,
         "Nobody was near Left burner: it has been shut off"),
        (event(Kind.SHUTOFF, Result.FAILED, source="failsafe"), "zh", NAMES,
         "左灶关火失败，请立即检查"),
        (event(Kind.ALARM, Result.FAILED, reason="flame"), "zh", NAMES,
         "左灶已断开，但仍检测到火焰，请立即关闭旋钮"),
        (event(Kind.ALARM, Result.FAILED, reason="flame"), "en", EN_NAMES,
         "Left burner is cut but still has a flame: turn its knob off now"),
        (event(Kind.WARNING, Result.DONE, source="failsafe",
               message="left has been lit for nearly 3h: the failsafe shuts it off in 5m"),
         "zh", NAMES, "左灶已经开了很久，5分钟后自动关火"),
        (event(Kind.WARNING, Result.DONE, source="failsafe",
               message="left has been lit for nearly 3h: the failsafe shuts it off in 1m30s"),
         "en", EN_NAMES,
         "Left burner has been on for a long time: it shuts off in 1 minute 30 seconds"),
        (event(Kind.WARNING, Result.DONE, source="failsafe",
               message="left has been lit for nearly 3h: the failsafe shuts it off in moments"),
         "zh", NAMES, "左灶已经开了很久，即将自动关火"),
        (event(Kind.WARNING, Result.DONE, source="unattended",
               message="left is lit and nobody has been near it for 15m: it shuts off in 2m "
               "unless somebody comes back"),
         "zh", NAMES, "左灶无人看管，2分钟后自动关火"),
        (event(Kind.WARNING, Result.DONE, source="unattended",
               message="somebody is back: left will not be shut off"),
         "en", EN_NAMES, "Somebody is back: Left burner will not be shut off for being left alone"),
        (event(Kind.HAZARD, Result.DONE, source="hazard", reason="smoke", burner=None,
               message="smoke detected by 'hall': locking every burner"),
         "zh", NAMES, "检测到烟雾，正在锁定所有灶头"),
        (event(Kind.HAZARD, Result.DONE, source="hazard", reason="gas", burner=None,
               message="gas detected by 'hall': locking every burner"),
         "en", EN_NAMES, "Gas leak detected: locking all burners. Open the windows"),
        (event(Kind.HAZARD, Result.DONE, source="hazard", reason="gas", burner=None,
               message="something else about 'hall'"), "zh", NAMES, None),
        (event(Kind.FLAME_ON, source="sensor", message="left: flame lit"), "zh", NAMES, None),
        (event(Kind.TAMPER, Result.FAILED, reason="child"), "zh", NAMES,
         "左灶被他人重新打开，正在再次关火"),
        (event(Kind.UNLOCK, Result.VERIFIED), "en", EN_NAMES,
         "Left burner is unlocked and can be lit again"),
        (event(Kind.REARM, Result.VERIFIED), "zh", NAMES, "左灶可以重新点火"),
        (event(Kind.RECOVERED, Result.VERIFIED), "en", EN_NAMES,
         "Left burner is under control again"),
        (event(Kind.SHUTOFF, Result.VERIFIED), "en", {}, "Left is off"),
        (event(Kind.SHUTOFF, Result.REFUSED), "zh", NAMES, None),
        (event(Kind.COUNTDOWN_SET, Result.DONE), "zh", NAMES, None),
        (event(Kind.STARTUP, burner=None), "zh", NAMES, None),
    ],
)
def test_announcement_says_what_the_event_verified(
    given: Event, language: Language, names: dict[str, str], said: str | None
) -> None:
    """Each event gets the sentence its kind, result and reason call for, or none."""
    assert announcement(given, names, language) == said


@pytest.mark.parametrize(
    ("given", "subject"),
    [
        (event(Kind.LOCK, Result.VERIFIED, reason="hazard"), "hazard"),
        (event(Kind.LOCK, Result.VERIFIED, reason="away"), "lock"),
        (event(Kind.SHUTOFF, Result.VERIFIED), "shutoff"),
        (event(Kind.ALARM, Result.FAILED), "alarm"),
        (event(Kind.DEVICE_OFFLINE, device="sim", burner=None), None),
        (event(Kind.HAZARD, reason="gas", burner=None), "hazard"),
        (event(Kind.WARNING, source="unattended"), "warning"),
        (event(Kind.ALARM, Result.FAILED, reason="flame"), "alarm"),
        (event(Kind.FLAME_OUT, Result.VERIFIED), None),
    ],
)
def test_subject_is_the_word_announce_uses(given: Event, subject: str | None) -> None:
    """A hazard lock has its own subject; kinds never announced have none."""
    assert subject_of(given) == subject


@pytest.mark.parametrize(
    ("seconds", "zh", "en"),
    [
        (300, "5分钟", "5 minutes"),
        (60, "1分钟", "1 minute"),
        (5400, "1小时30分钟", "1 hour 30 minutes"),
        (3601, "1小时1秒", "1 hour 1 second"),
        (44.6, "45秒", "45 seconds"),
        (0.2, "1秒", "1 second"),
    ],
)
def test_durations_are_spoken_in_words(seconds: float, zh: str, en: str) -> None:
    """Time left is said in hours, minutes and seconds, never as 1h30m, and never as nothing."""
    assert (spoken_duration(seconds, "zh"), spoken_duration(seconds, "en")) == (zh, en)


# -- the sentences for what the controller really says ------------------------------------


def sensor(sensor_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": sensor_id, "kind": kind, "source": "mqtt", "topic": f"test/{sensor_id}",
            **fields}


SENSED_KITCHEN = kitchen_config(
    mqtt={},
    sensors=[sensor("left_flame", "flame", burner="left"), sensor("motion", "presence"),
             sensor("hall_gas", "gas")],
    failsafe={"max_on": "10m", "warn_before": "1m", "flame_out_within": "5s"},
    unattended={"after": "5m", "grace": "2m"},
)
"""Left has a flame sensor; a presence sensor, a gas detector, both failsafes."""


def said_of(k: Kitchen, kind: Kind) -> list[str | None]:
    return [announcement(e, NAMES, "zh") for e in k.find(kind)]


def test_the_failsafes_real_warnings_are_said_with_their_time(kitchen_run: Any) -> None:
    """The controller's own max-on and unattended warnings, and the all-clear when somebody
    comes back, become sentences with the time left in words."""

    async def scenario(k: Kitchen) -> dict[str, list[str | None]]:
        board = k.controller.sensors
        board.sensor_reading("motion", False)
        board.sensor_reading("left_flame", True)
        await k.wait_event(lambda e: e.kind is Kind.WARNING, within=301)
        board.sensor_reading("motion", True)
        await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=600)
        return {"warnings": said_of(k, Kind.WARNING), "shutoffs": said_of(k, Kind.SHUTOFF)}

    said_now = kitchen_run(scenario, SENSED_KITCHEN)

    assert said_now == {
        "warnings": ["左灶无人看管，2分钟后自动关火", "有人回来了，左灶不会因无人看管而关火",
                     "左灶已经开了很久，1分钟后自动关火"],
        "shutoffs": ["左灶开得太久，已自动关火"],
    }


def test_the_real_hazard_notes_are_told_apart(kitchen_run: Any) -> None:
    """Gas detected, cleared and its detector offline: each of the controller's own hazard
    events gets its sentence, and its locks one sentence between them."""

    async def scenario(k: Kitchen) -> dict[str, list[str | None]]:
        board = k.controller.sensors
        board.sensor_reading("hall_gas", True)
        await k.wait_event(lambda e: e.kind is Kind.LOCK and e.burner == "right", within=5)
        board.sensor_reading("hall_gas", False)
        board.sensor_available("hall_gas", False)
        return {"hazards": said_of(k, Kind.HAZARD), "locks": said_of(k, Kind.LOCK)}

    said_now = kitchen_run(scenario, SENSED_KITCHEN)

    assert said_now == {
        "hazards": ["检测到燃气泄漏，正在锁定所有灶头，请开窗通风",
                    "燃气报警已解除，灶头仍然锁定，请检查后在本地解锁",
                    "燃气传感器离线，暂时没有燃气保护"],
        "locks": ["所有灶头已锁定，请检查后在本地解锁"] * 2,
    }


def test_the_real_flame_alarm_asks_for_the_knob(kitchen_run: Any) -> None:
    """A cut whose flame sensor still sees a flame gives the controller's flame alarm, said
    as a call to turn the knob off."""

    async def scenario(k: Kitchen) -> list[str | None]:
        k.controller.sensors.sensor_reading("motion", True)
        k.controller.sensors.sensor_reading("left_flame", True)
        await k.controller.shutoff(["left"], "cli")
        await k.wait_event(lambda e: e.kind is Kind.ALARM, within=6)
        return said_of(k, Kind.ALARM)

    assert kitchen_run(scenario, SENSED_KITCHEN) == ["左灶已断开，但仍检测到火焰，请立即关闭旋钮"]


# -- the [speaker] section -------------------------------------------------------------


def with_speaker(**speaker: Any) -> Settings:
    return settings_from_mapping(kitchen_config(speaker=speaker), source="kitchen.toml")


def test_no_speaker_section_means_no_speaker() -> None:
    """Without [speaker] the settings have none, and nothing is announced."""
    assert settings_from_mapping(kitchen_config()).speaker is None


def test_speaker_defaults_and_model_table() -> None:
    """A known model picks its action; Chinese and the default subjects are the defaults."""
    settings = with_speaker(host="127.0.0.1", token=TOKEN, model="xiaomi.wifispeaker.l05b")

    assert settings.speaker is not None
    assert settings.speaker.action == (5, 3)
    assert settings.speaker.language == "zh"
    assert settings.speaker.announce == DEFAULT_SUBJECTS
    assert set(DEFAULT_SUBJECTS) == {"shutoff", "lock", "alarm", "tamper", "hazard", "warning"}


def test_explicit_action_serves_an_unknown_model() -> None:
    """siid and aiid from the MiOT spec make any model usable, and win over the table."""
    settings = with_speaker(host="h", token=TOKEN, model="xiaomi.wifispeaker.new1",
                            siid=7, aiid=3)

    assert settings.speaker is not None and settings.speaker.action == (7, 3)


@pytest.mark.parametrize(
    ("speaker", "words"),
    [
        ({"host": "h", "token": TOKEN, "model": "xiaomi.wifispeaker.new1"},
         ["speaker: model: 'xiaomi.wifispeaker.new1' is not a known speaker", "siid and aiid"]),
        ({"host": "h", "token": TOKEN}, ["speaker: model: not given"]),
        ({"host": "h", "model": SPEAKER_MODEL}, ["speaker: the speaker needs its token",
                                                 "speaker-token"]),
        ({"host": "h", "token": "abc", "model": SPEAKER_MODEL}, ["speaker: token: a token is 32"]),
        ({"host": "h", "token": TOKEN, "siid": 5}, ["speaker: siid and aiid: give both"]),
        ({"host": "h", "token": TOKEN, "model": SPEAKER_MODEL, "announce": ["boil"]},
         ["speaker.announce[0]", "'hazard'"]),
        ({"host": "h", "token": TOKEN, "model": SPEAKER_MODEL, "language": "fr"},
         ["speaker.language"]),
    ],
)
def test_bad_speaker_section_is_named(speaker: dict[str, Any], words: list[str]) -> None:
    """Each mistake in [speaker] is a ConfigError naming the file, the section and the field."""
    with pytest.raises(ConfigError) as caught:
        with_speaker(**speaker)

    message = str(caught.value)
    assert "kitchen.toml" in message
    for word in words:
        assert word in message


def test_speaker_token_comes_from_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no token given, $CREDENTIALS_DIRECTORY/speaker-token is read."""
    (tmp_path / "speaker-token").write_text(TOKEN + "\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))

    settings = with_speaker(host="h", model=SPEAKER_MODEL)

    assert settings.speaker is not None and settings.speaker.token is not None
    assert settings.speaker.token.get_secret_value() == TOKEN


def test_speaker_token_is_redacted() -> None:
    """`config show` prints the speaker's token as stars."""
    shown = redacted(with_speaker(host="h", token=TOKEN, model=SPEAKER_MODEL))

    assert shown["speaker"]["token"] == "********"
    assert TOKEN not in repr(shown)


@pytest.mark.parametrize(
    ("speaker", "named"),
    [
        (f'host = "h"\ntoken = "{TOKEN}"\nmodel = "xiaomi.wifispeaker.zz9"\n',
         "speaker: model: 'xiaomi.wifispeaker.zz9' is not a known speaker"),
        (f'host = "h"\nmodel = "{SPEAKER_MODEL}"\n', "speaker: the speaker needs its token"),
    ],
)
def test_bad_speaker_config_exits_78(workdir: Path, speaker: str, named: str) -> None:
    """`stovectl config check` exits 78 on a bad [speaker], naming the file and the field."""
    path = workdir / "stovectl.toml"
    path.write_text(hob_config() + "\n[speaker]\n" + speaker, encoding="utf-8")

    result = run_cli("config", "check", "--config", str(path))

    assert result.returncode == 78, result.stderr
    assert str(path) in result.stderr
    assert named in result.stderr


# -- a Xiaoai speaker over UDP ---------------------------------------------------------


def hob(
    speaker_host: str, *, fault: str = "none", names: dict[str, str] = NAMES,
    sensors: list[dict[str, Any]] | None = None, **speaker: Any,
) -> Settings:
    """Left on a simulated relay ``front`` (with ``fault``), right on ``back``; a speaker."""
    return settings_from_mapping({
        "devices": [
            {"kind": "simulated", "id": "front", "channels": 1, "fault": fault},
            {"kind": "simulated", "id": "back", "channels": 1},
        ],
        "burners": [
            {"id": "left", "name": names["left"], "device": "front", "cut_state": "on",
             "cut_hold": "2s"},
            {"id": "right", "name": names["right"], "device": "back", "cut_state": "on",
             "cut_hold": "2s"},
        ],
        "safety": {"alarm_after": "300ms", "retry_max_interval": "100ms"},
        "speaker": {"host": speaker_host, "token": TOKEN, "model": SPEAKER_MODEL,
                    "timeout": "500ms", **speaker},
        "sensors": sensors or [],
    })


@contextlib.asynccontextmanager
async def speaker_device(*, offline: bool = False) -> AsyncIterator[SimulatedMiioDevice]:
    device = SimulatedMiioDevice(fresh_host(), TOKEN, 0x5BEA4E, SPEAKER_MODEL)
    device.offline = offline
    await device.start()
    try:
        yield device
    finally:
        await device.close()


@contextlib.asynccontextmanager
async def running_daemon(settings: Settings, workdir: Path) -> AsyncIterator[Daemon]:
    daemon = Daemon(settings, workdir / "s", workdir / "state")
    try:
        await daemon.start()
        yield daemon
    finally:
        await daemon.stop()


async def until(check: Callable[[], bool], what: str) -> None:
    """Return once ``check()`` holds; fail if it does not within the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_SECONDS}s: {what}")
        await asyncio.sleep(0.01)  # polling with a deadline, not a pause that hopes


async def said(device: SimulatedMiioDevice, texts: list[str]) -> None:
    """Return once the speaker has said exactly ``texts``, in order."""
    await until(lambda: len(device.spoken) >= len(texts), f"the speaker says {texts}")
    assert device.spoken == texts


def test_verified_shutoff_is_said(real: Run, workdir: Path) -> None:
    """A verified shutoff of the left burner makes the speaker say 左灶已关火."""

    async def main() -> None:
        async with speaker_device() as device, running_daemon(hob(device.host), workdir) as d:
            [outcome] = await d.controller.shutoff(["left"], "cli")
            assert outcome.result is Result.VERIFIED
            await said(device, ["左灶已关火"])
            assert device.traffic.requests[-1]["params"] == {
                "did": "call-5-1", "siid": 5, "aiid": 1, "in": ["左灶已关火"],
            }

    real(main())


def test_alarm_is_said_once_with_its_failed_shutoff(real: Run, workdir: Path) -> None:
    """A stuck relay's shutoff alarm is said once, though the failed shutoff says the same."""

    async def main() -> None:
        async with (
            speaker_device() as device,
            running_daemon(hob(device.host, fault="stuck"), workdir) as d,
        ):
            [outcome] = await d.controller.shutoff(["left"], "cli")
            assert outcome.result is Result.FAILED
            await said(device, ["左灶关火失败，请立即检查"])
            await d.controller.lock(["right"], "cli")
            await said(device, ["左灶关火失败，请立即检查", "右灶已锁定"])

    real(main())


def test_failed_rearm_alarm_is_not_called_a_failed_shutoff(real: Run, workdir: Path) -> None:
    """A relay that sticks after the cut raises a re-arm alarm, said as such (cut_hold 2s)."""

    async def main() -> None:
        async with (
            speaker_device() as device,
            running_daemon(hob(device.host, announce=["alarm"]), workdir) as d,
        ):
            [outcome] = await d.controller.shutoff(["left"], "cli")
            assert outcome.result is Result.VERIFIED
            d.world.devices["front"].set_fault("stuck")
            await said(device, ["左灶未能恢复可点火状态，请检查"])

    real(main())


def test_gas_is_said_at_once_and_its_locks_once(real: Run, workdir: Path) -> None:
    """Gas detected is said at once; locking every burner for it is one sentence, not one per
    burner, said once the locks are read back."""
    gas = {"id": "hall_gas", "kind": "gas", "source": "simulated"}

    async def main() -> None:
        async with (
            speaker_device() as device,
            running_daemon(hob(device.host, sensors=[gas]), workdir) as d,
        ):
            d.controller.sensors.sensor_reading("hall_gas", True)
            spoken = ["检测到燃气泄漏，正在锁定所有灶头，请开窗通风",
                      "所有灶头已锁定，请检查后在本地解锁"]
            await said(device, spoken)
            assert [row["lock_reason"] for row in d.controller.status()] == ["hazard"] * 2
            await d.controller.shutoff(["right"], "cli")
            await said(device, [*spoken, "右灶已关火"])

    real(main())


def test_english_sentences(real: Run, workdir: Path) -> None:
    """With language = "en" the speaker says the English sentence, with the burner's name."""

    async def main() -> None:
        async with (
            speaker_device() as device,
            running_daemon(hob(device.host, names=EN_NAMES, language="en"), workdir) as d,
        ):
            await d.controller.shutoff(["left"], "cli")
            await said(device, ["Left burner is off"])

    real(main())


def test_kinds_not_in_announce_are_not_said(real: Run, workdir: Path) -> None:
    """With announce = ["lock"], a shutoff is not said and a lock is."""

    async def main() -> None:
        async with (
            speaker_device() as device,
            running_daemon(hob(device.host, announce=["lock"]), workdir) as d,
        ):
            [outcome] = await d.controller.shutoff(["left"], "cli")
            assert outcome.result is Result.VERIFIED
            await d.controller.lock(["right"], "cli")
            await said(device, ["右灶已锁定"])

    real(main())


def test_offline_speaker_holds_up_nothing_and_is_logged_once(
    real: Run, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the speaker away, cuts and emits return at once; one warning, then one on return."""
    caplog.set_level(logging.DEBUG, logger="stovectl.announce")

    def records(level: int, words: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records
                if r.name.startswith("stovectl.announce") and r.levelno == level
                and words in r.getMessage()]

    async def main() -> None:
        async with (
            speaker_device(offline=True) as device,
            running_daemon(hob(device.host), workdir) as d,
        ):
            started = time.monotonic()
            [outcome] = await d.controller.shutoff(["left"], "cli")
            assert outcome.result is Result.VERIFIED
            # Waiting for the speaker would cost at least its 500ms handshake timeout.
            assert time.monotonic() - started < 0.3
            started = time.monotonic()
            d.controller.events.emit(event(Kind.LOCK, Result.VERIFIED, burner="right"))
            assert time.monotonic() - started < 0.05

            await until(lambda: bool(records(logging.WARNING, "cannot announce")),
                        "a warning that the speaker cannot announce")
            await until(lambda: bool(records(logging.DEBUG, "still not answering")),
                        "the second sentence tried and dropped")
            assert device.traffic.datagrams > 0  # the hellos did reach it

            device.offline = False
            await d.controller.lock(["left"], "cli")
            await said(device, ["左灶已锁定"])

        assert len(records(logging.WARNING, "")) == 1
        assert records(logging.INFO, "answers again")

    real(main())


def test_full_queue_drops_the_oldest(real: Run, caplog: pytest.LogCaptureFixture) -> None:
    """Sentences arriving faster than they are said keep only the newest, with a log line."""
    caplog.set_level(logging.WARNING, logger="stovectl.announce")
    names = {f"b{n}": f"{n}号灶" for n in range(QUEUE_LIMIT + 4)}
    texts = [f"{name}已关火" for name in names.values()]

    async def main() -> None:
        async with speaker_device() as device:
            settings = hob(device.host).speaker
            assert settings is not None
            announcer = Announcer(settings, names, XiaoaiSpeaker(settings))
            bus = EventBus()
            bus.subscribe(announcer.hear)
            await announcer.start()
            try:
                for burner in names:
                    bus.emit(event(Kind.SHUTOFF, Result.VERIFIED, burner=burner))
                await said(device, texts[4:])
            finally:
                await announcer.close()

    real(main())
    dropped = [r.getMessage() for r in caplog.records if "behind" in r.getMessage()]
    assert len(dropped) == 4
    assert all(text in line for text, line in zip(texts[:4], dropped, strict=True))
