"""The project's exception tree: what each kind carries and where it sits."""

from __future__ import annotations

import pytest

from stovectl.errors import (
    CommandRefused,
    ConfigError,
    ControlError,
    DaemonUnreachable,
    DeviceError,
    DeviceRefused,
    DeviceUnavailable,
    PermissionDenied,
    ProtocolError,
    StovectlError,
)


@pytest.mark.parametrize("kind", [DeviceUnavailable, DeviceRefused])
def test_device_errors_carry_and_name_the_device(kind: type[DeviceError]) -> None:
    """A device error keeps the device id in ``.device`` and names it in its message."""
    error = kind("plug-1", "no answer")

    assert error.device == "plug-1"
    assert "'plug-1'" in str(error)
    assert "no answer" in str(error)
    assert isinstance(error, DeviceError)


def test_command_refused_carries_its_code() -> None:
    """CommandRefused keeps the rule's code apart from the message shown to people."""
    error = CommandRefused("bad_pin", "a remote unlock needs the right PIN")

    assert error.code == "bad_pin"
    assert str(error) == "a remote unlock needs the right PIN"


@pytest.mark.parametrize(
    ("kind", "parent"),
    [
        (ConfigError, StovectlError),
        (DeviceError, StovectlError),
        (DeviceUnavailable, DeviceError),
        (DeviceRefused, DeviceError),
        (ControlError, StovectlError),
        (DaemonUnreachable, ControlError),
        (PermissionDenied, ControlError),
        (ProtocolError, ControlError),
        (CommandRefused, StovectlError),
    ],
)
def test_tree_is_as_drawn(kind: type[Exception], parent: type[Exception]) -> None:
    """Each error class sits under the parent the module docstring draws, below StovectlError."""
    assert issubclass(kind, parent)
    assert issubclass(kind, StovectlError)


def test_device_unavailable_and_refused_are_told_apart() -> None:
    """No answer and a refusal are different kinds, so callers can act differently."""
    assert not issubclass(DeviceUnavailable, DeviceRefused)
    assert not issubclass(DeviceRefused, DeviceUnavailable)


def test_permission_denied_is_not_the_builtin() -> None:
    """The project's PermissionDenied is not Python's PermissionError, so OSErrors stay out."""
    assert not issubclass(PermissionDenied, OSError)
