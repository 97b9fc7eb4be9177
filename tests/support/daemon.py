"""The real stovectl daemon as a subprocess, and the real CLI talking to it.

End-to-end tests run exactly what a user runs: ``stovectl run`` from the
project's virtual environment (found beside ``sys.executable``) on a config
written to a private temporary folder, and ``stovectl …`` commands over the
real Unix socket. Readiness is a ``ping`` on the control socket, polled with a
deadline; waiting for a burner's state polls ``stovectl status --json`` with a
deadline too, so no test hopes that a fixed pause was long enough.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tests.support.processes import kill9, terminate

STOVECTL = Path(sys.executable).parent / "stovectl"
READY_TIMEOUT_SECONDS = 15.0
PING_TIMEOUT_SECONDS = 0.25
POLL_INTERVAL_SECONDS = 0.05
STOP_TIMEOUT_SECONDS = 10.0
CLI_TIMEOUT_SECONDS = 30.0

T = TypeVar("T")


def hob_config(
    *,
    cut_hold: str = "2s",
    alarm_after: str = "1s",
    fault: str = "none",
    stove_name: str = "Test hob",
    remote: str = "",
    extra: str = "",
) -> str:
    """A two-burner hob (``left``, ``right``) on one simulated relay ``sim``; ``extra`` is
    appended TOML (more sections)."""
    burners = "".join(
        f"""
[[burners]]
id = "{burner_id}"
device = "sim"
channel = {channel}
cut_state = "on"
cut_hold = "{cut_hold}"
"""
        for channel, burner_id in enumerate(("left", "right"), start=1)
    )
    return f"""\
[stove]
id = "testhob"
name = "{stove_name}"

[[devices]]
id = "sim"
kind = "simulated"
channels = 2
poll_interval = "1s"
response_time = "5ms"
timeout = "500ms"
fault = "{fault}"
{burners}
[safety]
alarm_after = "{alarm_after}"
retry_max_interval = "500ms"

[remote]
{remote}
{extra}"""


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any STOVECTL_ setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOVECTL_")}
    env.update(extra or {})
    return env


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = CLI_TIMEOUT_SECONDS
) -> subprocess.CompletedProcess[str]:
    """Run ``stovectl ARGS`` as a user would, with a clean environment."""
    return subprocess.run(
        [str(STOVECTL), *args],
        capture_output=True,
        text=True,
        env=clean_environment(env),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def ping(socket_path: Path, timeout: float = PING_TIMEOUT_SECONDS) -> bool:
    """True if a daemon answers a ``ping`` on the control socket."""
    request = json.dumps({"v": 1, "id": "ready", "op": "ping"}).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(request)
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                reply += chunk
    except OSError:
        return False
    message = json.loads(reply)
    return bool(message.get("ok")) and message["result"].get("pong") is True


class DaemonProcess:
    """One ``stovectl run`` subprocess in a private folder; restartable on the same state."""

    def __init__(
        self, config_text: str, workdir: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.env = dict(env or {})
        """Added to the daemon's clean environment (``NOTIFY_SOCKET``, say)."""
        self.config_path = workdir / "stovectl.toml"
        self.config_path.write_text(config_text, encoding="utf-8")
        self.socket_path = workdir / "s"
        self.state_dir = workdir / "state"
        self.log_path = workdir / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        """What the daemon wrote to stderr and stdout so far, for assertion messages."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the daemon's process and return at once, without waiting for it."""
        assert self.process is None, "the daemon is running already"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(STOVECTL), "run",
                    "--config", str(self.config_path),
                    "--socket", str(self.socket_path),
                    "--state-dir", str(self.state_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean_environment(self.env),
            )
        return self.process

    def start(self) -> None:
        """Start the daemon and return once it answers ``ping`` on its socket."""
        self.launch()
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not ping(self.socket_path):
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise AssertionError(f"the daemon exited with {code} at start:\n{self.log}")
            if time.monotonic() > deadline:
                self.kill9()
                raise AssertionError(
                    f"the daemon did not answer ping within {READY_TIMEOUT_SECONDS}s:\n{self.log}"
                )
            time.sleep(POLL_INTERVAL_SECONDS)  # readiness polling with a deadline

    def stop(self) -> int:
        """SIGTERM the daemon and return its exit code."""
        assert self.process is not None, "the daemon is not running"
        process, self.process = self.process, None
        return terminate(process, "the daemon", self.log, STOP_TIMEOUT_SECONDS)

    def kill9(self) -> None:
        """Kill the daemon with SIGKILL, as a power cut or the OOM killer would."""
        assert self.process is not None, "the daemon is not running"
        process, self.process = self.process, None
        kill9(process, STOP_TIMEOUT_SECONDS)

    def restart(self) -> None:
        """Start again on the same config, socket and state folder."""
        self.start()

    def cli(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``stovectl --socket SOCKET ARGS`` against this daemon."""
        return run_cli("--socket", str(self.socket_path), *args, env=env)

    def json(self, *args: str) -> Any:
        """Run a ``--json`` command that must succeed, and return its parsed output."""
        result = self.cli(*args, "--json")
        assert result.returncode == 0, f"stovectl {' '.join(args)}: {result.stderr}"
        return json.loads(result.stdout)

    def burners(self) -> dict[str, dict[str, Any]]:
        """``status --json``'s rows by burner id."""
        return {row["id"]: row for row in self.json("status")["burners"]}

    def history(self) -> list[dict[str, Any]]:
        return list(self.json("history"))

    def wait_for(
        self,
        condition: Callable[[dict[str, dict[str, Any]]], bool],
        timeout: float,
        what: str,
    ) -> dict[str, dict[str, Any]]:
        """Poll ``status --json`` until ``condition(burners)`` holds; fail at the deadline."""
        return poll(self.burners, condition, timeout, what)

    def wait_for_event(
        self, kind: str, burner: str, source: str, timeout: float
    ) -> list[dict[str, Any]]:
        """Poll ``history --json`` until it holds a ``kind`` event for ``burner`` by ``source``."""
        events = poll(
            lambda: [
                event for event in self.history()
                if (event["kind"], event["burner"], event["source"]) == (kind, burner, source)
            ],
            bool,
            timeout,
            f"a {kind} event for {burner} from {source}",
        )
        return list(events)


def poll(probe: Callable[[], T], condition: Callable[[T], bool], timeout: float, what: str) -> T:
    """Call ``probe`` until ``condition`` holds for its value; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if condition(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout}s; last seen: {value}")
        time.sleep(POLL_INTERVAL_SECONDS)  # polling an observable state with a deadline


@contextlib.contextmanager
def running_daemon(
    config_text: str | None = None, env: Mapping[str, str] | None = None, *, start: bool = True
) -> Iterator[DaemonProcess]:
    """A started daemon (``start=False``: not yet started); on exit it is SIGTERMed and must
    exit 0, and its folder goes."""
    workdir = Path(tempfile.mkdtemp(prefix="stv"))  # short: Unix socket paths are limited
    daemon = DaemonProcess(config_text or hob_config(), workdir, env)
    try:
        if start:
            daemon.start()
        yield daemon
        if daemon.process is not None:
            code = daemon.stop()
            assert code == 0, f"the daemon exited with {code} on SIGTERM:\n{daemon.log}"
    finally:
        if daemon.process is not None:  # the test failed: do not leave a daemon behind
            daemon.process.kill()
            daemon.process.wait()
            daemon.process = None
        shutil.rmtree(workdir, ignore_errors=True)
