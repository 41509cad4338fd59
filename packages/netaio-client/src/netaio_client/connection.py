"""One connection of a TCPClient to a server (layer 4).

``ClientConnection`` is the connection's ``asyncio.Protocol``: it decodes
every frame as it arrives, completes the pending request a reply answers,
and queues every other message (notifications, replies to ``send()``) for
``receive_once``/``receive_loop``, which take them one at a time.

``TCPClient.hosts`` keeps its documented ``(StreamReader, StreamWriter)``
pair: the reader is a ``ConnectionReader``, and the first read from it hands
it the rest of the stream (frames not yet decoded), after which bytes go to
it instead of to the decoder and ``receive_once`` reads frames from it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Generic

from netaio_core import (
    AuthenticationError,
    ChecksumError,
    ConnectionClosedError,
    DecodeError,
    FrameDecoder,
    FrameError,
    MessageReader,
    MessageT,
    MessageType,
    ProtocolError,
)
from netaio_core.correlation import PendingRequests, correlation_id, set_correlation_id
from netaio_core.heartbeat import make_heartbeat
from netaio_core.transport import StreamConnection, enable_keepalive

if TYPE_CHECKING:
    from .client import TCPClient
    from .subscription import Subscription

__all__ = ["ClientConnection", "ConnectionReader"]


def _ignore_result(future: asyncio.Future[Any]) -> None:
    """Retrieve a heartbeat's outcome (its answer only proves life)."""
    if not future.cancelled():
        future.exception()


class ConnectionReader(asyncio.StreamReader):
    """The ``StreamReader`` of ``TCPClient.hosts``: empty until something
    reads from it, which switches its connection to raw bytes."""

    def __init__(self, connection: ClientConnection[Any], limit: int) -> None:
        super().__init__(limit=limit, loop=connection.loop)
        self._connection = connection

    async def read(self, n: int = -1) -> bytes:
        self._connection.go_raw()
        return await super().read(n)

    async def readexactly(self, n: int) -> bytes:
        self._connection.go_raw()
        return await super().readexactly(n)

    async def readline(self) -> bytes:
        self._connection.go_raw()
        return await super().readline()

    async def readuntil(self, separator: bytes = b"\n") -> bytes:  # type: ignore[override]
        self._connection.go_raw()
        return await super().readuntil(separator)


class Rejected(Generic[MessageT]):
    """A received message that failed its checksum or auth check."""

    __slots__ = ("message", "error")

    def __init__(self, message: MessageT, error: ChecksumError | AuthenticationError) -> None:
        self.message = message
        self.error = error


