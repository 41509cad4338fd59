"""Fixtures of the TCPServer tests: servers on loopback and raw peers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from server_peer import TIMEOUT, RawPeer

from netaio_server import TCPServer

Serve = Callable[..., Awaitable[TCPServer[Any]]]
Connect = Callable[[TCPServer[Any]], Awaitable[RawPeer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(server=None, **kwargs)``: a listening server on 127.0.0.1
    and a free port (a new ``TCPServer(**kwargs)`` unless one is given),
    stopped at teardown."""
    servers: list[TCPServer[Any]] = []

    async def start(server: TCPServer[Any] | None = None, **kwargs: Any) -> TCPServer[Any]:
        if server is None:
            server = TCPServer(host="127.0.0.1", port=0, **kwargs)
        servers.append(server)
        await asyncio.wait_for(server.listen(), TIMEOUT)
        return server

    yield start
    for server in servers:
        await asyncio.wait_for(server.stop(grace=0), TIMEOUT)


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(server)``: a raw peer connected to a listening server,
    closed at teardown."""
    peers: list[RawPeer] = []

    async def open_peer(server: TCPServer[Any]) -> RawPeer:
        peer = await RawPeer.open(server.port)
        peers.append(peer)
        return peer

    yield open_peer
    for peer in peers:
        await peer.close()
