"""Specification of the CLI's end of the control socket (stovectl.control.client)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from stovectl.control import protocol
from stovectl.control.client import ControlClient
from stovectl.errors import DaemonUnreachable, PermissionDenied, ProtocolError
from tests.control.conftest import (
    NOBODY_UID,
    RunningDaemon,
    Scenario,
    run_client_as_unprivileged_user,
)

Serve = Callable[[Scenario], None]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


def ping(path: Path, timeout_seconds: float = 10.0) -> dict[str, Any]:
    with ControlClient(path, timeout_seconds) as client:
        return client.call("ping")


# -- no daemon -----------------------------------------------------------------------------


def test_a_missing_socket_is_daemon_unreachable(socket_path: Path) -> None:
    """With no socket file, the client raises DaemonUnreachable naming the path and what to do."""
    with pytest.raises(DaemonUnreachable) as caught:
        ping(socket_path)
    message = str(caught.value)
    assert str(socket_path) in message
    assert "does not exist" in message
    assert "STOVECTL_SOCKET" in message


def test_a_stale_socket_is_daemon_unreachable(socket_path: Path) -> None:
    """A socket file nobody listens on (a daemon that died) is DaemonUnreachable, not a crash."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(socket_path))
    assert socket_path.is_socket()
    with pytest.raises(DaemonUnreachable, match="no stovectl daemon answers"):
        ping(socket_path)


def test_a_path_that_is_not_a_socket_is_daemon_unreachable(socket_path: Path) -> None:
    """A regular file where the socket should be is DaemonUnreachable."""
    socket_path.write_text("not a socket\n")
    with pytest.raises(DaemonUnreachable):
        ping(socket_path)


def test_a_path_too_long_for_a_socket_is_daemon_unreachable(socket_dir: Path) -> None:
    """A path longer than a Unix socket address allows is DaemonUnreachable, not an OSError."""
    with pytest.raises(DaemonUnreachable, match="cannot connect"):
        ping(socket_dir / ("x" * 200))


# -- permissions ---------------------------------------------------------------------------


def test_a_socket_the_user_may_not_use_is_permission_denied(serve: Serve) -> None:
    """A user without write permission on the socket gets PermissionDenied saying what to do."""

    async def scenario(daemon: RunningDaemon) -> None:
        daemon.path.parent.chmod(0o755)  # only the socket's own mode stands in the way
        daemon.path.chmod(0o000)
        report = await asyncio.to_thread(run_client_as_unprivileged_user, daemon.path, "ping")
        assert report.get("raised") == "PermissionDenied", report
        assert str(daemon.path) in report["message"]
        assert "group" in report["message"]

    serve(scenario)


def test_the_unprivileged_client_is_served_when_the_mode_allows(serve: Serve) -> None:
    """The same unprivileged client is served once the socket's mode lets it in."""

    async def scenario(daemon: RunningDaemon) -> None:
        daemon.path.parent.chmod(0o755)
        daemon.path.chmod(0o666)
        report = await asyncio.to_thread(run_client_as_unprivileged_user, daemon.path, "ping")
        assert report.get("reply", {}).get("ok") is True, report
        if os.geteuid() == 0:
            assert (report["uid"], report["groups"]) == (NOBODY_UID, [])

    serve(scenario)


def test_permission_denied_is_a_distinct_error() -> None:
    """PermissionDenied is not DaemonUnreachable, so the CLI can give it its own exit code."""
    assert not issubclass(PermissionDenied, DaemonUnreachable)


# -- against the real daemon ---------------------------------------------------------------


def test_a_call_returns_the_reply_to_its_own_request(serve: Serve) -> None:
    """call() returns the daemon's reply, whose id is the one the client generated."""

    async def scenario(daemon: RunningDaemon) -> None:
        reply = await asyncio.to_thread(ping, daemon.path)
        assert reply["ok"] is True
        assert isinstance(reply["id"], str)
        assert reply["id"]
        assert reply["result"]["burners"] == ["left", "right"]

    serve(scenario)


