"""The abusive peers of tests/load/test_abuse.py, in a process of their own:
``python abuse_peers.py PORT pipeline|partial|fanout N``. Prints "ready"
once all N are at it, then keeps them so until killed."""

from __future__ import annotations

import asyncio
import sys

from netaio import Body, Message, MessageType


async def main(port: int, mode: str, count: int) -> None:
    small = Message.prepare(Body.prepare(b"x" * 100, b"echo")).encode()
    large = Message.prepare(Body.prepare(b"y" * 65_000, b"echo")).encode()
    subscribe = Message.prepare(Body.prepare(b"", b"feed"), MessageType.SUBSCRIBE_URI).encode()

    async def pipeline() -> None:  # requests without end, replies never read
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            writer.write(small * 500)
            await writer.drain()

    async def partial() -> None:  # a maximum-size frame but its last 10 bytes
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(large[:-10])
        await writer.drain()
        await asyncio.Event().wait()

    async def fanout() -> None:  # subscribes, then never reads
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(subscribe)
        await writer.drain()
        await asyncio.Event().wait()

    peer = {"pipeline": pipeline, "partial": partial, "fanout": fanout}[mode]
    tasks: list[asyncio.Future[None]] = []
    for start in range(0, count, 100):  # below the listen backlog
        tasks += [asyncio.ensure_future(peer()) for _ in range(min(100, count - start))]
        await asyncio.sleep(0.02)
    print("ready", flush=True)
    await asyncio.gather(*tasks, return_exceptions=True)


asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
