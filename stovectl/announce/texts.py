"""What to say about an event, in Chinese or English: a pure function of the event.

An event is first given a subject (the word the config's ``announce`` list
uses), then a sentence in the configured language. The sentence never claims
more than the event says: a cut that was not read back is "told to", not "off"
(DESIGN §2 rule 2), a hazard detected is "locking", not "locked", until the
locks are read back, and a failure says so and asks for a look.

Warnings and hazard notes carry what they are about only in their message (a
failsafe's time left, a detection told from a clearing): ``_left_seconds`` and
``_hazard_phrase`` read those messages, and the tests feed them the ones the
controller really emits, so a reworded message fails a test, not a kitchen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Literal, get_args

from stovectl.core.events import ALARM_FLAME, ALARM_REARM, Event, Kind, Result
from stovectl.core.policy import HAZARD
from stovectl.durations import parse_duration

Language = Literal["zh", "en"]
Subject = Literal[
    "shutoff", "lock", "hazard", "warning", "unlock", "rearm", "alarm", "recovered", "tamper"
]
"""What an announcement is about; ``hazard`` is gas or smoke detected, cleared or its
sensor offline, and the locks it makes; ``warning`` a failsafe about to act."""
SUBJECTS: tuple[Subject, ...] = get_args(Subject)
DEFAULT_SUBJECTS: tuple[Subject, ...] = (
    "shutoff", "lock", "alarm", "tamper", "hazard", "warning",
)

# The failsafes' event sources (stovectl.core.failsafes) and the hazard sensor kinds
# (stovectl.settings.sensors), spelled out here because importing either module
# would loop back through the settings into this one.
FAILSAFE = "failsafe"
UNATTENDED = "unattended"
HAZARD_KINDS = ("gas", "smoke")

_SUBJECT_OF_KIND: Mapping[Kind, Subject] = {
    Kind.SHUTOFF: "shutoff",
    Kind.LOCK: "lock",
    Kind.UNLOCK: "unlock",
    Kind.REARM: "rearm",
    Kind.ALARM: "alarm",
    Kind.RECOVERED: "recovered",
    Kind.TAMPER: "tamper",
    Kind.HAZARD: "hazard",
    Kind.WARNING: "warning",
}

PHRASES: Mapping[Language, Mapping[str, str]] = {
    "zh": {
        "off": "{name}已关火",
        "off_unverified": "{name}已发出关火指令，但无法确认",
        "off_failed": "{name}关火失败，请立即检查",
        "max_on_off": "{name}开得太久，已自动关火",
        "unattended_off": "{name}无人看管，已自动关火",
        "locked": "{name}已锁定",
        "lock_unverified": "{name}已发出锁定指令，但无法确认",
        "failsafe_locked": "{name}多次开火过久，已锁定，请在本地解锁",
        "hazard_locked": "所有灶头已锁定，请检查后在本地解锁",
        "gas_detected": "检测到燃气泄漏，正在锁定所有灶头，请开窗通风",
        "smoke_detected": "检测到烟雾，正在锁定所有灶头",
        "gas_cleared": "燃气报警已解除，灶头仍然锁定，请检查后在本地解锁",
        "smoke_cleared": "烟雾报警已解除，灶头仍然锁定，请检查后在本地解锁",
        "gas_offline": "燃气传感器离线，暂时没有燃气保护",
        "smoke_offline": "烟雾传感器离线，暂时没有烟雾保护",
        "max_on_warning": "{name}已经开了很久，{left}后自动关火",
        "max_on_soon": "{name}已经开了很久，即将自动关火",
        "unattended_warning": "{name}无人看管，{left}后自动关火",
        "unattended_soon": "{name}无人看管，即将自动关火",
        "somebody_back": "有人回来了，{name}不会因无人看管而关火",
        "unlocked": "{name}已解锁，可以点火",
        "rearmed": "{name}可以重新点火",
        "rearm_failed": "{name}未能恢复可点火状态，请检查",
        "flame_stays": "{name}已断开，但仍检测到火焰，请立即关闭旋钮",
        "recovered": "{name}已恢复正常",
        "tamper": "{name}被他人重新打开，正在再次关火",
    },
    "en": {
        "off": "{name} is off",
        "off_unverified": "{name} was told to shut off, but this cannot be confirmed",
        "off_failed": "{name} could not be shut off: check it now",
        "max_on_off": "{name} was on too long and has been shut off",
        "unattended_off": "Nobody was near {name}: it has been shut off",
        "locked": "{name} is locked",
        "lock_unverified": "{name} was told to lock, but this cannot be confirmed",
        "failsafe_locked": "{name} was on too long too often: it stays locked until "
        "unlocked locally",
        "hazard_locked": "All burners are locked: check the kitchen, then unlock them locally",
        "gas_detected": "Gas leak detected: locking all burners. Open the windows",
        "smoke_detected": "Smoke detected: locking all burners",
        "gas_cleared": "Gas is no longer detected; the burners stay locked until "
        "unlocked locally",
        "smoke_cleared": "Smoke is no longer detected; the burners stay locked until "
        "unlocked locally",
        "gas_offline": "The gas sensor is offline: no gas protection until it is back",
        "smoke_offline": "The smoke sensor is offline: no smoke protection until it is back",
        "max_on_warning": "{name} has been on for a long time: it shuts off in {left}",
        "max_on_soon": "{name} has been on for a long time: it shuts off soon",
        "unattended_warning": "Nobody is near {name}: it shuts off in {left}",
        "unattended_soon": "Nobody is near {name}: it shuts off soon",
        "somebody_back": "Somebody is back: {name} will not be shut off for being left alone",
        "unlocked": "{name} is unlocked and can be lit again",
        "rearmed": "{name} can be lit again",
        "rearm_failed": "{name} could not be re-armed: check it",
        "flame_stays": "{name} is cut but still has a flame: turn its knob off now",
        "recovered": "{name} is under control again",
        "tamper": "{name} was switched back on by someone else: shutting it off again",
    },
}
_PHRASE_OF_RESULT: Mapping[Kind, Mapping[Result, str]] = {
    # A failed cut or lock uses the words of the alarm that comes with it, so the
    # announcer says them once.
    Kind.SHUTOFF: {
        Result.VERIFIED: "off", Result.UNVERIFIED: "off_unverified", Result.FAILED: "off_failed",
    },
    Kind.LOCK: {
        Result.VERIFIED: "locked", Result.UNVERIFIED: "lock_unverified",
        Result.FAILED: "off_failed",
    },
    Kind.UNLOCK: {Result.VERIFIED: "unlocked", Result.UNVERIFIED: "unlocked"},
    Kind.REARM: {
        Result.VERIFIED: "rearmed", Result.UNVERIFIED: "rearmed", Result.FAILED: "rearm_failed",
    },
}
_VERIFIED_INSTEAD: Mapping[tuple[Kind, str], str] = {
    # Who cut, or why it locked, said instead of a plain "off" or "locked".
    (Kind.SHUTOFF, FAILSAFE): "max_on_off",
    (Kind.SHUTOFF, UNATTENDED): "unattended_off",
    (Kind.LOCK, HAZARD): "hazard_locked",
    (Kind.LOCK, FAILSAFE): "failsafe_locked",
}
_UNITS: Mapping[Language, tuple[tuple[int, str, str], ...]] = {
    # (seconds, one, many)
    "zh": ((3600, "{n}小时", "{n}小时"), (60, "{n}分钟", "{n}分钟"), (1, "{n}秒", "{n}秒")),
    "en": ((3600, "{n} hour", "{n} hours"), (60, "{n} minute", "{n} minutes"),
           (1, "{n} second", "{n} seconds")),
}
_SEPARATOR: Mapping[Language, str] = {"zh": "", "en": " "}
_SHUTS_OFF_IN = re.compile(r"\boff in (\w+)")
"""How a failsafe warning's message says the time left ("... shuts it off in 5m")."""
SOMEBODY_BACK = "somebody is back"
"""How the warning that cancels an unattended shutoff begins."""


