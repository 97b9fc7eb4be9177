"""``stovectl run``: load the config, set up logging, run the daemon until stopped.

Returns the process exit code: 78 for a bad configuration (before anything
starts, so systemd's RestartPreventExitStatus=78 stops a restart loop), 1 for
a failure to start, 0 for a clean stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from stovectl.control.paths import socket_path, state_dir
from stovectl.errors import ConfigError
from stovectl.settings import load_settings

log = logging.getLogger("stovectl")

EXIT_CONFIG = 78


LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"

JOURNAL_PRIORITIES = {
    logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2,
}


class JournalFormatter(logging.Formatter):
    """Prefix every line with its syslog priority (``<3>``), which journald reads as the
    entry's level, so `journalctl -p warning` and the colours work; tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{JOURNAL_PRIORITIES.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stderr_is_journal() -> bool:
    """Whether stderr is journald's stream: systemd says so in ``$JOURNAL_STREAM``."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        status = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return f"{status.st_dev}:{status.st_ino}" == f"{device}:{inode}"


def setup_logging(level: str) -> None:
    """One line per record, no timestamps: journald adds them."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JournalFormatter if stderr_is_journal() else logging.Formatter
    handler.setFormatter(formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # python-miio logs every lost datagram as an error; the driver reports what matters.
    logging.getLogger("miio").setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL)


def run_daemon(
    config_path: Path | None, socket: str | None, state: Path | None, verbose: bool
) -> int:
    try:
        settings = load_settings(config_path)
    except ConfigError as error:
        print(f"stovectl: {error}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging("debug" if verbose else settings.daemon.log_level)
    from stovectl.daemon.app import Daemon  # noqa: PLC0415  # after logging is set up

    daemon = Daemon(
        settings,
        socket_path(socket or settings.daemon.socket, for_daemon=True),
        state_dir(state or settings.daemon.state_dir),
    )
    log.info("stovectl starting: stove %r, %d burner(s), state in %s",
             settings.stove.id, len(settings.burners), daemon.store.path)
    try:
        asyncio.run(daemon.run())
    except RuntimeError as error:
        log.error("cannot start: %s", error)  # noqa: TRY400  # a known condition, not a bug
        return 1
    except OSError as error:
        log.error("cannot start: %s", error)  # noqa: TRY400  # as above
        return 1
    return 0
