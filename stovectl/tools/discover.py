"""``stovectl discover``: find miIO devices on the LAN with the hello handshake.

Every miIO device answers the 32-byte hello on UDP port 54321 with its device
id and clock, whatever its token, so one broadcast finds them all (PROTOCOLS.md,
"miIO"). Old firmware also puts its token in the reply; current firmware hides
it, and the user must then fetch it elsewhere. Stdlib and our own codec only:
no python-miio, and every socket is closed.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

import click

from stovectl.devices.miio_codec import HELLO, PORT, PacketError, parse_hello_reply
from stovectl.durations import format_duration

BROADCAST = "255.255.255.255"
HELLO_REPEATS = 3
"""As python-miio does: hellos are cheap, and answers get lost."""
_RECEIVE_BYTES = 1024
EXIT_FOUND = 0
EXIT_NONE = 1

HIDDEN_ADVICE = (
    "A hidden token has to come from elsewhere: from a backup of the Mi Home app "
    "(its database holds every device's token), or from Xiaomi's cloud with your "
    "Xiaomi account and a token extractor. It changes when the device is reset or re-paired."
)
LEAKED_ADVICE = (
    "Put a token in the device's token_file (or the credential <id>-token), not in the "
    "config file, then run `stovectl doctor`."
)


@dataclass(frozen=True)
class FoundDevice:
    """One device that answered hello, and the token if its firmware still gives it away."""

    address: str
    device_id: int
    stamp: int
    token: str | None

    def as_dict(self) -> dict[str, Any]:
        # "did" is the decimal form the Mi Home app and token extractors list.
        return {"address": self.address, "device_id": f"{self.device_id:08x}",
                "did": self.device_id, "stamp": self.stamp, "token": self.token}


def say_hello(
    address: str, timeout_seconds: float, *, first_only: bool = False
) -> list[FoundDevice]:
    """Send hello to ``address`` and collect one answer per device until the timeout.

    ``address`` may be a broadcast address. Raises OSError when the hello cannot
    be sent at all (no route, unknown host name).
    """
    found: dict[str, FoundDevice] = {}
    deadline = time.monotonic() + timeout_seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for _ in range(HELLO_REPEATS):
            sock.sendto(HELLO, (address, PORT))
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                datagram, (host, _port) = sock.recvfrom(_RECEIVE_BYTES)
            except TimeoutError:
                break
            except ConnectionRefusedError:
                continue  # an ICMP "port unreachable" for one of the hellos: nobody there
            try:
                reply = parse_hello_reply(datagram)
            except PacketError:
                continue  # something else on port 54321 that is not a miIO device
            token = reply.leaked_token
            found.setdefault(host, FoundDevice(
                host, reply.device_id, reply.stamp, token.hex() if token else None
            ))
            if first_only:
                break
    return sorted(found.values(), key=lambda device: ipaddress.ip_address(device.address))


def format_found(devices: list[FoundDevice]) -> str:
    """A table of the devices found, then what to do about their tokens."""
    rows = [("ADDRESS", "DEVICE ID", "DID", "STAMP", "TOKEN")] + [
        (d.address, f"{d.device_id:08x}", str(d.device_id), str(d.stamp), d.token or "hidden")
        for d in devices
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    if any(d.token is None for d in devices):
        lines += ["", HIDDEN_ADVICE]
    if any(d.token is not None for d in devices):
        lines += ["", LEAKED_ADVICE]
    return "\n".join(lines)


def run_discover(address: str, timeout_seconds: float, as_json: bool) -> int:
    """Discover, print the devices found, and return the exit code (1: none answered)."""
    try:
        devices = say_hello(address, timeout_seconds)
    except OSError as error:
        click.echo(f"stovectl: cannot send hello to {address}: {error.strerror or error}",
                   err=True)
        return EXIT_NONE
    if as_json:
        click.echo(json.dumps([device.as_dict() for device in devices], indent=2))
    elif devices:
        click.echo(format_found(devices))
    if not devices:
        click.echo(
            f"stovectl: no miIO device answered hello at {address} within "
            f"{format_duration(timeout_seconds)} (is this machine on the devices' network? "
            "Broadcasts do not cross routers or VLANs: try --address with the device's IP)",
            err=True,
        )
        return EXIT_NONE
    return EXIT_FOUND
