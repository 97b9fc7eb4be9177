"""Specification of the daemon's end of the control socket (stovectl.control.server).

Every test runs a real controller on the simulated stove behind a real
ControlServer on a Unix socket, and talks to it as a user would: through the
ControlClient, or through a bare socket for what the client would never send.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stovectl.control import protocol
from stovectl.control.client import ControlClient
from stovectl.control.render import format_status
from stovectl.control.server import ControlServer
from stovectl.core.events import Kind
from stovectl.devices.base import RelayState
from tests.control.conftest import (
    NOBODY_UID,
    EventWaiter,
    RunningDaemon,
    Scenario,
    raw_connection,
    run_client_as_unprivileged_user,
    running_daemon,
)

Serve = Callable[[Scenario], None]

# The relay states that cut and arm each burner of the test hob (see conftest.CONFIG).
LEFT_CUT, LEFT_ARMED = RelayState.ON, RelayState.OFF
RIGHT_CUT, RIGHT_ARMED = RelayState.OFF, RelayState.ON


def actor_for(uid: int) -> str:
    return f"uid:{uid} ({pwd.getpwuid(uid).pw_name})"


def rows(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in status["burners"]}


def ping_line(request_id: str) -> bytes:
    return protocol.encode(protocol.request("ping", request_id))


# -- the ops -------------------------------------------------------------------------------


def test_ping_answers_with_the_burners(serve: Serve) -> None:
    """ping answers ok, with the request's id and the burner names."""

    async def scenario(daemon: RunningDaemon) -> None:
        reply = await daemon.call("ping")
        assert reply["ok"] is True
        assert reply["v"] == protocol.VERSION
        assert reply["result"] == {"pong": True, "burners": ["left", "right"]}

    serve(scenario)


def test_status_reports_the_stove_and_each_burner(serve: Serve) -> None:
    """status names the stove and shows each burner armed with its relay read back."""

    async def scenario(daemon: RunningDaemon) -> None:
        status = await daemon.result("status")
        assert status["stove"] == {"id": "test", "name": "Test hob"}
        by_id = rows(status)
        assert list(by_id) == ["left", "right"]
        for burner_id, channel in (("left", 1), ("right", 2)):
            row = by_id[burner_id]
            assert (row["mode"], row["relay"], row["device"], row["channel"]) == (
                "armed", "armed", "sim", channel,
            )
            assert row["countdown"] is None
            assert row["alarm"] is False

    serve(scenario)


def test_off_cuts_the_burner_and_reports_it_verified(serve: Serve) -> None:
    """off left returns a verified outcome once the relay reads back cut, and leaves right armed."""

    async def scenario(daemon: RunningDaemon) -> None:
        result = await daemon.result("off", burners=["left"])
        [outcome] = result["outcomes"]
        assert (outcome["burner"], outcome["result"]) == ("left", "verified")
        assert outcome["latency_ms"] is not None
        assert daemon.relay.state(1) is LEFT_CUT
        assert daemon.relay.state(2) is RIGHT_ARMED
        assert daemon.world.stove.snapshot("left").loop_closed is False
        left = rows(await daemon.result("status"))["left"]
        assert (left["mode"], left["relay"]) == ("pulse", "cut")
        assert 0 < left["rearm_in"] <= 5

    serve(scenario)


def test_off_without_burners_cuts_every_burner(serve: Serve) -> None:
    """off with no burners named cuts them all, each through its own wiring."""

    async def scenario(daemon: RunningDaemon) -> None:
        result = await daemon.result("off")
        assert [(o["burner"], o["result"]) for o in result["outcomes"]] == [
            ("left", "verified"), ("right", "verified"),
        ]
        assert (daemon.relay.state(1), daemon.relay.state(2)) == (LEFT_CUT, RIGHT_CUT)

    serve(scenario)


def test_a_status_reply_renders_as_a_table(serve: Serve) -> None:
    """The status reply is what format_status needs: a cut burner shows its re-arm countdown."""

    async def scenario(daemon: RunningDaemon) -> None:
        await daemon.result("off", burners=["left"])
        lines = format_status(await daemon.result("status")).splitlines()
        assert lines[0] == "Test hob (test)"
        assert lines[2].startswith("left")
        assert "cut, re-arms in" in lines[2]
        assert "sim/1 online" in lines[2]

    serve(scenario)


