"""What to say about an event, in Chinese or English: a pure function of the event.

An event is first given a subject (the word the config's ``announce`` list
uses), then a sentence in the configured language. The sentence never claims
more than the event says: a cut that was not read back is "told to", not "off"
(DESIGN §2 rule 2), and a failure says so and asks for a look.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

from stovectl.core.events import ALARM_REARM, Event, Kind, Result
from stovectl.core.policy import HAZARD

Language = Literal["zh", "en"]
Subject = Literal[
    "shutoff", "lock", "hazard", "unlock", "rearm", "alarm", "recovered", "tamper"
]
"""What an announcement is about; ``hazard`` is a lock whose reason is hazard."""
SUBJECTS: tuple[Subject, ...] = get_args(Subject)
DEFAULT_SUBJECTS: tuple[Subject, ...] = ("shutoff", "lock", "alarm", "tamper", "hazard")

_SUBJECT_OF_KIND: Mapping[Kind, Subject] = {
    Kind.SHUTOFF: "shutoff",
    Kind.LOCK: "lock",
    Kind.UNLOCK: "unlock",
    Kind.REARM: "rearm",
    Kind.ALARM: "alarm",
    Kind.RECOVERED: "recovered",
    Kind.TAMPER: "tamper",
}

PHRASES: Mapping[Language, Mapping[str, str]] = {
    "zh": {
        "off": "{name}已关火",
        "off_unverified": "{name}已发出关火指令，但无法确认",
        "off_failed": "{name}关火失败，请立即检查",
        "locked": "{name}已锁定",
        "lock_unverified": "{name}已发出锁定指令，但无法确认",
        "hazard": "检测到燃气泄漏或烟雾，所有灶已锁定",
        "unlocked": "{name}已解锁，可以点火",
        "rearmed": "{name}可以重新点火",
        "rearm_failed": "{name}未能恢复可点火状态，请检查",
        "recovered": "{name}已恢复正常",
        "tamper": "{name}被他人重新打开，正在再次关火",
    },
    "en": {
        "off": "{name} is off",
        "off_unverified": "{name} was told to shut off, but this cannot be confirmed",
        "off_failed": "{name} could not be shut off: check it now",
        "locked": "{name} is locked",
        "lock_unverified": "{name} was told to lock, but this cannot be confirmed",
        "hazard": "Gas or smoke detected: all burners are locked",
        "unlocked": "{name} is unlocked and can be lit again",
        "rearmed": "{name} can be lit again",
        "rearm_failed": "{name} could not be re-armed: check it",
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
    if "{name}" not in template:
        return template
    if event.burner is None:
        return None
    text = template.format(name=burner_names.get(event.burner, event.burner))
    return text[:1].upper() + text[1:]


def _phrase(event: Event) -> str | None:
    """Which phrase fits the event's kind and how it ended."""
    if event.kind is Kind.ALARM:
        return "rearm_failed" if event.reason == ALARM_REARM else "off_failed"
    if event.kind in (Kind.RECOVERED, Kind.TAMPER):
        return event.kind.value
    if event.result is None:
        return None
    phrase = _PHRASE_OF_RESULT.get(event.kind, {}).get(event.result)
    return "hazard" if phrase == "locked" and event.reason == HAZARD else phrase
