"""The miIO wire format, kept importable here where it began.

The codec moved to ``stovectl.devices.miio_codec`` when ``stovectl discover``
and ``stovectl doctor`` came to need it: product tools should not import the
simulated world. The simulated device and its tests still import it from here.
"""

from stovectl.devices.miio_codec import (
    HEADER_SIZE,
    HELLO,
    HIDDEN_TOKEN,
    MAGIC,
    PORT,
    TOKEN_SIZE,
    ChecksumMismatch,
    HelloReply,
    Message,
    Packet,
    PacketError,
    build_hello_reply,
    build_packet,
    checksum,
    decode_message,
    decrypt,
    encode_message,
    encrypt,
    is_hello,
    key_and_iv,
    parse_hello_reply,
    parse_packet,
    parse_token,
)

__all__ = [
    "HEADER_SIZE",
    "HELLO",
    "HIDDEN_TOKEN",
    "MAGIC",
    "PORT",
    "TOKEN_SIZE",
    "ChecksumMismatch",
    "HelloReply",
    "Message",
    "Packet",
    "PacketError",
    "build_hello_reply",
    "build_packet",
    "checksum",
    "decode_message",
    "decrypt",
    "encode_message",
    "encrypt",
    "is_hello",
    "key_and_iv",
    "parse_hello_reply",
    "parse_packet",
    "parse_token",
]
