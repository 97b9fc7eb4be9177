"""Specification of the miIO wire format: framing, encryption, checksums and their failures."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from stovectl.sim.miio_protocol import (
    HELLO,
    HIDDEN_TOKEN,
    ChecksumMismatch,
    PacketError,
    build_hello_reply,
    build_packet,
    checksum,
    decode_message,
    encode_message,
    is_hello,
    key_and_iv,
    parse_hello_reply,
    parse_packet,
    parse_token,
)

# The test vector from PROTOCOLS.md, "miIO".
TOKEN = parse_token("00112233445566778899aabbccddeeff")
OTHER_TOKEN = parse_token("ffeeddccbbaa99887766554433221100")
REQUEST = {"id": 1, "method": "miIO.info", "params": []}
HEADER_START = bytes.fromhex("21310050" "00000000" "01020304" "00001000")
CHECKSUM = bytes.fromhex("e01b00a1db1216648aaa5b21e0eac49d")
CIPHERTEXT = bytes.fromhex(
    "2a36b2b7afa85bd6a9f1ed82b485a3d6c2c13a12855c97fc9a0bd7be55469c61"
    "b5393611ac2c922588d969ad8c226bde"
)
VECTOR = HEADER_START + CHECKSUM + CIPHERTEXT


def seal_raw(ciphertext: bytes, token: bytes = TOKEN) -> bytes:
    """A datagram with a correct header and checksum around arbitrary ciphertext."""
    start = HEADER_START[:2] + (32 + len(ciphertext)).to_bytes(2, "big") + HEADER_START[4:]
    return start + checksum(start, token, ciphertext) + ciphertext


def encrypt_unpadded(blocks: bytes, token: bytes = TOKEN) -> bytes:
    key, iv = key_and_iv(token)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(blocks) + encryptor.finalize()


def test_key_and_iv_match_the_test_vector() -> None:
    """The key is MD5(token) and the IV MD5(key ‖ token), as in the published vector."""
    key, iv = key_and_iv(TOKEN)
    assert key.hex() == "6e8311168ee16d6aa1aa48c64145003c"
    assert iv.hex() == "6f434fa9acd75da73e5fb999f641cda2"


def test_encoding_a_request_reproduces_the_test_vector_byte_for_byte() -> None:
    """Header, checksum and ciphertext of the vector's request are exactly as published."""
    datagram = encode_message(REQUEST, token=TOKEN, device_id=0x01020304, stamp=0x1000)
    assert datagram[:16] == HEADER_START
    assert datagram[16:32] == CHECKSUM
    assert datagram[32:] == CIPHERTEXT


def test_decoding_the_test_vector_gives_back_the_request() -> None:
    """The vector decodes to its device id, stamp and JSON body, the trailing NUL dropped."""
    message = decode_message(VECTOR, TOKEN)
    assert (message.device_id, message.stamp, message.body) == (0x01020304, 0x1000, REQUEST)
    assert parse_packet(VECTOR, TOKEN).plaintext == json.dumps(REQUEST).encode() + b"\x00"


def test_hello_is_the_fixed_32_byte_datagram() -> None:
    """Hello is 2131 0020 then 28 bytes of ff."""
    assert HELLO.hex() == "21310020" + "ff" * 28
    assert len(HELLO) == 32


def test_a_32_byte_datagram_is_a_hello_by_length_alone() -> None:
    """Any 32 bytes count as hello; 31 or 33 bytes do not."""
    assert is_hello(HELLO)
    assert is_hello(b"\x00" * 32)
    assert not is_hello(b"\x00" * 31)
    assert not is_hello(VECTOR)


def test_hello_reply_carries_device_id_stamp_and_a_hidden_token() -> None:
    """A hello reply round-trips its device id and stamp; the token field defaults to ff."""
    datagram = build_hello_reply(0x01020304, 77)
    assert datagram[:16] == bytes.fromhex("21310020" "00000000" "01020304" "0000004d")
    reply = parse_hello_reply(datagram)
    assert (reply.device_id, reply.stamp, reply.token_field) == (0x01020304, 77, HIDDEN_TOKEN)


def test_hello_reply_may_leak_the_token() -> None:
    """Old firmware puts the real token in the hello reply's checksum field."""
    assert parse_hello_reply(build_hello_reply(1, 2, TOKEN)).token_field == TOKEN


def test_a_hello_reply_must_be_32_bytes_with_the_magic() -> None:
    """Anything but a 32-byte miIO header is rejected as a hello reply."""
    with pytest.raises(PacketError):
        parse_hello_reply(VECTOR)
    with pytest.raises(PacketError):
        parse_hello_reply(b"\x00" * 32)


def test_a_wrong_token_is_a_checksum_mismatch() -> None:
    """Another token fails the checksum, and that error is a PacketError and a ValueError."""
    with pytest.raises(ChecksumMismatch) as caught:
        decode_message(VECTOR, OTHER_TOKEN)
    assert isinstance(caught.value, PacketError)
    assert isinstance(caught.value, ValueError)


