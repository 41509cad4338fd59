"""The default routing keys and error replies used by client and server."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from .codec import Body, Message, MessageType
from .protocols import BodyProtocol, MessageProtocol, MessageT

__all__ = [
    "keys_extractor",
    "make_error_msg",
    "make_error_response",
    "make_not_found_msg",
    "make_not_permitted_msg",
    "make_ok_msg",
    "make_respond_uri_msg",
]


def keys_extractor(message: MessageProtocol) -> list[Hashable]:
    """Extract handler keys for a given message. Custom implementations
    should return at least one key, and the more specific keys should be
    listed first. This is used to determine which handler to call for a
    given message, and it returns two keys: one that includes both the
    message type and the body uri, and one that is just the message type.
    """
    message_type = message.header.message_type
    return [(message_type, message.body.uri), message_type]


_ERROR_URI = b"ERROR"


def make_error_response(msg: str) -> Message:
    """Make an error response message: NOT_FOUND when ``msg`` says "not
    found", AUTH_ERROR when it mentions "auth", otherwise ERROR; the text is
    the content and the uri is ``b"ERROR"``."""
    if "not found" in msg:
        message_type = MessageType.NOT_FOUND
    elif "auth" in msg:
        message_type = MessageType.AUTH_ERROR
    else:
        message_type = MessageType.ERROR
    return Message.prepare(Body.prepare(msg.encode(), _ERROR_URI), message_type)


def _text(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _make(
    message_type: MessageType,
    content: str | bytes,
    uri: bytes,
    message_class: type[MessageT],
    body_class: type[BodyProtocol],
) -> MessageT:
    make_body: Any = body_class.prepare  # the Protocol's prepare() names content only
    return message_class.prepare(make_body(_text(content), uri), message_type)  # type: ignore[return-value]


def make_ok_msg(
    content: str | bytes = b"",
    uri: bytes = b"",
    *,
    message_class: type[MessageT] = Message,  # type: ignore[assignment]
    body_class: type[BodyProtocol] = Body,
) -> MessageT:
    """An OK message with optional content and uri."""
    return _make(MessageType.OK, content, uri, message_class, body_class)


def make_respond_uri_msg(
    content: str | bytes,
    uri: bytes,
    *,
    message_class: type[MessageT] = Message,  # type: ignore[assignment]
    body_class: type[BodyProtocol] = Body,
) -> MessageT:
    """A RESPOND_URI message with content and uri."""
    return _make(MessageType.RESPOND_URI, content, uri, message_class, body_class)


def make_not_found_msg(
    msg: str | bytes = "not found",
    uri: bytes = b"",
    *,
    message_class: type[MessageT] = Message,  # type: ignore[assignment]
    body_class: type[BodyProtocol] = Body,
) -> MessageT:
    """A NOT_FOUND message with an optional text and uri."""
    return _make(MessageType.NOT_FOUND, msg, uri, message_class, body_class)


def make_not_permitted_msg(
    msg: str | bytes = "not permitted",
    uri: bytes = b"",
    *,
    message_class: type[MessageT] = Message,  # type: ignore[assignment]
    body_class: type[BodyProtocol] = Body,
) -> MessageT:
    """A NOT_PERMITTED message with an optional text and uri."""
    return _make(MessageType.NOT_PERMITTED, msg, uri, message_class, body_class)


def make_error_msg(
    msg: str | bytes,
    uri: bytes = b"ERROR",
    *,
    message_type: MessageType | None = None,
    message_class: type[MessageT] = Message,  # type: ignore[assignment]
    body_class: type[BodyProtocol] = Body,
) -> MessageT:
    """An error message. Without ``message_type``, the text chooses it:
    NOT_FOUND when it says "not found", AUTH_ERROR when it mentions "auth",
    NOT_PERMITTED when it says "not permitted", otherwise ERROR."""
    text = _text(msg)
    if message_type is None:
        if b"not found" in text:
            message_type = MessageType.NOT_FOUND
        elif b"auth" in text:
            message_type = MessageType.AUTH_ERROR
        elif b"not permitted" in text:
            message_type = MessageType.NOT_PERMITTED
        else:
            message_type = MessageType.ERROR
    return _make(message_type, text, uri, message_class, body_class)
