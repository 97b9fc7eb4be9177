"""The pieces of the daemon that speak to systemd: sd_notify, heartbeats, the status line, logs."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

import pytest

from stovectl.core.heartbeats import Heartbeats
from stovectl.daemon.app import status_line
from stovectl.daemon.main import LOG_FORMAT, JournalFormatter, stderr_is_journal
from stovectl.daemon.systemd import ServiceManager


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"stovectl-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(2)
        service = ServiceManager({"NOTIFY_SOCKET": "@" + name})
        service.ready("2 burners: 2 armed")
        service.close()

        assert receiver.recv(4096) == b"READY=1\nSTATUS=2 burners: 2 armed"


def test_status_is_sent_only_when_it_changes(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(tmp_path / "n"))
        receiver.setblocking(False)
        service = ServiceManager({"NOTIFY_SOCKET": str(tmp_path / "n")})
        for text in ("a", "a", "b", "b", "a"):
            service.status(text)
        service.close()
        service.status("c")  # after close: nothing more

        received = []
        while True:
            try:
                received.append(receiver.recv(4096))
            except BlockingIOError:
                break
        assert received == [b"STATUS=a", b"STATUS=b", b"STATUS=a"]


@pytest.mark.parametrize(
    ("environ", "seconds"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_interval_is_systemds_and_only_for_this_process(
    environ: dict[str, str], seconds: float | None
) -> None:
    assert ServiceManager({"NOTIFY_SOCKET": "/nowhere", **environ}).watchdog_seconds == seconds


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    service = ServiceManager({})
    service.ready("x")
    service.notify("WATCHDOG=1")
    assert not service.enabled


def test_a_vanished_notify_socket_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = ServiceManager({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    service.notify("WATCHDOG=1")
    service.close()
    assert "cannot notify systemd (WATCHDOG=1)" in caplog.text


def test_heartbeats_name_the_loops_past_their_allowance() -> None:
    now = [100.0]
    beats = Heartbeats(lambda: now[0])
    beats.expect("the clock watch", 10)
    beats.expect("device a's poll loop", 62)
    now[0] += 11
    assert beats.overdue() == ["the clock watch has not turned for 11s (allowed 10s)"]
    beats.beat("the clock watch")
    assert beats.overdue() == []
    now[0] += 60
    beats.beat("the clock watch")
    assert beats.overdue() == ["device a's poll loop has not turned for 71s (allowed 62s)"]
    beats.forget("device a's poll loop")
    beats.beat("unknown loop")  # a loop nobody expects is not tracked
    assert beats.overdue() == []


def _burner(mode: str, *, alarm: bool = False) -> dict[str, object]:
    return {"mode": mode, "alarm": alarm}


@pytest.mark.parametrize(
    ("burners", "devices", "mqtt", "line"),
    [
        ([_burner("armed")], {"a": True}, None, "1 burner: 1 armed; 1/1 device online"),
        (
            [_burner("armed"), _burner("pulse"), _burner("locked"), _burner("locked")],
            {"a": True, "b": False}, True,
            "4 burners: 1 armed, 1 cut, 2 locked; 1/2 devices online; MQTT connected",
        ),
        (
            [_burner("locked", alarm=True), _burner("armed")], {"a": None}, False,
            "2 burners: 1 armed, 1 locked, 1 ALARM; 0/1 device online; MQTT disconnected",
        ),
    ],
)
def test_the_status_line(
    burners: list[dict[str, object]], devices: dict[str, bool | None], mqtt: bool | None,
    line: str,
) -> None:
    assert status_line(burners, devices, mqtt) == line


def test_journal_lines_carry_their_priority_tracebacks_included() -> None:
    formatter = JournalFormatter(LOG_FORMAT)
    try:
        int("boom")
    except ValueError:
        record = logging.LogRecord(
            "stovectl", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info()
        )
    warning = logging.LogRecord("stovectl", logging.WARNING, __file__, 1, "hot", (), None)

    lines = formatter.format(record).splitlines()

    assert lines[0] == "<3>ERROR stovectl: failed x"
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)
    assert formatter.format(warning) == "<4>WARNING stovectl: hot"


def test_stderr_is_the_journal_only_when_journal_stream_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "stderr").open("w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        status = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        assert stderr_is_journal()
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino + 1}")
        assert not stderr_is_journal()
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not stderr_is_journal()
