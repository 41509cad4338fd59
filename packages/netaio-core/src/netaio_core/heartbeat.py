"""Heartbeats: how each end finds out that the other has gone (layer 3).

A client that has received nothing for ``Limits.heartbeat_interval`` sends
an OK message to the reserved uri ``netaio/ping`` with a correlation id. A
netaio server answers it itself, before any handler, with an OK to the same
uri and id; a netaio 0.0.2 server has no handler for it and answers
NOT_FOUND, which serves as well. Anything received counts as a sign of life.
A peer silent for ``heartbeat_interval + heartbeat_timeout`` is taken for
dead. A server never pings (a 0.0.2 client could not answer): it expects a
client that has sent a heartbeat to send something that often.
"""

from __future__ import annotations

from .codec import Body, Message
from .message_type import MessageType
from .protocols import MessageProtocol

__all__ = ["HEARTBEAT_URI", "is_heartbeat", "make_heartbeat"]

HEARTBEAT_URI = b"netaio/ping"
"""The reserved uri of heartbeats."""


def make_heartbeat() -> Message:
    """A heartbeat (or its answer): an empty OK to ``HEARTBEAT_URI``."""
    return Message.prepare(Body.prepare(b"", HEARTBEAT_URI), MessageType.OK)


def is_heartbeat(message: MessageProtocol) -> bool:
    """Whether ``message`` is a heartbeat or its answer."""
    return message.header.message_type is MessageType.OK and message.body.uri == HEARTBEAT_URI
