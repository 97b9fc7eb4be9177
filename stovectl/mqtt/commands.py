"""Remote commands from MQTT: untrusted bytes in, a checked RemoteCommand out, or a refusal.

Anyone who may publish on ``<base>/<burner>/set`` reaches the gas valves, so a
message is read as strictly as the control socket reads a line: bounded size,
UTF-8, standard JSON without duplicate keys, no unknown keys, every field of
the right type and range, and a code naming what was wrong so the reply can
say it. Plain ``OFF`` and ``LOCK`` serve buttons and voice bridges; plain
``ON``, ``TOGGLE`` and ``UNLOCK`` are refused: there are no toggles (DESIGN §2
rule 10), and an unlock is JSON carrying its PIN and issue time.

Parsing decides nothing about permission: the controller's policy judges
relaxing commands (rule 5), fed by ``age_of``, which says what is known
of when a command was issued.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple, get_args

from stovectl.durations import finite_seconds
from stovectl.errors import CommandRefused, shown

MAX_PAYLOAD_BYTES: Final = 4096
MAX_TIMER_SECONDS: Final = 24 * 3600
MAX_ID_CHARS: Final = 128
MAX_REASON_CHARS: Final = 64
MAX_PIN_CHARS: Final = 128
EPOCH_SECONDS_LIMIT: Final = 1e11
"""A ``ts`` beyond this (year 5138) is surely milliseconds sent as seconds."""

Action = Literal["off", "lock", "unlock", "timer", "cancel"]
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)
CUTS: Final = frozenset({"off", "lock"})
PLAIN_WORDS: Final[dict[str, Action]] = {"OFF": "off", "LOCK": "lock"}
REFUSED_WORDS: Final = {
    "ON": "there is no remote ON: re-arming follows a shutoff by itself, and a locked "
          "burner is unlocked with JSON {\"action\": \"unlock\", \"pin\": ..., \"ts\": ...}",
    "TOGGLE": "there are no toggles: send OFF or LOCK, which mean the same however often "
              "they arrive",
    "UNLOCK": "a plain UNLOCK is refused: send JSON {\"action\": \"unlock\", \"pin\": ..., "
              "\"ts\": ...}",
}
_ONLY_FOR: Final[dict[str, frozenset[str]]] = {
    "seconds": frozenset({"timer"}),
    "extend": frozenset({"timer"}),
    "reason": frozenset({"lock"}),
    "pin": frozenset({"unlock"}),
}
KNOWN_KEYS: Final = frozenset({"action", "id", "ts", *_ONLY_FOR})


class CommandRejected(CommandRefused):
    """A message that is not a valid command; ``command_id`` is its id when it had a good one."""

    def __init__(self, code: str, message: str, command_id: str | None = None) -> None:
        super().__init__(code, message)
        self.command_id = command_id


@dataclass(frozen=True)
class RemoteCommand:
    action: Action
    burners: list[str]
    """The burner the topic named, or ``["all"]``; the controller resolves it."""
    seconds: float | None = None
    extend: bool = False
    reason: str | None = None
    command_id: str | None = None
    pin: str | None = field(default=None, repr=False)  # never in a log line
    issued_at: float | None = None
    """The sender's ``ts``, in seconds since the epoch."""

    @property
    def is_relaxing(self) -> bool:
        """Whether rule 5 applies: unlock, cancel, or a countdown extended."""
        return self.action in ("unlock", "cancel") or (self.action == "timer" and self.extend)


class CommandAge(NamedTuple):
    """What is known of when a command was issued, in the policy's terms."""

    issued_at: float | None
    """When it was issued, to be checked against the TTL; None: nothing to check."""
    is_known: bool
    """False for a relaxing command with no ``ts`` and no message expiry: it may have
    waited in a broker's queue for a day, so the policy refuses it as stale."""


def age_of(command: RemoteCommand, message_expiry: int | None, now: float) -> CommandAge:
    """Judge a command's age from its ``ts`` or its MQTT v5 message expiry interval.

    A ``ts`` is checked against the TTL. A message expiry means the broker drops
    the message once it has lived the lifetime its sender gave it, so a message
    still delivered is fresh by its sender's own measure: issued ``now``. With
    neither, a relaxing command's age is unknown. Cuts and shortenings are obeyed
    however old (rule 5), so their age never counts as unknown.
    """
    if command.issued_at is not None:
        return CommandAge(command.issued_at, is_known=True)
    if message_expiry is not None:
        return CommandAge(now, is_known=True)
    return CommandAge(None, is_known=not command.is_relaxing)


