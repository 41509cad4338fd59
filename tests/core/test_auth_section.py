"""The auth section codec: byte-identical to packify 0.4 for dicts of
str -> bytes | int, and strict about everything else."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import packify  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netaio_core import (
    AuthFields,
    DecodeError,
    auth_section,
    decode_auth_fields,
    encode_auth_fields,
)
from netaio_core.auth_section import EMPTY_AUTH_SECTION

from .strategies import auth_dicts


@given(auth_dicts)
def test_encoding_is_byte_identical_to_packify(fields: dict[str, bytes | int]) -> None:
    ours = encode_auth_fields(fields)
    assert ours == packify.pack(fields)
    assert AuthFields(fields).encode() == ours
    assert packify.unpack(ours) == fields


@given(auth_dicts)
def test_decodes_what_packify_encodes(fields: dict[str, bytes | int]) -> None:
    assert decode_auth_fields(packify.pack(fields)) == fields


@pytest.mark.parametrize(
    "fields",
    [
        {"": b""},
        {"k": b"x" * 255},
        {"k": b"x" * 256},  # bytes length in a u16
        {"k" * 300: 1},  # the pair's items need u16 lengths
        {str(i): i for i in range(300)},  # the dict's count needs a u16
        {"n": 2**32 - 1, "m": 2**32, "o": -(2**32 - 1), "p": -(2**32)},
        {"big": 2**2040 - 1, "bigger": 2**2040, "neg": -(2**3000)},  # 255 / 256+ byte ints
        {"ключ": b"\xff", "鍵": -1, "🔑": 0},
    ],
    ids=["empty", "u8-bytes", "u16-bytes", "long-key", "u16-count", "u32-edges", "huge", "utf8"],
)
def test_boundaries_match_packify(fields: dict[str, bytes | int]) -> None:
    ours = encode_auth_fields(fields)
    assert ours == packify.pack(fields)
    assert decode_auth_fields(ours) == fields


def test_insertion_order_does_not_change_the_encoding() -> None:
    assert encode_auth_fields({"a": 1, "b": b"2"}) == encode_auth_fields({"b": b"2", "a": 1})


def test_empty_dict_and_empty_section() -> None:
    assert encode_auth_fields({}) == EMPTY_AUTH_SECTION == packify.pack({}) == b"\x4d\x40\x00"
    assert decode_auth_fields(EMPTY_AUTH_SECTION) == {}
    assert decode_auth_fields(b"") == {}


@pytest.mark.parametrize("value", [True, 1.5, None, bytearray(b"x"), "text", [1], Decimal(1)])
def test_encode_rejects_unsupported_value_types(value: Any) -> None:
    with pytest.raises(TypeError, match=r"auth field 'k' must be bytes or int, not \w+"):
        encode_auth_fields({"k": value})


@pytest.mark.parametrize("key", [1, b"k", None, ("a",)])
def test_encode_rejects_non_str_keys(key: Any) -> None:
    with pytest.raises(TypeError, match="auth field names must be str"):
        encode_auth_fields({key: b"v"})


# --- malformed input: one case per kind of damage ------------------------------


def _container(code: int, items: list[bytes]) -> bytes:
    """A packify container of fewer than 256 items of fewer than 256 bytes each."""
    return bytes((0x40 | code, 0x40, len(items), *map(len, items))) + b"".join(items)


def _pair(key: bytes, value: bytes) -> bytes:
    return _container(12, [key, value])


def _dict(*pairs: bytes) -> bytes:
    return _container(13, list(pairs))


KEY_A = b"\x43\x01a"
ONE = b"\x44\x01"
VALID = _dict(_pair(KEY_A, ONE))


def test_hand_built_section_is_valid() -> None:
    # the damaged inputs below are built the same way; this one is intact
    assert packify.pack({"a": 1}) == VALID
    assert decode_auth_fields(VALID) == {"a": 1}


def test_non_canonical_but_well_typed_sections_decode() -> None:
    # as with packify: pairs out of order, a u16 length where a u8 would do
    wide_bytes = b"\x81\x00\x02xy"
    data = _dict(_pair(b"\x43\x01b", wide_bytes), _pair(KEY_A, ONE))
    assert decode_auth_fields(data) == {"b": b"xy", "a": 1} == packify.unpack(data)
    assert data != encode_auth_fields({"b": b"xy", "a": 1})


def _with(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes((value,)) + data[index + 1 :]


MALFORMED = [
    pytest.param(packify.pack([1]), r"expected a dict, found type code 0x4a", id="top-level-list"),
    pytest.param(
        packify.pack(b"x"), r"expected a dict, found type code 0x41", id="top-level-bytes"
    ),
    pytest.param(packify.pack(None), r"expected a dict, found type code 0x00", id="top-level-none"),
    pytest.param(
        _with(VALID, 0, 0x0D), r"invalid length category in dict item count", id="dict-cat0"
    ),
    pytest.param(
        _with(VALID, 1, 0x00), r"invalid item length category 0x00 in dict", id="item-cat0"
    ),
    pytest.param(
        _with(VALID, 1, 0x41), r"invalid item length category 0x41 in dict", id="item-cat-bits"
    ),
    pytest.param(
        b"\x4d\x40\x02\x05", r"truncated: dict length table needs 2 bytes, 1 left", id="table"
    ),
    pytest.param(b"\x4d", r"truncated: missing dict item length category", id="dict-header"),
    pytest.param(
        b"\x4d\x80\x01\x00", r"truncated: dict length table needs 2 bytes", id="table-u16"
    ),
    pytest.param(
        VALID[:-1], r"truncated: dict item needs 10 bytes, 9 left", id="item-past-the-dict"
    ),
    pytest.param(
        _dict(_pair(b"\x43\x05ab", ONE)), r"truncated: key needs 5 bytes, 2 left", id="key"
    ),
    pytest.param(
        _dict(_pair(KEY_A, b"\x41\x04ab")),
        r"truncated: bytes value needs 4 bytes, 2 left",
        id="bytes-value",
    ),
    pytest.param(_dict(_pair(KEY_A, b"\x84\x01")), r"truncated: int value needs 2", id="int-u16"),
    pytest.param(
        _dict(_pair(KEY_A, b"\x04\x03\x01")), r"truncated: int value needs 3 bytes", id="int-cat0"
    ),
    pytest.param(
        _dict(_pair(KEY_A, b"\x0e\x00\x00\x01\x00\x01")),
        r"truncated: big int value needs 256 bytes, 1 left",
        id="big-int",
    ),
    pytest.param(_dict(_pair(KEY_A, b"")), r"truncated: missing value type code", id="no-value"),
    pytest.param(
        _dict(_container(12, [KEY_A, ONE, ONE])), r"a pair has 3 items, not 2", id="pair-of-3"
    ),
    pytest.param(_dict(_container(12, [KEY_A])), r"a pair has 1 items, not 2", id="pair-of-1"),
    pytest.param(
        _dict(_container(10, [KEY_A, ONE])),
        r"expected a key/value pair, found type code 0x4a",
        id="pair-is-a-list",
    ),
    pytest.param(
        packify.pack({1: b"x"}), r"auth field name must be str, found type code 0x44", id="int-key"
    ),
    pytest.param(
        packify.pack({b"k": b"x"}),
        r"auth field name must be str, found type code 0x41",
        id="bytes-key",
    ),
    pytest.param(
        _dict(_pair(b"\x43\x02\xc3\x28", ONE)), r"auth field name is not valid UTF-8", id="utf8"
    ),
    pytest.param(
        _dict(_pair(b"\x43\x01\xed", ONE)), r"auth field name is not valid UTF-8", id="utf8-cut"
    ),
    pytest.param(
        _dict(_pair(b"\x43\x01a!", ONE)),
        r"auth field name 'a' is followed by stray bytes",
        id="key+",
    ),
    pytest.param(
        _dict(_pair(KEY_A, ONE + b"!")), r"auth field 'a' is followed by stray bytes", id="value+"
    ),
    pytest.param(_dict(_pair(KEY_A, ONE) + b"!"), r"stray bytes after field 'a'", id="pair+"),
    pytest.param(
        _dict(_pair(KEY_A, ONE), _pair(KEY_A, b"\x44\x02")),
        r"duplicate field 'a'",
        id="duplicate-key",
    ),
    pytest.param(VALID + b"\x00", r"1 stray bytes after the dict", id="trailing-byte"),
    pytest.param(VALID + VALID, r"14 stray bytes after the dict", id="two-dicts"),
]
for code, value, name in [
    (0x07, 1.5, "float"),
    (0x00, None, "none"),
    (0x06, True, "bool-true"),
    (0x06, False, "bool-false"),
    (0x4A, [1], "list"),
    (0x4C, (1,), "tuple"),
    (0x4B, {1}, "set"),
    (0x4D, {"x": 1}, "dict"),
    (0x42, bytearray(b"x"), "bytearray"),
    (0x43, "text", "str"),
    (0x48, Decimal("1.5"), "decimal"),
]:
    MALFORMED.append(
        pytest.param(
            packify.pack({"k": value}),
            rf"auth field 'k' has unsupported type code 0x{code:02x}; values must be bytes or int",
            id=f"value-{name}",
        )
    )
for code in (0x01, 0x0E | 0x40, 0x0F | 0x80, 0x14, 0x3F):  # bytes without a length, bad forms
    MALFORMED.append(
        pytest.param(
            _dict(_pair(KEY_A, bytes((code, 1, 1, 1, 1, 1)))),
            rf"auth field 'a' has unsupported type code 0x{code:02x}",
            id=f"value-code-0x{code:02x}",
        )
    )


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_malformed_auth_section_is_a_decode_error(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as info:
        decode_auth_fields(data)
    assert type(info.value) is DecodeError
    with pytest.raises(DecodeError, match=message):
        AuthFields.decode(data)


def _strict_decode(data: bytes) -> dict[str, bytes | int] | type[DecodeError]:
    """The general decoder alone, without the one-pass fast path."""
    cursor = auth_section._Cursor(data)
    try:
        fields: dict[str, bytes | int] = {}
        for item in auth_section._decode_container(cursor, 13, "dict"):
            key, value = auth_section._decode_pair(item)
            if key in fields or item.pos != item.end:
                return DecodeError
            fields[key] = value
        return fields if cursor.pos == cursor.end else DecodeError
    except DecodeError:
        return DecodeError


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        auth_dicts.map(encode_auth_fields),
        auth_dicts.map(encode_auth_fields).flatmap(
            lambda data: st.tuples(st.integers(0, max(len(data) - 1, 0)), st.integers(0, 255)).map(
                lambda change: data[: change[0]] + bytes((change[1],)) + data[change[0] + 1 :]
            )
        ),
        st.binary(max_size=80).map(lambda tail: b"\x4d\x40" + tail),
    )
)
def test_fast_path_agrees_with_the_general_decoder(data: bytes) -> None:
    """The one-pass decoder of the usual shape accepts only what the general
    decoder accepts, and decodes it to the same fields."""
    fast = auth_section._decode_small(data)
    if fast is not None:
        assert fast == _strict_decode(data)
    expected = _strict_decode(data)
    if expected is DecodeError:
        with pytest.raises(DecodeError):
            decode_auth_fields(data)
    else:
        assert decode_auth_fields(data) == expected