def test_a_refusal_is_returned_not_raised(serve: Serve) -> None:
    """A reply with ok false is handed back for the caller to judge, not raised."""

    async def scenario(daemon: RunningDaemon) -> None:
        reply = await daemon.call("off", burners=["middle"])
        assert reply["ok"] is False
        assert reply["error"]["code"] == "unknown_burner"

    serve(scenario)


def test_one_client_can_make_several_calls(serve: Serve) -> None:
    """A client that is not yet connected connects on its first call and then keeps asking."""

    async def scenario(daemon: RunningDaemon) -> None:
        def two_calls() -> list[dict[str, Any]]:
            client = ControlClient(daemon.path, 10)
            try:
                return [client.call("off", burners=["left"]), client.call("status")]
            finally:
                client.close()

        off, status = await asyncio.to_thread(two_calls)
        assert off["result"]["outcomes"][0]["result"] == "verified"
        assert status["result"]["burners"][0]["mode"] == "pulse"
        assert off["id"] != status["id"]

    serve(scenario)


# -- a daemon that misbehaves --------------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_daemon(path: Path, handler: Handler) -> AsyncIterator[None]:
    """A stand-in daemon that runs ``handler`` on each connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_unix_server(serve, path=str(path))
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


def run_against(path: Path, handler: Handler, client_call: Callable[[], Any]) -> Any:
    async def main() -> Any:
        async with fake_daemon(path, handler):
            return await asyncio.to_thread(client_call)

    return asyncio.run(main())


def test_a_reply_that_is_not_json_is_a_protocol_error(socket_path: Path) -> None:
    """A reply line that is not JSON raises ProtocolError."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"OK!\n")
        await writer.drain()

    with pytest.raises(ProtocolError, match="not JSON"):
        run_against(socket_path, handler, lambda: ping(socket_path))


def test_a_reply_to_another_request_is_a_protocol_error(socket_path: Path) -> None:
    """A reply carrying another request's id raises ProtocolError instead of being believed."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(protocol.encode(protocol.ok("someone-else", {"pong": True})))
        await writer.drain()

    with pytest.raises(ProtocolError, match="does not match"):
        run_against(socket_path, handler, lambda: ping(socket_path))


def test_a_reply_split_over_several_packets_is_read_whole(socket_path: Path) -> None:
    """A reply that arrives in pieces is put back together before it is decoded."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = json.loads(await reader.readline())
        reply = protocol.encode(protocol.ok(request["id"], {"pong": True}))
        for piece in (reply[:5], reply[5:17], reply[17:]):
            writer.write(piece)
            await writer.drain()

    reply = run_against(socket_path, handler, lambda: ping(socket_path))
    assert reply["result"] == {"pong": True}


def test_a_daemon_that_hangs_up_without_answering_is_unreachable(socket_path: Path) -> None:
    """A connection closed before the reply raises DaemonUnreachable."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()

    with pytest.raises(DaemonUnreachable, match="closed the connection"):
        run_against(socket_path, handler, lambda: ping(socket_path))


def test_a_daemon_that_never_answers_times_out(socket_path: Path) -> None:
    """When no reply comes within the timeout, the client raises DaemonUnreachable saying so."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # holds the line open until the client gives up and closes

    with pytest.raises(DaemonUnreachable, match=r"did not answer within 0\.2s"):
        run_against(socket_path, handler, lambda: ping(socket_path, timeout_seconds=0.2))


def test_the_request_on_the_wire_is_one_versioned_json_line(socket_path: Path) -> None:
    """The client sends one JSON line with the protocol version, an id, the op and its arguments."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        seen.append(line)
        writer.write(protocol.encode(protocol.ok(json.loads(line)["id"], {})))
        await writer.drain()

    def lock() -> dict[str, Any]:
        with ControlClient(socket_path, 10) as client:
            return client.call("lock", burners=["left"], reason="child")

    run_against(socket_path, handler, lock)
    [line] = seen
    request = protocol.decode_request(line.rstrip(b"\n"))
    assert (request.op, request.args) == ("lock", {"burners": ["left"], "reason": "child"})