def test_lock_cuts_and_keeps_the_reason(serve: Serve) -> None:
    """lock cuts the burner, verified, and status shows it locked with the given reason."""

    async def scenario(daemon: RunningDaemon) -> None:
        result = await daemon.result("lock", burners=["right"], reason="child")
        assert [(o["burner"], o["result"]) for o in result["outcomes"]] == [("right", "verified")]
        assert daemon.relay.state(2) is RIGHT_CUT
        right = rows(await daemon.result("status"))["right"]
        assert (right["mode"], right["lock_reason"], right["rearm_in"]) == (
            "locked", "child", None,
        )

    serve(scenario)


@pytest.mark.parametrize("reason", [7, "", "x" * 65], ids=["number", "empty", "long"])
def test_lock_with_a_bad_reason_is_refused_and_locks_nothing(serve: Serve, reason: Any) -> None:
    """A lock reason that is not a short string is bad_request, and nothing is cut."""

    async def scenario(daemon: RunningDaemon) -> None:
        reply = await daemon.call("lock", burners=["left"], reason=reason)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "bad_request"
        assert daemon.relay.state(1) is LEFT_ARMED
        assert rows(await daemon.result("status"))["left"]["mode"] == "armed"

    serve(scenario)


def test_unlock_re_arms_a_locked_burner(serve: Serve) -> None:
    """unlock re-arms a locked burner, verified at the relay."""

    async def scenario(daemon: RunningDaemon) -> None:
        await daemon.result("lock", burners=["left"], reason="away")
        result = await daemon.result("unlock", burners=["left"])
        assert [(o["burner"], o["result"]) for o in result["outcomes"]] == [("left", "verified")]
        assert daemon.relay.state(1) is LEFT_ARMED
        assert rows(await daemon.result("status"))["left"]["mode"] == "armed"

    serve(scenario)


def test_unlock_without_burners_is_bad_request(serve: Serve) -> None:
    """unlock never defaults to all: without "burners" it is bad_request and the lock holds."""

    async def scenario(daemon: RunningDaemon) -> None:
        await daemon.result("lock", reason="child")
        reply = await daemon.call("unlock")
        assert reply["ok"] is False
        assert reply["error"]["code"] == "bad_request"
        assert (daemon.relay.state(1), daemon.relay.state(2)) == (LEFT_CUT, RIGHT_CUT)
        assert {r["mode"] for r in (await daemon.result("status"))["burners"]} == {"locked"}

    serve(scenario)


def test_timer_starts_a_countdown(serve: Serve) -> None:
    """timer starts a countdown that status shows counting down from the given seconds."""

    async def scenario(daemon: RunningDaemon) -> None:
        result = await daemon.result("timer", burners=["left"], seconds=600)
        [outcome] = result["outcomes"]
        assert (outcome["burner"], outcome["result"]) == ("left", "done")
        assert "10m" in outcome["message"]
        countdown = rows(await daemon.result("status"))["left"]["countdown"]
        assert 590 < countdown["remaining"] <= 600
        assert countdown["source"] == "cli"
        assert daemon.relay.state(1) is LEFT_ARMED

    serve(scenario)


def test_a_countdown_that_runs_out_cuts_the_burner(serve: Serve) -> None:
    """When a countdown reaches zero the burner is shut off with source timer."""

    async def scenario(daemon: RunningDaemon) -> None:
        fired = EventWaiter(
            daemon.controller.events,
            lambda e: e.kind is Kind.SHUTOFF and e.burner == "right" and e.source == "timer",
        )
        await daemon.result("timer", burners=["right"], seconds=0.05)
        event = await fired.wait()
        assert event.is_verified
        assert daemon.relay.state(2) is RIGHT_CUT

    serve(scenario)


