"""Client-side subscriptions: ``async with client.subscribe(uri) as feed``."""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Generic

from netaio_core import MessageT, MessageType, NetaioError

if TYPE_CHECKING:
    from .client import Server, TCPClient
    from .connection import ClientConnection

__all__ = ["Subscription", "SubscriptionError"]


class SubscriptionError(NetaioError):
    """The server did not confirm a subscription; ``reply`` is its answer."""

    def __init__(self, uri: bytes, reply: object) -> None:
        super().__init__(f"subscription to {uri!r} was not confirmed: {reply!r}")
        self.reply = reply


class Subscription(Generic[MessageT]):
    """The NOTIFY_URI messages for one uri, as an async iterator.

    Entering sends SUBSCRIBE_URI and waits for CONFIRM_SUBSCRIBE (else
    ``SubscriptionError``); leaving sends UNSUBSCRIBE_URI. Notifications
    that arrive while nobody iterates are kept, up to ``Limits.max_queue``
    (then the oldest is dropped with a warning). Iteration raises
    ``ConnectionClosedError`` when the connection ends; with a reconnect
    policy it waits instead, and the subscription is renewed on the new
    connection (notifications published in the gap are not delivered).
    """

    def __init__(
        self, client: TCPClient[MessageT], uri: bytes, server: Server | None, timeout: float
    ) -> None:
        self.client = client
        self.uri = uri
        self.server = server
        self.timeout = timeout
        self._messages: deque[MessageT] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._connection: ClientConnection[MessageT] | None = None

    async def __aenter__(self) -> Subscription[MessageT]:
        connection = self.client._connection(self.server)
        if self.uri in connection.feeds:
            raise RuntimeError(f"{self.uri!r} is already subscribed on {connection.name}")
        connection.feeds[self.uri] = self
        self._connection = connection
        try:
            await self.renew()
        except BaseException:
            connection.feeds.pop(self.uri, None)
            raise
        return self

    async def renew(self) -> None:
        """Send SUBSCRIBE_URI on the current connection and wait for its
        confirmation (on entering, and after a reconnect)."""
        assert self._connection is not None
        reply = await self.client.request(
            self.uri,
            message_type=MessageType.SUBSCRIBE_URI,
            timeout=self.timeout,
            server=self._connection.server,
        )
        if reply.header.message_type is not MessageType.CONFIRM_SUBSCRIBE:
            raise SubscriptionError(self.uri, reply)

    def attach(self, connection: ClientConnection[MessageT]) -> None:
        """Move to a new connection to the same server (a reconnect)."""
        self._connection = connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self._connection
        if connection is None:
            return
        if connection.feeds.get(self.uri) is self:
            del connection.feeds[self.uri]
        if not connection.is_lost and not connection.transport.is_closing():
            await self.client.request(
                self.uri,
                message_type=MessageType.UNSUBSCRIBE_URI,
                timeout=self.timeout,
                server=connection.server,
            )

    def deliver(self, message: MessageT) -> None:
        """Queue a notification (called by the connection)."""
        messages = self._messages
        messages.append(message)
        connection = self._connection
        if connection is not None and len(messages) > connection.max_queue:
            messages.popleft()
            connection.logger.warning(
                "Subscription to %r on %s is full: dropping its oldest notification",
                self.uri,
                connection.name,
            )
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Subscription[MessageT]:
        return self

    async def __anext__(self) -> MessageT:
        connection = self._connection
        if connection is None:
            raise RuntimeError("iterate a subscription inside its `async with`")
        while not self._messages:
            connection = self._connection
            assert connection is not None
            if connection.is_lost:
                # With a reconnect policy, wait for the new connection.
                if not await self.client.wait_reconnected(connection.server):
                    raise connection.closed_error()
                continue
            self._waiter = connection.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._messages.popleft()
