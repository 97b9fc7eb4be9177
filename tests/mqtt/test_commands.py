"""Remote command parsing: strict, coded refusals, and never a relaxing command by accident."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from stovectl.errors import CommandRefused
from stovectl.mqtt.commands import (
    ACTIONS,
    CUTS,
    MAX_PAYLOAD_BYTES,
    MAX_TIMER_SECONDS,
    CommandRejected,
    RemoteCommand,
    age_of,
    parse_command,
)

NOW = 1_750_000_000.0


def rejected(payload: bytes | str, burner: str = "left") -> CommandRejected:
    """The CommandRejected that parsing ``payload`` must raise."""
    data = payload.encode() if isinstance(payload, str) else payload
    with pytest.raises(CommandRejected) as caught:
        parse_command(burner, data)
    return caught.value


def parsed(message: dict[str, Any], burner: str = "left") -> RemoteCommand:
    return parse_command(burner, json.dumps(message).encode())


# -- plain words ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "action"),
    [(b"OFF", "off"), (b"off", "off"), (b" Off\n", "off"), (b"LOCK", "lock"),
     (b"\tlock \r\n", "lock")],
)
def test_plain_off_and_lock_are_cuts(payload: bytes, action: str) -> None:
    """OFF and LOCK, in any case and with surrounding whitespace, are the two plain commands."""
    command = parse_command("left", payload)

    assert command.action == action
    assert command.burners == ["left"]
    assert not command.is_relaxing
    assert command.command_id is None and command.issued_at is None


@pytest.mark.parametrize("word", ["ON", "on", " Toggle ", "TOGGLE", "unlock", "UNLOCK\n"])
def test_plain_on_toggle_and_unlock_are_refused_with_the_way_to_do_it(word: str) -> None:
    """A plain ON, TOGGLE or UNLOCK is refused, and the message says what to send instead."""
    error = rejected(word)

    assert error.code == "bad_command"
    assert "OFF" in str(error) or "unlock" in str(error)


def test_a_lookalike_of_off_from_beyond_ascii_is_not_a_command() -> None:
    """Only ASCII spellings count: a ligature that upper-cases to OFF is just text."""
    assert rejected("oﬀ").code == "bad_command"


@pytest.mark.parametrize("payload", ["", "   ", "STOP", "600", "\"OFF\"", "null"])
def test_other_text_is_not_a_command(payload: str) -> None:
    """Empty messages, unknown words, bare numbers and JSON strings are refused as bad_command."""
    assert rejected(payload).code == "bad_command"


def test_the_all_topic_addresses_every_burner() -> None:
    """A command on the all topic carries ``["all"]`` for the controller to resolve."""
    assert parse_command("all", b"OFF").burners == ["all"]


# -- JSON commands ------------------------------------------------------------------------


def test_a_full_unlock_keeps_every_field() -> None:
    """An unlock's id, PIN and ISO issue time come through, the time as epoch seconds."""
    command = parsed(
        {"action": "unlock", "id": "abc", "pin": "2468", "ts": "2025-06-15T15:06:40+00:00"}
    )

    assert command == RemoteCommand(
        action="unlock", burners=["left"], command_id="abc", pin="2468", issued_at=NOW
    )
    assert command.is_relaxing


def test_a_timer_keeps_its_seconds_and_extend() -> None:
    """A timer carries its seconds as a float, and extend makes it relaxing."""
    short = parsed({"action": "timer", "seconds": 600})
    longer = parsed({"action": "timer", "seconds": 90.5, "extend": True, "ts": NOW})

    assert (short.seconds, short.extend, short.is_relaxing) == (600.0, False, False)
    assert (longer.seconds, longer.extend, longer.is_relaxing) == (90.5, True, True)
    assert longer.issued_at == NOW


def test_a_lock_keeps_its_reason() -> None:
    """A lock may say why, and the reason is kept."""
    assert parsed({"action": "lock", "reason": "away"}).reason == "away"


