"""A netaio 0.0.9 peer for the exchange tests, run by the 0.0.9 interpreter.

    python netaio_009_peer.py server
        Serves with 0.0.9's TCPServer on 127.0.0.1 and a free port, prints
        {"port": N} as its first line, and stops when stdin is closed.
        Handler: REQUEST_URI b"echo" answers RESPOND_URI with the content
        upper-cased.

    python netaio_009_peer.py client PORT [URI]
        With 0.0.9's TCPClient: ``request(URI, content=b"hello from
        0.0.9")`` (URI defaults to echo), prints the reply as one JSON line.
        With a URI other than echo it sends the request and prints the next
        message ``receive_once`` decodes (0.0.9 matches a reply to a request
        by its uri, which an error reply does not carry).

Each printed message is {"type": int, "uri": hex, "content": hex,
"auth": [field names]}. This file imports only 0.0.9's netaio and the
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


async def serve() -> None:
    server = TCPServer(port=0, interface="127.0.0.1")

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Any, writer: Any) -> Any:
        body = Body.prepare(message.body.content.upper(), uri=b"echo")
        return Message.prepare(body, MessageType.RESPOND_URI)

    task = asyncio.ensure_future(server.start())
    while getattr(server, "server", None) is None:  # noqa: ASYNC110 - 0.0.9 sets it in start()
        await asyncio.sleep(0.01)
    emit(json.dumps({"port": server.server.sockets[0].getsockname()[1]}))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def client(port: int, uri: bytes) -> None:
    peer = TCPClient(host="127.0.0.1", port=port)
    await peer.connect()
    if uri == b"echo":
        await peer.start_receive_loop()
        reply = await peer.request(uri, content=b"hello from 0.0.9", timeout=TIMEOUT)
    else:
        body = Body.prepare(b"hello from 0.0.9", uri=uri)
        await peer.send(Message.prepare(body, MessageType.REQUEST_URI))
        reply = await asyncio.wait_for(peer.receive_once(), TIMEOUT)
    emit(describe(reply))
    await peer.close()


def main() -> None:
    if version("netaio") != "0.0.9":
        raise SystemExit(f"this script needs netaio 0.0.9, not {version('netaio')}")
    if sys.argv[1] == "server":
        asyncio.run(serve())
    else:
        uri = sys.argv[3].encode() if len(sys.argv) > 3 else b"echo"
        asyncio.run(client(int(sys.argv[2]), uri))


if __name__ == "__main__":
    main()
