"""Correlation of replies to requests (layer 3).

A request may carry a correlation id: the auth-section field ``cid``, an
unsigned 32-bit int. Every reply a netaio server makes to such a request
carries the same id, including the replies the framework makes itself
(NOT_FOUND, AUTH_ERROR, "invalid message", "internal server error"). The
field lives in the auth section because netaio 0.0.2 peers decode any field
there and ignore those they do not know; auth plugins sign and check their
own fields and leave this one alone.

``PendingRequests`` is one connection's table of requests waiting for their
replies. A peer that never echoes an id (netaio 0.0.2) answers in order, so
until a peer has echoed one, a reply without an id goes to the oldest
pending request.
"""

from __future__ import annotations

import asyncio
from typing import Generic

from .message_type import MessageType
from .protocols import AuthFieldsProtocol, MessageProtocol, MessageT

__all__ = [
    "CORRELATION_FIELD",
    "REPLY_TYPES",
    "PendingRequests",
    "correlation_id",
    "fields_correlation_id",
    "set_correlation_id",
]

CORRELATION_FIELD = "cid"
"""The auth-section field that carries a correlation id."""

_MAX_ID = 0xFFFFFFFF

REPLY_TYPES = frozenset(
    {
        MessageType.RESPOND_URI,
        MessageType.OK,
        MessageType.CONFIRM_SUBSCRIBE,
        MessageType.CONFIRM_UNSUBSCRIBE,
        MessageType.ERROR,
        MessageType.AUTH_ERROR,
        MessageType.NOT_FOUND,
        MessageType.NOT_PERMITTED,
    }
)
"""Message types that answer a request: what a peer that echoes no id may
send in reply."""


def correlation_id(message: MessageProtocol) -> int | None:
    """The message's correlation id, or None (absent, or not a u32 int)."""
    return fields_correlation_id(message.auth_data)


def fields_correlation_id(auth_data: AuthFieldsProtocol) -> int | None:
    """The correlation id in auth fields, or None (absent, or not a u32 int)."""
    value = auth_data.fields.get(CORRELATION_FIELD)
    if type(value) is int and 0 <= value <= _MAX_ID:
        return value
    return None


def set_correlation_id(message: MessageProtocol, cid: int | None) -> None:
    """Set (or, with None, remove) the message's correlation id."""
    fields = message.auth_data.fields
    if cid is None:
        fields.pop(CORRELATION_FIELD, None)
    else:
        fields[CORRELATION_FIELD] = cid


class PendingRequests(Generic[MessageT]):
    """The requests of one connection that wait for a reply.

    ``match`` takes each received message: it completes the request the
    message answers and returns True, or returns False for a message that
    is no reply (a notification, say) or a reply nobody waits for any more
    (``unmatched`` then tells which).
    """

    __slots__ = ("_futures", "_next", "echoes_ids", "unmatched")

    def __init__(self, first_id: int = 0) -> None:
        """``first_id``: the first id to hand out (a datagram endpoint starts
        at a random one, so that its ids do not repeat after a restart)."""
        self._futures: dict[int, asyncio.Future[MessageT]] = {}
        self._next = first_id & _MAX_ID
        self.echoes_ids = False  # the peer has echoed an id at least once
        self.unmatched = False  # the last message matched carried an unknown id

    def __len__(self) -> int:
        return len(self._futures)

    def add(self, loop: asyncio.AbstractEventLoop) -> tuple[int, asyncio.Future[MessageT]]:
        """A fresh id (unique among those pending) and the future of its reply."""
        futures = self._futures
        if len(futures) > _MAX_ID:
            raise RuntimeError("every correlation id is in use")
        cid = self._next
        while cid in futures:
            cid = (cid + 1) & _MAX_ID
        self._next = (cid + 1) & _MAX_ID
        future: asyncio.Future[MessageT] = loop.create_future()
        futures[cid] = future
        return cid, future

    def forget(self, cid: int) -> None:
        """Stop waiting for the reply to ``cid`` (a timeout, a failed send)."""
        self._futures.pop(cid, None)

    def match(self, message: MessageT, error: BaseException | None = None) -> bool:
        """Complete the request ``message`` answers (with ``error`` instead,
        when the reply failed a check); see the class doc."""
        self.unmatched = False
        futures = self._futures
        cid = correlation_id(message)
        if cid is not None:
            future = futures.pop(cid, None)
            if future is None:
                self.unmatched = True
                return False
            self.echoes_ids = True
        elif futures and not self.echoes_ids and message.header.message_type in REPLY_TYPES:
            future = futures.pop(next(iter(futures)))
        else:
            return False
        if not future.done():
            if error is None:
                future.set_result(message)
            else:
                future.set_exception(error)
        return True

    def fail_all(self, error: BaseException) -> None:
        """Fail every pending request with ``error`` (the connection ended)."""
        futures, self._futures = self._futures, {}
        for future in futures.values():
            if not future.done():
                future.set_exception(error)
