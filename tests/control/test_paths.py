"""Specification of where the control socket and the state live (stovectl.control.paths)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from stovectl.control import paths

# The real value, read before the autouse fixture points it into tmp_path.
SYSTEM_RUNTIME_DIR = paths.SYSTEM_RUNTIME_DIR
ENVIRONMENT = (
    "STOVECTL_SOCKET", "RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR", "STATE_DIRECTORY", "XDG_STATE_HOME",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No path variable leaks in from the machine, and no system socket exists by default."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(paths, "SYSTEM_RUNTIME_DIR", tmp_path / "run-stovectl")


def as_user(monkeypatch: pytest.MonkeyPatch, uid: int) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: uid)


def make_system_socket() -> Path:
    socket = paths.SYSTEM_RUNTIME_DIR / paths.SOCKET_NAME
    socket.parent.mkdir()
    socket.touch()
    return socket


# -- the control socket --------------------------------------------------------------------


@pytest.mark.parametrize("for_daemon", [True, False])
def test_an_explicit_socket_wins_over_everything(
    monkeypatch: pytest.MonkeyPatch, for_daemon: bool
) -> None:
    """--socket is used as given, whatever the environment says."""
    monkeypatch.setenv("STOVECTL_SOCKET", "/env/stovectl.sock")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/systemd-given")
    assert paths.socket_path("/given/x.sock", for_daemon=for_daemon) == Path("/given/x.sock")


def test_stovectl_socket_wins_over_runtime_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """STOVECTL_SOCKET comes before systemd's RUNTIME_DIRECTORY."""
    monkeypatch.setenv("STOVECTL_SOCKET", "/env/stovectl.sock")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/systemd-given")
    assert paths.socket_path(None, for_daemon=True) == Path("/env/stovectl.sock")


def test_runtime_directory_uses_its_first_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under systemd the socket goes in the first of the ':'-joined RUNTIME_DIRECTORY entries."""
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/stovectl-a:/run/stovectl-b")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    as_user(monkeypatch, 1000)
    assert paths.socket_path(None, for_daemon=True) == Path("/run/stovectl-a/stovectl.sock")


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty STOVECTL_SOCKET or RUNTIME_DIRECTORY is skipped, not turned into a relative path."""
    monkeypatch.setenv("STOVECTL_SOCKET", "")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    as_user(monkeypatch, 1000)
    assert paths.socket_path("", for_daemon=True) == Path("/run/user/1000/stovectl/stovectl.sock")


@pytest.mark.parametrize("for_daemon", [True, False])
def test_root_uses_the_system_runtime_directory(
    monkeypatch: pytest.MonkeyPatch, for_daemon: bool
) -> None:
    """For root, the socket is /run/stovectl/stovectl.sock even when XDG_RUNTIME_DIR is set."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/0")
    as_user(monkeypatch, 0)
    expected = paths.SYSTEM_RUNTIME_DIR / "stovectl.sock"
    assert paths.socket_path(None, for_daemon=for_daemon) == expected


def test_the_system_runtime_directory_is_run_stovectl() -> None:
    """The system daemon's runtime directory is /run/stovectl, as DESIGN §4 says."""
    assert Path("/run/stovectl") == SYSTEM_RUNTIME_DIR


def test_a_user_daemon_uses_xdg_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's daemon listens under $XDG_RUNTIME_DIR/stovectl, even beside a system daemon."""
    make_system_socket()
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    as_user(monkeypatch, 1000)
    assert paths.socket_path(None, for_daemon=True) == Path("/run/user/1000/stovectl/stovectl.sock")


def test_a_user_client_finds_the_system_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's CLI talks to the system daemon's socket when it exists."""
    system_socket = make_system_socket()
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    as_user(monkeypatch, 1000)
    assert paths.socket_path(None, for_daemon=False) == system_socket


def test_a_user_client_without_a_system_daemon_uses_xdg_runtime_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a system socket, a user's CLI looks where that user's daemon listens."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    as_user(monkeypatch, 1000)
    expected = Path("/run/user/1000/stovectl/stovectl.sock")
    assert paths.socket_path(None, for_daemon=False) == expected


@pytest.mark.parametrize("for_daemon", [True, False])
def test_without_xdg_runtime_dir_a_per_user_temporary_folder_is_used(
    monkeypatch: pytest.MonkeyPatch, for_daemon: bool
) -> None:
    """With nothing else to go on, daemon and CLI agree on a per-uid folder in the temp dir."""
    as_user(monkeypatch, 1000)
    expected = Path(tempfile.gettempdir()) / "stovectl-1000" / "stovectl.sock"
    assert paths.socket_path(None, for_daemon=for_daemon) == expected


# -- the state directory -------------------------------------------------------------------


def test_an_explicit_state_dir_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """--state-dir is used as given, whatever the environment says."""
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/systemd-given")
    assert paths.state_dir("/given/state") == Path("/given/state")


def test_state_directory_uses_its_first_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under systemd the state lives in the first of the ':'-joined STATE_DIRECTORY entries."""
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/stovectl-a:/var/lib/stovectl-b")
    monkeypatch.setenv("XDG_STATE_HOME", "/home/alice/.local/state")
    as_user(monkeypatch, 1000)
    assert paths.state_dir() == Path("/var/lib/stovectl-a")


def test_root_keeps_state_in_var_lib(monkeypatch: pytest.MonkeyPatch) -> None:
    """For root the state is in /var/lib/stovectl, even when XDG_STATE_HOME is set."""
    monkeypatch.setenv("XDG_STATE_HOME", "/root/.local/state")
    as_user(monkeypatch, 0)
    assert paths.state_dir() == Path("/var/lib/stovectl")


def test_a_user_keeps_state_under_xdg_state_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a user the state is in $XDG_STATE_HOME/stovectl."""
    monkeypatch.setenv("XDG_STATE_HOME", "/home/alice/.state")
    as_user(monkeypatch, 1000)
    assert paths.state_dir() == Path("/home/alice/.state/stovectl")


def test_a_user_without_xdg_state_home_uses_local_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without XDG_STATE_HOME the state is in ~/.local/state/stovectl, as XDG says."""
    monkeypatch.setenv("HOME", str(tmp_path))
    as_user(monkeypatch, 1000)
    assert paths.state_dir() == tmp_path / ".local" / "state" / "stovectl"
