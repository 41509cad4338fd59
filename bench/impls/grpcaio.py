"""grpc.aio: one unary-unary method, bytes in and bytes out.

A generic handler (no generated code) whose method name is the route,
``/bench.Netaio/echo``; with no serializers, requests and replies pass
through as bytes. Each client is a channel of its own (a local subchannel
pool, so that 50 clients are 50 connections); calls on a channel are
multiplexed over HTTP/2, so many may be awaited at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from common import HOST, ROUTES, WAIT

SERVICE = "bench.Netaio"


class GrpcServer:
    def __init__(self, signed: bool) -> None:
        self.server: Any = None

    async def start(self) -> int:
        import grpc

        def method(uri: bytes) -> Any:
            handler = ROUTES[uri]

            async def call(request: bytes, context: Any) -> bytes:
                return handler(request)

            return grpc.unary_unary_rpc_method_handler(call)

        methods = {uri.decode(): method(uri) for uri in ROUTES}
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, methods),)
        )
        port: int = self.server.add_insecure_port(f"{HOST}:0")
        await self.server.start()
        return port

    async def stop(self) -> None:
        await self.server.stop(None)


class GrpcClient:
    concurrent = True

    def __init__(self, signed: bool) -> None:
        self.channel: Any = None

    async def connect(self, port: int) -> None:
        import grpc

        self.channel = grpc.aio.insecure_channel(
            f"{HOST}:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        await asyncio.wait_for(self.channel.channel_ready(), WAIT)
        self.call = self.channel.unary_unary(f"/{SERVICE}/echo")

    async def request(self, content: bytes) -> bytes:
        reply: bytes = await self.call(content)
        return reply

    async def close(self) -> None:
        await self.channel.close()