class ClientConnection(StreamConnection[MessageT], Generic[MessageT]):
    """A client's connection to one server: replies, queue, raw reader."""

    def __init__(
        self,
        client: TCPClient[MessageT],
        server: tuple[str, int],
        decoder: FrameDecoder[MessageT],
        frames: MessageReader[MessageT],
        logger: logging.Logger,
    ) -> None:
        super().__init__(decoder, logger)
        self.client = client
        self.server = server
        self.frames = frames
        self.pending: PendingRequests[MessageT] = PendingRequests()
        self.reader = ConnectionReader(self, limit=2 * frames.max_frame_size)
        self.consumers = 0  # receive loops running on this connection
        self._queue: deque[MessageT | Rejected[MessageT] | ProtocolError] = deque()
        self.peer_state: dict[str, Any] = {}  # what cipher plugins learn of the server
        self.max_queue = client.limits.max_queue
        self.feeds: dict[bytes, Subscription[MessageT]] = {}  # client-side subscriptions
        self._waiter: asyncio.Future[None] | None = None
        self._raw = False
        self._read_paused = False
        self._abort_reason: str | None = None
        self.last_received = 0.0
        self.last_sent = 0.0
        self._heartbeat: asyncio.TimerHandle | None = None
        self.pending_pings: list[int] = []

    @property
    def name(self) -> str:
        return f"{self.server[0]}:{self.server[1]}"

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.reader.set_transport(self.transport)
        self.writer = asyncio.StreamWriter(self.transport, self, self.reader, self.loop)
        enable_keepalive(transport)
        self.last_received = self.last_sent = self.loop.time()
        interval = self.client.limits.heartbeat_interval
        if interval is not None:
            self._heartbeat = self.loop.call_later(interval, self._heartbeat_tick)
        self.client._register(self)

    def data_received(self, data: bytes) -> None:
        self.last_received = self.loop.time()
        if self._raw:
            self.reader.feed_data(data)
            return
        decoder = self.decoder
        decoder.receive_data(data)
        queue = self._queue
        pending = self.pending
        open_message = self.client.open
        peer = self.peer_state
        progressed = False
        while True:
            try:
                message = decoder.next_message()
            except DecodeError as exc:
                queue.append(exc)
                continue
            except FrameError as exc:
                queue.append(exc)  # raised once; then the connection is closed
                self.abort(f"undecodable stream from the server: {exc}")
                break
            if message is None:
                break
            progressed = True
            try:
                message = open_message(message, peer)
            except (ChecksumError, AuthenticationError) as exc:
                if pending.match(message, exc):  # a reply that fails the checks
                    continue
                queue.append(Rejected(message, exc))
                continue
            except Exception as exc:  # a failing plugin: the message is refused
                self.logger.error(
                    "An auth or cipher plugin failed on a message from %s", self.name, exc_info=exc
                )
                refused = AuthenticationError(self.client.auth_plugin)
                if not pending.match(message, refused):
                    queue.append(Rejected(message, refused))
                continue
            if pending or correlation_id(message) is not None:
                if pending.match(message):
                    continue
                if pending.unmatched:
                    self.logger.warning(
                        "Dropping a reply from %s that matches no pending request", self.name
                    )
                    continue
            if self.feeds and message.header.message_type is MessageType.NOTIFY_URI:
                feed = self.feeds.get(message.body.uri)
                if feed is not None:
                    feed.deliver(message)
                    continue
            queue.append(message)
        if queue:
            self._wake()
            if len(queue) >= self.max_queue:
                self._queue_full()
        if decoder.buffered:  # a frame has begun: it has frame_timeout to finish
            if self.deadline is None or progressed:
                self.expect(self.client.limits.frame_timeout, "frame_timeout reached mid-frame")
        elif self.deadline is not None:
            self.expect(None, "")

    def eof_received(self) -> bool:
        if self._raw:
            self.reader.feed_eof()
        self.transport.close()  # marks a TLS transport closed too
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        super().connection_lost(exc)
        if self._raw and not self.reader.at_eof():
            self.reader.feed_eof()
        self.pending.fail_all(self.closed_error())
        self._wake()
        for feed in self.feeds.values():
            feed.wake()
        self.client._lost(self)

    # -- taking messages -----------------------------------------------------

    async def receive(self) -> MessageT | Rejected[MessageT]:
        """The next queued message (checked and decrypted), or a message that
        failed its checks; raises what ``receive_once`` documents."""
        queue = self._queue
        while True:
            if queue:
                item = queue.popleft()
                if self._read_paused and len(queue) < self.max_queue // 2:
                    self._resume_reading()
                if isinstance(item, ProtocolError):
                    raise item
                return item
            if self._raw:
                raw = await self.frames.read(self.reader)
                try:
                    return self.client.open(raw, self.peer_state)
                except (ChecksumError, AuthenticationError) as exc:
                    return Rejected(raw, exc)
            if self.is_lost:
                raise self.closed_error()
            if self._waiter is not None:
                raise RuntimeError(
                    f"another task is already receiving from {self.name}: use one "
                    "receive_loop (or start_receive_loop) per server, and request() "
                    "for replies"
                )
            waiter = self._waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _queue_full(self) -> None:
        """Pause reading while a receive loop is behind; with no receive loop,
        drop the oldest queued message instead, so that replies to
        ``request()`` keep arriving."""
        if self.consumers:
            self._pause_reading()
            return
        while len(self._queue) > self.max_queue:
            item = self._queue.popleft()
            self.logger.warning(
                "Receive queue for %s is full (max_queue=%d) and nothing reads it: dropping %s",
                self.name,
                self.max_queue,
                type(item).__name__,
            )

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.is_lost:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self.is_lost:
            self._read_paused = False
            self.transport.resume_reading()

    def closed_error(self, what: str | None = None) -> ConnectionClosedError:
        """The error for using this connection once it has ended."""
        if what is not None:
            return ConnectionClosedError(f"connection to {self.name} {what}", server=self.server)
        if self._abort_reason is not None:
            return ConnectionClosedError(
                f"connection to {self.name} was aborted: {self._abort_reason}", server=self.server
            )
        if self.decoder.buffered:
            return ConnectionClosedError(
                f"connection to {self.name} closed in the middle of a frame",
                partial=True,
                server=self.server,
            )
        return ConnectionClosedError(f"connection to {self.name} closed", server=self.server)

    def abort(self, reason: str) -> None:
        """End the connection at once, saying why (pending requests fail with
        that reason)."""
        if self.is_lost:
            return
        self.logger.warning("Aborting the connection to %s: %s", self.name, reason)
        self._abort_reason = reason
        self.transport.abort()

    def deadline_passed(self, reason: str) -> None:
        self.abort(reason)

    # -- heartbeats ------------------------------------------------------------

    def _heartbeat_tick(self) -> None:
        """Send a heartbeat once ``heartbeat_interval`` passes without
        receiving or without sending (so that the server hears from a
        client that only listens); abort after ``heartbeat_interval +
        heartbeat_timeout`` without receiving."""
        self._heartbeat = None
        if self.is_lost:
            return
        limits = self.client.limits
        interval = limits.heartbeat_interval
        assert interval is not None
        now = self.loop.time()
        dead_at = self.last_received + interval + limits.heartbeat_timeout
        if now >= dead_at:
            self.abort(
                f"no answer to heartbeats for {now - self.last_received:.1f}s "
                f"(heartbeat_interval + heartbeat_timeout = {interval + limits.heartbeat_timeout}s)"
            )
            return
        if now - min(self.last_received, self.last_sent) >= interval:
            self._ping()
        next_ping = min(self.last_received, self.last_sent) + interval
        self._heartbeat = self.loop.call_at(min(next_ping, dead_at), self._heartbeat_tick)

    def _ping(self) -> None:
        ping = make_heartbeat()
        cid, reply = self.pending.add(self.loop)
        reply.add_done_callback(_ignore_result)
        set_correlation_id(ping, cid)
        self.pending_pings.append(cid)
        try:
            self.transport.write(self.client.seal(ping, None, self.peer_state).encode())
            self.last_sent = self.loop.time()
        except Exception as exc:  # a failing plugin: no heartbeat, and say so
            self.pending.forget(cid)
            self.logger.warning("Could not send a heartbeat to %s: %s", self.name, exc)
        while len(self.pending_pings) > 4:  # unanswered ones are not waited for
            self.pending.forget(self.pending_pings.pop(0))

    def go_raw(self) -> None:
        """Hand the rest of the stream to ``reader`` (someone reads from it)."""
        if self._raw:
            return
        self._raw = True
        rest = self.decoder.take_unparsed()
        if rest:
            self.reader.feed_data(rest)
        if self.is_lost or self.transport.is_closing():
            self.reader.feed_eof()
