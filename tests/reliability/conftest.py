"""Fixtures of the reliability tests: servers and raw peers on loopback, and a
check that no exception ever reaches the event loop unhandled."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from netaio_server import TCPServer

from .support import TIMEOUT, RawPeer

Serve = Callable[[TCPServer[Any]], Awaitable[TCPServer[Any]]]
Connect = Callable[..., Awaitable[RawPeer]]


@pytest.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Every context passed to the loop's exception handler during the test
    (an exception that no netaio code handled); the test fails if any."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    gc.collect()  # "Task exception was never retrieved" is reported on collection
    await asyncio.sleep(0)
    loop.set_exception_handler(previous)
    assert not errors, f"{len(errors)} unhandled exception(s) reached the event loop: {errors[:3]}"


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(server)``: the server listening (port 0 becomes a free
    port), stopped at teardown."""
    servers: list[TCPServer[Any]] = []

    async def start(server: TCPServer[Any]) -> TCPServer[Any]:
        servers.append(server)
        await asyncio.wait_for(server.listen(), TIMEOUT)
        return server

    yield start
    for server in servers:
        await asyncio.wait_for(server.stop(grace=0), TIMEOUT)


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(port, host="127.0.0.1")``: a raw peer, closed at teardown."""
    peers: list[RawPeer] = []

    async def open_peer(port: int, host: str = "127.0.0.1", **kwargs: Any) -> RawPeer:
        peer = await RawPeer.open(port, host, **kwargs)
        peers.append(peer)
        return peer

    yield open_peer
    for peer in peers:
        await peer.close()
