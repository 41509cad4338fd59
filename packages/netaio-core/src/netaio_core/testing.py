"""In-memory transports: two ``asyncio.Protocol`` objects connected without
sockets, for tests (layer 4).

``connect_pair(a, b)`` gives each protocol a ``MemoryTransport`` whose writes
reach the other's ``data_received`` on the next turn of the event loop, as
bytes from a socket would; flow control (``pause_reading``), half-close
(``write_eof``), ``close`` and ``abort`` behave as on a TCP transport. Every
byte still goes through the real codec, so a test exercises exactly what a
connection would, minus the kernel.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

__all__ = ["MemoryTransport", "connect_pair"]

_ports = itertools.count(40000)


class MemoryTransport(asyncio.Transport):
    """One end of an in-memory connection."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, name: tuple[str, int]
    ) -> None:
        self._info: dict[str, Any] = {"peername": None, "sockname": name, "socket": None}
        super().__init__(self._info)
        self._loop = loop
        self._protocol = protocol
        self.peer: MemoryTransport | None = None
        self._closing = False
        self._lost = False
        self._reading = True
        self._held: list[bytes] = []  # arrived while reading is paused
        self._eof_held = False

    # -- writing -----------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        peer = self.peer
        if peer is not None:
            self._loop.call_soon(peer._arrive, bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        peer = self.peer
        if peer is not None and not self._closing:
            self._loop.call_soon(peer._arrive_eof)

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    # -- reading -----------------------------------------------------------------

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        if self._reading:
            return
        self._reading = True
        held, self._held = self._held, []
        for data in held:
            self._loop.call_soon(self._arrive, data)
        if self._eof_held:
            self._eof_held = False
            self._loop.call_soon(self._arrive_eof)

    def _arrive(self, data: bytes) -> None:
        if self._lost:
            return
        if not self._reading:
            self._held.append(data)
            return
        self._protocol.data_received(data)

    def _arrive_eof(self) -> None:
        if self._lost:
            return
        if not self._reading:
            self._eof_held = True
            return
        if not self._protocol.eof_received():
            self.close()

    # -- closing -----------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Close both ends once what was written has been delivered."""
        if self._closing:
            return
        self._closing = True
        peer = self.peer
        if peer is not None:
            self._loop.call_soon(peer._arrive_eof)
            self._loop.call_soon(peer._end, None)
        self._loop.call_soon(self._end, None)

    def abort(self) -> None:
        """Close both ends at once (bytes in flight are lost)."""
        self._closing = True
        self._end(None)
        peer = self.peer
        if peer is not None:
            peer._closing = True
            self._loop.call_soon(peer._end, ConnectionResetError("connection reset by peer"))

    def _end(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._protocol.connection_lost(exc)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]


def connect_pair(
    a: asyncio.Protocol, b: asyncio.Protocol
) -> tuple[MemoryTransport, MemoryTransport]:
    """Connect two protocols in memory and call their ``connection_made``
    (``a`` first): ``a`` is the client end, ``b`` the server end."""
    loop = asyncio.get_running_loop()
    client_name = ("memory", next(_ports))
    server_name = ("memory", next(_ports))
    ta = MemoryTransport(loop, a, client_name)
    tb = MemoryTransport(loop, b, server_name)
    ta.peer, tb.peer = tb, ta
    ta._info["peername"] = server_name
    tb._info["peername"] = client_name
    a.connection_made(ta)
    b.connection_made(tb)
    return ta, tb
