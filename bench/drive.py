"""The client process of a split measurement (see bench/harness.py).

    python bench/drive.py IMPL LOOP WORKLOAD PORT [--seconds S] [--hmac]

Connects to IMPL's server at 127.0.0.1:PORT, warms up with the workload
itself, prints ``ready`` and waits for a ``go`` line on stdin; then runs the
timed window and prints ``{"count": ..., "elapsed": ..., "cpu": ...}``: the
replies received, the seconds taken and this process's CPU seconds (user +
system) over the window. WORKLOAD is

- ``rtt`` / ``rtt_hmac`` / ``rtt_aead``: sequential request/response on one
  connection (``rtt_aead``: ``AEADCipherPlugin`` on both ends);
- ``pipelined``: up to 100 requests in flight on one connection (replies in
  order, or 100 tasks each awaiting its own for a client that can);
- ``concurrent50``: 50 connections, each doing sequential request/response;
  for netaio's frames, bench/peers.py's lean protocol clients.

Every reply is checked; every loop is bounded by its deadline and an
iteration cap, the whole window by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import deque
from typing import Any

from common import (
    HOST,
    LOOPS,
    MAX_ITERATIONS,
    WAIT,
    WINDOW,
    content_for,
    cpu_seconds,
    read_stdin_line,
    run_on_loop,
    settle_malloc,
)
from impls import SPECS, make_client

WARM_UP = 0.25  # seconds of the workload itself before the timed window
CONNECTIONS = 50


async def sequential(client: Any, deadline: float, base: int = 0) -> int:
    count = 0
    clock = time.perf_counter
    while count < MAX_ITERATIONS:
        content = content_for(base + count)
        if await client.request(content) != content:
            raise AssertionError("wrong reply")
        count += 1
        if clock() >= deadline:
            break
    return count


async def pipelined(client: Any, deadline: float) -> int:
    if getattr(client, "concurrent", False):  # WINDOW tasks, each awaiting its reply
        tasks = [sequential(client, deadline, i * 10_000_000) for i in range(WINDOW)]
        return sum(await asyncio.gather(*tasks))
    expected: deque[bytes] = deque()
    sent = count = 0
    clock = time.perf_counter
    for _ in range(WINDOW):
        content = content_for(sent)
        await client.send(content)
        expected.append(content)
        sent += 1
    while expected:
        if await client.receive() != expected.popleft():
            raise AssertionError("wrong reply")
        count += 1
        if sent < MAX_ITERATIONS and clock() < deadline:
            content = content_for(sent)
            await client.send(content)
            expected.append(content)
            sent += 1
    return count


class ClientLoad:
    """The implementation's own client: ``connections`` of them, each
    running ``pipelined`` or ``sequential`` round trips."""

    def __init__(
        self, impl: str, port: int, signed: bool | str, connections: int, piped: bool
    ) -> None:
        self.clients = [make_client(impl, signed) for _ in range(connections)]
        self.port = port
        self.piped = piped

    async def open(self) -> None:
        for client in self.clients:
            await asyncio.wait_for(client.connect(self.port), WAIT)

    async def run(self, seconds: float) -> int:
        deadline = time.perf_counter() + seconds
        each = pipelined if self.piped else sequential
        return sum(await asyncio.gather(*(each(c, deadline) for c in self.clients)))

    async def close(self) -> None:
        for client in self.clients:
            await asyncio.wait_for(client.close(), WAIT)


class LeanLoad:
    """bench/peers.py's lean protocol clients, for a server of netaio's
    frames: the figure is the server's, whatever it is."""

    def __init__(self, port: int, connections: int) -> None:
        from peers import Requester

        self.peers = [Requester() for _ in range(connections)]
        self.port = port

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for peer in self.peers:
            await asyncio.wait_for(loop.create_connection(lambda p=peer: p, HOST, self.port), WAIT)

    async def run(self, seconds: float) -> int:
        before = sum(p.count for p in self.peers)
        deadline = time.perf_counter() + seconds
        for peer in self.peers:
            peer.start()
        while time.perf_counter() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.perf_counter())))
            self.check()
        for peer in self.peers:
            peer.running = False
        # What is in flight still arrives: count it, as the other loads do.
        for _ in range(int(WAIT / 0.005)):
            if not any(p.in_flight for p in self.peers):
                break
            self.check()
            await asyncio.sleep(0.005)
        else:
            raise TimeoutError("replies in flight never arrived")
        return sum(p.count for p in self.peers) - before

    def check(self) -> None:
        for peer in self.peers:
            if peer.error is not None:
                raise peer.error

    async def close(self) -> None:
        for peer in self.peers:
            assert peer.transport is not None
            peer.transport.close()


async def drive(args: argparse.Namespace) -> None:
    signed: bool | str = {"rtt_hmac": True, "rtt_aead": "aead"}.get(args.workload, False)
    load: ClientLoad | LeanLoad
    if args.workload == "concurrent50" and SPECS[args.impl].lean:
        load = LeanLoad(args.port, CONNECTIONS)
    else:
        connections = CONNECTIONS if args.workload == "concurrent50" else 1
        load = ClientLoad(args.impl, args.port, signed, connections, args.workload == "pipelined")
    await load.open()
    try:
        await asyncio.wait_for(load.run(WARM_UP), WARM_UP + WAIT)
        print("ready", flush=True)
        if (await asyncio.wait_for(read_stdin_line(), WAIT)).strip() != "go":
            raise RuntimeError("no go from the driver")
        cpu, start = cpu_seconds(), time.perf_counter()
        count = await asyncio.wait_for(load.run(args.seconds), args.seconds + WAIT)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        if count == 0:
            raise RuntimeError("no reply in the timed window")
        # Said before the connections close, which the server's CPU window
        # should not include.
        sys.stdout.write(json.dumps({"count": count, "elapsed": elapsed, "cpu": cpu}) + "\n")
        sys.stdout.flush()
    finally:
        await load.close()


def main() -> None:
    settle_malloc()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=list(SPECS))
    parser.add_argument("loop", choices=LOOPS)
    parser.add_argument(
        "workload", choices=("rtt", "rtt_hmac", "rtt_aead", "pipelined", "concurrent50")
    )
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    run_on_loop(args.loop, drive(args))


if __name__ == "__main__":
    main()