def subject_of(event: Event) -> Subject | None:
    """The ``announce`` word that covers this event, or None if none ever does."""
    if event.kind is Kind.LOCK and event.reason == HAZARD:
        return "hazard"
    return _SUBJECT_OF_KIND.get(event.kind)


def announcement(
    event: Event, burner_names: Mapping[str, str], language: Language
) -> str | None:
    """The sentence to say about ``event``, or None when there is nothing worth saying."""
    phrase = _phrase(event)
    if phrase is None:
        return None
    template = PHRASES[language][phrase]
    values: dict[str, str] = {}
    if "{name}" in template:
        if event.burner is None:
            return None
        values["name"] = burner_names.get(event.burner, event.burner)
    if "{left}" in template:
        left = _left_seconds(event)
        assert left is not None  # _phrase picks the "soon" wording without it
        values["left"] = spoken_duration(left, language)
    text = template.format(**values)
    return text[:1].upper() + text[1:]


def spoken_duration(seconds: float, language: Language) -> str:
    """Seconds in words a speaker reads well: ``1小时30分钟``, ``1 hour 30 minutes``."""
    left = max(1, round(seconds))
    parts = []
    for size, one, many in _UNITS[language]:
        count, left = divmod(left, size)
        if count:
            parts.append((one if count == 1 else many).format(n=count))
    return _SEPARATOR[language].join(parts)


