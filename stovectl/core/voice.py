"""Voice buttons: a spare relay channel that a Mi Home scene switches on, read as a command.

Xiaoai can only switch Mi Home devices, so "小爱同学，左灶十分钟后关火" becomes a
scene that switches a spare channel on; the daemon sees it while polling, runs
the configured action with source ``voice`` and switches the channel off again
so the phrase works next time. No cloud is in the loop. Actions are written
like CLI commands and parsed here, purely: ``off [BURNER...|all]``,
``lock [BURNER...|all]``, ``timer BURNER DURATION``, ``cancel BURNER``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from stovectl.core.events import Outcome
from stovectl.devices.base import Relay, RelayState
from stovectl.durations import parse_duration
from stovectl.errors import CommandRefused, DeviceError

if TYPE_CHECKING:
    from stovectl.settings.voice import VoiceTriggerSettings

log = logging.getLogger(__name__)

RELEASE_TRIES = 5
RELEASE_PAUSE_SECONDS = 0.5

Verb = Literal["off", "lock", "timer", "cancel"]
VERBS: tuple[Verb, ...] = ("off", "lock", "timer", "cancel")


@dataclass(frozen=True)
class VoiceAction:
    verb: Verb
    burners: tuple[str, ...]
    seconds: float | None = None

    def __str__(self) -> str:
        text = " ".join((self.verb, *self.burners))
        return f"{text} {self.seconds:g}s" if self.seconds is not None else text


def parse_voice_action(text: str) -> VoiceAction:
    """Read an action like ``timer left 10m``; ValueError says what is wrong."""
    words = text.split()
    if not words or words[0] not in VERBS:
        raise ValueError(
            f"{text!r} is not an action; write off|lock [BURNER...|all], "
            "timer BURNER DURATION or cancel BURNER"
        )
    verb = next(v for v in VERBS if v == words[0])
    if verb in ("off", "lock"):
        return VoiceAction(verb, tuple(words[1:]) or ("all",))
    if verb == "cancel":
        if len(words) != 2:  # the verb and one burner
            raise ValueError(f"{text!r}: write cancel BURNER")
        return VoiceAction(verb, (words[1],))
    if len(words) != 3:  # the verb, a burner and a duration
        raise ValueError(f"{text!r}: write timer BURNER DURATION, e.g. timer left 10m")
    seconds = parse_duration(words[2]).total_seconds()
    if seconds <= 0:
        raise ValueError(f"{text!r}: a countdown must be longer than zero")
    return VoiceAction(verb, (words[1],), seconds)


class Commands(Protocol):
    """The controller's commands a voice button may run."""

    async def shutoff(
        self, names: Sequence[str], source: str, actor: str | None = None
    ) -> list[Outcome]: ...

    async def lock(
        self, names: Sequence[str], source: str, reason: str = ..., actor: str | None = None
    ) -> list[Outcome]: ...

    def set_countdown(
        self, names: Sequence[str], seconds: float, source: str, actor: str | None = None
    ) -> list[Outcome]: ...

    def cancel_countdown(
        self, names: Sequence[str], source: str, actor: str | None = None
    ) -> list[Outcome]: ...


class VoiceButtons:
    """Turns voice buttons seen switched on into commands, then switches them off again."""

    def __init__(
        self,
        triggers: Sequence[VoiceTriggerSettings],
        relays: Mapping[str, Relay],
        commands: Commands,
    ) -> None:
        self._triggers = {(t.device, t.channel): t for t in triggers}
        self._relays = relays
        self._commands = commands
        self._states: dict[tuple[str, int], RelayState] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def channels_of(self, device: str) -> list[int]:
        return [channel for owner, channel in self._triggers if owner == device]

    def button_seen(self, device: str, channel: int, state: RelayState) -> None:
        """A button's channel as polled: act when it turns on (the edge, not the level)."""
        key = (device, channel)
        before = self._states.get(key)
        self._states[key] = state
        if state is RelayState.ON and before is not RelayState.ON:
            task = asyncio.get_running_loop().create_task(
                self._press(key), name=f"voice-{device}-{channel}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _press(self, key: tuple[str, int]) -> None:
        trigger = self._triggers[key]
        action = parse_voice_action(trigger.action)
        actor = trigger.phrase or f"button {trigger.device}/{trigger.channel}"
        log.info("voice button %s/%s: %s", trigger.device, trigger.channel, action)
        commands = self._commands
        try:
            if action.verb == "off":
                await commands.shutoff(action.burners, "voice", actor)
            elif action.verb == "lock":
                await commands.lock(action.burners, "voice", "voice", actor)
            elif action.verb == "timer" and action.seconds is not None:
                commands.set_countdown(action.burners, action.seconds, "voice", actor)
            elif action.verb == "cancel":
                commands.cancel_countdown(action.burners, "voice", actor)
        except CommandRefused:
            pass  # recorded as a refused event where it was refused
        except Exception:
            log.exception("voice button %s/%s failed", trigger.device, trigger.channel)
        finally:
            await self._release(trigger.device, trigger.channel)

    async def _release(self, device: str, channel: int) -> None:
        """Switch a button off again, so the phrase works next time."""
        relay = self._relays[device]
        for _ in range(RELEASE_TRIES):
            try:
                await relay.write(channel, RelayState.OFF)
            except DeviceError as error:
                log.debug("voice button %s/%s: release failed: %s", device, channel, error)
                await asyncio.sleep(RELEASE_PAUSE_SECONDS)
                continue
            self._states[device, channel] = RelayState.OFF  # ready for the next press
            return
        log.warning("voice button %s/%s could not be switched off; switch it off in Mi Home "
                    "so the phrase works again", device, channel)
