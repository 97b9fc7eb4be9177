"""Specification of the control socket's wire format (stovectl.control.protocol)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stovectl.control import protocol
from stovectl.control.protocol import Request, RequestError


def line(message: object) -> bytes:
    return json.dumps(message).encode()


def decode_error(raw: bytes) -> RequestError:
    with pytest.raises(RequestError) as caught:
        protocol.decode_request(raw)
    return caught.value


# -- decode_request: what is refused, and with which code -------------------------------


def test_a_line_that_is_not_json_is_bad_json() -> None:
    """A line that does not parse as JSON is refused with bad_json, naming the JSON problem."""
    error = decode_error(b"off left")
    assert error.code == "bad_json"
    assert "not JSON" in str(error)
    assert error.request_id is None


def test_a_line_that_is_not_utf8_is_bad_json() -> None:
    """Bytes that are not UTF-8 are refused with bad_json, saying so."""
    error = decode_error(b'{"v": 1, "id": "\xff\xfe", "op": "ping"}')
    assert error.code == "bad_json"
    assert "UTF-8" in str(error)


def test_json_nested_too_deeply_is_bad_json() -> None:
    """Deeply nested JSON (which makes the parser recurse too far) is bad_json, not a crash."""
    assert decode_error(b"[" * 100_000).code == "bad_json"


def test_a_number_too_long_to_convert_is_bad_json() -> None:
    """An integer past Python's digit limit is bad_json, not an unexpected ValueError."""
    raw = b'{"v": 1, "id": "a", "op": "ping", "x": ' + b"1" * 5000 + b"}"
    assert decode_error(raw).code == "bad_json"


@pytest.mark.parametrize("message", [[], ["ping"], "ping", 1, None, True])
def test_a_request_that_is_not_an_object_is_bad_request(message: object) -> None:
    """Valid JSON that is not an object is refused with bad_request."""
    error = decode_error(line(message))
    assert error.code == "bad_request"
    assert "object" in str(error)


@pytest.mark.parametrize(
    "request_id",
    [None, "", 7, ["a"], "x" * 129],
    ids=["missing", "empty", "number", "list", "long"],
)
def test_a_request_without_a_short_string_id_is_bad_request(request_id: object) -> None:
    """A missing, empty, non-string or over-128-character id is refused with bad_request."""
    message: dict[str, Any] = {"v": 1, "op": "ping"}
    if request_id is not None:
        message["id"] = request_id
    error = decode_error(line(message))
    assert error.code == "bad_request"
    assert error.request_id is None


def test_an_id_of_128_characters_is_accepted() -> None:
    """An id of exactly 128 characters is still short enough."""
    assert protocol.decode_request(line({"v": 1, "id": "x" * 128, "op": "ping"})).id == "x" * 128


@pytest.mark.parametrize("version", [0, 2, "1", None], ids=["0", "2", "string", "missing"])
def test_another_protocol_version_is_bad_version(version: object) -> None:
    """A request in another (or no) protocol version is refused with bad_version and its id."""
    message: dict[str, Any] = {"id": "r1", "op": "ping"}
    if version is not None:
        message["v"] = version
    error = decode_error(line(message))
    assert error.code == "bad_version"
    assert error.request_id == "r1"
    assert f"speaks {protocol.VERSION}" in str(error)


@pytest.mark.parametrize("op", ["reboot", "", None, 3, ["off"], {"op": "off"}, True,
                                ["a" * 5000], "x" * 5000])
def test_an_unknown_op_is_unknown_op(op: object) -> None:
    """An op the daemon does not know is refused with unknown_op, its id, and the known ops;
    a long one is quoted short (the soak sent a 600-character message back)."""
    message: dict[str, Any] = {"v": 1, "id": "r2"}
    if op is not None:
        message["op"] = op
    error = decode_error(line(message))
    assert error.code == "unknown_op"
    assert error.request_id == "r2"
    assert all(known in str(error) for known in protocol.OPS)
    assert len(str(error)) < 250


def test_a_good_request_keeps_its_arguments() -> None:
    """A valid request decodes to its id, op and the remaining keys as arguments."""
    decoded = protocol.decode_request(
        line({"v": 1, "id": "r3", "op": "lock", "burners": ["left"], "reason": "child"})
    )
    assert decoded == Request("r3", "lock", {"burners": ["left"], "reason": "child"})


@pytest.mark.parametrize("op", sorted(protocol.OPS))
def test_every_op_is_accepted(op: str) -> None:
    """Every op in OPS decodes."""
    assert protocol.decode_request(line({"v": 1, "id": "r", "op": op})).op == op


# -- encoding and round trips --------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
argument_names = st.text(min_size=1, max_size=12).filter(
    lambda k: k not in ("v", "id", "op", "request_id")  # request() takes request_id itself
)


