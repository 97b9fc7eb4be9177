"""The project's exception tree, so callers can act on kinds of failure.

Foreign exceptions (python-miio's, paho's, OSError from sockets) are translated
at the adapter that meets them; nothing above an adapter names a library's
exception. A class exists only where some caller acts differently on it::

    StovectlError
    ├── ConfigError            bad configuration: exit 78, file/field/problem
    ├── DeviceError            a relay did not do what was asked
    │   ├── DeviceUnavailable  no answer (offline, timeout, no route): outcome unknown
    │   └── DeviceRefused      the device answered and refused the request
    ├── ControlError           the control socket conversation failed
    │   ├── DaemonUnreachable  no daemon listens (exit 69)
    │   ├── PermissionDenied   the socket exists but this user may not use it
    │   └── ProtocolError      a frame that is not valid JSON-lines protocol
    └── CommandRefused         a rule (DESIGN §2 rule 5, unknown burner, ...) refused it
"""

from __future__ import annotations

SHOWN_CHARS = 60
"""How much of a bad value an error message quotes: enough to recognise, never a flood."""


def shown(raw: object) -> str:
    """``raw`` as an error message or a log line quotes it: its repr, cut short when long.

    What a sender got wrong goes back to it (a refusal, the history); a value it
    made kilobytes long must not come back whole.
    """
    text = repr(raw)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}… ({len(text)} chars)"


class StovectlError(Exception):
    """The root of every error stovectl raises on purpose."""


class ConfigError(StovectlError):
    """The configuration cannot be used; the message names file, field and problem."""


class DeviceError(StovectlError):
    """A relay did not do what was asked."""

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"device {device!r}: {message}")
        self.device = device


class DeviceUnavailable(DeviceError):
    """The device did not answer; whether it acted is unknown, so read it back.

    ``may_have_acted`` is False when the request surely never reached the device
    (it did not even answer the handshake): reading back then is pointless.
    """

    def __init__(self, device: str, message: str, *, may_have_acted: bool = True) -> None:
        super().__init__(device, message)
        self.may_have_acted = may_have_acted


class DeviceRefused(DeviceError):
    """The device answered and refused the request."""


class ControlError(StovectlError):
    """The control socket conversation failed."""


class DaemonUnreachable(ControlError):
    """No daemon listens on the control socket."""


class PermissionDenied(ControlError):
    """The control socket exists, but this user may not connect to it."""


class ProtocolError(ControlError):
    """A frame on the control socket is not valid protocol."""


class CommandRefused(StovectlError):
    """A rule refused the command; ``code`` says which, for replies and exit codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.recorded = False
        """True once the controller has put the refusal in the history."""
