"""What the client's and the server's ``asyncio.Protocol`` connections share
(layer 4): the transport, a ``StreamWriter`` over it, flow control, one
lazily re-armed deadline timer and the close waiter.

Bytes received go to a ``FrameDecoder``; what a subclass does with the
messages is its own. Writes go straight to the transport, except while a
subclass collects a batch (``begin_batch``/``flush``): then every write, its
own replies and a handler's ``writer.write`` alike, joins the batch in order
and the batch leaves in one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable
from typing import Any, Generic, cast

from .framing import FrameDecoder
from .protocols import MessageT

__all__ = [
    "BATCH_LIMIT",
    "ConnectionWriter",
    "StreamConnection",
    "enable_keepalive",
    "format_peer",
]

BATCH_LIMIT = 64 * 1024
"""Bytes a batch of writes collects before it is sent: the transport's flow
control (``pause_writing``) then stops the dispatch of further frames."""


KEEPALIVE_IDLE = 60
"""Seconds of silence before the kernel probes a TCP connection."""
KEEPALIVE_INTERVAL = 10
KEEPALIVE_PROBES = 5


def enable_keepalive(transport: asyncio.BaseTransport) -> None:
    """Turn on TCP keepalive (probes after 60 s of silence, every 10 s, 5 of
    them), so that a peer gone without a FIN is found even with no
    heartbeat; options a platform lacks are skipped."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (
            ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
            ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
            ("TCP_KEEPCNT", KEEPALIVE_PROBES),
        ):
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def format_peer(peer: object) -> str:
    """``host:port`` for a socket address, ``str()`` of anything else."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


class ConnectionWriter(asyncio.StreamWriter):
    """A ``StreamWriter`` whose writes go through its connection, so that a
    handler's own writes keep their place among batched replies."""

    def __init__(
        self,
        transport: asyncio.Transport,
        connection: StreamConnection[Any],
        reader: asyncio.StreamReader | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(transport, connection, reader, loop)
        self._connection = connection

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._connection.write(bytes(data) if type(data) is not bytes else data)

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        self._connection.write(b"".join(data))


class StreamConnection(asyncio.Protocol, Generic[MessageT]):
    """An ``asyncio.Protocol`` feeding a ``FrameDecoder``, with flow control.

    ``deadline`` (loop time or None) is enforced by one timer that is re-armed
    only when it fires early, so moving a deadline costs an assignment, not a
    timer per message. When it passes, ``deadline_passed`` is called.
    """

    transport: asyncio.Transport
    writer: asyncio.StreamWriter
    peer: str

    def __init__(
        self,
        decoder: FrameDecoder[MessageT],
        logger: logging.Logger,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.decoder = decoder
        self.logger = logger
        self.loop = asyncio.get_running_loop() if loop is None else loop
        self.peer = "?"
        self.deadline: float | None = None
        self.deadline_reason = ""
        self.write_paused = False
        self._batch: list[bytes] | None = None
        self._batch_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closed: asyncio.Future[None] = self.loop.create_future()
        self._lost = False

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        self.peer = format_peer(transport.get_extra_info("peername"))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drainers(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if not self.transport.is_closing():
            # A TLS transport whose peer ended it is not marked closed by
            # itself on every Python version (a ResourceWarning on 3.10).
            with contextlib.suppress(Exception):
                self.transport.close()
        self.cancel_deadline()
        self._wake_drainers(ConnectionResetError("connection lost") if exc is None else exc)
        if not self._closed.done():
            self._closed.set_result(None)

    # -- what StreamWriter asks of its protocol ------------------------------

    async def _drain_helper(self) -> None:
        if self._lost:
            raise ConnectionResetError("connection lost")
        if not self.write_paused:
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            self._drain_waiters.remove(waiter)

    def _get_close_waiter(self, stream: object) -> asyncio.Future[None]:
        return self._closed

    def _wake_drainers(self, exc: BaseException | None) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                if exc is None or not self.write_paused:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    @property
    def closed(self) -> asyncio.Future[None]:
        """Done once the connection is lost."""
        return self._closed

    @property
    def is_lost(self) -> bool:
        return self._lost

    # -- writing -------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data``, or add it to the batch being collected (which is
        sent at once when it reaches ``BATCH_LIMIT`` bytes, so that flow
        control sees it)."""
        if self._lost:
            return
        batch = self._batch
        if batch is None:
            self.transport.write(data)
            return
        batch.append(data)
        self._batch_bytes += len(data)
        if self._batch_bytes >= BATCH_LIMIT:
            self.flush()
            self.begin_batch()

    def begin_batch(self) -> None:
        """Collect writes until ``flush``."""
        if self._batch is None:
            self._batch = []
            self._batch_bytes = 0

    def flush(self) -> None:
        """Send the collected batch in one write and stop collecting."""
        batch = self._batch
        self._batch = None
        if batch and not self._lost:
            self.transport.write(batch[0] if len(batch) == 1 else b"".join(batch))

    # -- the deadline --------------------------------------------------------

    def expect(self, timeout: float | None, reason: str) -> None:
        """Call ``deadline_passed`` unless the current wait ends within
        ``timeout`` seconds (None: no limit); ``reason`` says what passed."""
        if timeout is None:
            self.deadline = None
            return
        deadline = self.deadline = self.loop.time() + timeout
        self.deadline_reason = reason
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self.deadline
        if deadline is None:
            return
        if self.loop.time() >= deadline:
            self.deadline = None
            self.deadline_passed(self.deadline_reason)
        else:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def cancel_deadline(self) -> None:
        """Stop enforcing deadlines (the connection is ending)."""
        self.deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def deadline_passed(self, reason: str) -> None:
        """What happens when a deadline passes: the connection is aborted."""
        self.logger.warning("Closing connection with %s: %s", self.peer, reason)
        self.transport.abort()
