"""websockets (its asyncio API): binary messages of a uri and the content.

A message is one byte of uri length, the uri, then the content; the server
picks the handler by the uri (``common.ROUTES``) and replies with the same
uri. Compression is off on both sides, as it would only cost time here.
"""

from __future__ import annotations

from typing import Any

from common import ECHO_URI, HOST, ROUTES

PREFIX = bytes((len(ECHO_URI),)) + ECHO_URI


class WebsocketsServer:
    def __init__(self, signed: bool) -> None:
        self._server: Any = None

    async def start(self) -> int:
        from websockets.asyncio.server import serve

        async def handler(connection: Any) -> None:
            async for data in connection:
                n = data[0] + 1
                await connection.send(data[:n] + ROUTES[data[1:n]](data[n:]))

        self._server = await serve(handler, HOST, 0, compression=None, ping_interval=None)
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()


class WebsocketsClient:
    def __init__(self, signed: bool) -> None:
        self.connection: Any = None

    async def connect(self, port: int) -> None:
        from websockets.asyncio.client import connect

        self.connection = await connect(f"ws://{HOST}:{port}", compression=None, ping_interval=None)

    async def send(self, content: bytes) -> None:
        await self.connection.send(PREFIX + content)

    async def receive(self) -> bytes:
        data = await self.connection.recv()
        if not data.startswith(PREFIX):
            raise AssertionError("reply to another uri")
        content: bytes = data[len(PREFIX) :]
        return content

    async def request(self, content: bytes) -> bytes:
        await self.send(content)
        return await self.receive()

    async def close(self) -> None:
        await self.connection.close()