def test_iso_times_with_any_offset_give_the_same_instant() -> None:
    """ts in ISO 8601 is read with its offset, and Z means UTC."""
    times = ["2025-06-15T15:06:40Z", "2025-06-15T23:06:40+08:00", "2025-06-15T15:06:40.000+00:00"]

    assert {parsed({"action": "cancel", "ts": t}).issued_at for t in times} == {NOW}


@pytest.mark.parametrize("action", ACTIONS)
def test_relaxing_is_unlock_cancel_and_extend(action: str) -> None:
    """Exactly unlock, cancel and an extending timer are relaxing; cuts and shortenings are not."""
    extra: dict[str, Any] = {"seconds": 60} if action == "timer" else {}
    command = parsed({"action": action, **extra})

    assert command.is_relaxing == (action in ("unlock", "cancel"))


def test_null_optional_fields_count_as_absent() -> None:
    """An optional field sent as null (Home Assistant's missing code) is as if not sent."""
    command = parsed({"action": "unlock", "pin": None, "id": None, "ts": None})

    assert (command.pin, command.command_id, command.issued_at) == (None, None, None)


@pytest.mark.parametrize(
    "payload", ["2468", "secret", '{"action": "2468"}', '{"action": "secret"}', " 2468 "]
)
def test_refusals_do_not_echo_what_might_be_a_pin(payload: str) -> None:
    """A refusal, which is published and recorded, never repeats text that might be the PIN."""
    error = rejected(payload)

    assert "2468" not in str(error) and "secret" not in str(error)


def test_the_pin_stays_out_of_the_repr() -> None:
    """A command's repr, which may reach a log line, does not show its PIN."""
    assert "2468" not in repr(parsed({"action": "unlock", "pin": "2468"}))


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "too_large"),
        (b"\xff\xfe OFF", "not_utf8"),
        ('{"action": "off"', "bad_json"),
        ('{"action": "off", "action": "unlock"}', "bad_json"),
        ('{"action": "timer", "seconds": NaN}', "bad_json"),
        ('{"action": "timer", "seconds": Infinity}', "bad_json"),
        ('{"action": "timer", "seconds": ' + "9" * 4400 + "}", "too_large"),
        ('{"action": "timer", "seconds": ' + "9" * 4000 + "}", "bad_seconds"),
        ("[" * 2000 + "]" * 2000, "bad_json"),
        ('{"action": ' + "[" * 2000 + "]" * 2000 + "}", "bad_json"),
        ('{"a":' * 600 + "1" + "}" * 600, "bad_command"),
        ('["OFF"]', "bad_command"),
        ("{}", "bad_action"),
        ('{"action": "on"}', "bad_action"),
        ('{"action": "OFF"}', "bad_action"),
        ('{"action": "toggle"}', "bad_action"),
        ('{"action": ["off"]}', "bad_action"),
        ('{"action": "timer"}', "bad_seconds"),
        ('{"action": "timer", "seconds": 0}', "bad_seconds"),
        ('{"action": "timer", "seconds": -5}', "bad_seconds"),
        ('{"action": "timer", "seconds": 86401}', "bad_seconds"),
        ('{"action": "timer", "seconds": 1e999}', "bad_seconds"),
        ('{"action": "timer", "seconds": true}', "bad_seconds"),
        ('{"action": "timer", "seconds": "600"}', "bad_seconds"),
        ('{"action": "off", "seconds": 600}', "bad_seconds"),
        ('{"action": "timer", "seconds": 60, "extend": "yes"}', "bad_extend"),
        ('{"action": "cancel", "extend": true}', "bad_extend"),
        ('{"action": "lock", "reason": ""}', "bad_reason"),
        ('{"action": "lock", "reason": 5}', "bad_reason"),
        ('{"action": "lock", "reason": "a\\nb"}', "bad_reason"),
        ('{"action": "lock", "reason": "' + "r" * 65 + '"}', "bad_reason"),
        ('{"action": "off", "reason": "why"}', "bad_reason"),
        ('{"action": "off", "id": 7}', "bad_id"),
        ('{"action": "off", "id": ""}', "bad_id"),
        ('{"action": "off", "id": "' + "i" * 129 + '"}', "bad_id"),
        ('{"action": "unlock", "pin": 1234}', "bad_pin"),
        ('{"action": "unlock", "pin": ""}', "bad_pin"),
        ('{"action": "lock", "pin": "1234"}', "bad_pin"),
        ('{"action": "unlock", "ts": "2025-06-15T15:06:40"}', "bad_ts"),
        ('{"action": "unlock", "ts": "yesterday"}', "bad_ts"),
        ('{"action": "unlock", "ts": 1750000000000}', "bad_ts"),
        ('{"action": "unlock", "ts": -1}', "bad_ts"),
        ('{"action": "unlock", "ts": "1969-12-31T23:59:59Z"}', "bad_ts"),
        ('{"action": "unlock", "ts": true}', "bad_ts"),
        ('{"action": "unlock", "ts": [1]}', "bad_ts"),
    ],
)
def test_malformed_commands_are_refused_with_a_code(payload: bytes | str, code: str) -> None:
    """Every way a command can be malformed gives its own code, and nothing else escapes."""
    assert rejected(payload).code == code


