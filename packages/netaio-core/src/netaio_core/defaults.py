"""The default routing keys and error replies used by client and server."""

from __future__ import annotations

from collections.abc import Hashable

from .codec import Body, Message, MessageType
from .protocols import MessageProtocol

__all__ = ["keys_extractor", "make_error_response"]


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
