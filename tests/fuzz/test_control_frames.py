"""Bad frames on the control socket: one clear answer per line, and the connection goes on.

A real ControlServer on a Unix socket serves a controller on the simulated
stove; both run on a VirtualTimeLoop, so a shutoff's re-arm costs no real
time. Each example opens a connection and sends a batch of lines (arbitrary
bytes, blank and oversized lines, JSON of every wrong shape, unknown ops,
other versions, ids of every type, and valid requests among them), cut into
chunks at arbitrary points so that lines arrive in pieces, then a ping. Every
non-blank line must get exactly one reply, in order, under its own id when it
had a usable one; each refusal has a known code and a message naming the
problem, never ``internal``; the ping is answered on the same connection; a
batch that changed nothing by a valid command leaves every intent as it was;
the store holds what the controller intends; nothing is logged as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stovectl.control import protocol
from stovectl.control.server import ControlServer
from stovectl.settings import settings_from_mapping
from tests.fuzz.campaign import (
    JSON_VALUES,
    NUMBERS,
    TEXT,
    LogGuard,
    Tally,
    budget,
)
from tests.fuzz.hob import Baseline, Hob, Intent
from tests.support.kitchen import Kitchen, kitchen_config
from tests.support.virtual_time import VirtualTimeLoop

REPLY_WITHIN_SECONDS = 30.0
BASELINE: Baseline = {
    "left": Intent(lock_reason="child"), "right": Intent(countdown_seconds=600.0)}
READ_ONLY_OPS = frozenset({"ping", "status", "history", "schedules"})
NAMES_THE_PROBLEM: dict[str, tuple[str, ...]] = {
    "bad_json": ("JSON", "UTF-8"),
    "bad_request": ('"burners"', '"reason"', "'seconds'", '"extend"', '"limit"', '"burner"',
                    "'since'", '"id"', "object"),
    "bad_version": ("version",),
    "unknown_op": ("op", "known:"),
    "unknown_burner": ("burner",),
    "bad_duration": ("countdown",),
    "would_extend": ("extend",),
    "line_too_long": (str(protocol.MAX_LINE_BYTES),),
}


# -- drawing lines ---------------------------------------------------------------------

def _mostly(valid: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 3).flatmap(lambda n: valid if n else wrong)


ids = _mostly(
    st.text(min_size=1, max_size=128),
    st.sampled_from([None, "", "i" * 129]) | NUMBERS | st.booleans() | st.lists(TEXT, max_size=2)
    | st.dictionaries(TEXT, TEXT, max_size=1),
)
versions = _mostly(st.just(1), st.sampled_from([0, 2, "1", 1.0, True, None, -1, 10**20]))
ops = _mostly(st.sampled_from(sorted(protocol.OPS)),
              st.sampled_from(["reboot", "", "OFF", "Ping", "ping ", None, 3, 1.5, True])
              | TEXT | JSON_VALUES)
names = st.sampled_from(["left", "right", "all", "middle", "LEFT"])
ARGUMENTS: dict[str, st.SearchStrategy[Any]] = {
    "burners": _mostly(st.lists(names, min_size=1, max_size=2) | names, JSON_VALUES),
    "reason": _mostly(st.sampled_from(["child", "away"]),
                      st.sampled_from(["", "x" * 65, 7]) | TEXT),
    "seconds": _mostly(st.sampled_from([60, 0.5, 600, 1e-9]) | st.floats(0.001, 1e6),
                       st.sampled_from([0, -5, 1e300, float("nan"), float("inf"), "10m", True])
                       | NUMBERS),
    "extend": _mostly(st.booleans(), JSON_VALUES),
    "since": _mostly(st.floats(0, 2e9), NUMBERS | st.sampled_from(["1h", float("-inf")])),
    "limit": _mostly(st.integers(1, 10_000),
                     st.sampled_from([10_001, 0, -1, True, "5", 2.5]) | NUMBERS),
    "burner": _mostly(names, JSON_VALUES),
}


FITTING = {
    "off": ("burners",), "lock": ("burners", "reason"), "unlock": ("burners",),
    "timer": ("burners", "seconds", "extend"), "cancel": ("burners",),
    "history": ("since", "limit", "burner"),
}


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A JSON object shaped more or less like a request."""
    message: dict[str, Any] = {}
    for key, values in (("v", versions), ("id", ids), ("op", ops)):
        if draw(st.integers(0, 9)):
            message[key] = draw(values)
    fitting = FITTING.get(message["op"], ()) if isinstance(message.get("op"), str) else ()
    chosen = draw(st.sets(st.sampled_from(sorted(ARGUMENTS)), max_size=2))
    for name in sorted(chosen | {name for name in fitting if draw(st.integers(0, 3))}):
        message[name] = draw(ARGUMENTS[name])
    if draw(st.integers(0, 9)) == 0:
        extra = TEXT.filter(lambda key: key not in ("v", "id", "op"))
        message.update(draw(st.dictionaries(extra, JSON_VALUES, max_size=2)))
    return json.dumps(message, ensure_ascii=draw(st.booleans())).encode()


