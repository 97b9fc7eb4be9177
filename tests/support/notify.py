"""systemd's end of sd_notify, for tests: a datagram socket that keeps every message.

The daemon under test gets ``NOTIFY_SOCKET`` pointing here, as systemd would set
it. A background thread receives each datagram, time-stamps it on the monotonic
clock and, before storing it, runs the test's ``on_message`` hook, so a test can
look at the daemon at the very moment it said ``READY=1``.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

RECEIVE_TIMEOUT_SECONDS = 0.1
FLUSH = "X_TEST_FLUSH"
"""A key only the test sends, to know the queue before it was drained."""


@dataclass(frozen=True)
class Notice:
    """One sd_notify datagram: when it arrived and its ``KEY=value`` lines."""

    at: float
    fields: dict[str, str]

    def says(self, key: str, value: str | None = None) -> bool:
        return key in self.fields and (value is None or self.fields[key] == value)


class NotifyListener:
    def __init__(self, path: Path, on_message: Callable[[Notice], None] | None = None) -> None:
        self.path = path
        self.on_message = on_message
        self.notices: list[Notice] = []
        self.hook_errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._socket.settimeout(RECEIVE_TIMEOUT_SECONDS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="notify", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(4096)
            except TimeoutError:
                continue
            fields = dict(
                line.split("=", 1) for line in data.decode().splitlines() if "=" in line
            )
            notice = Notice(time.monotonic(), fields)
            if self.on_message is not None:
                try:
                    self.on_message(notice)
                except BaseException as error:  # reported by the test
                    self.hook_errors.append(error)
            with self._changed:
                self.notices.append(notice)
                self._changed.notify_all()

    def wait_for(self, key: str, value: str | None = None, timeout: float = 15.0) -> Notice:
        """The first notice saying ``key`` (``=value``), waiting for it up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for notice in self.notices:
                    if notice.says(key, value):
                        return notice
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {key}{'=' + value if value else ''} within {timeout}s; "
                        f"got {[n.fields for n in self.notices]}"
                    )
                self._changed.wait(left)

    def wait_until(
        self, condition: Callable[[list[Notice]], bool], timeout: float, what: str
    ) -> list[Notice]:
        """Wait until ``condition(notices)`` holds; fail at the deadline."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self.notices):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not {what} within {timeout}s")
                self._changed.wait(left)
            return list(self.notices)

    def flush(self) -> None:
        """Return once every datagram sent before this call has been received."""
        marker = f"{time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(f"{FLUSH}={marker}".encode(), str(self.path))
        self.wait_for(FLUSH, marker, timeout=5)
        with self._lock:
            self.notices = [notice for notice in self.notices if FLUSH not in notice.fields]

    def saying(self, key: str, value: str | None = None) -> list[Notice]:
        with self._lock:
            return [notice for notice in self.notices if notice.says(key, value)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()


@contextlib.contextmanager
def notify_listener(
    on_message: Callable[[Notice], None] | None = None,
) -> Iterator[NotifyListener]:
    """A listener on a fresh short path (Unix socket paths are limited to 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="stvn"))
    listener = NotifyListener(folder / "notify", on_message)
    try:
        yield listener
    finally:
        listener.close()
        (folder / "notify").unlink(missing_ok=True)
        folder.rmdir()
