"""Heartbeats against netaio 0.0.2: our client pings a 0.0.2 server, which
has no handler for ``netaio/ping`` and answers NOT_FOUND; that answer keeps
the connection alive, so the client stays connected and its requests work.

The 0.0.2 server runs from ``netaio_002_peer.py`` in the interpreter named by
NETAIO_002_PYTHON (``nox -s compat`` sets it). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from compat.old_peers import old_peer, read_json_line

from netaio_client import ConnectionState, TCPClient
from netaio_core import Limits, Message, MessageType

OLD_PYTHON = os.environ.get("NETAIO_002_PYTHON", "")
PEER = Path(__file__).resolve().with_name("netaio_002_peer.py")
TIMEOUT = 20.0  # a fresh interpreter importing 0.0.2 can be slow on a busy machine
INTERVAL = 0.2
HEARTBEAT = Limits(heartbeat_interval=INTERVAL, heartbeat_timeout=INTERVAL)

pytestmark = [
    pytest.mark.compat,
    pytest.mark.skipif(
        not OLD_PYTHON,
        reason="NETAIO_002_PYTHON is not set: it must name a Python interpreter that has "
        "netaio 0.0.2 from PyPI installed (`nox -s compat` sets it up)",
    ),
]


@contextlib.asynccontextmanager
async def old_server() -> AsyncIterator[int]:
    """The 0.0.2 peer serving; its port."""
    async with old_peer(OLD_PYTHON, "netaio_002_peer.py", "server") as proc:
        yield int((await read_json_line(proc))["port"])


async def test_heartbeats_keep_a_connection_to_netaio_002_alive() -> None:
    async with old_server() as port:
        client: TCPClient[Message] = TCPClient("127.0.0.1", port, limits=HEARTBEAT)
        states: list[ConnectionState] = []
        client.on_state_change(lambda server, state: states.append(state))
        async with client:
            await asyncio.wait_for(client.connect(), TIMEOUT)
            first = await client.request(b"echo", b"before", timeout=TIMEOUT)
            # Time is what is tested: six intervals of silence from the server,
            # three times the 2 * INTERVAL after which an unanswered client
            # aborts. Only the answers to its pings can keep it connected.
            await asyncio.sleep(6 * INTERVAL)
            assert client.hosts, "the client dropped the 0.0.2 server"
            replies = [
                await client.request(b"echo", f"after {n}".encode(), timeout=TIMEOUT)
                for n in range(3)
            ]
            missing = await client.request(b"nowhere", b"?", timeout=TIMEOUT)
            await asyncio.sleep(3 * INTERVAL)
            last = await client.request(b"echo", b"last", timeout=TIMEOUT)
        assert states == [ConnectionState.CONNECTED, ConnectionState.CLOSED]

    assert (first.header.message_type, first.body.content) == (MessageType.RESPOND_URI, b"before")
    assert [r.body.content for r in replies] == [b"after 0", b"after 1", b"after 2"]
    assert missing.header.message_type is MessageType.NOT_FOUND
    assert last.body.content == b"last"
