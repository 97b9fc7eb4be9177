"""The daemon's end of the control socket: a Unix stream socket speaking JSON lines.

Each connection is served on its own task, one request at a time; the peer's
uid (SO_PEERCRED) is the actor recorded with every command. Nothing a client
sends can hurt the daemon or another client: garbage, oversized lines and
unknown ops each get an error reply, and the connection stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stovectl.control import protocol
from stovectl.control.protocol import Request, RequestError
from stovectl.core.controller import BurnerController
from stovectl.errors import CommandRefused

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
DEFAULT_GROUP = "stovectl"
READ_CHUNK = 65536
HISTORY_LIMIT_MAX = 10_000


def peer_actor(sock: socket.socket | None) -> str:
    """``uid:1000 (alice)`` for the process at the other end of a Unix socket."""
    if sock is None:
        return "unknown"
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return "unknown"
    _pid, uid, _gid = struct.unpack("3i", raw)
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"
    return f"uid:{uid} ({name})"


class ControlServer:
    """Serves the control protocol for a controller on a Unix socket."""

    def __init__(
        self,
        controller: BurnerController,
        path: Path,
        extra_status: Callable[[], dict[str, Any]] | None = None,
        group: str | None = None,
    ) -> None:
        self._controller = controller
        self.path = path
        self._group = group
        """The socket's group (``daemon.socket_group``); None: stovectl if it exists."""
        self._extra_status = extra_status
        """Adds to ``status`` what lives outside the controller: the MQTT connection, and
        the calendar schedules (``schedules``, which the op of that name also answers)."""
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._handlers: dict[str, Callable[[Request, str], Awaitable[Any]]] = {
            "ping": self._ping,
            "status": self._status,
            "off": self._off,
            "lock": self._lock,
            "unlock": self._unlock,
            "timer": self._timer,
            "cancel": self._cancel,
            "history": self._history,
            "schedules": self._schedules,
        }

    async def start(self) -> None:
        """Claim the socket and serve at once."""
        await self.bind()
        await self.serve()

    async def bind(self) -> None:
        """Claim the socket path and listen, without answering yet.

        The daemon binds before it touches any relay (a second daemon must stop
        here), and serves only after reconciliation; a client that connects in
        between waits in the backlog instead of being turned away.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if self.path.is_socket():
            await self._refuse_if_live()
            self.path.unlink()
        elif self.path.exists():
            # A mistyped --socket naming a real file must not cost the user that file.
            raise RuntimeError(f"{self.path} exists and is not a socket; not replacing it")
        old_umask = os.umask(0o117)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), start_serving=False
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, SOCKET_MODE)
        try:
            self._give_to_group()
        except RuntimeError:
            await self._forget()
            raise

    def _give_to_group(self) -> None:
        """Hand the socket to the group whose members may use it, or say why not."""
        name = self._group or DEFAULT_GROUP
        try:
            gid = grp.getgrnam(name).gr_gid
        except KeyError:
            if self._group is not None:
                raise RuntimeError(
                    f"daemon.socket_group: there is no group {name!r} on this machine "
                    f"(create it with `groupadd --system {name}`)"
                ) from None
            return  # no stovectl group here: the socket keeps the daemon's own group
        if self.path.stat().st_gid != gid:
            try:
                os.chown(self.path, -1, gid)
            except PermissionError:
                message = (f"cannot give {self.path} to group {name!r}: the daemon's user "
                           f"is not a member of it")
                if self._group is not None:
                    raise RuntimeError(f"daemon.socket_group: {message}") from None
                log.warning("%s; only the daemon's own group may use the socket", message)
                return
        log.debug("control socket %s: group %s, mode %o", self.path, name, SOCKET_MODE)

    async def _forget(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def serve(self) -> None:
        if self._server is None:
            raise RuntimeError("bind() the control socket before serving it")
        await self._server.start_serving()

    async def _refuse_if_live(self) -> None:
        try:
            _reader, writer = await asyncio.open_unix_connection(str(self.path))
        except OSError:
            return  # a stale socket from a daemon that died: take it over
        writer.close()
        raise RuntimeError(f"another stovectl daemon is listening on {self.path}")

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
            # Only a server that listened removes the socket: after a refused start the
            # path belongs to the daemon that is still running there.
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        actor = peer_actor(writer.get_extra_info("socket"))
        try:
            await self._converse(reader, writer, actor)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, actor: str
    ) -> None:
        buffer = bytearray()
        discarding = False
        while chunk := await reader.read(READ_CHUNK):
            buffer += chunk
            while (newline := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:newline])
                del buffer[: newline + 1]
                if discarding:
                    discarding = False  # the end of an oversized line
                    continue
                if len(line) > protocol.MAX_LINE_BYTES:
                    # Its newline came in the same read that took it past the limit.
                    await self._refuse_long_line(writer)
                elif line.strip():
                    writer.write(protocol.encode(await self._answer(line, actor)))
                    await writer.drain()
            if len(buffer) > protocol.MAX_LINE_BYTES:
                buffer.clear()
                if not discarding:
                    discarding = True
                    await self._refuse_long_line(writer)

    async def _refuse_long_line(self, writer: asyncio.StreamWriter) -> None:
        writer.write(protocol.encode(protocol.error(
            None, "line_too_long",
            f"a request line may be at most {protocol.MAX_LINE_BYTES} bytes",
        )))
        await writer.drain()

    async def _answer(self, line: bytes, actor: str) -> dict[str, Any]:
        request_id = None
        try:
            request = protocol.decode_request(line)
            request_id = request.id
            result = await self._handlers[request.op](request, actor)
        except RequestError as error:
            return protocol.error(error.request_id or request_id, error.code, str(error))
        except CommandRefused as refusal:
            # An unknown burner's reply names the valid ones, so the CLI can list them.
            extra = {}
            if refusal.code == "unknown_burner":
                extra["burners"] = self._controller.burner_ids
            return protocol.error(request_id, refusal.code, str(refusal), **extra)
        except Exception:
            log.exception("control request failed: %r", line[:200])
            return protocol.error(request_id, "internal", "the daemon failed on this request; "
                                  "see its log")
        return protocol.ok(request_id, result)

    # -- ops --------------------------------------------------------------------------

    async def _ping(self, request: Request, actor: str) -> Any:
        return {"pong": True, "burners": self._controller.burner_ids}

    async def _status(self, request: Request, actor: str) -> Any:
        status = {"burners": self._controller.status(), "stove": self._stove(),
                  "sensors": self._controller.sensors.status()}
        if self._extra_status is not None:
            status.update(self._extra_status())
        return status

    def _stove(self) -> dict[str, str]:
        stove = self._controller.settings.stove
        return {"id": stove.id, "name": stove.name}

    async def _off(self, request: Request, actor: str) -> Any:
        outcomes = await self._controller.shutoff(
            protocol.names_argument(request), "cli", actor
        )
        return {"outcomes": [o.as_dict() for o in outcomes]}

    async def _lock(self, request: Request, actor: str) -> Any:
        reason = request.args.get("reason", "lock")
        if not isinstance(reason, str) or not reason or len(reason) > 64:
            raise RequestError("bad_request", "\"reason\" must be a short string", request.id)
        outcomes = await self._controller.lock(
            protocol.names_argument(request), "cli", reason, actor
        )
        return {"outcomes": [o.as_dict() for o in outcomes]}

    async def _unlock(self, request: Request, actor: str) -> Any:
        if "burners" not in request.args:
            raise RequestError("bad_request", "unlock needs \"burners\" (a name or all)",
                               request.id)
        outcomes = await self._controller.unlock(protocol.names_argument(request), "cli", actor)
        return {"outcomes": [o.as_dict() for o in outcomes]}

    async def _timer(self, request: Request, actor: str) -> Any:
        seconds = protocol.number_argument(request, "seconds")
        assert seconds is not None  # required=True
        extend = request.args.get("extend", False)
        if not isinstance(extend, bool):
            raise RequestError("bad_request", "\"extend\" must be true or false", request.id)
        outcomes = self._controller.set_countdown(
            protocol.names_argument(request), seconds, "cli", actor, extend=extend
        )
        return {"outcomes": [o.as_dict() for o in outcomes]}

    async def _cancel(self, request: Request, actor: str) -> Any:
        outcomes = self._controller.cancel_countdown(
            protocol.names_argument(request), "cli", actor
        )
        return {"outcomes": [o.as_dict() for o in outcomes]}

    async def _history(self, request: Request, actor: str) -> Any:
        since = protocol.number_argument(request, "since", required=False)
        limit = request.args.get("limit", 200)
        if isinstance(limit, bool) or not isinstance(limit, int) or not (
            0 < limit <= HISTORY_LIMIT_MAX
        ):
            raise RequestError("bad_request", f"\"limit\" must be 1..{HISTORY_LIMIT_MAX}",
                               request.id)
        burner = request.args.get("burner")
        if burner is not None and not isinstance(burner, str):
            raise RequestError("bad_request", "\"burner\" must be a name", request.id)
        events = self._controller.history(since=since, burner=burner, limit=limit)
        return {"events": [event.as_dict() for event in events]}

    async def _schedules(self, request: Request, actor: str) -> Any:
        extra = self._extra_status() if self._extra_status is not None else {}
        return {"schedules": extra.get("schedules", [])}
