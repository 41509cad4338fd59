"""The Python cost of one round trip, without sockets, and where it goes.

    python bench/hotpath.py [--impl netaio|raw] [--hmac] [--profile] [--top N]

Client and server talk through in-memory transports (a write is fed straight
to the peer's StreamReader), so the figure is the time spent in Python:
framework, asyncio streams and tasks, but no system calls and no waiting.
``--impl netaio`` measures whatever ``import netaio`` is: run this script with
netaio 0.0.2's interpreter (``.nox/_netaio-0.0.2/bin/python`` after
``nox -s bench``) to measure 0.0.2. ``--profile`` adds a cProfile of the timed
loop (cProfile slows every call alike: read shares, not times). For a
sampling profile: ``py-spy record -f raw -o out.txt -- python bench/hotpath.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from typing import Any

from common import content_for, settle_malloc  # bench/ is this script's directory
from impls.framed import NetaioClient, NetaioServer, RawClient, RawServer


class MemoryTransport(asyncio.Transport):
    """Delivers every write to the peer protocol at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.protocol: asyncio.StreamReaderProtocol | None = None
        self.peer: asyncio.StreamReaderProtocol | None = None
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self.peer is not None
        self.peer.data_received(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            assert self.peer is not None
            assert self.protocol is not None
            self.peer.eof_received()
            self.loop.call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def stream_pair(
    loop: asyncio.AbstractEventLoop,
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    ends, protocols, transports = [], [], []
    for _ in range(2):
        reader = asyncio.StreamReader(loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport = MemoryTransport(loop)
        transport.protocol = protocol
        protocol.connection_made(transport)
        ends.append((reader, asyncio.StreamWriter(transport, protocol, reader, loop)))
        protocols.append(protocol)
        transports.append(transport)
    transports[0].peer, transports[1].peer = protocols[1], protocols[0]
    return ends


async def run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    (client_reader, client_writer), (server_reader, server_writer) = stream_pair(loop)
    client: Any
    if args.impl == "raw":
        raw = RawServer(args.hmac)
        task = asyncio.create_task(raw.handle(server_reader, server_writer))
        client = RawClient(args.hmac)
        client.reader, client.writer = client_reader, client_writer
    else:
        server = NetaioServer(args.hmac)
        task = asyncio.create_task(server.server.handle_client(server_reader, server_writer))
        client = NetaioClient(args.hmac)
        client.client = server.netaio.TCPClient("127.0.0.1", 1, auth_plugin=client.plugin)
        client.client.hosts[("127.0.0.1", 1)] = (client_reader, client_writer)

    async def round_trips(n: int) -> float:
        start = time.perf_counter()
        for i in range(n):
            content = content_for(i)
            if await client.request(content) != content:
                raise AssertionError("wrong reply")
        return (time.perf_counter() - start) / n

    await round_trips(1000)  # warm-up
    best = min([await round_trips(args.n) for _ in range(5)])
    print(f"{args.impl}{' + HMAC' if args.hmac else ''}: {best * 1e6:.2f} us per round trip")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        await round_trips(args.n)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    client_writer.close()
    await asyncio.wait_for(task, 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("netaio", "raw"), default="netaio")
    parser.add_argument("--hmac", action="store_true", help="HMAC on both sides")
    parser.add_argument("--profile", action="store_true", help="and a cProfile")
    parser.add_argument("--n", type=int, default=5000, help="round trips per timed run")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    settle_malloc()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
