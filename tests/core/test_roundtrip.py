"""Every default class decodes what it encodes, for arbitrary field values."""

from __future__ import annotations

from zlib import crc32

from hypothesis import given
from hypothesis import strategies as st

from netaio_core import AuthFields, Body, Header, Message, MessageType

from .strategies import auth_dicts, contents, headers, message_types, messages, uris


@given(headers)
def test_header_round_trip(header: Header) -> None:
    data = header.encode()
    assert len(data) == Header.header_length() == 9
    assert Header.decode(data) == header


@given(headers, st.binary(min_size=1, max_size=16))
def test_header_decode_reads_only_its_own_nine_bytes(header: Header, rest: bytes) -> None:
    # Message.decode hands the whole frame to Header.decode.
    assert Header.decode(header.encode() + rest) == header


@given(auth_dicts)
def test_auth_fields_round_trip(fields: dict[str, bytes | int]) -> None:
    decoded = AuthFields.decode(AuthFields(fields).encode())
    assert decoded.fields == fields
    # bool is an int subclass: make sure ints come back as ints, bytes as bytes
    assert all(type(decoded.fields[k]) is type(v) for k, v in fields.items())


@given(uris, contents)
def test_body_round_trip(uri: bytes, content: bytes) -> None:
    body = Body.prepare(content, uri)
    data = body.encode()
    assert data[:4] == len(uri).to_bytes(4, "big")
    assert Body.decode(data) == Body(len(uri), uri, content)


@given(messages)
def test_message_round_trip(message: Message) -> None:
    data = message.encode()
    decoded = Message.decode(data)
    assert decoded == message
    assert decoded.check()
    assert decoded.encode() == data


@given(message_types, auth_dicts, uris, contents, st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1))
def test_encode_sets_lengths_and_checksum_whatever_the_header_said(
    message_type: MessageType,
    fields: dict[str, bytes | int],
    uri: bytes,
    content: bytes,
    stale_length: int,
    stale_checksum: int,
) -> None:
    body = Body(len(uri), uri, content)
    message = Message(
        Header(message_type, stale_length, stale_length, stale_checksum), AuthFields(fields), body
    )
    data = message.encode()
    auth_bytes = AuthFields(fields).encode()
    body_bytes = body.encode()
    assert message.header == Header(
        message_type, len(auth_bytes), len(body_bytes), crc32(body_bytes)
    )
    assert data == message.header.encode() + auth_bytes + body_bytes
    assert Message.decode(data) == message