def test_a_later_timer_is_refused_unless_extend_is_given(serve: Serve) -> None:
    """A later deadline is would_extend; with "extend": true the time is added."""

    async def scenario(daemon: RunningDaemon) -> None:
        await daemon.result("timer", burners=["left"], seconds=60)
        refused = await daemon.call("timer", burners=["left"], seconds=120)
        assert refused["ok"] is False
        assert refused["error"]["code"] == "would_extend"
        await daemon.result("timer", burners=["left"], seconds=120, extend=True)
        countdown = rows(await daemon.result("status"))["left"]["countdown"]
        assert 170 < countdown["remaining"] <= 180

    serve(scenario)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"burners": ["left"]}, "bad_request"),
        ({"burners": ["left"], "seconds": "10m"}, "bad_request"),
        ({"burners": ["left"], "seconds": 60, "extend": "yes"}, "bad_request"),
        ({"burners": ["left"], "seconds": 0}, "bad_duration"),
        ({"burners": ["left"], "seconds": -5}, "bad_duration"),
    ],
    ids=["no-seconds", "string-seconds", "string-extend", "zero", "negative"],
)
def test_a_bad_timer_is_refused(serve: Serve, args: dict[str, Any], code: str) -> None:
    """A timer without a positive number of seconds, or with a non-boolean extend, is refused."""

    async def scenario(daemon: RunningDaemon) -> None:
        reply = await daemon.call("timer", **args)
        assert reply["ok"] is False
        assert reply["error"]["code"] == code
        assert rows(await daemon.result("status"))["left"]["countdown"] is None

    serve(scenario)


def test_a_timer_of_infinite_seconds_is_refused(serve: Serve) -> None:
    """A raw request for Infinity seconds is bad_request and leaves no countdown behind."""

    async def scenario(daemon: RunningDaemon) -> None:
        async with raw_connection(daemon.path) as connection:
            await connection.send(
                b'{"v": 1, "id": "inf", "op": "timer", "burners": ["left"], "seconds": Infinity}\n'
            )
            reply = await connection.reply()
        assert (reply["id"], reply["ok"], reply["error"]["code"]) == ("inf", False, "bad_request")
        assert rows(await daemon.result("status"))["left"]["countdown"] is None

    serve(scenario)


def test_cancel_ends_a_countdown(serve: Serve) -> None:
    """cancel ends a running countdown, and says so when there was none."""

    async def scenario(daemon: RunningDaemon) -> None:
        await daemon.result("timer", burners=["left"], seconds=600)
        cancelled = await daemon.result("cancel", burners=["left"])
        assert cancelled["outcomes"][0]["message"] == "left countdown cancelled"
        assert rows(await daemon.result("status"))["left"]["countdown"] is None
        again = await daemon.result("cancel", burners=["left"])
        assert again["outcomes"][0]["message"] == "left had no countdown"

    serve(scenario)


def test_history_lists_what_happened(serve: Serve) -> None:
    """history returns the recorded events in order, newest last, filtered by burner and limit."""

    async def scenario(daemon: RunningDaemon) -> None:
        await daemon.result("off", burners=["left"])
        await daemon.result("lock", burners=["right"], reason="child")
        events = (await daemon.result("history"))["events"]
        assert events[0]["kind"] == "startup"
        assert [(e["kind"], e["burner"]) for e in events[1:]] == [
            ("shutoff", "left"), ("lock", "right"),
        ]
        shutoff = events[1]
        assert (shutoff["source"], shutoff["result"], shutoff["verified"]) == (
            "cli", "verified", True,
        )
        only_right = (await daemon.result("history", burner="right"))["events"]
        assert [e["kind"] for e in only_right] == ["lock"]
        latest = (await daemon.result("history", limit=1))["events"]
        assert [e["kind"] for e in latest] == ["lock"]
        future = (await daemon.result("history", since=shutoff["time"] + 3600))["events"]
        assert future == []

    serve(scenario)


def test_history_for_all_burners_lists_every_burner(serve: Serve) -> None:
    """history with burner "all" is every burner's history, as "all" means everywhere else."""

    async def scenario(daemon: RunningDaemon) -> None:
        await daemon.result("off")
        events = (await daemon.result("history", burner="all"))["events"]
        assert {e["burner"] for e in events if e["kind"] == "shutoff"} == {"left", "right"}

    serve(scenario)


