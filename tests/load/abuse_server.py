"""The server of tests/load/test_abuse.py, in a process of its own: echoes
(REQUEST_URI, b"echo"), serves subscriptions and, with ``--feed``, notifies
60 KB on b"feed" every 2 ms. Prints its port, serves until stdin closes,
then prints one JSON line: its peak RSS (MiB) and its drops by reason."""

from __future__ import annotations

import asyncio
import json
import resource
import sys

from netaio import Body, DropReason, Message, MessageType, TCPServer


async def main() -> None:
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)
    drops: dict[str, int] = {}

    @server.on_drop
    def count(connection: object, reason: DropReason) -> None:
        drops[reason.label] = drops.get(reason.label, 0) + 1

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        return Message.prepare(Body.prepare(message.body.content, b"echo"), MessageType.RESPOND_URI)

    server.enable_subscriptions()

    async def feed() -> None:
        news = Body.prepare(b"z" * 60_000, b"feed")
        while True:
            await server.notify(b"feed", Message.prepare(news, MessageType.NOTIFY_URI))
            await asyncio.sleep(0.002)

    async with server:
        task = asyncio.ensure_future(feed()) if "--feed" in sys.argv else None
        print(server.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        if task is not None:
            task.cancel()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mib": round(peak, 1), "drops": drops}), flush=True)


asyncio.run(main())
