"""Request/response with netaio 0.0.9 from PyPI (0.0.6+ wire format: a
2-byte uri length), with ``body_class=ShortUriBody`` on our side, no auth.

0.0.9 runs in an interpreter of its own, named by NETAIO_009_PYTHON
(``nox -s compat`` sets it), from the peer script netaio_009_peer.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest
from compat import old_peers
from compat.old_peers import read_json_line

from netaio_client import TCPClient
from netaio_core import Message, MessageType, ShortUriBody
from netaio_server import TCPServer

OLD_PYTHON = os.environ.get("NETAIO_009_PYTHON", "")
PEER = Path(__file__).resolve().with_name("netaio_009_peer.py")
TIMEOUT = 20.0

pytestmark = [
    pytest.mark.compat,
    pytest.mark.skipif(
        not OLD_PYTHON,
        reason="NETAIO_009_PYTHON is not set: it must name a Python interpreter that has "
        "netaio 0.0.9 from PyPI installed (`nox -s compat` sets it up)",
    ),
]


def old_peer(*args: str) -> contextlib.AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """Run the netaio_009_peer.py script (see old_peers.old_peer)."""
    return old_peers.old_peer(OLD_PYTHON, "netaio_009_peer.py", *args)


async def test_netaio_009_client_against_our_server() -> None:
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0, body_class=ShortUriBody)
    seen: list[bytes] = []

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        assert type(message.body) is ShortUriBody
        seen.append(message.body.content)
        body = ShortUriBody.prepare(message.body.content.upper(), b"echo")
        return Message.prepare(body, MessageType.RESPOND_URI)

    async with server, old_peer("client", str(server.port)) as proc:
        echoed = await read_json_line(proc)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0

    assert seen == [b"hello from 0.0.9"]
    assert echoed == {
        "type": MessageType.RESPOND_URI.value,
        "uri": b"echo".hex(),
        "content": b"HELLO FROM 0.0.9".hex(),
        "auth": [],
    }


async def test_netaio_009_client_decodes_our_framework_replies() -> None:
    """The server's own NOT_FOUND is built with its body_class: a 0.0.9
    client decodes it without a custom make_error or default handler."""
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0, body_class=ShortUriBody)
    async with server, old_peer("client", str(server.port), "missing") as proc:
        reply = await read_json_line(proc)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0
    assert reply["type"] == MessageType.NOT_FOUND.value
    assert bytes.fromhex(reply["content"]) == b"not found"


async def test_our_client_against_netaio_009_server() -> None:
    async with old_peer("server") as proc:
        port = (await read_json_line(proc))["port"]
        client: TCPClient[Message] = TCPClient(port=port, body_class=ShortUriBody)
        async with client:
            await asyncio.wait_for(client.connect(), TIMEOUT)
            replies = [
                await client.request(b"echo", b"hello from us %d" % i, timeout=TIMEOUT)
                for i in range(3)
            ]
    for i, reply in enumerate(replies):
        assert type(reply.body) is ShortUriBody
        assert (reply.header.message_type, reply.body.uri, reply.body.content) == (
            MessageType.RESPOND_URI,
            b"echo",
            b"HELLO FROM US %d" % i,
        )