@pytest.mark.parametrize(
    "args",
    [{"limit": 0}, {"limit": 10_001}, {"limit": True}, {"limit": "5"}, {"since": "1h"},
     {"burner": 3}],
    ids=["limit-zero", "limit-huge", "limit-bool", "limit-string", "since-string",
         "burner-number"],
)
def test_bad_history_arguments_are_bad_request(serve: Serve, args: dict[str, Any]) -> None:
    """A limit outside 1..10000, a non-numeric since or a non-string burner is bad_request."""

    async def scenario(daemon: RunningDaemon) -> None:
        reply = await daemon.call("history", **args)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "bad_request"

    serve(scenario)


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("off", {"burners": ["middle"]}),
        ("lock", {"burners": ["left", "middle"]}),
        ("unlock", {"burners": ["middle"]}),
        ("timer", {"burners": ["middle"], "seconds": 60}),
        ("cancel", {"burners": ["middle"]}),
        ("history", {"burner": "middle"}),
    ],
)
def test_an_unknown_burner_is_refused_with_the_valid_names(
    serve: Serve, op: str, args: dict[str, Any]
) -> None:
    """Naming a burner that does not exist is unknown_burner, and the reply lists the real ones."""

    async def scenario(daemon: RunningDaemon) -> None:
        reply = await daemon.call(op, **args)
        assert reply["ok"] is False
        assert reply["error"]["code"] == "unknown_burner"
        assert reply["error"]["burners"] == ["left", "right"]
        assert "'middle'" in reply["error"]["message"]

    serve(scenario)


# -- what a client cannot break ------------------------------------------------------------


def test_a_garbage_line_gets_an_error_and_the_connection_keeps_working(serve: Serve) -> None:
    """A line that is not JSON gets a bad_json reply, and the same connection then serves a ping."""

    async def scenario(daemon: RunningDaemon) -> None:
        async with raw_connection(daemon.path) as connection:
            await connection.send(b"please turn the stove off\n")
            error = await connection.reply()
            assert (error["ok"], error["id"], error["error"]["code"]) == (False, None, "bad_json")
            await connection.send(ping_line("after"))
            assert await connection.reply() == protocol.ok(
                "after", {"pong": True, "burners": ["left", "right"]}
            )

    serve(scenario)


def test_errors_with_an_id_echo_it(serve: Serve) -> None:
    """A well-formed request refused for its op or version is answered under its own id."""

    async def scenario(daemon: RunningDaemon) -> None:
        async with raw_connection(daemon.path) as connection:
            await connection.send(b'{"v": 1, "id": "a", "op": "explode"}\n'
                                  b'{"v": 9, "id": "b", "op": "ping"}\n')
            first, second = await connection.reply(), await connection.reply()
        assert (first["id"], first["error"]["code"]) == ("a", "unknown_op")
        assert (second["id"], second["error"]["code"]) == ("b", "bad_version")

    serve(scenario)


def test_several_requests_in_one_send_are_answered_in_order(serve: Serve) -> None:
    """Requests sent together are each answered, in order; blank lines are ignored."""

    async def scenario(daemon: RunningDaemon) -> None:
        async with raw_connection(daemon.path) as connection:
            await connection.send(b"\n  \n" + ping_line("one") + b"\r\n" + ping_line("two"))
            replies = await connection.replies_until("two")
        assert [(r["id"], r["ok"]) for r in replies] == [("one", True), ("two", True)]

    serve(scenario)


def test_a_line_of_exactly_the_maximum_length_is_served(serve: Serve) -> None:
    """A request line of exactly MAX_LINE_BYTES (newline excluded) is still served."""

    async def scenario(daemon: RunningDaemon) -> None:
        bare = protocol.encode(protocol.request("ping", "edge", pad="")).rstrip(b"\n")
        padding = "a" * (protocol.MAX_LINE_BYTES - len(bare))
        line = protocol.encode(protocol.request("ping", "edge", pad=padding))
        assert len(line) == protocol.MAX_LINE_BYTES + 1
        async with raw_connection(daemon.path) as connection:
            await connection.send(line)
            reply = await connection.reply()
        assert (reply["id"], reply["ok"]) == ("edge", True)

    serve(scenario)