def parse_command(burner: str, payload: bytes) -> RemoteCommand:
    """Read one message from ``<base>/<burner>/set``; raise CommandRejected if it is not valid."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CommandRejected(
            "too_large", f"a command is at most {MAX_PAYLOAD_BYTES} bytes; this is {len(payload)}"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandRejected("not_utf8", "a command must be UTF-8 text") from None
    word = text.strip()
    upper = word.upper() if word.isascii() else ""
    if upper in PLAIN_WORDS:
        return RemoteCommand(action=PLAIN_WORDS[upper], burners=[burner])
    if upper in REFUSED_WORDS:
        raise CommandRejected("bad_command", REFUSED_WORDS[upper])
    if not word.startswith(("{", "[")):
        # Not echoed: someone may have sent the PIN here, and refusals are published.
        shown = f"{_word(word) or 'this message'}" if word else "an empty message"
        raise CommandRejected(
            "bad_command",
            f"{shown} is not a command: send OFF, LOCK, or a JSON object such as "
            "{\"action\": \"timer\", \"seconds\": 600}",
        )
    message = _load_json(word)
    if not isinstance(message, dict):
        raise CommandRejected("bad_command", "a JSON command must be an object")
    command_id = _command_id(message)
    return _from_object(message, burner, command_id)


class _Malformed(Exception):
    """JSON that Python would read but other parsers read differently, or not at all."""


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Parsers disagree on which copy wins; a filter upstream may have read the other.
            raise _Malformed(f"the key {shown(key)} appears twice")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise _Malformed(f"{name} is not standard JSON")


def _load_json(text: str) -> Any:
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except _Malformed as error:
        raise CommandRejected("bad_json", f"the command is not valid JSON: {error}") from None
    except json.JSONDecodeError as error:
        raise CommandRejected("bad_json", f"the command is not JSON: {error.msg}") from None
    except (ValueError, RecursionError):
        # Valid JSON that Python will not build: an integer past the digit limit, or
        # nesting deeper than the parser may recurse. The sender's mistake, not ours.
        raise CommandRejected(
            "bad_json", "the command is JSON that cannot be read (a number too long, or "
            "nested too deeply)"
        ) from None


def _command_id(message: dict[str, Any]) -> str | None:
    value = message.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_CHARS:
        raise CommandRejected(
            "bad_id", f"\"id\" must be a string of 1 to {MAX_ID_CHARS} characters"
        )
    return value


def _from_object(message: dict[str, Any], burner: str, command_id: str | None) -> RemoteCommand:
    def reject(code: str, text: str) -> CommandRejected:
        return CommandRejected(code, text, command_id)

    if unknown := sorted(set(message) - KNOWN_KEYS):
        raise reject(
            "bad_command",
            f"unknown key(s) {', '.join(map(shown, unknown[:5]))}"
            f"{f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''}; a command may have "
            f"{', '.join(sorted(KNOWN_KEYS))}",
        )
    # An optional field sent as null is a field not sent (Home Assistant renders a
    # missing lock code as null).
    fields = {key: value for key, value in message.items() if value is not None}
    action = fields.get("action")
    if action not in ACTIONS:
        got = "none" if action is None else _word(action) or f"a {type(action).__name__}"
        raise reject("bad_action", f"\"action\" must be one of {', '.join(ACTIONS)}; got {got}")
    for key, actions in _ONLY_FOR.items():
        if key in fields and action not in actions:
            raise reject(f"bad_{key}", f"\"{key}\" is only for {', '.join(sorted(actions))}, "
                                       f"not {action}")
    seconds = None
    if action == "timer":
        seconds = finite_seconds(fields.get("seconds"))
        if seconds is None:
            raise reject("bad_seconds", "a timer needs \"seconds\": a finite number")
        if not 0 < seconds <= MAX_TIMER_SECONDS:
            raise reject("bad_seconds", f"\"seconds\" must be more than 0 and at most "
                                        f"{MAX_TIMER_SECONDS} (24 hours); got {seconds:g}")
    extend = fields.get("extend", False)
    if not isinstance(extend, bool):
        raise reject("bad_extend", "\"extend\" must be true or false")
    reason = fields.get("reason")
    if reason is not None and not (
        isinstance(reason, str) and 1 <= len(reason) <= MAX_REASON_CHARS and reason.isprintable()
    ):
        raise reject("bad_reason", f"\"reason\" must be printable text of 1 to "
                                   f"{MAX_REASON_CHARS} characters")
    pin = fields.get("pin")
    if pin is not None and not (isinstance(pin, str) and 1 <= len(pin) <= MAX_PIN_CHARS):
        raise reject("bad_pin", f"\"pin\" must be a string of 1 to {MAX_PIN_CHARS} characters")
    issued_at = None
    if "ts" in fields:
        try:
            issued_at = _issue_time(fields["ts"])
        except ValueError as error:
            raise reject("bad_ts", str(error)) from None
    return RemoteCommand(
        action=action, burners=[burner], seconds=seconds, extend=extend, reason=reason,
        command_id=command_id, pin=pin, issued_at=issued_at,
    )


def _issue_time(value: object) -> float:
    """Seconds since the epoch from a ``ts``: a number, or ISO 8601 text with a time zone."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"\"ts\" {shown(value)} is not an ISO 8601 time") from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"\"ts\" {shown(value)} has no time zone; add one, e.g. "
                             "+08:00 or Z")
        stamp = moment.timestamp()
        if stamp < 0:
            raise ValueError(f"\"ts\" {shown(value)} is before 1970")
        return stamp
    seconds = finite_seconds(value)
    if seconds is None:
        raise ValueError("\"ts\" must be seconds since the epoch, or ISO 8601 text with a "
                         "time zone")
    if not 0 <= seconds < EPOCH_SECONDS_LIMIT:
        raise ValueError(f"\"ts\" {seconds:g} is not seconds since the epoch (milliseconds?)")
    return seconds


def _word(value: object) -> str | None:
    """A known command word, quoted, for messages; None for anything else, which might be
    a secret (refusals are published and kept in the history)."""
    if isinstance(value, str) and value.lower() in {*ACTIONS, "on", "toggle"}:
        return repr(value)
    return None
