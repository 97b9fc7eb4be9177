"""Voice buttons: a spare relay channel that a Mi Home scene switches on, read as a command.

Xiaoai can only switch Mi Home devices, so "小爱同学，左灶十分钟后关火" becomes a
scene that switches a spare channel on; the daemon sees it while polling, runs
the configured action with source ``voice`` and switches the channel off again
so the phrase works next time. No cloud is in the loop. Actions are written
like CLI commands and parsed here, purely: ``off [BURNER...|all]``,
``lock [BURNER...|all]``, ``timer BURNER DURATION``, ``cancel BURNER``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stovectl.durations import parse_duration

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
