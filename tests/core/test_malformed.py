"""Malformed frames: each kind of damage is a DecodeError (a ValueError) that
names the problem, and no other exception ever escapes a decode."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from zlib import crc32

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netaio_core import (
    AuthFields,
    Body,
    ChecksumError,
    DecodeError,
    Header,
    Message,
    MessageType,
    UnknownMessageTypeError,
    decode_auth_fields,
)

from .strategies import messages

EXAMPLE = Message.prepare(
    Body.prepare(b"content", b"uri"), MessageType.CREATE_URI, AuthFields({"n": b"\x01\x02"})
)
FRAME = EXAMPLE.encode()
AUTH_LENGTH = EXAMPLE.header.auth_length


def _frame(message_type: int, auth: bytes, body: bytes, checksum: int | None = None) -> bytes:
    """A frame with a self-consistent header around arbitrary sections."""
    crc = crc32(body) if checksum is None else checksum
    return struct.pack("!BHHI", message_type, len(auth), len(body), crc) + auth + body


def _raises_exactly(error: type[Exception], match: str, decode: Callable[[], object]) -> None:
    with pytest.raises(error, match=match) as info:
        decode()
    assert type(info.value) is error
    assert isinstance(info.value, ValueError)


def test_the_example_frame_is_valid() -> None:
    # every damaged frame below starts from this one
    assert Message.decode(FRAME) == EXAMPLE
    assert _frame(2, FRAME[9 : 9 + AUTH_LENGTH], FRAME[9 + AUTH_LENGTH :]) == FRAME


@pytest.mark.parametrize("size", [0, 1, 8])
def test_truncated_header(size: int) -> None:
    match = rf"header truncated: need 9 bytes, got {size}"
    _raises_exactly(DecodeError, match, lambda: Header.decode(FRAME[:size]))
    _raises_exactly(DecodeError, match, lambda: Message.decode(FRAME[:size]))


@pytest.mark.parametrize("value", [14, 19, 21, 26, 29, 31, 255])
def test_unknown_message_type(value: int) -> None:
    damaged = bytes((value,)) + FRAME[1:]
    match = rf"unknown message type {value}$"
    _raises_exactly(UnknownMessageTypeError, match, lambda: Header.decode(damaged))
    _raises_exactly(UnknownMessageTypeError, match, lambda: Message.decode(damaged))
    with pytest.raises(UnknownMessageTypeError) as info:
        Header.decode(damaged)
    assert info.value.frame_remainder == len(FRAME) - 9


@pytest.mark.parametrize("cut", [1, 5, len(FRAME) - 9 - AUTH_LENGTH, len(FRAME) - 10])
def test_truncated_message(cut: int) -> None:
    match = rf"message truncated: header announces {len(FRAME)} bytes, got {len(FRAME) - cut}"
    _raises_exactly(DecodeError, match, lambda: Message.decode(FRAME[:-cut]))


@pytest.mark.parametrize("extra", [b"\x00", FRAME])
def test_over_long_message(extra: bytes) -> None:
    match = rf"message over-long: header announces {len(FRAME)} bytes, got {len(FRAME + extra)}"
    _raises_exactly(DecodeError, match, lambda: Message.decode(FRAME + extra))


def test_checksum_mismatch() -> None:
    damaged = FRAME[:-1] + bytes((FRAME[-1] ^ 1,))
    _raises_exactly(ChecksumError, r"checksum mismatch", lambda: Message.decode(damaged))
    wrong_crc = _frame(2, FRAME[9 : 9 + AUTH_LENGTH], FRAME[9 + AUTH_LENGTH :], checksum=0)
    _raises_exactly(ChecksumError, r"checksum mismatch", lambda: Message.decode(wrong_crc))


def test_a_message_whose_checksum_no_longer_matches_fails_check() -> None:
    message = Message.decode(FRAME)
    message.body.content = b"changed"
    assert not message.check()


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"\x00\x00\x00\x04abc", r"uri_length 4 exceeds the 3 bytes after it"),
        (b"\xff\xff\xff\xff", r"uri_length 4294967295 exceeds the 0 bytes after it"),
        (b"\x00\x00\x01", r"body truncated: need at least 4 bytes, got 3"),
        (b"", r"body truncated: need at least 4 bytes, got 0"),
    ],
    ids=["uri-past-body", "huge-uri-length", "short", "empty"],
)
def test_malformed_body(body: bytes, match: str) -> None:
    _raises_exactly(DecodeError, match, lambda: Body.decode(body))
    frame = _frame(0, b"", body)
    _raises_exactly(DecodeError, match, lambda: Message.decode(frame))


def test_malformed_auth_section_in_a_frame() -> None:
    frame = _frame(0, b"\x4d\x40\x01\x05", Body.prepare(b"x").encode())
    _raises_exactly(DecodeError, r"auth section truncated", lambda: Message.decode(frame))


def test_message_decode_checks_the_checksum_before_the_sections() -> None:
    # a damaged frame with a stale checksum says so, whatever else is wrong
    frame = _frame(0, b"\x00", b"\x00\x00\x00\x09", checksum=1)
    _raises_exactly(ChecksumError, r"checksum mismatch", lambda: Message.decode(frame))


# --- fuzzing: decode or DecodeError, nothing else ----------------------------------

DECODERS: list[Callable[[bytes], object]] = [
    Header.decode,
    AuthFields.decode,
    Body.decode,
    Message.decode,
    decode_auth_fields,
]


def _decodes_or_decode_error(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(DecodeError):
            decode(data)


@given(st.binary(max_size=600))
def test_random_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    _decodes_or_decode_error(data)


mutations = st.lists(
    st.tuples(
        st.sampled_from(["set", "insert", "delete", "cut"]), st.integers(0), st.integers(0, 255)
    ),
    min_size=1,
    max_size=4,
)


def _mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    buffer = bytearray(data)
    for op, where, value in edits:
        index = where % (len(buffer) + 1)
        if op == "insert":
            buffer.insert(index, value)
        elif op == "cut":
            del buffer[index:]
        elif buffer:
            index %= len(buffer)
            if op == "set":
                buffer[index] = value
            else:
                del buffer[index]
    return bytes(buffer)


@given(messages, mutations)
def test_mutated_frames_decode_or_raise_decode_error(
    message: Message, edits: list[tuple[str, int, int]]
) -> None:
    _decodes_or_decode_error(_mutate(message.encode(), edits))


@given(messages, mutations, mutations)
def test_mutated_sections_in_consistent_frames(
    message: Message, auth_edits: list[tuple[str, int, int]], body_edits: list[tuple[str, int, int]]
) -> None:
    # The header is kept consistent so that the damage reaches the auth and
    # body decoders behind the length and checksum checks.
    auth = _mutate(message.auth_data.encode(), auth_edits)[:0xFFFF]
    body = _mutate(message.body.encode(), body_edits)[:0xFFFF]
    _decodes_or_decode_error(auth)
    _decodes_or_decode_error(body)
    try:
        decoded = Message.decode(_frame(message.header.message_type.value, auth, body))
    except DecodeError:
        return
    assert decoded.body.encode() == body
