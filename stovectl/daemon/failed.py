"""``stovectl service-failed``: systemd's ``OnFailure=`` hook for stovectl.service.

systemd runs it once the service has failed for good: its start limit was hit,
or it exited 78 on a bad configuration. From then on the hob is an ordinary hob:
no countdowns, no remote or failsafe shutoff, and a locked burner stays cut
only until someone switches its relay back on. That must not pass in silence,
so the hook says it on every channel the config has: the journal (critical),
the history (``stovectl history`` shows when the guard went down), MQTT
``<base>/events`` for Home Assistant automations, and the speaker. Each channel
is tried on its own; one that fails does not keep the others quiet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from stovectl.control.paths import state_dir
from stovectl.core.events import Event, Kind, Result
from stovectl.core.store import Store
from stovectl.daemon.app import DATABASE_NAME
from stovectl.errors import ConfigError, StovectlError
from stovectl.settings import Settings, load_settings

log = logging.getLogger("stovectl")

EXIT_CONFIG = 78
MESSAGE = (
    "the stovectl service has failed: until it runs again the burners are NOT guarded (no "
    "countdowns, no remote or failsafe shutoff; a locked burner stays cut only until its "
    "relay is switched on); see `journalctl -u stovectl`"
)
SPOKEN = {
    "zh": "灶具守护服务已停止，定时关火和远程关火现在都不可用，请检查。",
    "en": "The stove guard has stopped. Timed and remote shutoff are not available. "
          "Please check it.",
}


def how_it_failed(environ: Mapping[str, str]) -> str:
    """What systemd told the hook (``$MONITOR_*``), e.g. ``start-limit-hit``, or ``""``."""
    result = environ.get("MONITOR_SERVICE_RESULT")
    if not result:
        return ""
    status = environ.get("MONITOR_EXIT_STATUS")
    if result == "exit-code" and status == str(EXIT_CONFIG):
        return "exit status 78: its configuration is bad"
    if result == "exit-code" and status:
        return f"exit status {status}"
    if status and environ.get("MONITOR_EXIT_CODE") == "killed":
        return f"{result}, killed by SIG{status}"
    return result


def report_service_failure(config_path: Path | None, state: Path | None) -> int:
    """Say that the service is down wherever the config can; 0 if every channel took it."""
    how = how_it_failed(os.environ)
    message = MESSAGE.replace("has failed", f"has failed ({how})", 1) if how else MESSAGE
    log.critical("%s", message)
    try:
        settings = load_settings(config_path)
    except ConfigError as error:
        log.critical("its configuration is bad, so nobody else can be told: %s", error)
        return EXIT_CONFIG
    event = Event(kind=Kind.SERVICE_FAILED, source="systemd", time=time.time(),
                  result=Result.FAILED, message=message)
    told = _record(event, state_dir(state or settings.daemon.state_dir))
    told &= asyncio.run(_tell(settings, event))
    return 0 if told else 1


def _record(event: Event, folder: Path) -> bool:
    store = Store(folder / DATABASE_NAME)
    try:
        store.open()
        store.record(event)
    except (OSError, sqlite3.Error) as error:
        log.error("cannot record the failure in %s: %s", store.path, error)  # noqa: TRY400
        return False
    finally:
        store.close()
    return True


async def _tell(settings: Settings, event: Event) -> bool:
    results = await asyncio.gather(_publish(settings, event), _say(settings))
    return all(results)


async def _publish(settings: Settings, event: Event) -> bool:
    if settings.mqtt is None:
        return True
    # Imported here, as the daemon does: paho only for those who use MQTT.
    from stovectl.mqtt.connection import MqttConnection  # noqa: PLC0415
    from stovectl.mqtt.options import options_from_settings  # noqa: PLC0415
    from stovectl.mqtt.payloads import event_payload  # noqa: PLC0415

    # Its own client id and no will: the daemon's session and status topic stay its own.
    connection = MqttConnection(options_from_settings(
        settings.mqtt, "", None, client_id=f"stovectl-{settings.stove.id}-failed"
    ))
    topic = f"{settings.mqtt_base_topic}/events"
    try:
        if not await connection.start(wait_seconds=settings.mqtt.connect_timeout.total_seconds()):
            log.error("cannot tell MQTT: the broker at %s:%s did not answer",
                      settings.mqtt.host, settings.mqtt.broker_port)
            return False
        await connection.publish(topic, event_payload(event))
    except StovectlError as error:
        log.error("cannot tell MQTT (%s): %s", topic, error)  # noqa: TRY400  # known condition
        return False
    finally:
        await connection.close()
    log.info("told MQTT on %s", topic)
    return True


async def _say(settings: Settings) -> bool:
    speaker = settings.speaker
    if speaker is None or "alarm" not in speaker.announce:
        return True
    # Imported here: python-miio is heavy (see daemon.app).
    from stovectl.announce.xiaoai import XiaoaiSpeaker  # noqa: PLC0415

    voice = XiaoaiSpeaker(speaker)
    try:
        await voice.start()
        await voice.say(SPOKEN[speaker.language])
    except StovectlError as error:
        log.error("cannot tell the speaker at %s: %s", voice.where, error)  # noqa: TRY400
        return False
    finally:
        await voice.close()
    log.info("told the speaker at %s", voice.where)
    return True
