"""The miIO wire format: framing, token-derived encryption and checksums, without sockets.

Shared by the simulated device, ``stovectl discover`` and ``stovectl doctor``
(it began in ``sim/miio_protocol.py``, which still re-exports it), so the format
is checked against the published test vector once, and tests and tools can speak
raw miIO without python-miio. A datagram is a 32-byte header, big-endian (magic ``0x2131``, total
length, 4 unknown bytes, device id, stamp, 16-byte checksum) followed by the
AES-128-CBC ciphertext of the JSON body. A 32-byte datagram is a hello by its
length alone; in a hello reply the checksum field carries the token on old
firmware, or 16 bytes of ``ff`` (some send zeros) on devices that no longer leak it.

Everything that cannot be a valid packet for a token raises ``PacketError``, so
a device can stay silent as real devices do. See PROTOCOLS.md, "miIO".
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PORT = 54321
MAGIC = 0x2131
HEADER_SIZE = 32
TOKEN_SIZE = 16
HELLO = bytes.fromhex("21310020") + b"\xff" * 28
HIDDEN_TOKEN = b"\xff" * TOKEN_SIZE
_MAX_DATAGRAM = 0xFFFF
_BLOCK_BITS = 128
# Magic, total length, unknown, device id, stamp: the 16 bytes before the checksum.
_HEADER_START = struct.Struct(">HHIII")


class PacketError(ValueError):
    """The datagram is not a valid miIO packet for this token; a device ignores it."""


class ChecksumMismatch(PacketError):
    """The checksum does not match: sealed with another token, or damaged on the way."""


@dataclass(frozen=True)
class Packet:
    """A decrypted, checksum-verified packet; ``plaintext`` is still padded-off bytes."""

    device_id: int
    stamp: int
    plaintext: bytes
    unknown: int = 0


@dataclass(frozen=True)
class Message:
    """A packet whose plaintext is a JSON object (request or reply)."""

    device_id: int
    stamp: int
    body: dict[str, Any]


@dataclass(frozen=True)
class HelloReply:
    """A device's answer to hello: who it is, its clock, and perhaps its token."""

    device_id: int
    stamp: int
    token_field: bytes

    @property
    def leaked_token(self) -> bytes | None:
        """The token old firmware still sends, or None when hidden (all ``ff`` or all zero)."""
        hidden = self.token_field in (HIDDEN_TOKEN, bytes(TOKEN_SIZE))
        return None if hidden else self.token_field


def parse_token(token_hex: str) -> bytes:
    """The 16 token bytes from the 32 hex digits users copy out of Mi Home."""
    try:
        token = bytes.fromhex(token_hex)
    except ValueError:
        raise ValueError("a miIO token is 32 hex digits") from None
    if len(token) != TOKEN_SIZE:
        raise ValueError("a miIO token is 32 hex digits")
    return token


def _md5(data: bytes) -> bytes:
    # MD5 is what the protocol prescribes; stovectl chose nothing here.
    return hashlib.md5(data, usedforsecurity=False).digest()


def key_and_iv(token: bytes) -> tuple[bytes, bytes]:
    """The AES key MD5(token) and the IV MD5(key ‖ token)."""
    key = _md5(token)
    return key, _md5(key + token)


def _cipher(token: bytes) -> Cipher[modes.CBC]:
    if len(token) != TOKEN_SIZE:
        raise ValueError("a miIO token is 16 bytes")
    key, iv = key_and_iv(token)
    return Cipher(algorithms.AES(key), modes.CBC(iv))


def encrypt(plaintext: bytes, token: bytes) -> bytes:
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = _cipher(token).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def decrypt(ciphertext: bytes, token: bytes) -> bytes:
    """The plaintext, or ``PacketError`` if the ciphertext or its padding is malformed."""
    if not ciphertext or len(ciphertext) % (_BLOCK_BITS // 8):
        raise PacketError("ciphertext is not a whole number of AES blocks")
    decryptor = _cipher(token).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise PacketError("bad PKCS#7 padding") from None


def checksum(header_start: bytes, token: bytes, ciphertext: bytes) -> bytes:
    """MD5 over the first 16 header bytes, the token and the ciphertext."""
    return _md5(header_start + token + ciphertext)


def build_packet(
    plaintext: bytes, *, token: bytes, device_id: int, stamp: int, unknown: int = 0
) -> bytes:
    """Encrypt and frame ``plaintext`` exactly as it is to go on the wire."""
    ciphertext = encrypt(plaintext, token)
    length = HEADER_SIZE + len(ciphertext)
    if length > _MAX_DATAGRAM:
        raise ValueError("message too long for one miIO datagram")
    start = _HEADER_START.pack(MAGIC, length, unknown, device_id, stamp)
    return start + checksum(start, token, ciphertext) + ciphertext


def parse_packet(datagram: bytes, token: bytes) -> Packet:
    """Verify and decrypt a non-hello datagram with ``token``."""
    if len(datagram) <= HEADER_SIZE:
        raise PacketError("no body: shorter than a header, or a hello")
    magic, length, unknown, device_id, stamp = _HEADER_START.unpack_from(datagram)
    if magic != MAGIC:
        raise PacketError("not a miIO datagram (bad magic)")
    if length != len(datagram):
        raise PacketError("length field does not match the datagram (truncated?)")
    ciphertext = datagram[HEADER_SIZE:]
    expected = checksum(datagram[:16], token, ciphertext)
    if datagram[16:HEADER_SIZE] != expected:
        raise ChecksumMismatch("checksum mismatch (wrong token?)")
    return Packet(device_id, stamp, decrypt(ciphertext, token), unknown)


def encode_message(
    body: Mapping[str, Any], *, token: bytes, device_id: int, stamp: int
) -> bytes:
    """A JSON body plus the trailing NUL clients send, as one datagram."""
    plaintext = json.dumps(body).encode() + b"\x00"
    return build_packet(plaintext, token=token, device_id=device_id, stamp=stamp)


def decode_message(datagram: bytes, token: bytes) -> Message:
    """The JSON object inside a datagram; trailing NULs are dropped first."""
    packet = parse_packet(datagram, token)
    try:
        body = json.loads(packet.plaintext.rstrip(b"\x00").decode())
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors.
        raise PacketError("body is not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise PacketError("body is not a JSON object")
    return Message(packet.device_id, packet.stamp, body)


def is_hello(datagram: bytes) -> bool:
    """Devices tell a hello by its length alone, whatever the 32 bytes say."""
    return len(datagram) == HEADER_SIZE


def build_hello_reply(device_id: int, stamp: int, token_field: bytes = HIDDEN_TOKEN) -> bytes:
    if len(token_field) != TOKEN_SIZE:
        raise ValueError("the token field is 16 bytes")
    return _HEADER_START.pack(MAGIC, HEADER_SIZE, 0, device_id, stamp) + token_field


def parse_hello_reply(datagram: bytes) -> HelloReply:
    if not is_hello(datagram):
        raise PacketError("a hello reply is exactly 32 bytes")
    magic, length, _, device_id, stamp = _HEADER_START.unpack_from(datagram)
    if magic != MAGIC or length != HEADER_SIZE:
        raise PacketError("not a miIO hello reply")
    return HelloReply(device_id, stamp, datagram[16:])