def test_an_oversized_line_gets_one_error_and_the_connection_keeps_working(serve: Serve) -> None:
    """A line over MAX_LINE_BYTES sent with its newline gets one line_too_long, then pings work."""

    async def scenario(daemon: RunningDaemon) -> None:
        async with raw_connection(daemon.path) as connection:
            await connection.send(b"x" * (protocol.MAX_LINE_BYTES + 1) + b"\n" + ping_line("p"))
            replies = await connection.replies_until("p")
        assert [r["error"]["code"] for r in replies[:-1]] == ["line_too_long"]
        assert replies[-1]["ok"] is True

    serve(scenario)


def test_an_oversized_valid_request_is_not_served(serve: Serve) -> None:
    """A well-formed request longer than MAX_LINE_BYTES is refused as line_too_long, not obeyed."""

    async def scenario(daemon: RunningDaemon) -> None:
        padding = "a" * (protocol.MAX_LINE_BYTES + 10)
        line = protocol.encode(protocol.request("off", "big", burners=["left"], pad=padding))
        async with raw_connection(daemon.path) as connection:
            await connection.send(line + ping_line("p"))
            replies = await connection.replies_until("p")
        assert [r["error"]["code"] for r in replies[:-1]] == ["line_too_long"]
        assert replies[-1]["ok"] is True
        assert daemon.relay.state(1) is LEFT_ARMED

    serve(scenario)


