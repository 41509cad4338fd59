"""pyzmq (``zmq.asyncio``): a ROUTER server, DEALER clients.

A request is the multipart message [uri, content]; the ROUTER picks the
handler by the uri (``common.ROUTES``) and replies [uri, reply] to the
sending DEALER. A DEALER keeps any number of requests in flight, so the
same pair serves the sequential, pipelined and 50-connection workloads;
every client in a process shares one context (one I/O thread).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from common import ECHO_URI, HOST, ROUTES


def _context() -> Any:
    import zmq.asyncio

    return zmq.asyncio.Context.instance()


class ZmqServer:
    def __init__(self, signed: bool) -> None:
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        import zmq

        self.socket = _context().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        port: int = self.socket.bind_to_random_port(f"tcp://{HOST}")
        self._task = asyncio.create_task(self._serve())
        return port

    async def _serve(self) -> None:
        socket = self.socket
        while True:
            identity, uri, content = await socket.recv_multipart()
            await socket.send_multipart((identity, uri, ROUTES[uri](content)))

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.socket.close(linger=0)


class ZmqClient:
    def __init__(self, signed: bool) -> None:
        self.socket: Any = None

    async def connect(self, port: int) -> None:
        import zmq

        self.socket = _context().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(f"tcp://{HOST}:{port}")

    async def send(self, content: bytes) -> None:
        await self.socket.send_multipart((ECHO_URI, content))

    async def receive(self) -> bytes:
        uri, content = await self.socket.recv_multipart()
        if uri != ECHO_URI:
            raise AssertionError("reply to another uri")
        reply: bytes = content
        return reply

    async def request(self, content: bytes) -> bytes:
        await self.send(content)
        return await self.receive()

    async def close(self) -> None:
        self.socket.close(linger=0)
