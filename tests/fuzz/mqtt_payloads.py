"""Payloads for ``<base>/<burner>/set``: from arbitrary bytes to commands that are nearly right.

``RECIPES`` is half JSON commands (valid, or with one or two flaws: a wrong
action, a field of the wrong type or range, a field the action does not take,
an unknown key, a null) and half everything else (arbitrary bytes and JSON,
plain words in any case, broken and oversized JSON, bytes that are not UTF-8).
``RELAXING_RECIPES`` adds unlocks, cancels and extensions that mostly carry
the PIN and a fresh ``ts``. A ``ts`` is drawn as an offset from the moment of
sending (``Ago``), so fresh, stale and future commands all occur.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from stovectl.mqtt.commands import ACTIONS, KNOWN_KEYS, MAX_PAYLOAD_BYTES
from tests.fuzz.campaign import JSON_VALUES, NASTY_TEXT, TEXT

PIN = "pin-7c1e"
"""Only ever drawn for ``pin``, ``action``, unknown keys' values and plain text: the places a
careless sender might put it, and from which no reply or event may repeat it."""
TTL_SECONDS = 30.0
"""The ``relax_ttl`` the hobs are configured with; ``ts`` offsets are drawn around it."""
TOPIC_NAMES = ("left", "right", "all") * 4 + ("middle", "LEFT", "左灶", "all ", "x" * 40)
"""Names in the command topic; not an empty name, which the subscription's ``+`` also matches
but which gets no reply and no event at all (a known gap)."""


@dataclass(frozen=True)
class Ago:
    """A ``ts`` placeholder: ``offset`` seconds from the sending moment, as a number or as ISO
    text with ``zone`` ("" for none at all)."""

    offset: float
    zone: str | None = None


@dataclass(frozen=True)
class Recipe:
    """One payload: ``raw`` bytes as they are, or ``fields`` serialised as JSON when sent."""

    kind: str
    raw: bytes | None = None
    fields: dict[str, Any] | None = field(default=None)

    def build(self, now: float) -> bytes:
        if self.raw is not None:
            return self.raw
        assert self.fields is not None
        resolved = {key: _resolve(value, now) for key, value in self.fields.items()}
        return json.dumps(resolved, ensure_ascii=False).encode()


def _resolve(value: Any, now: float) -> Any:
    if not isinstance(value, Ago):
        return value
    if value.zone is None:
        return now + value.offset
    moment = datetime.fromtimestamp(now + value.offset, UTC)
    if value.zone == "":
        return moment.replace(tzinfo=None).isoformat()
    hours = {"Z": 0, "+08:00": 8, "-05:00": -5}[value.zone]
    text = moment.astimezone(timezone(timedelta(hours=hours))).isoformat()
    return text.replace("+00:00", "Z") if value.zone == "Z" else text


OFFSETS = st.sampled_from(
    [0.0, 0.0, -5.0, 3.0, -28.5, 28.5, -31.5, 31.5, -3_600.0, 86_400.0, 1e7]
) | st.floats(-100, 100) | st.floats(-1e7, 1e7)
GOOD_TS = st.builds(Ago, OFFSETS, st.sampled_from([None, None, "Z", "+08:00", "-05:00"]))
BAD_TS = st.builds(Ago, OFFSETS, st.just("")) | st.sampled_from(
    [-1, 1.75e12, 1e300, "yesterday", True, [1], "1969-12-31T23:59:59Z", "", None]
) | JSON_VALUES


VALID: dict[str, st.SearchStrategy[Any]] = {
    "seconds": st.sampled_from([1, 30, 599, 600, 601, 900, 86_400]) | st.floats(1e-9, 86_400),
    "extend": st.booleans(),
    "reason": st.sampled_from(["hazard", "away", "child"])
    | st.text(min_size=1, max_size=64).filter(str.isprintable),
    "id": st.text(min_size=1, max_size=128) | st.text(min_size=1, max_size=8) | st.just("k1"),
    "pin": st.sampled_from([PIN, PIN, "0000", PIN + " "]),
    "ts": GOOD_TS,
}
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "seconds": st.sampled_from([0, -5, 86_401, 1e308, float("nan"), float("inf"), "600", True])
    | JSON_VALUES,
    "extend": st.sampled_from(["yes", 1, "true"]) | JSON_VALUES,
    "reason": st.sampled_from(["", "a\nb", "r" * 65, 5]) | JSON_VALUES,
    "id": st.sampled_from([7, "", "i" * 129, ["k1"]]) | JSON_VALUES,
    "pin": st.sampled_from(["", 1234, "p" * 129]) | JSON_VALUES,
    "ts": BAD_TS,
}
WRONG_ACTIONS = st.sampled_from(["on", "toggle", "OFF", "Unlock", PIN]) | JSON_VALUES
FITTING = {"timer": ("seconds", "extend"), "lock": ("reason",), "unlock": ("pin",)}
FLAWS = ("wrong action", "no action", "wrong value", "misplaced field", "unknown key", "null")


@st.composite
def commands(draw: st.DrawFn, actions: tuple[str, ...] = ACTIONS) -> Recipe:
    """A valid JSON command with up to two flaws: every single mistake, and some pairs.

    Relaxing ``actions`` (unlock, cancel; timer means an extension then) mostly carry a fresh
    ``ts`` and the PIN, so that rule 5's every branch is reached.
    """
    action = draw(st.sampled_from(actions))
    fitting = ["id", "ts", *FITTING.get(action, ())]
    keys = draw(st.sets(st.sampled_from(fitting), max_size=3))
    if action == "timer":
        keys.add("seconds")
    relaxing = actions != ACTIONS
    if relaxing:
        keys |= draw(st.sampled_from([{"ts"}, {"ts"}, set()]))
        if action == "unlock":
            keys.add("pin")
    fields: dict[str, Any] = {"action": action}
    fields.update({key: draw(VALID[key]) for key in sorted(keys)})
    if relaxing and action == "timer":
        fields["extend"] = True
    if relaxing and "ts" in fields:
        fields["ts"] = Ago(draw(st.floats(-40, 40)), draw(st.sampled_from([None, "Z"])))
    flaws = draw(st.lists(st.sampled_from(FLAWS), max_size=2))
    for flaw in flaws:
        present = sorted(key for key in fields if key in VALID)
        if flaw == "wrong action":
            fields["action"] = draw(WRONG_ACTIONS)
        elif flaw == "no action":
            fields.pop("action", None)
        elif flaw == "wrong value" and present:
            key = draw(st.sampled_from(present))
            fields[key] = draw(WRONG[key])
        elif flaw == "misplaced field":
            key = draw(st.sampled_from(sorted(VALID)))
            fields[key] = draw(VALID[key])
        elif flaw == "unknown key":
            key = draw(TEXT.filter(lambda k: k not in KNOWN_KEYS))
            fields[key] = draw(JSON_VALUES | st.just(PIN))
        elif flaw == "null" and fields:
            fields[draw(st.sampled_from(sorted(fields)))] = None
    kind = "json-command" if not flaws else f"json-command, {len(flaws)} flaw(s)"
    return Recipe(kind, fields=fields)


def _cased(word: str, upper: list[bool]) -> str:
    return "".join(c.upper() if u else c.lower() for c, u in zip(word, upper, strict=False))


PLAIN_WORDS = st.builds(
    lambda word, upper, before, after: Recipe(
        "plain-word", raw=f"{before}{_cased(word, upper)}{after}".encode()),
    st.sampled_from(["OFF", "LOCK", "ON", "TOGGLE", "UNLOCK", "STOP", PIN, "oﬀ", ""]),
    st.lists(st.booleans(), min_size=6, max_size=6),
    st.sampled_from(["", " ", "\t", "\n"]),
    st.sampled_from(["", " ", "\r\n"]),
)
BROKEN_JSON = st.sampled_from([
    "{", "[]", '"OFF"', "null", "NaN", "600", '{"action": "off"', '{"action": "off",}',
    '{"action": "off", "action": "unlock"}', '{"action": "timer", "seconds": NaN}',
    '{"action": "timer", "seconds": Infinity}', '{"action": "timer", "seconds": -Infinity}',
    "[" * 3000 + "]" * 3000, '{"action": "timer", "seconds": ' + "9" * 4000 + "}",
    '{"a":' * 600 + "1" + "}" * 600, "{'action': 'off'}", '{"action": "off"}\x00',
]).map(lambda text: Recipe("broken-json", raw=text.encode()))
OVERSIZE = st.sampled_from([MAX_PAYLOAD_BYTES + 1, 5_000, 70_000]).map(
    lambda size: Recipe("oversize", raw=b'{"action": "off"' + b" " * (size - 17) + b"}"))
NOT_UTF8 = st.sampled_from([
    b"\xff\xfeOFF", b'{"action": "off", "id": "\xff"}', b"\xc0\x80", b"OFF\xed\xa0\x80",
]).map(lambda raw: Recipe("not-utf8", raw=raw))
OTHER_RECIPES = st.one_of(
    st.binary(max_size=200).map(lambda raw: Recipe("bytes", raw=raw)),
    JSON_VALUES.map(lambda value: Recipe("json-value", fields=None, raw=json.dumps(
        value, ensure_ascii=False).encode())),
    NASTY_TEXT.map(lambda text: Recipe("nasty-text", raw=text.encode("utf-8", "surrogatepass"))),
    PLAIN_WORDS, BROKEN_JSON, OVERSIZE, NOT_UTF8,
)
RECIPES = st.integers(0, 9).flatmap(lambda n: commands() if n < 5 else OTHER_RECIPES)
"""Half of them JSON commands, valid or nearly; the other half everything else."""
RELAXING_RECIPES = st.integers(0, 9).flatmap(
    lambda n: commands(("unlock", "cancel", "timer")) if n < 5 else RECIPES)
