"""Fixtures of the TCPClient tests: raw servers on loopback and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from client_peer import RawServer

from netaio_client import TCPClient

RawServers = Callable[[], Awaitable[RawServer]]


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServers]:
    """``await raw_server()``: a new listening raw server, closed at teardown."""
    servers: list[RawServer] = []

    async def start() -> RawServer:
        server = await RawServer().start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[TCPClient[Any]]]:
    """Append clients here to have every connection closed at teardown."""
    made: list[TCPClient[Any]] = []
    yield made
    for client in made:
        await client.close_all()