@given(
    request_id=st.text(min_size=1, max_size=128),
    op=st.sampled_from(sorted(protocol.OPS)),
    args=st.dictionaries(argument_names, json_values, max_size=5),
)
def test_encode_then_decode_round_trips(request_id: str, op: str, args: dict[str, Any]) -> None:
    """A request built and encoded by the client decodes to the same id, op and arguments."""
    encoded = protocol.encode(protocol.request(op, request_id, **args))
    assert protocol.decode_request(encoded.rstrip(b"\n")) == Request(request_id, op, args)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_encode_writes_exactly_one_line(message: dict[str, Any]) -> None:
    """An encoded message is one line: a single newline, at the end, whatever the strings hold."""
    encoded = protocol.encode(message)
    assert encoded.count(b"\n") == 1
    assert encoded.endswith(b"\n")
    assert json.loads(encoded) == message


def test_encode_keeps_non_ascii_text_readable() -> None:
    """Non-ASCII names (a burner called 左灶) go on the wire as UTF-8, not as escapes."""
    assert "左灶".encode() in protocol.encode({"name": "左灶"})


def test_ok_and_error_replies_have_their_shape() -> None:
    """Replies carry the version and id, and either a result or an error code and message."""
    assert protocol.ok("r", {"pong": True}) == {
        "v": 1, "id": "r", "ok": True, "result": {"pong": True},
    }
    assert protocol.error("r", "unknown_burner", "no such", burners=["left"]) == {
        "v": 1, "id": "r", "ok": False,
        "error": {"code": "unknown_burner", "message": "no such", "burners": ["left"]},
    }


@given(st.binary(max_size=512))
def test_decoding_arbitrary_bytes_returns_a_request_or_raises_request_error(raw: bytes) -> None:
    """Whatever bytes arrive, decode_request returns a Request or raises RequestError, no other."""
    try:
        decoded = protocol.decode_request(raw)
    except RequestError as error:
        assert error.code in ("bad_json", "bad_request", "bad_version", "unknown_op")
    else:
        assert isinstance(decoded, Request)


@given(json_values)
def test_decoding_arbitrary_json_returns_a_request_or_raises_request_error(value: Any) -> None:
    """Whatever JSON arrives, decode_request returns a Request or raises RequestError, no other."""
    try:
        decoded = protocol.decode_request(json.dumps(value).encode())
    except RequestError as error:
        assert error.code in ("bad_request", "bad_version", "unknown_op")
    else:
        assert isinstance(decoded, Request)


# -- argument helpers ----------------------------------------------------------------------


def with_args(**args: Any) -> Request:
    return Request("r9", "off", args)


def test_names_default_to_all() -> None:
    """Without "burners", a command applies to all burners."""
    assert protocol.names_argument(with_args()) == ["all"]


def test_a_single_name_becomes_a_list() -> None:
    """"burners" may be one name instead of a list."""
    assert protocol.names_argument(with_args(burners="left")) == ["left"]


def test_a_list_of_names_is_kept_in_order() -> None:
    """A list of names is returned as given."""
    assert protocol.names_argument(with_args(burners=["right", "left"])) == ["right", "left"]


@pytest.mark.parametrize("burners", [[], 3, None, ["left", 2], {"left": True}, [None]])
def test_names_that_are_not_a_list_of_strings_are_bad_request(burners: object) -> None:
    """An empty list, a non-list, or a list holding non-strings is refused with bad_request."""
    with pytest.raises(RequestError) as caught:
        protocol.names_argument(with_args(burners=burners))
    assert caught.value.code == "bad_request"
    assert caught.value.request_id == "r9"


@pytest.mark.parametrize(("value", "expected"), [(90, 90.0), (2.5, 2.5), (0, 0.0), (-3, -3.0)])
def test_a_number_argument_is_read_as_a_float(value: float, expected: float) -> None:
    """Integers and floats are accepted and returned as floats (range checks are the caller's)."""
    result = protocol.number_argument(with_args(seconds=value), "seconds")
    assert result == expected
    assert isinstance(result, float)


@pytest.mark.parametrize(
    "value",
    [True, False, "90", "90s", [90], math.nan, math.inf, -math.inf, 10**400],
    ids=["true", "false", "digits", "duration", "list", "nan", "inf", "-inf", "huge-int"],
)
def test_a_number_argument_that_is_not_a_finite_number_is_bad_request(value: object) -> None:
    """Booleans, strings, lists, NaN, infinities and huge integers are bad_request, naming it."""
    with pytest.raises(RequestError) as caught:
        protocol.number_argument(with_args(seconds=value), "seconds")
    assert caught.value.code == "bad_request"
    assert caught.value.request_id == "r9"
    assert "'seconds'" in str(caught.value)


def test_a_missing_required_number_is_bad_request() -> None:
    """A required number that is absent is refused with bad_request."""
    with pytest.raises(RequestError) as caught:
        protocol.number_argument(with_args(), "seconds")
    assert caught.value.code == "bad_request"


def test_a_missing_optional_number_is_none() -> None:
    """An optional number that is absent is None."""
    assert protocol.number_argument(with_args(), "since", required=False) is None


def test_infinity_from_the_wire_is_refused() -> None:
    """JSON's non-standard Infinity, which Python's parser accepts, is not a usable number."""
    decoded = protocol.decode_request(b'{"v": 1, "id": "r", "op": "timer", "seconds": Infinity}')
    with pytest.raises(RequestError) as caught:
        protocol.number_argument(decoded, "seconds")
    assert caught.value.code == "bad_request"