@dataclass(frozen=True)
class Line:
    kind: str
    data: bytes
    """The line without its newline."""


def _hashable_op(value: object) -> bool:
    """Not an object whose op is a list or an object: see ``ops``."""
    return not (isinstance(value, dict) and isinstance(value.get("op"), list | dict))


def _line(kind: str) -> Any:
    return lambda data: Line(kind, data.replace(b"\n", b" "))


OTHER_LINES = st.one_of(
    st.binary(max_size=120).map(_line("bytes")),
    JSON_VALUES.filter(_hashable_op).map(lambda value: json.dumps(value).encode()).map(
        _line("json-value")),
    st.sampled_from([b"", b" ", b"\t\r", b"\x0b\x0c"]).map(_line("blank")),
    st.sampled_from([
        b"{", b'{"v": 1, "id": "a", "op": "ping"', b'{"v":1,"id":"a","op":"ping"} trailing',
        b"[" * 5000, b'{"v": 1, "id": "a", "op": "ping", "n": ' + b"1" * 5000 + b"}",
        b'{"v": 1, "id": "\xff", "op": "ping"}', b"\xfe\xff\x00{", b"NaN", b"null",
        '{"v": 1, "id": "a", "op": "ping"}'.encode("utf-16"),
    ]).map(_line("broken-json")),
    st.sampled_from([protocol.MAX_LINE_BYTES + 1, 2 * protocol.MAX_LINE_BYTES + 7]).map(
        lambda size: Line("oversize", b'{"v": 1, "id": "big", "op": "off", "pad": "'
                          + b"a" * size + b'"}')),
)
LINES = st.integers(0, 9).flatmap(
    lambda n: requests().map(_line("request")) if n < 6 else OTHER_LINES)
batches = st.lists(LINES, min_size=1, max_size=6)
cuts = st.lists(st.integers(min_value=0), max_size=4)


# -- the server and a connection -------------------------------------------------------


class ControlHob:
    """A controller on the simulated stove and its real ControlServer, on virtual time."""

    def __init__(self, guard: LogGuard) -> None:
        self.guard = guard
        config = kitchen_config()
        for burner in config["burners"]:
            burner["cut_hold"] = "2s"
        self.settings = settings_from_mapping(config)
        self.folder = Path(tempfile.mkdtemp(prefix="stv-fuzz-ctl"))
        self.path = self.folder / "s.sock"
        self.runner = asyncio.Runner(loop_factory=VirtualTimeLoop)
        self.runner.run(self._start())

    async def _start(self) -> None:
        self.kitchen = Kitchen(self.settings, self.folder)
        await self.kitchen.start()
        self.server = ControlServer(self.kitchen.controller, self.path)
        await self.server.start()
        self.hob = Hob(
            self.settings, lambda: self.kitchen.controller, lambda: self.kitchen.store,
            lambda device, channel: self.kitchen.world.devices[device].state(channel), BASELINE,
        )

    def close(self) -> None:
        self.runner.run(self.server.close())
        self.runner.run(self.kitchen.close())
        self.runner.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    async def exchange(self, lines: list[Line], cut_at: list[int]) -> dict[str, Any]:
        """Send the batch in chunks, then a ping; every reply up to the ping's, and the hob."""
        await self.hob.restore()
        before = self.hob.snapshot()
        stream = b"".join(line.data + b"\n" for line in lines)
        points = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cut_at)})
        reader, writer = await asyncio.open_unix_connection(str(self.path), limit=2**20)
        try:
            for start, end in itertools.pairwise(points):
                writer.write(stream[start:end])
                await writer.drain()
                await asyncio.sleep(0)  # let the server read this piece alone
            writer.write(protocol.encode(protocol.request("ping", "after-batch")))
            await writer.drain()
            replies = []
            async with asyncio.timeout(REPLY_WITHIN_SECONDS):
                while True:
                    raw = await reader.readline()
                    assert raw.endswith(b"\n"), f"the connection ended instead: {raw[:200]!r}"
                    replies.append(json.loads(raw))
                    if replies[-1].get("id") == "after-batch":
                        break
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        return {"before": before, "after": self.hob.snapshot(), "replies": replies,
                "durability": self.hob.durability_problems()}