def test_any_flipped_bit_fails_the_checksum() -> None:
    """Damage anywhere past the magic and length fields is caught by the checksum."""
    for index in range(4, len(VECTOR)):
        damaged = bytearray(VECTOR)
        damaged[index] ^= 0x01
        with pytest.raises(ChecksumMismatch):
            decode_message(bytes(damaged), TOKEN)


@pytest.mark.parametrize(
    ("datagram", "problem"),
    [
        pytest.param(b"", "shorter than a header", id="empty"),
        pytest.param(b"\x21\x31\x00", "shorter than a header", id="shorter-than-header"),
        pytest.param(HELLO, "a hello", id="hello-has-no-body"),
        pytest.param(VECTOR[:-16], "length field", id="truncated"),
        pytest.param(VECTOR + b"\x00" * 16, "length field", id="trailing-bytes"),
        pytest.param(b"\x21\x32" + VECTOR[2:], "magic", id="bad-magic"),
    ],
)
def test_malformed_framing_is_a_packet_error(datagram: bytes, problem: str) -> None:
    """Short, truncated, padded-out or foreign datagrams are rejected before the checksum."""
    with pytest.raises(PacketError, match=problem):
        parse_packet(datagram, TOKEN)


def test_a_length_field_that_lies_is_refused_even_under_a_valid_checksum() -> None:
    """The length field must equal the datagram's size, whatever the checksum says."""
    start = HEADER_START[:2] + (96).to_bytes(2, "big") + HEADER_START[4:]
    datagram = start + checksum(start, TOKEN, CIPHERTEXT) + CIPHERTEXT
    with pytest.raises(PacketError, match="length field"):
        parse_packet(datagram, TOKEN)


def test_bad_padding_under_a_valid_checksum_is_a_packet_error() -> None:
    """A body whose PKCS#7 padding is wrong is rejected even though its checksum holds."""
    with pytest.raises(PacketError, match="padding"):
        parse_packet(seal_raw(encrypt_unpadded(b"{}" + b"\x00" * 14)), TOKEN)


def test_ciphertext_that_is_not_whole_blocks_is_a_packet_error() -> None:
    """A body that is not a multiple of 16 bytes cannot be AES-CBC and is rejected."""
    with pytest.raises(PacketError, match="blocks"):
        parse_packet(seal_raw(CIPHERTEXT[:-1]), TOKEN)


@pytest.mark.parametrize(
    "plaintext", [b"not json", b"\xff\xfe", b"[1, 2]", b'"id"'], ids=["text", "utf8", "list", "str"]
)
def test_a_body_that_is_not_a_json_object_is_a_packet_error(plaintext: bytes) -> None:
    """Decryptable bodies that are not UTF-8 JSON objects are rejected."""
    datagram = build_packet(plaintext, token=TOKEN, device_id=1, stamp=1)
    with pytest.raises(PacketError):
        decode_message(datagram, TOKEN)


def test_a_body_without_trailing_nul_decodes_too() -> None:
    """Devices may reply without the client's trailing NUL; both decode."""
    datagram = build_packet(b'{"id": 5, "result": ["ok"]}', token=TOKEN, device_id=1, stamp=2)
    assert decode_message(datagram, TOKEN).body == {"id": 5, "result": ["ok"]}


@pytest.mark.parametrize("text", ["", "0011", "zz" * 16, "00" * 17])
def test_a_token_is_exactly_32_hex_digits(text: str) -> None:
    """Tokens of the wrong length or with non-hex characters are refused."""
    with pytest.raises(ValueError, match="32 hex digits"):
        parse_token(text)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    body=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5),
    device_id=st.integers(0, 2**32 - 1),
    stamp=st.integers(0, 2**32 - 1),
)
def test_any_json_object_round_trips(body: dict[str, Any], device_id: int, stamp: int) -> None:
    """Whatever JSON object is encoded decodes to itself, with its device id and stamp."""
    message = decode_message(
        encode_message(body, token=TOKEN, device_id=device_id, stamp=stamp), TOKEN
    )
    assert (message.body, message.device_id, message.stamp) == (body, device_id, stamp)


def test_python_miio_reads_what_the_codec_writes_and_vice_versa() -> None:
    """The codec and python-miio's own Message agree on the bytes in both directions."""
    from miio.protocol import Message  # Imported here: only this cross-check needs it.

    ours = encode_message({"id": 9, "result": ["ok"]}, token=TOKEN, device_id=7, stamp=1234)
    parsed = Message.parse(ours, token=TOKEN)
    assert parsed.data.value == {"id": 9, "result": ["ok"]}
    assert parsed.header.value.device_id == (7).to_bytes(4, "big")

    header = {
        "length": 0,
        "unknown": 0,
        "device_id": (7).to_bytes(4, "big"),
        "ts": datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=1234),
    }
    theirs = Message.build(
        {"data": {"value": REQUEST}, "header": {"value": header}, "checksum": 0}, token=TOKEN
    )
    message = decode_message(theirs, TOKEN)
    assert (message.body, message.device_id, message.stamp) == (REQUEST, 7, 1234)