def _phrase(event: Event) -> str | None:
    """Which phrase fits the event's kind and how it ended."""
    of_kind = _PHRASE_OF_KIND.get(event.kind)
    if of_kind is not None:
        return of_kind(event)
    if event.result is None:
        return None
    phrase = _PHRASE_OF_RESULT.get(event.kind, {}).get(event.result)
    if event.result is Result.VERIFIED:
        why = event.reason if event.kind is Kind.LOCK else event.source
        return _VERIFIED_INSTEAD.get((event.kind, why or ""), phrase)
    return phrase


def _alarm_phrase(event: Event) -> str:
    return {ALARM_REARM: "rearm_failed", ALARM_FLAME: "flame_stays"}.get(
        event.reason or "", "off_failed"
    )


def _warning_phrase(event: Event) -> str | None:
    if event.source == UNATTENDED and event.message.startswith(SOMEBODY_BACK):
        return "somebody_back"
    failsafe = {FAILSAFE: "max_on", UNATTENDED: "unattended"}.get(event.source)
    if failsafe is None:
        return None
    return f"{failsafe}_warning" if _left_seconds(event) else f"{failsafe}_soon"


def _left_seconds(event: Event) -> float | None:
    """The time left that a failsafe warning names; None when it names none."""
    match = _SHUTS_OFF_IN.search(event.message)
    if match is None:
        return None
    try:
        seconds = parse_duration(match[1]).total_seconds()
    except ValueError:
        return None  # "in moments"
    return seconds if seconds >= 1 else None


def _hazard_phrase(event: Event) -> str | None:
    """Gas or smoke detected, no longer detected, or its sensor offline."""
    what = event.reason
    if what not in HAZARD_KINDS:
        return None
    message = event.message
    if message.startswith(f"{what} detected"):
        return f"{what}_detected"
    if "no longer detected" in message:
        return f"{what}_cleared"
    if "offline" in message:
        return f"{what}_offline"
    return None


_PHRASE_OF_KIND: Mapping[Kind, Callable[[Event], str | None]] = {
    # Kinds whose phrase does not follow from their result.
    Kind.ALARM: _alarm_phrase,
    Kind.RECOVERED: lambda _event: "recovered",
    Kind.TAMPER: lambda _event: "tamper",
    Kind.WARNING: _warning_phrase,
    Kind.HAZARD: _hazard_phrase,
}