def test_unknown_keys_are_named() -> None:
    """A command with unknown keys is refused, naming each of them."""
    error = rejected('{"action": "off", "burner": "right", "force": true}')

    assert error.code == "bad_command"
    assert "'burner'" in str(error) and "'force'" in str(error)


def test_wrong_types_name_the_field() -> None:
    """A refusal for a field of the wrong type names that field."""
    assert '"seconds"' in str(rejected('{"action": "timer", "seconds": "ten"}'))
    assert '"pin"' in str(rejected('{"action": "unlock", "pin": 1234}'))


def test_a_refusal_carries_the_command_id_when_it_was_good() -> None:
    """A rejected command with a usable id keeps it, so the reply can name the command."""
    assert rejected('{"action": "timer", "id": "req-1"}').command_id == "req-1"
    assert rejected('{"action": "timer", "id": 1}').command_id is None


def test_a_rejection_is_a_refusal() -> None:
    """CommandRejected is a CommandRefused, so one handler can answer both with a code."""
    assert isinstance(rejected("TOGGLE"), CommandRefused)


# -- age ----------------------------------------------------------------------------------


def test_age_comes_from_ts_first() -> None:
    """A command with ts is judged by it, with or without a message expiry."""
    command = parsed({"action": "unlock", "ts": NOW - 100})

    assert age_of(command, None, NOW) == (NOW - 100, True)
    assert age_of(command, 30, NOW) == (NOW - 100, True)


def test_a_message_expiry_makes_a_relaxing_command_fresh() -> None:
    """Without ts, a message expiry means the broker vouches for it: issued now."""
    age = age_of(parsed({"action": "cancel"}), 30, NOW)

    assert (age.issued_at, age.is_known) == (NOW, True)


def test_a_relaxing_command_without_ts_or_expiry_has_unknown_age() -> None:
    """Without ts or message expiry, a relaxing command's age is unknown (so it is stale)."""
    messages: list[dict[str, Any]] = [
        {"action": "unlock"}, {"action": "cancel"},
        {"action": "timer", "seconds": 60, "extend": True},
    ]
    for message in messages:
        assert age_of(parsed(message), None, NOW) == (None, False)


@pytest.mark.parametrize("payload", [b"OFF", b"LOCK", b'{"action": "timer", "seconds": 5}'])
def test_cuts_and_shortenings_never_have_unknown_age(payload: bytes) -> None:
    """Cuts and shortened countdowns are obeyed however old, so their age is never unknown."""
    assert age_of(parse_command("left", payload), None, NOW).is_known


# -- fuzzing ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)

VALID_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "seconds": st.integers(1, 86_400) | st.floats(0, 90_000),
    "extend": st.booleans(),
    "reason": st.text(min_size=1, max_size=70),
    "id": st.text(min_size=1, max_size=130),
    "pin": st.text(min_size=1, max_size=10),
    "ts": st.floats(0, 2e9) | st.sampled_from(["2025-06-15T15:06:40Z", "2025-06-15T15:06:40"]),
}

