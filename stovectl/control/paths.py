"""Where the control socket and the state live, found the same way by daemon and CLI.

Order (DESIGN §4): an explicit path (``--socket``, ``STOVECTL_SOCKET``), then
``$RUNTIME_DIRECTORY`` (systemd), then ``/run/stovectl/`` for root (or for any
user when a system daemon's socket is there), then ``$XDG_RUNTIME_DIR/stovectl/``,
then a private folder under the temporary directory. Stdlib only: the CLI client
imports this.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SOCKET_NAME = "stovectl.sock"
SYSTEM_RUNTIME_DIR = Path("/run/stovectl")
SYSTEM_STATE_DIR = Path("/var/lib/stovectl")


def _first(env_value: str) -> Path:
    # systemd joins several directories with ':'; ours is the first.
    return Path(env_value.split(":", maxsplit=1)[0])


def socket_path(explicit: str | os.PathLike[str] | None = None, *, for_daemon: bool) -> Path:
    """The control socket's path for this process."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get("STOVECTL_SOCKET"):
        return Path(env)
    if env := os.environ.get("RUNTIME_DIRECTORY"):
        return _first(env) / SOCKET_NAME
    system_socket = SYSTEM_RUNTIME_DIR / SOCKET_NAME
    if os.geteuid() == 0 or (not for_daemon and _present(system_socket)):
        return system_socket
    if env := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(env) / "stovectl" / SOCKET_NAME
    return Path(tempfile.gettempdir()) / f"stovectl-{os.geteuid()}" / SOCKET_NAME


def _present(path: Path) -> bool:
    """Whether ``path`` exists; behind a folder closed to this user, assume it does, so the
    user hears "permission denied" on the system socket rather than "no daemon"."""
    try:
        path.stat()
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds the daemon's SQLite database."""
    if explicit:
        return Path(explicit)
    if env := os.environ.get("STATE_DIRECTORY"):
        return _first(env)
    if os.geteuid() == 0:
        return SYSTEM_STATE_DIR
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "stovectl"
