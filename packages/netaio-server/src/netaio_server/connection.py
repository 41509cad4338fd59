"""One client connection as the server sees it (layer 4).

``ServerConnection`` is fed bytes, by asyncio as the connection's
``asyncio.Protocol`` or, for ``TCPServer.handle_client(reader, writer)``, by a
loop reading the given stream: the two paths differ only in how bytes
arrive. Every complete frame of a feed is dispatched in order; the replies of
one feed leave in one write. A handler that returns an awaitable holds the
frames after it until its reply is sent (strict order per connection); while
it runs, or while the peer does not take its replies, reading pauses once
``READ_AHEAD`` bytes are buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Hashable
from typing import TYPE_CHECKING, Any, Generic

from netaio_core import (
    DecodeError,
    FrameError,
    FrameTooLargeError,
    MessageProtocol,
    MessageT,
    MessageType,
)
from netaio_core.correlation import fields_correlation_id, set_correlation_id
from netaio_core.dispatch import HandlerLayer
from netaio_core.heartbeat import HEARTBEAT_URI, make_heartbeat
from netaio_core.transport import (
    BATCH_LIMIT,
    ConnectionWriter,
    StreamConnection,
    enable_keepalive,
)

from .drops import DropReason

if TYPE_CHECKING:
    from .server import TCPServer

__all__ = ["READ_AHEAD", "ServerConnection"]

READ_AHEAD = 256 * 1024
"""Bytes of unprocessed frames a connection buffers before it stops reading
(while a handler runs or while the peer does not take its replies)."""

FRAMES_PER_TURN = 128
"""Frames a connection dispatches before it lets the event loop serve the
other connections (then it goes on in a callback of its own): a peer
pipelining without pause cannot hold up the others."""

_STREAM_READ_SIZE = 64 * 1024
_OK = MessageType.OK

# A handler's pending result, its auth plugin and the request's correlation id.
_Awaited = tuple[Awaitable[Any], HandlerLayer | None, int | None]


class ServerConnection(StreamConnection[MessageT], Generic[MessageT]):
    """A client connection: its frames, its handler in progress, its keys.

    ``keys`` mirrors the connection's entries in ``TCPServer.subscriptions``
    so that a disconnect removes them without scanning every key.
    """

    dropped: DropReason | None = None
    """Why the server dropped this connection, once it has."""

    def __init__(
        self, server: TCPServer[MessageT], writer: asyncio.StreamWriter | None = None
    ) -> None:
        super().__init__(server.frame_decoder(), server.logger)
        self.server = server
        self.keys: set[Hashable] = set()
        self.task: asyncio.Task[None] | None = None  # an awaited handler and the frames after it
        self.concurrent: set[asyncio.Task[None]] = set()  # correlated requests being handled
        self.admitted = False  # counted and serving (after any TLS handshake)
        self.counted = False  # counted towards the server's limits
        self.ip = ""
        self.handshake: asyncio.Task[None] | None = None
        self._closing = False
        self.heartbeats = False  # the client sends heartbeats
        self.peer_state: dict[str, Any] = {}  # what cipher plugins learn of the peer
        self._stream = writer is not None
        self._read_paused = False
        self._resumed: asyncio.Future[None] | None = None  # the stream loop waiting to read
        self._eof = False
        self._yielded = False  # a continuation of the dispatch is scheduled
        self._frame_started = False
        self._drain_first = False
        if writer is not None:
            self.writer = writer
            self.connection_made(writer.transport)

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) else self.peer
        enable_keepalive(transport)
        server = self.server
        if not server._count_in(self):
            self.transport.abort()
            return
        if server.ssl is not None and not self._stream:
            # TLS starts once the connection is counted, under a deadline.
            self.expect(server.limits.tls_handshake_timeout, DropReason.TLS_HANDSHAKE_TIMEOUT)
            self.handshake = self.loop.create_task(self._start_tls(server.ssl))
            return
        self._begin()

    def _begin(self) -> None:
        """The connection is ready (after its TLS handshake, if any)."""
        if not self._stream:
            self.writer = ConnectionWriter(self.transport, self, None, self.loop)
        self.admitted = True
        self.server._admit(self)
        self._arm(False)
        if self.decoder.buffered:  # bytes that came with the end of the handshake
            self.data_received(b"")

    async def _start_tls(self, context: ssl.SSLContext) -> None:
        raw = self.transport
        try:
            transport = await self.loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self.server.limits.tls_handshake_timeout,
            )
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            self.logger.info("TLS handshake with %s failed: %s", self.peer, exc)
            self.server._dropped(self, DropReason.TLS_HANDSHAKE_FAILED)
            raw.abort()
            self.connection_lost(None)
            return
        finally:
            self.handshake = None
        if transport is None or self.is_lost:
            # Aborted mid-handshake (a deadline, stop()): asyncio may not
            # report the loss to this protocol, so leave the counts here.
            self.connection_lost(None)
            return
        self.transport = transport
        self.cancel_deadline()
        self._begin()

    def data_received(self, data: bytes) -> None:
        self.decoder.receive_data(data)
        if not self.admitted:
            # TLS can hand over the first bytes before start_tls() returns:
            # they wait until the connection is ready (_begin).
            return
        if self.task is None and not self._yielded:
            try:
                self._run()
            except Exception as exc:  # a failing make_error, say: only this connection
                self._fail(exc)
        elif self.decoder.buffered > READ_AHEAD:
            self._pause_reading()
        self._account_input()

    def _account_input(self) -> None:
        """Tell the server's budget what this connection holds unhandled."""
        buffered = self.decoder.buffered
        partial = self.server._partial
        if (buffered or partial.held(self)) and not self.is_lost:
            partial.update(self, buffered)

    def handler_tasks(self) -> list[asyncio.Task[None]]:
        """The tasks running this connection's handlers."""
        tasks = list(self.concurrent)
        if self.task is not None:
            tasks.append(self.task)
        return tasks

    def _fail(self, exc: Exception) -> None:
        """An error no reply can report: log its traceback and abort."""
        self.logger.error(
            "Unexpected error on the connection from %s; closing it", self.peer, exc_info=exc
        )
        self.transport.abort()

    def eof_received(self) -> bool:
        self._eof = True
        if self.task is None and not self.concurrent and not self._yielded:
            self._end_of_input()
            return False
        # Keep the half-open connection until the handler in progress replies.
        return self.transport.get_extra_info("sslcontext") is None

    def deadline_passed(self, reason: str) -> None:
        if isinstance(reason, DropReason):
            self.server._dropped(self, reason)
        super().deadline_passed(reason)

    def pause_writing(self) -> None:
        super().pause_writing()
        self._pause_reading()
        self.expect(self.server.limits.write_timeout, DropReason.WRITE_TIMEOUT)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._after_writes()  # the budget learns that the buffer drained
        self._arm(False)
        if self.task is None and not self.is_lost and not self._yielded:
            self._run()
        if not self.write_paused and self.decoder.buffered <= READ_AHEAD:
            self._resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.is_lost:
            return
        super().connection_lost(exc)
        self._resume_reading()
        if self.handshake is not None:
            self.handshake.cancel()
        if self.counted:
            self.server._forget(self, exc)

    def close(self) -> None:
        """Close once what is unsent has been sent, within close_timeout;
        then abort (a peer that stops reading cannot hold the socket)."""
        if self._closing or self.is_lost:
            return
        self._closing = True
        self.flush()
        self.transport.close()
        self.expect(self.server.limits.close_timeout, DropReason.CLOSE_TIMEOUT)

    # -- dispatching ---------------------------------------------------------

    def _run(self) -> None:
        """Dispatch the buffered frames in order until one needs awaiting in
        order (it then continues in a task) or none is left."""
        pending = self._dispatch_buffered()
        if pending is not None:
            self.task = self.loop.create_task(self._serve_awaited(pending))
        elif self._yielded:
            if self.decoder.buffered > READ_AHEAD:
                self._pause_reading()
        elif self._eof and not self.concurrent:
            self._end_of_input()

    def _go_on(self) -> None:
        """The scheduled continuation of a dispatch that gave way."""
        self._yielded = False
        if self.is_lost or self.task is not None or self.server._closing:
            return
        try:
            self._run()
        except Exception as exc:  # as in data_received
            self._fail(exc)
            return
        if not self._yielded and not self.write_paused and self.decoder.buffered <= READ_AHEAD:
            self._resume_reading()
        self._account_input()

    def _dispatch_buffered(self) -> _Awaited | None:
        """Dispatch buffered frames and send (batch) their replies.

        A message with a correlation id whose handler must be awaited runs
        in a task of its own, up to ``max_concurrent_requests`` at once;
        one without an id stops the dispatch and is returned, to be awaited
        before the frames after it.
        """
        server = self.server
        decoder = self.decoder
        call = server._call_handler
        writer = self.writer
        fallback = server.default_handler
        limit = server.limits.max_concurrent_requests
        concurrent = self.concurrent
        progressed = False
        turn = FRAMES_PER_TURN
        pending: _Awaited | None = None
        if not self._stream:
            self.begin_batch()
        try:
            # Only a flush (write_paused), a new task (the limit) or an
            # await (stop()) change these: checked where they can change.
            if self.write_paused or server._closing or len(concurrent) >= limit:
                return None
            while True:
                if not turn and not self._stream:
                    if decoder.buffered:
                        # Give way to the other connections; go on next turn.
                        self._yielded = True
                        self.loop.call_soon(self._go_on)
                    break
                try:
                    message = decoder.next_message()
                except DecodeError as exc:
                    self.logger.info("Invalid message from %s: %s", self.peer, exc)
                    server._dropped(self, DropReason.INVALID_MESSAGE)
                    cid = None if exc.auth_data is None else fields_correlation_id(exc.auth_data)
                    self.send_reply(server.make_error("invalid message"), None, cid)
                    progressed = True
                    turn -= 1
                    if self._stalled():
                        break
                    continue
                except FrameError as exc:
                    self.logger.warning("Closing connection from %s: %s", self.peer, exc)
                    too_large = isinstance(exc, FrameTooLargeError)
                    reason = DropReason.FRAME_TOO_LARGE if too_large else DropReason.INVALID_FRAME
                    server._dropped(self, reason)
                    self.send_reply(server.make_error(reason.value), None, None)
                    self.close()
                    return None
                if message is None:
                    break
                progressed = True
                turn -= 1
                auth_data = message.auth_data
                cid = fields_correlation_id(auth_data) if auth_data.fields else None
                if message.header.message_type is _OK and message.body.uri == HEARTBEAT_URI:
                    self.heartbeats = True  # from now on, expected at least that often
                    self.send_reply(make_heartbeat(), None, cid)
                    continue
                try:
                    result, layer, awaited = call(message, writer, fallback, self.peer_state)
                except BaseException as exc:  # contained to this message (see _error_reply)
                    result, layer, awaited = server._error_reply(self, exc), None, False
                if awaited:
                    if cid is None:
                        pending = (result, layer, None)
                        break
                    serve = self._serve_concurrent(result, layer, cid)
                    concurrent.add(self.loop.create_task(serve))
                    if len(concurrent) >= limit:
                        break
                elif result is not None:
                    self.send_reply(result, layer, cid)
                    if self._stalled():
                        break
        finally:
            self.flush()
        self._after_writes()
        if pending is None and not concurrent:
            self._arm(progressed)
        else:
            self.expect(None, "")
        return pending

    async def _reply_when_done(self, awaited: _Awaited) -> None:
        """Await a handler's result and send it as the reply."""
        result, layer, cid = awaited
        try:
            reply = await result
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # contained to this message (see _error_reply)
            reply, layer = self.server._error_reply(self, exc), None
        if reply is not None and not self.is_lost:
            self.send_reply(reply, layer, cid)
            self._after_writes()

    async def _serve_awaited(self, first: _Awaited) -> None:
        """Await an in-order handler's reply, send it, and go on with the
        frames that arrived meanwhile (awaiting each in-order one in turn)."""
        pending: _Awaited | None = first
        try:
            while pending is not None:
                await self._reply_when_done(pending)
                pending = None
                if self.is_lost or self.server._closing:
                    break
                if not self.write_paused:
                    pending = self._dispatch_buffered()
        except Exception as exc:
            self._fail(exc)
            return
        finally:
            self.task = None
        self._after_handlers()

    async def _serve_concurrent(
        self, result: Awaitable[Any], layer: HandlerLayer | None, cid: int
    ) -> None:
        """Await a correlated request's handler and send its reply."""
        try:
            await self._reply_when_done((result, layer, cid))
        except Exception as exc:
            self._fail(exc)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self.concurrent.discard(task)
        if self.task is None:
            if not self.is_lost and not self.server._closing and not self.write_paused:
                self._run()
            self._after_handlers()

    def _after_handlers(self) -> None:
        """A handler task ended: close once stopping or at end of input."""
        if self.is_lost or self.task is not None or self.concurrent or self._yielded:
            return
        self._account_input()
        if self.server._closing:
            self.server._closed_after_reply(self)
            return
        if not self.write_paused and self.decoder.buffered <= READ_AHEAD:
            self._resume_reading()
        if self._eof:
            self._end_of_input()

    def send_reply(
        self,
        reply: MessageProtocol,
        layer: HandlerLayer | None,
        cid: int | None,
    ) -> None:
        """Seal (sign, encrypt), encode and send (or batch) a reply, with the
        request's correlation id; a failure is contained."""
        if cid is not None:
            set_correlation_id(reply, cid)
        data = self.server._encode_reply(self, reply, layer)
        if data is not None:
            self.write(data)

    def _stalled(self) -> bool:
        """The peer does not take our replies fast enough: dispatch no more
        frames until it does."""
        return self.write_paused or (self._stream and self._backlogged())

    def _backlogged(self) -> bool:
        """(The stream path, whose writer's flow control is not ours.) True
        when the peer has more than ``BATCH_LIMIT`` bytes unsent: the stream
        loop then drains before dispatching more."""
        self._drain_first = self.transport.get_write_buffer_size() > BATCH_LIMIT
        return self._drain_first

    def _after_writes(self) -> None:
        """Drop the peer if its unsent bytes passed ``write_buffer_limit``."""
        if self.is_lost:
            return
        try:
            unsent = self.transport.get_write_buffer_size()
        except Exception:  # a transport already torn down
            return
        server = self.server
        if unsent > server.limits.write_buffer_limit:
            server._drop(self.writer, None, DropReason.SLOW_CONSUMER)
        elif unsent or server._unsent.held(self):
            server._unsent.update(self, unsent)

    # -- timers and flow control ----------------------------------------------

    def _arm(self, progressed: bool) -> None:
        """Set the deadline after a feed: frame_timeout from the first byte of
        a frame (a completed frame restarts it), idle_timeout between frames."""
        limits = self.server.limits
        if self.write_paused or self._closing:
            return
        if self.decoder.buffered:
            if progressed or not self._frame_started:
                self._frame_started = True
                self.expect(limits.frame_timeout, DropReason.FRAME_TIMEOUT)
        else:
            self._frame_started = False
            if self.heartbeats and limits.heartbeat_interval is not None:
                silence = limits.heartbeat_interval + limits.heartbeat_timeout
                if limits.idle_timeout is None or silence < limits.idle_timeout:
                    self.expect(silence, DropReason.HEARTBEAT_TIMEOUT)
                    return
            if limits.idle_timeout is not None or self.deadline is not None:
                self.expect(limits.idle_timeout, DropReason.IDLE_TIMEOUT)

    def _pause_reading(self) -> None:
        if self._read_paused:
            return
        self._read_paused = True
        if not self._stream:
            with contextlib.suppress(RuntimeError):  # already closing
                self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self._read_paused:
            return
        self._read_paused = False
        if self._stream:
            waiter = self._resumed
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif not self.is_lost:
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()

    def _end_of_input(self) -> None:
        """The peer sent its last byte and every frame is answered."""
        if self.decoder.buffered:
            self.logger.info("Client %s disconnected mid-frame", self.peer)
        if not self._stream:
            self.close()

    # -- the stream path -----------------------------------------------------

    async def serve_stream(self, reader: asyncio.StreamReader) -> None:
        """Feed this connection from ``reader`` until the stream ends; then
        wait for the handler in progress and close the writer."""
        try:
            while not self.is_lost and not self.transport.is_closing():
                if self._drain_first:
                    self._drain_first = False
                    try:
                        await asyncio.wait_for(
                            self.writer.drain(), self.server.limits.write_timeout
                        )
                    except asyncio.TimeoutError:
                        self.server._drop(self.writer, None, DropReason.WRITE_TIMEOUT)
                        break
                    if self.task is None:
                        self._run()
                    continue
                if self._read_paused:
                    self._resumed = self.loop.create_future()
                    await self._resumed
                    continue
                data = await reader.read(_STREAM_READ_SIZE)
                if not data:
                    self._eof = True
                    if self.task is None and not self.concurrent:
                        self._end_of_input()
                    break
                self.data_received(data)
            while self.task is not None or self.concurrent:
                await asyncio.gather(*self.handler_tasks(), return_exceptions=True)
        except OSError as exc:  # reset, broken pipe, TLS failure
            self.logger.info("Connection from %s lost: %s", self.peer, exc)
        except asyncio.CancelledError:
            if not self.server._closing:
                raise
        finally:
            self.writer.close()
            self.connection_lost(None)