@pytest.fixture(scope="module")
def control_hob(log_guard: LogGuard) -> Iterator[ControlHob]:
    hob = ControlHob(log_guard)
    yield hob
    hob.close()


# -- judging ---------------------------------------------------------------------------


def expected_id(line: bytes) -> str | None:
    """The id a reply must carry: the request's, when it is an object with a usable id."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    request_id = message.get("id") if isinstance(message, dict) else None
    if isinstance(request_id, str) and 1 <= len(request_id) <= 128:
        return request_id
    return None


def reply_problems(line: Line, reply: dict[str, Any]) -> list[str]:
    problems = []
    if reply.get("v") != protocol.VERSION or not isinstance(reply.get("ok"), bool):
        problems.append(f"a reply without version or ok: {reply}")
    oversize = len(line.data) > protocol.MAX_LINE_BYTES
    wanted_id = None if oversize else expected_id(line.data)
    if reply.get("id") != wanted_id:
        problems.append(f"reply id {reply.get('id')!r}, expected {wanted_id!r}")
    if reply.get("ok") is True:
        return problems
    error = reply.get("error") or {}
    code, message = error.get("code"), error.get("message")
    if oversize and code != "line_too_long":
        problems.append(f"an oversized line got {code!r}")
    hints = NAMES_THE_PROBLEM.get(code)  # type: ignore[arg-type]
    if hints is None:
        problems.append(f"unexpected error code {code!r}: {message!r}")
    elif not isinstance(message, str) or not any(hint in message for hint in hints):
        problems.append(f"{code} message names none of {hints}: {message!r}")
    elif len(message) > 600:
        problems.append(f"a message of {len(message)} characters: {message[:80]!r}...")
    return problems


@budget(bounded=500, soak=10_000)
@given(lines=batches, cut_at=cuts)
def test_every_line_gets_one_clear_answer_and_the_connection_goes_on(
    control_hob: ControlHob, log_guard: LogGuard, tally: Tally, lines: list[Line],
    cut_at: list[int],
) -> None:
    """Whatever lines arrive, in whatever pieces: one reply per non-blank line, in order, with
    its id; no internal error; a ping still answered; intents changed only by valid commands."""
    tally.tried("batches", *(line.kind for line in lines))
    result = control_hob.runner.run(control_hob.exchange(lines, cut_at))
    replies = result["replies"]
    answered = [line for line in lines if line.data.strip()]
    problems = []
    if len(replies) != len(answered) + 1:
        problems.append(f"{len(replies) - 1} replies to {len(answered)} non-blank lines")
    for line, reply in zip(answered, replies, strict=False):
        problems += [f"{line.kind} line {line.data[:120]!r}: {p}"
                     for p in reply_problems(line, reply)]
        tally.saw(f"answered {request_op(line.data)}" if reply.get("ok") else
                  f"refused {(reply.get('error') or {}).get('code')}")
    if replies and replies[-1] != protocol.ok(
        "after-batch", {"pong": True, "burners": ["left", "right"]}
    ):
        problems.append(f"the ping after the batch got {replies[-1]}")
    changed_by_command = any(
        reply.get("ok") and request_op(line.data) not in READ_ONLY_OPS
        for line, reply in zip(answered, replies, strict=False)
    )
    before, after = result["before"], result["after"]
    if not changed_by_command and after != before:
        problems.append(f"intents changed without a valid command: {before} -> {after}")
    problems += result["durability"]
    problems += [f"logged: {line}" for line in log_guard.take()]
    assert not problems, "\n".join(problems)


def request_op(line: bytes) -> object:
    with contextlib.suppress(ValueError, RecursionError, AttributeError):
        return json.loads(line).get("op")
    return None
