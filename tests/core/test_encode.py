"""Encoding: limits of the 16-bit lengths and header fields, type errors,
Message.prepare's fresh auth data, and the default helpers."""

from __future__ import annotations

from typing import Any
from zlib import crc32

import pytest

from netaio_core import (
    MAX_SECTION_LENGTH,
    AuthFields,
    Body,
    Header,
    Message,
    MessageType,
    keys_extractor,
    make_error_response,
)


def _body_of_size(size: int) -> Body:
    return Body.prepare(b"x" * (size - 5), b"u")


def test_largest_body_and_auth_section_fit() -> None:
    body = _body_of_size(MAX_SECTION_LENGTH)
    auth = AuthFields({"k": b"v" * (MAX_SECTION_LENGTH - 18)})
    assert len(auth.encode()) == MAX_SECTION_LENGTH
    data = Message.prepare(body, auth_data=auth).encode()
    assert len(data) == 9 + 2 * MAX_SECTION_LENGTH
    assert Message.decode(data).body == body


def test_body_over_the_limit_is_refused() -> None:
    body = _body_of_size(MAX_SECTION_LENGTH + 1)
    match = r"body is 65536 bytes; a frame carries at most 65535"
    with pytest.raises(ValueError, match=match):
        Message.prepare(body)
    message = Message.prepare(Body.prepare(b""))
    message.body = body
    with pytest.raises(ValueError, match=match):
        message.encode()


def test_auth_section_over_the_limit_is_refused() -> None:
    auth = AuthFields({"k": b"v" * (MAX_SECTION_LENGTH - 17)})
    match = r"auth section is 65536 bytes; a frame carries at most 65535"
    with pytest.raises(ValueError, match=match):
        Message.prepare(Body.prepare(b""), auth_data=auth)
    message = Message.prepare(Body.prepare(b""))
    message.auth_data.fields["k"] = auth.fields["k"]
    with pytest.raises(ValueError, match=match):
        message.encode()


@pytest.mark.parametrize(
    "header",
    [
        Header(MessageType.OK, -1, 0, 0),
        Header(MessageType.OK, 0x10000, 0, 0),
        Header(MessageType.OK, 0, 0x10000, 0),
        Header(MessageType.OK, 0, 0, 2**32),
        Header(MessageType.OK, 0, 0, -1),
        Header(10, 0, 0, 0),  # type: ignore[arg-type]
    ],
    ids=["auth-negative", "auth-u16", "body-u16", "checksum-u32", "checksum-negative", "raw-int"],
)
def test_header_fields_out_of_range(header: Header) -> None:
    with pytest.raises(ValueError, match=r"header does not fit its fields: .*0\.\.65535"):
        header.encode()


@pytest.mark.parametrize(
    ("fields", "error"), [({1: b"v"}, "names must be str"), ({"k": 1.0}, "bytes or int")]
)
def test_auth_fields_of_the_wrong_type(fields: dict[Any, Any], error: str) -> None:
    with pytest.raises(TypeError, match=error):
        AuthFields(fields).encode()
    with pytest.raises(TypeError, match=error):
        Message.prepare(Body.prepare(b""), auth_data=AuthFields(fields))


def test_prepare_fills_lengths_and_checksum() -> None:
    body = Body.prepare(b"content", b"uri")
    auth = AuthFields({"ts": 1})
    message = Message.prepare(body, MessageType.PUBLISH_URI, auth)
    assert message.header == Header(
        MessageType.PUBLISH_URI, len(auth.encode()), len(body.encode()), crc32(body.encode())
    )
    assert message.check()
    assert message.auth_data is auth
    assert message.body is body


def test_prepare_defaults() -> None:
    message = Message.prepare(Body.prepare(b"x"))
    assert message.header.message_type is MessageType.REQUEST_URI
    assert message.body == Body(1, b"1", b"x")
    assert message.auth_data == AuthFields({})
    assert message.header.auth_length == 3  # the empty dict's encoding


def test_body_prepare_default_uri() -> None:
    assert Body.prepare(b"content") == Body(1, b"1", b"content")
    assert Body.prepare(b"c", uri=b"") == Body(0, b"", b"c")


def test_messages_prepared_without_auth_data_do_not_share_it() -> None:
    first = Message.prepare(Body.prepare(b"1"))
    second = Message.prepare(Body.prepare(b"2"), MessageType.OK)
    explicit_none = Message.prepare(Body.prepare(b"3"), MessageType.OK, None)
    first.auth_data.fields["nonce"] = b"first"
    assert first.auth_data is not second.auth_data
    assert first.auth_data.fields is not second.auth_data.fields
    assert second.auth_data.fields == {} == explicit_none.auth_data.fields
    later = Message.prepare(Body.prepare(b"4"))
    assert later.auth_data.fields == {}
    assert later.header.auth_length == 3


def test_prepare_converts_other_body_classes() -> None:
    class OtherBody:
        uri = b"other"
        content = b"data"

    message = Message.prepare(OtherBody(), MessageType.OK)  # type: ignore[arg-type]
    assert message.body == Body(5, b"other", b"data")
    assert Message.decode(message.encode()) == message


@pytest.mark.parametrize(
    ("text", "message_type"),
    [
        ("not found", MessageType.NOT_FOUND),
        ("resource not found: /x", MessageType.NOT_FOUND),
        ("auth failed", MessageType.AUTH_ERROR),
        ("HMAC auth failed", MessageType.AUTH_ERROR),
        ("invalid message", MessageType.ERROR),
        ("Not Found", MessageType.ERROR),  # the match is case-sensitive, as documented
        ("", MessageType.ERROR),
    ],
)
def test_make_error_response(text: str, message_type: MessageType) -> None:
    reply = make_error_response(text)
    assert reply.header.message_type is message_type
    assert reply.body == Body(5, b"ERROR", text.encode())
    assert reply.auth_data.fields == {}
    assert Message.decode(reply.encode()) == reply


def test_error_responses_are_independent() -> None:
    first, second = make_error_response("x"), make_error_response("x")
    first.auth_data.fields["k"] = 1
    assert second.auth_data.fields == {}


def test_keys_extractor_most_specific_first() -> None:
    message = Message.prepare(Body.prepare(b"", b"/path"), MessageType.SUBSCRIBE_URI)
    assert keys_extractor(message) == [
        (MessageType.SUBSCRIBE_URI, b"/path"),
        MessageType.SUBSCRIBE_URI,
    ]


def _changed_body(message: Message, change: str) -> bytes:
    """The new body bytes after changing the prepared message one way."""
    if change == "content":
        message.body.content = message.body.content + b"!"
    elif change == "uri":
        message.body.uri = b"/other"
    elif change == "body":
        message.body = Body.prepare(b"replaced", b"/replaced")
    else:  # the same value as a new bytes object: the encoding is the same
        message.body.content = bytes(bytearray(message.body.content))
    return message.body.encode()


@pytest.mark.parametrize("change", ["content", "uri", "body", "equal copy"])
def test_encode_follows_a_body_changed_after_prepare(change: str) -> None:
    message = Message.prepare(Body.prepare(b"original", b"/uri"))
    message.encode()  # encoded once as prepared
    body = _changed_body(message, change)
    decoded = Message.decode(message.encode())
    assert decoded.body.encode() == body
    assert decoded.check()
    assert message.header.checksum == crc32(body)
