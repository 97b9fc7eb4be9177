"""A real Mosquitto broker per test, on a free loopback port, in a private folder.

``running_broker(variant)`` writes a config for one of three set-ups —
``"anonymous"``, ``"password"`` (password file and ACL) or ``"tls"`` (client
certificates, the certificate's name as user name) — starts ``mosquitto -c`` on
it, polls a TCP connect until the broker listens, and on exit stops it and
fails the test if it had died on its own, quoting its log. The listener binds
``127.0.0.1`` only. Started as root, Mosquitto drops to user ``mosquitto``, so
the folder and its files are handed to that user. ``kill9()`` and ``restart()``
keep the port and the persistence folder, for reconnect tests.

A missing ``mosquitto`` fails the test rather than skipping it: ``make test``
runs ``scripts/bootstrap``, which installs it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from tests.support.certificates import TlsFiles, make_tls_files
from tests.support.processes import kill9, terminate

Variant = Literal["anonymous", "password", "tls"]

HOST = "127.0.0.1"
READY_ATTEMPTS = 50
READY_INTERVAL_SECONDS = 0.1
STOP_TIMEOUT_SECONDS = 5.0
MOSQUITTO_USER = "mosquitto"

# The password variant's accounts; the ACL below gives each its topics.
# stovectl may use its own topics, Home Assistant's and the relays'; "device" plays the
# relays (simulated devices); "reader" may only read. Anything unlisted is denied.
PASSWORDS = {"stovectl": "stove-secret", "reader": "reader-secret", "device": "device-secret"}
ACL = """\
user stovectl
topic readwrite stovectl/#
topic read homeassistant/status
topic write homeassistant/+/+/config
topic readwrite cmnd/#
topic read stat/#
topic read tele/#
topic readwrite zigbee2mqtt/#
topic readwrite shelly/#
topic readwrite esphome/#
topic readwrite relays/#

user reader
topic read stovectl/#

user device
topic readwrite #
"""
# The TLS variant's client certificate name, which Mosquitto takes as the user name.
TLS_CLIENT_NAME = "stovectl"


def find_program(name: str) -> str:
    """The path of a Mosquitto program; fail (never skip) when it is not installed."""
    found = shutil.which(name)
    if found is None:
        for folder in ("/usr/sbin", "/usr/bin"):
            candidate = Path(folder) / name
            if os.access(candidate, os.X_OK):
                found = str(candidate)
                break
    if found is None:
        pytest.fail(
            f"{name} is not installed: run `make test`, whose scripts/bootstrap installs "
            "the Debian package mosquitto (or: sudo apt-get install mosquitto)",
            pytrace=False,
        )
    return found


def free_port() -> int:
    """A loopback TCP port that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=READY_INTERVAL_SECONDS):
            return True
    except OSError:
        return False


class Broker:
    """One Mosquitto configuration in a folder, and the process running it."""

    def __init__(self, variant: Variant, folder: Path) -> None:
        self.variant = variant
        self.folder = folder
        self.host = HOST
        self.port = free_port()
        self.config_path = folder / "mosquitto.conf"
        self.log_path = folder / "mosquitto.log"
        self.tls: TlsFiles | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._mosquitto = find_program("mosquitto")
        self._write_config()

    @property
    def log(self) -> str:
        """What the broker logged so far, for assertion messages."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _write_config(self) -> None:
        # Listener options (TLS) must follow their listener line; the rest are global.
        lines = [
            f"listener {self.port} {HOST}",
            "persistence true",
            f"persistence_location {self.folder}",
            "log_dest stderr",
            "log_type all",
            "log_timestamp_format %H:%M:%S",
            # As the README recommends: no Nagle delay on commands passing through.
            "set_tcp_nodelay true",
        ]
        if self.variant == "anonymous":
            lines.append("allow_anonymous true")
        elif self.variant == "password":
            lines += self._write_accounts()
        else:
            self.tls = make_tls_files(self.folder, server_ip=HOST, client_name=TLS_CLIENT_NAME)
            lines += [
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                "require_certificate true",
                "use_identity_as_username true",
                "allow_anonymous false",
            ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if os.geteuid() == 0:
            self._hand_to_mosquitto_user()

    def _write_accounts(self) -> list[str]:
        password_file = self.folder / "passwords"
        mosquitto_passwd = find_program("mosquitto_passwd")
        for index, (user, password) in enumerate(PASSWORDS.items()):
            create = ["-c"] if index == 0 else []
            subprocess.run(
                [mosquitto_passwd, *create, "-b", str(password_file), user, password],
                check=True, capture_output=True, timeout=STOP_TIMEOUT_SECONDS,
            )
        acl_file = self.folder / "acl"
        acl_file.write_text(ACL, encoding="utf-8")
        return [
            "allow_anonymous false",
            f"password_file {password_file}",
            f"acl_file {acl_file}",
        ]

    def _hand_to_mosquitto_user(self) -> None:
        # Without the user (not the Debian package) Mosquitto fails at start, with its log.
        with contextlib.suppress(KeyError):
            account = pwd.getpwnam(MOSQUITTO_USER)
            for path in (self.folder, *self.folder.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)

    def start(self) -> None:
        """Start Mosquitto and return once it accepts TCP connections."""
        assert self.process is None, "the broker is running already"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self._mosquitto, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for _ in range(READY_ATTEMPTS):
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise AssertionError(f"mosquitto exited with {code} at start:\n{self.log}")
            if accepts_connections(self.port):
                return
            time.sleep(READY_INTERVAL_SECONDS)  # readiness polling, bounded by READY_ATTEMPTS
        self.kill9()
        raise AssertionError(
            f"mosquitto did not listen on {HOST}:{self.port} within "
            f"{READY_ATTEMPTS * READY_INTERVAL_SECONDS:.0f}s:\n{self.log}"
        )

    def stop(self) -> int:
        """SIGTERM the broker (it saves its persistence file) and return its exit code."""
        assert self.process is not None, "the broker is not running"
        process, self.process = self.process, None
        return terminate(process, "mosquitto", self.log, STOP_TIMEOUT_SECONDS)

    def kill9(self) -> None:
        """Kill the broker with SIGKILL: nothing is saved, connections drop at once."""
        assert self.process is not None, "the broker is not running"
        process, self.process = self.process, None
        kill9(process, STOP_TIMEOUT_SECONDS)

    def restart(self) -> None:
        """Start again on the same port, config and persistence folder (stopping it first)."""
        if self.process is not None:
            code = self.stop()
            assert code == 0, f"mosquitto exited with {code} on SIGTERM:\n{self.log}"
        self.start()

    def died_on_its_own(self) -> int | None:
        """The exit code if the broker exited without being stopped or killed, else None."""
        return None if self.process is None else self.process.poll()


@contextlib.contextmanager
def running_broker(variant: Variant = "anonymous") -> Iterator[Broker]:
    """A started broker; on exit it must still be running, and is stopped with SIGTERM."""
    with tempfile.TemporaryDirectory(prefix="stovectl-mosquitto-") as folder:
        broker = Broker(variant, Path(folder))
        try:
            broker.start()
            try:
                yield broker
            except BaseException as error:
                code = broker.died_on_its_own()
                if code is not None:
                    error.add_note(f"mosquitto had exited with {code}:\n{broker.log}")
                raise
            code = broker.died_on_its_own()
            assert code is None, f"mosquitto exited with {code} during the test:\n{broker.log}"
            if broker.process is not None:
                code = broker.stop()
                assert code == 0, f"mosquitto exited with {code} on SIGTERM:\n{broker.log}"
        finally:
            if broker.process is not None:
                broker.process.kill()
                broker.process.wait()
