"""What systemd hears from the daemon: readiness, status, watchdog pings, stopping.

sd_notify is one datagram to ``$NOTIFY_SOCKET`` (a leading ``@`` names the
abstract namespace); a few lines of stdlib do it, so no dependency. Outside
systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.

The watchdog ping is sent only from the health path: the loop that sends it
must be turning, the controller's clock watch ticking and every device's poll
loop completing turns. A wedged daemon stops pinging, and systemd restarts it
after ``WatchdogSec=``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

STATUS_REFRESH_SECONDS = 10.0
"""How often STATUS= is refreshed when there is no watchdog to keep pace with."""


class ServiceManager:
    """The daemon's end of the sd_notify protocol."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_seconds: float | None = None
        usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_seconds = int(usec) / 1_000_000
        self._socket: socket.socket | None = None
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *assignments: str) -> None:
        """Send ``KEY=value`` lines; a lost datagram is logged, never raised."""
        if not self._address:
            return
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)  # never stall the loop on a full queue
        try:
            self._socket.sendto("\n".join(assignments).encode(), self._address)
        except OSError as error:
            log.warning("cannot notify systemd (%s): %s", assignments[0], error)

    def ready(self, status: str) -> None:
        self._last_status = status
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """Update the status line that ``systemctl status`` shows, if it changed."""
        if status != self._last_status:
            self._last_status = status
            self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping; every burner stays as it is")

    def close(self) -> None:
        self._address = ""  # nothing more to say
        if self._socket is not None:
            self._socket.close()
            self._socket = None


async def keep_alive(
    service: ServiceManager,
    problems: Callable[[], list[str]],
    summary: Callable[[], str],
) -> None:
    """Ping the watchdog while the daemon is healthy, and keep STATUS= fresh; for ever.

    Pings at half ``WatchdogSec=``. While ``problems()`` names anything, pings are
    withheld (and that is logged once per spell), so systemd restarts a daemon
    whose deadlines or device polls have stopped.
    """
    interval = (
        service.watchdog_seconds / 2 if service.watchdog_seconds else STATUS_REFRESH_SECONDS
    )
    withheld: list[str] = []
    while True:
        found = problems()
        if found:
            if found != withheld:
                log.error("unhealthy, withholding the watchdog ping: %s", "; ".join(found))
            withheld = found
            service.status("unhealthy: " + "; ".join(found))
        else:
            if withheld:
                log.warning("healthy again; watchdog pings resume")
            withheld = []
            if service.watchdog_seconds:
                service.notify("WATCHDOG=1")
            service.status(summary())
        await asyncio.sleep(interval)
