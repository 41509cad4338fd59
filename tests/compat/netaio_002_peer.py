"""A netaio 0.0.2 peer for the exchange tests, run by the 0.0.2 interpreter.

    python netaio_002_peer.py server
        Serves with 0.0.2's TCPServer on 127.0.0.1 and a free port, prints
        {"port": N} as its first line, and stops when stdin is closed.
        Handlers: REQUEST_URI b"echo" answers RESPOND_URI with the content;
        SUBSCRIBE_URI subscribes the sender to the uri and confirms;
        REQUEST_URI b"publish" notifies the subscribers of the content's key
        with NOTIFY_URI, then answers OK; anything else gets 0.0.2's NOT_FOUND.

    python netaio_002_peer.py client PORT
        With 0.0.2's TCPClient: sends REQUEST_URI b"echo" (content b"hello
        from 0.0.2"), then CREATE_URI b"nowhere", then waits for one message
        pushed by the server; prints one JSON line per message received.

    python netaio_002_peer.py client-burst PORT N
        With 0.0.2's TCPClient: sends N REQUEST_URI b"burst" messages
        (contents b"0" .. b"N-1") back to back, then reads N replies and
        prints one JSON line per reply, in the order received.

Each printed message is {"type": int, "uri": hex, "content": hex,
"auth": [field names]}. This file imports only 0.0.2's netaio and the
standard library: it never runs in the interpreter that has our packages.
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.metadata import version
from typing import Any

from peer_io import TIMEOUT, describe, emit

from netaio import Body, Message, MessageType, TCPClient, TCPServer


def make(uri: bytes, content: bytes, message_type: MessageType) -> Any:
    return Message.prepare(Body.prepare(content, uri=uri), message_type)


async def serve() -> None:
    server = TCPServer(host="127.0.0.1", port=0)

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Any, writer: asyncio.StreamWriter) -> Any:
        return make(b"echo", message.body.content, MessageType.RESPOND_URI)

    @server.on(MessageType.SUBSCRIBE_URI)
    def subscribe(message: Any, writer: asyncio.StreamWriter) -> Any:
        server.subscribe(message.body.uri, writer)
        return make(message.body.uri, b"", MessageType.CONFIRM_SUBSCRIBE)

    @server.on((MessageType.REQUEST_URI, b"publish"))
    async def publish(message: Any, writer: asyncio.StreamWriter) -> Any:
        key = message.body.content
        await server.notify(key, make(key, b"published by 0.0.2", MessageType.NOTIFY_URI))
        return make(b"publish", b"", MessageType.OK)

    # 0.0.2's start() cannot report the port it bound, so its connection
    # handler is served from a listener of our own on a free port.
    listener = await asyncio.start_server(server.handle_client, "127.0.0.1", 0)
    emit(json.dumps({"port": listener.sockets[0].getsockname()[1]}))
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    async with listener:
        await stdin_closed
        for writer in list(server.clients):
            writer.close()


async def client(port: int) -> None:
    peer = TCPClient(host="127.0.0.1", port=port)
    await asyncio.wait_for(peer.connect(), TIMEOUT)
    await peer.send(make(b"echo", b"hello from 0.0.2", MessageType.REQUEST_URI))
    emit(describe(await asyncio.wait_for(peer.receive_once(), TIMEOUT)))
    await peer.send(make(b"nowhere", b"?", MessageType.CREATE_URI))
    emit(describe(await asyncio.wait_for(peer.receive_once(), TIMEOUT)))
    emit(describe(await asyncio.wait_for(peer.receive_once(), TIMEOUT)))
    await peer.close()


async def client_burst(port: int, count: int) -> None:
    peer = TCPClient(host="127.0.0.1", port=port)
    await asyncio.wait_for(peer.connect(), TIMEOUT)
    for n in range(count):
        await peer.send(make(b"burst", str(n).encode(), MessageType.REQUEST_URI))
    for _ in range(count):
        emit(describe(await asyncio.wait_for(peer.receive_once(), TIMEOUT)))
    await peer.close()


def main() -> None:
    if version("netaio") != "0.0.2":
        sys.exit(f"this peer needs netaio 0.0.2, found {version('netaio')}")
    if sys.argv[1:] == ["server"]:
        asyncio.run(serve())
    elif len(sys.argv) == 3 and sys.argv[1] == "client":
        asyncio.run(client(int(sys.argv[2])))
    elif len(sys.argv) == 4 and sys.argv[1] == "client-burst":
        asyncio.run(client_burst(int(sys.argv[2]), int(sys.argv[3])))
    else:
        sys.exit("usage: netaio_002_peer.py server | client PORT | client-burst PORT N")


if __name__ == "__main__":
    main()
