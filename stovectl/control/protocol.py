"""The control socket's wire format: one JSON object per line, each way.

A request is ``{"v": 1, "id": "...", "op": "off", ...arguments}``; the reply
carries the same ``id`` and either ``"ok": true, "result": ...`` or
``"ok": false, "error": {"code": ..., "message": ...}``. Pure functions only,
shared by the server and the (stdlib-only) client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from stovectl.durations import finite_seconds
from stovectl.errors import ProtocolError, shown

VERSION = 1
MAX_LINE_BYTES = 64 * 1024
OPS = frozenset({
    "ping", "status", "off", "lock", "unlock", "timer", "cancel", "history", "schedules",
})


@dataclass(frozen=True)
class Request:
    id: str
    op: str
    args: dict[str, Any] = field(default_factory=dict)


class RequestError(ProtocolError):
    """A request the server can name but not accept; the reply carries code and id."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def request(op: str, request_id: str, **args: Any) -> dict[str, Any]:
    return {"v": VERSION, "id": request_id, "op": op, **args}


def decode_request(line: bytes) -> Request:
    """Parse one request line; raise RequestError with a code a client can act on."""
    try:
        message = json.loads(line)
    except UnicodeDecodeError:
        raise RequestError("bad_json", "the line is not UTF-8") from None
    except json.JSONDecodeError as error:
        raise RequestError("bad_json", f"the line is not JSON: {error.msg}") from None
    except (ValueError, RecursionError):
        # Valid JSON that Python will not build: an integer past the digit limit, or
        # nesting deeper than the parser may recurse. A client's mistake, not the daemon's.
        raise RequestError(
            "bad_json", "the line is JSON that cannot be read (a number too long, or nested "
            "too deeply)"
        ) from None
    if not isinstance(message, dict):
        raise RequestError("bad_request", "a request must be a JSON object")
    request_id = message.get("id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
        raise RequestError("bad_request", "a request needs an \"id\": a short string")
    version = message.get("v")
    if version != VERSION:
        raise RequestError(
            "bad_version",
            f"protocol version {shown(version)} is not spoken here (this daemon speaks {VERSION})",
            request_id,
        )
    op = message.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise RequestError(
            "unknown_op", f"unknown op {shown(op)}; known: {', '.join(sorted(OPS))}", request_id
        )
    args = {k: v for k, v in message.items() if k not in ("v", "id", "op")}
    return Request(request_id, op, args)


def ok(request_id: str | None, result: Any) -> dict[str, Any]:
    return {"v": VERSION, "id": request_id, "ok": True, "result": result}


def error(request_id: str | None, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "v": VERSION,
        "id": request_id,
        "ok": False,
        "error": {"code": code, "message": message, **extra},
    }


def names_argument(request: Request) -> list[str]:
    """The ``burners`` argument: a list of names (``all`` allowed)."""
    names = request.args.get("burners", ["all"])
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        raise RequestError("bad_request", "\"burners\" must be a list of names", request.id)
    return names


def number_argument(request: Request, name: str, *, required: bool = True) -> float | None:
    value = request.args.get(name)
    if value is None and not required:
        return None
    number = finite_seconds(value)
    if number is None:
        raise RequestError("bad_request", f"{name!r} must be a number", request.id)
    return number