FITTING = {"timer": ["seconds", "extend"], "lock": ["reason"], "unlock": ["pin"]}


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """Commands that are mostly right: each part is valid-looking four times in five."""

    def chance(one_in: int) -> bool:
        return draw(st.integers(0, 99)) >= 100 - 100 // one_in

    def mostly(valid: st.SearchStrategy[Any]) -> Any:
        return draw(json_values if chance(5) else valid)

    words = st.sampled_from(["on", "toggle", "OFF"]) if chance(5) else st.sampled_from(ACTIONS)
    action = mostly(words)
    message: dict[str, Any] = {"action": action}
    fitting = ["id", "ts", *FITTING.get(action, [])] if isinstance(action, str) else ["id"]
    keys = draw(st.sets(st.sampled_from(sorted(VALID_FIELDS) if chance(5) else fitting)))
    if action == "timer" and not chance(5):
        keys.add("seconds")
    for key in keys:
        message[key] = mostly(VALID_FIELDS[key])
    if chance(10):
        message[draw(st.sampled_from(["burner", "burners", "force", "Action"]))] = "all"
    return message


def _check_parse(burner: str, payload: bytes) -> RemoteCommand | None:
    """Parse, allowing only a RemoteCommand or CommandRejected as the result."""
    try:
        command = parse_command(burner, payload)
    except CommandRejected as error:
        assert error.code and str(error)
        return None
    assert command.action in ACTIONS
    assert command.burners == [burner]
    return command


@given(st.binary(max_size=5000))
def test_arbitrary_bytes_parse_or_are_rejected(payload: bytes) -> None:
    """Any bytes at all give a RemoteCommand or a CommandRejected, never another exception."""
    _check_parse("left", payload)


@given(json_values)
def test_arbitrary_json_parses_or_is_rejected(value: Any) -> None:
    """Any JSON value gives a RemoteCommand or a CommandRejected, never another exception."""
    _check_parse("left", json.dumps(value).encode())


@given(near_valid())
@example({"action": "timer", "seconds": 1e308, "id": "x"})
@example({"action": "unlock", "pin": "1", "ts": 0.0})
def test_near_valid_commands_round_trip_their_fields(message: dict[str, Any]) -> None:
    """A near-valid command either is rejected or keeps exactly the fields it was given."""
    command = _check_parse("left", json.dumps(message).encode())
    event("rejected" if command is None else f"parsed {command.action}")
    if command is None:
        return
    assert command.action == message["action"]
    assert set(message) <= {"action", *VALID_FIELDS}
    seconds = message.get("seconds")
    assert command.seconds == (None if seconds is None else float(seconds))
    if command.seconds is not None:
        assert math.isfinite(command.seconds) and 0 < command.seconds <= MAX_TIMER_SECONDS
    assert command.extend == bool(message.get("extend"))
    assert command.reason == message.get("reason")
    assert command.command_id == message.get("id")
    assert command.pin == message.get("pin")
    ts = message.get("ts")
    assert (command.issued_at is None) == (ts is None)
    if isinstance(ts, float | int):
        assert command.issued_at == ts
    assert command.is_relaxing == (
        command.action in ("unlock", "cancel") or (command.action == "timer" and command.extend)
    )


plain_words = st.sampled_from(["ON", "TOGGLE", "UNLOCK", "OFF", "LOCK"])
whitespace = st.text(alphabet=" \t\r\n", max_size=3)


@given(plain_words, st.lists(st.booleans(), min_size=6, max_size=6), whitespace, whitespace)
def test_plain_words_never_relax_or_arm(
    word: str, upper: list[bool], before: str, after: str
) -> None:
    """A plain word in any case and padding is a cut or a refusal, never relaxing or arming."""
    cased = "".join(c.upper() if u else c.lower() for c, u in zip(word, upper, strict=False))
    command = _check_parse("left", f"{before}{cased}{after}".encode())

    if word in ("ON", "TOGGLE", "UNLOCK"):
        assert command is None
    else:
        assert command is not None
        assert command.action in CUTS
        assert not command.is_relaxing
