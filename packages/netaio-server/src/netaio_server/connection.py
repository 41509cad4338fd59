"""One client connection as the server sees it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable


class Connection:
    """A client's streams plus what the server tracks about it.

    ``keys`` mirrors the connection's entries in ``TCPServer.subscriptions``
    so that a disconnect removes them without scanning every key. Read
    deadlines are enforced by one lazily re-armed timer: moving a deadline
    costs an assignment, not a timer per message. ``deadline`` (loop time, or
    None) is the current one; set it only through ``expect``.
    """

    __slots__ = (
        "reader",
        "writer",
        "transport",
        "peer",
        "keys",
        "task",
        "busy",
        "deadline",
        "_reason",
        "_timer",
        "_loop",
        "_logger",
    )

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        logger: logging.Logger,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.keys: set[Hashable] = set()
        self.task = asyncio.current_task()
        self.busy = False
        self.deadline: float | None = None
        self._reason = ""
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._logger = logger

    def expect(self, timeout: float | None, reason: str) -> None:
        """Close the connection unless the current wait ends within ``timeout``
        seconds (None: no limit). ``reason`` is logged if it does not."""
        if timeout is None:
            self.deadline = None
            return
        deadline = self.deadline = self._loop.time() + timeout
        self._reason = reason
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self.deadline
        if deadline is None:
            return
        if self._loop.time() >= deadline:
            self._logger.warning("Closing connection from %s: %s", self.peer, self._reason)
            self.transport.abort()
        else:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def cancel_timer(self) -> None:
        """Stop enforcing deadlines (the connection is ending)."""
        self.deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
