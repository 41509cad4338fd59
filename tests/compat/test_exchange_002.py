"""Live exchanges with netaio 0.0.2 from PyPI, without auth, both ways:
its TCPClient against our TCPServer, and our TCPClient against its TCPServer.

netaio 0.0.2 shares our import name, so it runs in a subprocess of its own
interpreter, named by NETAIO_002_PYTHON (``nox -s compat`` sets it), from the
peer script ``netaio_002_peer.py`` beside this file. Every wait is bounded
and the subprocess is always ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from compat import old_peers
from compat.old_peers import read_json_line

from netaio_client import TCPClient
from netaio_core import Body, Message, MessageType
from netaio_server import TCPServer

OLD_PYTHON = os.environ.get("NETAIO_002_PYTHON", "")
PEER = Path(__file__).resolve().with_name("netaio_002_peer.py")
TIMEOUT = 20.0  # a fresh interpreter importing 0.0.2 can be slow on a busy machine

pytestmark = [
    pytest.mark.compat,
    pytest.mark.skipif(
        not OLD_PYTHON,
        reason="NETAIO_002_PYTHON is not set: it must name a Python interpreter that has "
        "netaio 0.0.2 from PyPI installed (`nox -s compat` sets it up)",
    ),
]


def msg(uri: bytes, content: bytes = b"", kind: MessageType = MessageType.REQUEST_URI) -> Message:
    return Message.prepare(Body.prepare(content, uri), kind)


def old_peer(*args: str) -> contextlib.AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """Run the netaio_002_peer.py script (see old_peers.old_peer)."""
    return old_peers.old_peer(OLD_PYTHON, "netaio_002_peer.py", *args)


async def test_netaio_002_client_against_our_server():
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)
    seen: list[bytes] = []

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        seen.append(message.body.content)
        return msg(b"echo", message.body.content.upper(), MessageType.RESPOND_URI)

    async with server, old_peer("client", str(server.port)) as proc:
        echoed = await read_json_line(proc)
        not_found = await read_json_line(proc)
        await server.broadcast(msg(b"news", b"pushed to 0.0.2", MessageType.NOTIFY_URI))
        pushed = await read_json_line(proc)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0

    assert seen == [b"hello from 0.0.2"]
    assert echoed == {
        "type": MessageType.RESPOND_URI.value,
        "uri": b"echo".hex(),
        "content": b"HELLO FROM 0.0.2".hex(),
        "auth": [],
    }
    assert not_found["type"] == MessageType.NOT_FOUND.value
    assert bytes.fromhex(not_found["content"]) == b"not found"
    assert pushed["type"] == MessageType.NOTIFY_URI.value
    assert bytes.fromhex(pushed["content"]) == b"pushed to 0.0.2"


async def test_our_client_against_netaio_002_server():
    async with old_peer("server") as proc:
        port = (await read_json_line(proc))["port"]
        target = ("127.0.0.1", port)
        async with TCPClient(port=port) as client:
            await asyncio.wait_for(client.connect(), TIMEOUT)

            await client.send(msg(b"echo", b"hello from us"))
            echoed = await asyncio.wait_for(client.receive_once(), TIMEOUT)
            await client.send(msg(b"nowhere", b"?", MessageType.CREATE_URI))
            not_found = await asyncio.wait_for(client.receive_once(target), TIMEOUT)

            notified: list[bytes] = []
            client.add_handler(
                (MessageType.NOTIFY_URI, b"topic"), lambda m, w: notified.append(m.body.content)
            )
            await client.send(msg(b"topic", b"", MessageType.SUBSCRIBE_URI))
            confirmed = await asyncio.wait_for(client.receive_once(), TIMEOUT)
            await client.send(msg(b"publish", b"topic"))
            first = await asyncio.wait_for(client.receive_once(), TIMEOUT)
            second = await asyncio.wait_for(client.receive_once(), TIMEOUT)

    assert echoed is not None
    assert (echoed.header.message_type, echoed.body.uri, echoed.body.content) == (
        MessageType.RESPOND_URI,
        b"echo",
        b"hello from us",
    )
    assert not_found is not None
    assert not_found.header.message_type is MessageType.NOT_FOUND
    assert not_found.body.content == b"not found"
    assert confirmed is not None
    assert confirmed.header.message_type is MessageType.CONFIRM_SUBSCRIBE
    # 0.0.2 notifies the subscribers before it answers the publish request.
    assert first is not None
    assert second is not None
    assert (first.header.message_type, second.header.message_type) == (
        MessageType.NOTIFY_URI,
        MessageType.OK,
    )
    assert notified == [b"published by 0.0.2"]
    assert proc.returncode == 0


def test_peer_script_refuses_to_run_with_our_netaio():
    """The peer checks it talks through 0.0.2, so a misconfigured
    NETAIO_002_PYTHON cannot make these tests pass against ourselves."""
    done = subprocess.run(
        [sys.executable, str(PEER), "server"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode != 0
    assert "0.0.2" in done.stderr


async def test_netaio_002_client_burst_is_answered_in_order_by_async_handlers():
    """0.0.2's frames carry no correlation id: our server answers them one at
    a time, in order, even when the handler is async and earlier messages
    take longer than later ones."""
    count = 8
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)
    active = 0
    most_active = 0

    @server.on((MessageType.REQUEST_URI, b"burst"))
    async def burst(message: Message, writer: asyncio.StreamWriter) -> Message:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        try:
            await asyncio.sleep(0.003 * (count - int(message.body.content)))  # the work
        finally:
            active -= 1
        return msg(b"burst", message.body.content, MessageType.RESPOND_URI)

    async with server, old_peer("client-burst", str(server.port), str(count)) as proc:
        replies = [await read_json_line(proc) for _ in range(count)]
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0

    assert [bytes.fromhex(r["content"]) for r in replies] == [str(n).encode() for n in range(count)]
    assert all(r["type"] == MessageType.RESPOND_URI.value for r in replies)
    assert all(r["auth"] == [] for r in replies)  # no cid for a peer that sent none
    assert most_active == 1


async def test_our_request_against_netaio_002_server_matches_replies_in_order():
    """0.0.2 echoes no correlation id: request() matches its replies in order,
    for sequential requests, concurrent ones to one handler, and errors."""
    async with old_peer("server") as proc:
        port = (await read_json_line(proc))["port"]
        async with TCPClient(port=port) as client:
            await asyncio.wait_for(client.connect(), TIMEOUT)

            sequential = [
                (await client.request(b"echo", f"seq {n}".encode(), timeout=TIMEOUT)).body.content
                for n in range(5)
            ]
            missing = await client.request(
                b"nowhere", b"?", message_type=MessageType.CREATE_URI, timeout=TIMEOUT
            )
            tokens = [f"concurrent {n}".encode() for n in range(20)]
            concurrent = await asyncio.wait_for(
                asyncio.gather(*(client.request(b"echo", t, timeout=TIMEOUT) for t in tokens)),
                TIMEOUT,
            )
            created = await client.create(b"nowhere", b"x", timeout=TIMEOUT)
            after = await client.request(b"echo", b"after", timeout=TIMEOUT)
            # Notifications still reach the receive queue, not a request.
            confirmed = await client.request(
                b"topic", message_type=MessageType.SUBSCRIBE_URI, timeout=TIMEOUT
            )
            published = await client.request(b"publish", b"topic", timeout=TIMEOUT)
            pushed = await asyncio.wait_for(client.receive_once(), TIMEOUT)

    assert sequential == [f"seq {n}".encode() for n in range(5)]
    assert missing.header.message_type is MessageType.NOT_FOUND
    assert [r.body.content for r in concurrent] == tokens
    assert all(r.header.message_type is MessageType.RESPOND_URI for r in concurrent)
    assert created.header.message_type is MessageType.NOT_FOUND
    assert after.body.content == b"after"
    assert confirmed.header.message_type is MessageType.CONFIRM_SUBSCRIBE
    assert published.header.message_type is MessageType.OK
    assert pushed is not None
    assert (pushed.header.message_type, pushed.body.content) == (
        MessageType.NOTIFY_URI,
        b"published by 0.0.2",
    )
    assert proc.returncode == 0
