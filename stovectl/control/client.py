"""The CLI's end of the control socket: connect, send one request, read one reply.

Stdlib only, and nothing heavy imported: ``stovectl off`` must start, ask and
exit well inside 100 ms. Connection problems become DaemonUnreachable or
PermissionDenied with a message that says what to do.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import socket
import uuid
from pathlib import Path
from typing import Any

from stovectl.control import protocol
from stovectl.errors import DaemonUnreachable, PermissionDenied, ProtocolError

DEFAULT_TIMEOUT_SECONDS = 120.0


class ControlClient:
    """One connection to the daemon; usable as a context manager."""

    def __init__(self, path: Path, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.path = path
        self.timeout_seconds = timeout_seconds
        self._sock: socket.socket | None = None
        self._buffer = b""

    def __enter__(self) -> ControlClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_seconds)
        try:
            sock.connect(str(self.path))
        except FileNotFoundError:
            sock.close()
            raise DaemonUnreachable(
                f"no stovectl daemon: {self.path} does not exist (is `stovectl run` or the "
                "service running? --socket or STOVECTL_SOCKET name another socket)"
            ) from None
        except ConnectionRefusedError:
            sock.close()
            raise DaemonUnreachable(
                f"no stovectl daemon answers on {self.path} (it may have stopped; "
                "see `systemctl status stovectl` or the terminal that ran it)"
            ) from None
        except PermissionError:
            sock.close()
            raise PermissionDenied(_denied(self.path)) from None
        except OSError as error:
            sock.close()
            raise DaemonUnreachable(f"cannot connect to {self.path}: {error.strerror}") from None
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one request and return its reply (``ok`` true or false)."""
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        request_id = uuid.uuid4().hex[:12]
        try:
            self._sock.sendall(protocol.encode(protocol.request(op, request_id, **args)))
            reply = self._read_line()
        except TimeoutError:
            raise DaemonUnreachable(
                f"the daemon did not answer within {self.timeout_seconds:g}s"
            ) from None
        except OSError as error:
            raise DaemonUnreachable(f"the connection to the daemon failed: {error}") from None
        try:
            message = json.loads(reply)
        except json.JSONDecodeError:
            raise ProtocolError("the daemon sent a reply that is not JSON") from None
        if not isinstance(message, dict) or message.get("id") != request_id:
            raise ProtocolError("the daemon's reply does not match the request")
        return message

    def _read_line(self) -> bytes:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise DaemonUnreachable("the daemon closed the connection without answering")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


def _denied(path: Path) -> str:
    """Why this user may not connect, and what fixes it."""
    user = _user()
    try:
        group = grp.getgrgid(path.stat().st_gid).gr_name
    except (OSError, KeyError):
        group = "stovectl"  # the socket's folder is closed to us too: the service's group
    return (
        f"permission denied on {path}: user {user} is not in group {group!r}, which may "
        f"use stovectl's control socket; run `sudo usermod -aG {group} {user}`, then log "
        "in again (or use sudo)"
    )


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"