def test_an_oversized_line_is_refused_before_its_newline_arrives(serve: Serve) -> None:
    """Once a line outgrows the limit, line_too_long comes at once; the rest of the line is
    dropped over any number of sends, without a second error, and the next line is served."""

    async def scenario(daemon: RunningDaemon) -> None:
        async with raw_connection(daemon.path) as connection:
            for _ in range(4):
                await connection.send(b"y" * (protocol.MAX_LINE_BYTES // 3))
            error = await connection.reply()
            assert (error["id"], error["error"]["code"]) == (None, "line_too_long")
            for _ in range(5):
                await connection.send(b"z" * (protocol.MAX_LINE_BYTES // 2))
            await connection.send(b"z\n")
            await connection.send(ping_line("after"))
            replies = await connection.replies_until("after")
        assert [(r["id"], r["ok"]) for r in replies] == [("after", True)]

    serve(scenario)


def test_a_second_client_is_served_while_the_first_sends_half_a_line(serve: Serve) -> None:
    """A client that stops mid-line holds up nobody: another client is served, then the first."""

    async def scenario(daemon: RunningDaemon) -> None:
        async with raw_connection(daemon.path) as slow:
            line = protocol.encode(protocol.request("off", "slow", burners=["right"]))
            await slow.send(line[:20])
            reply = await daemon.call("off", burners=["left"])
            assert reply["result"]["outcomes"][0]["result"] == "verified"
            assert daemon.relay.state(1) is LEFT_CUT
            await slow.send(line[20:])
            slow_reply = await slow.reply()
        assert (slow_reply["id"], slow_reply["ok"]) == ("slow", True)
        assert daemon.relay.state(2) is RIGHT_CUT

    serve(scenario)


def test_a_client_that_hangs_up_mid_line_does_not_hurt_the_daemon(serve: Serve) -> None:
    """A connection closed in the middle of a request is dropped, and the daemon serves on."""

    async def scenario(daemon: RunningDaemon) -> None:
        async with raw_connection(daemon.path) as connection:
            await connection.send(b'{"v": 1, "id": "gone", "op": "of')
        assert (await daemon.call("ping"))["ok"] is True

    serve(scenario)


# -- who asked -----------------------------------------------------------------------------


def test_the_peer_uid_is_recorded_as_the_actor(serve: Serve) -> None:
    """Commands over the socket are recorded with the peer's uid and user name as the actor."""

    async def scenario(daemon: RunningDaemon) -> None:
        await daemon.result("off", burners=["left"])
        await daemon.result("lock", burners=["right"], reason="child")
        events = (await daemon.result("history"))["events"]
        actors = {e["kind"]: e["actor"] for e in events if e["kind"] in ("shutoff", "lock")}
        assert actors == {"shutoff": actor_for(os.getuid()), "lock": actor_for(os.getuid())}

    serve(scenario)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another uid")
def test_another_users_command_is_recorded_under_their_uid(serve: Serve) -> None:
    """A command from another user is recorded under that user's uid, not the daemon's."""

    async def scenario(daemon: RunningDaemon) -> None:
        daemon.path.parent.chmod(0o755)
        daemon.path.chmod(0o666)
        report = await asyncio.to_thread(
            run_client_as_unprivileged_user, daemon.path, "off", burners=["left"]
        )
        assert report["uid"] == NOBODY_UID
        assert report["reply"]["ok"] is True, report
        events = (await daemon.result("history", burner="left"))["events"]
        assert [e["actor"] for e in events if e["kind"] == "shutoff"] == [actor_for(NOBODY_UID)]

    serve(scenario)


# -- the socket file -----------------------------------------------------------------------


def test_the_socket_is_mode_0660(serve: Serve) -> None:
    """The control socket is a socket file with mode 0660: owner and group only."""

    async def scenario(daemon: RunningDaemon) -> None:
        mode = os.stat(daemon.path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660

    serve(scenario)


def test_a_second_server_on_a_live_socket_is_refused(serve: Serve) -> None:
    """Starting a second server where one listens raises RuntimeError; closing it (as a failed
    daemon start does) leaves the first one's socket in place and answering."""

    async def scenario(daemon: RunningDaemon) -> None:
        second = ControlServer(daemon.controller, daemon.path)
        with pytest.raises(RuntimeError, match="another stovectl daemon"):
            await second.start()
        await second.close()
        assert daemon.path.is_socket()
        assert (await daemon.call("ping"))["ok"] is True

    serve(scenario)


def stale_socket(path: Path) -> None:
    """Leave a socket file behind as a daemon that died would: bound, then closed, not unlinked."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))
        dead.listen()
    assert path.is_socket()


def test_a_stale_socket_is_taken_over(serve: Serve, socket_path: Path) -> None:
    """A socket file left by a dead daemon is replaced, and the new server answers on it."""
    stale_socket(socket_path)

    async def scenario(daemon: RunningDaemon) -> None:
        assert daemon.path == socket_path
        assert (await daemon.call("ping"))["ok"] is True

    serve(scenario)


def test_a_file_that_is_not_a_socket_is_not_replaced(serve: Serve, socket_dir: Path) -> None:
    """A regular file at the socket path (a mistyped --socket) is refused, not deleted."""
    precious = socket_dir / "stovectl.toml"
    precious.write_text("[stove]\n")

    async def scenario(daemon: RunningDaemon) -> None:
        server = ControlServer(daemon.controller, precious)
        with pytest.raises(RuntimeError, match="not a socket"):
            await server.start()
        await server.close()

    serve(scenario)
    assert precious.read_text() == "[stove]\n"


def test_closing_removes_the_socket_and_ends_connections(
    tmp_path: Path, socket_path: Path
) -> None:
    """close() hangs up on connected clients and removes the socket file."""

    async def scenario() -> None:
        async with (
            running_daemon(tmp_path, socket_path) as daemon,
            raw_connection(socket_path) as connection,
        ):
            await connection.send(ping_line("before"))
            assert (await connection.reply())["ok"] is True
            await daemon.server.close()
            assert await asyncio.wait_for(connection.reader.read(), 5) == b""
            assert not await asyncio.to_thread(socket_path.exists)

    asyncio.run(scenario())


def test_the_client_reaches_a_server_started_in_a_missing_folder(
    tmp_path: Path, socket_dir: Path
) -> None:
    """The server creates the socket's folder when it does not exist yet."""
    path = socket_dir / "run" / "stovectl.sock"

    def ping() -> dict[str, Any]:
        with ControlClient(path, 10) as client:
            return client.call("ping")

    async def scenario() -> None:
        async with running_daemon(tmp_path, path):
            assert (await asyncio.to_thread(ping))["ok"] is True

    asyncio.run(scenario())
