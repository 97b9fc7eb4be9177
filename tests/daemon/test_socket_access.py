"""Who may use the control socket: its group, mode 0660, and a clear refusal for others.

The daemon and the CLI are real processes on the real socket. As root, the
outsider is the CLI run as ``nobody`` by setpriv (keeping only the capability to
read the project's files, which may live in a folder closed to others; it grants
no write, so connecting still needs the socket's permission). As another user,
whom a test cannot switch away from, the outsider is that user with the owner
bits of the socket cleared, which the kernel checks first.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
from collections.abc import Sequence

from tests.support.daemon import (
    CLI_TIMEOUT_SECONDS,
    STOVECTL,
    DaemonProcess,
    clean_environment,
    hob_config,
    running_daemon,
)

ROOT = os.geteuid() == 0
NOBODY = pwd.getpwnam("nobody")
EXIT_NO_PERMISSION = 77


def as_user(groups: Sequence[int]) -> list[str]:
    """The command prefix that runs the CLI as nobody, in ``groups`` only."""
    group_option = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    return [
        "setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", group_option,
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
    ]


def cli(prefix: list[str], daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, str(STOVECTL), "--socket", str(daemon.socket_path), *args],
        capture_output=True, text=True, env=clean_environment(), stdin=subprocess.DEVNULL,
        timeout=CLI_TIMEOUT_SECONDS, check=False,
    )


def test_the_socket_is_mode_0660() -> None:
    with running_daemon() as daemon:
        mode = stat.S_IMODE(daemon.socket_path.stat().st_mode)
        assert mode == 0o660, oct(mode)


def test_a_user_outside_the_group_is_told_permission_denied() -> None:
    with running_daemon() as daemon:
        if ROOT:
            prefix = as_user([])
            user = "nobody"
        else:
            daemon.socket_path.chmod(0o060)
            prefix = []
            user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(daemon.socket_path.stat().st_gid).gr_name

        result = cli(prefix, daemon, "status")

        assert result.returncode == EXIT_NO_PERMISSION, result.stderr
        assert result.stderr.strip() == (
            f"stovectl: permission denied on {daemon.socket_path}: user {user} is not in "
            f"group {group!r}, which may use stovectl's control socket; run "
            f"`sudo usermod -aG {group} {user}`, then log in again (or use sudo)"
        )
        assert "Traceback" not in result.stderr


def test_a_member_of_the_socket_group_gets_in_and_is_the_recorded_actor() -> None:
    if ROOT:  # any group but root's: the daemon, as root, may hand the socket to it
        group = next(g for g in grp.getgrall() if g.gr_gid not in (0, NOBODY.pw_gid))
        prefix, member = as_user([group.gr_gid]), NOBODY
    else:
        group, prefix, member = grp.getgrgid(os.getgid()), [], pwd.getpwuid(os.geteuid())
    config = hob_config(extra=f'[daemon]\nsocket_group = "{group.gr_name}"\n')
    with running_daemon(config) as daemon:
        assert daemon.socket_path.stat().st_gid == group.gr_gid

        result = cli(prefix, daemon, "off", "left")

        assert result.returncode == 0, result.stderr
        [shutoff] = [e for e in daemon.history() if e["kind"] == "shutoff"]
        assert shutoff["actor"] == f"uid:{member.pw_uid} ({member.pw_name})"


def test_a_socket_group_that_does_not_exist_stops_the_start() -> None:
    config = hob_config(extra='[daemon]\nsocket_group = "no-such-group-here"\n')
    with running_daemon(config, start=False) as daemon:
        process = daemon.launch()
        code = process.wait(timeout=CLI_TIMEOUT_SECONDS)
        daemon.process = None

        assert code == 1, daemon.log
        assert ("daemon.socket_group: there is no group 'no-such-group-here' on this machine "
                "(create it with `groupadd --system no-such-group-here`)") in daemon.log
        assert not daemon.socket_path.exists()
