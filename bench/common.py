"""What every benchmark process shares: constants, payloads, event loops.

Only the standard library (and uvloop, when asked for) is imported here, so
that netaio 0.0.2's interpreter, which has nothing else, can run it too.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

HOST = "127.0.0.1"
PAYLOAD = bytes(range(100))  # body content of every request: 100 bytes
SECRET = b"benchmark secret"
ECHO_URI = b"echo"
TOPIC = b"topic"
MAX_ITERATIONS = 5_000_000  # hard cap on any timed loop, besides its deadline
WAIT = 30.0  # bound on any single wait for the peer
WINDOW = 100  # requests in flight in the pipelined workload
LOOPS = ("asyncio", "uvloop")

T = TypeVar("T")


def content_for(i: int) -> bytes:
    """A distinct 100-byte payload per request, so that replies are checked."""
    return i.to_bytes(4, "big") + PAYLOAD[4:]


def echo(content: bytes) -> bytes:
    return content


# The route table of the peers that route by a uri of their own (websockets,
# pyzmq, NATS by subject): the uri picks the handler, as netaio's does.
ROUTES: dict[bytes, Callable[[bytes], bytes]] = {ECHO_URI: echo}


def cpu_seconds() -> float:
    """User + system CPU time of this process (every thread) so far."""
    times = os.times()
    return times.user + times.system


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(what)


def settle_malloc() -> None:
    """Start every process in the same allocator state.

    asyncio's default-loop transports receive into 256 KiB buffers. glibc
    serves blocks that large with mmap until a freed mmap'd block raises its
    threshold; until then every receive costs an mmap/munmap pair and fresh
    page faults, which halves round trips on the default loop in some
    processes and not others, depending on what they happened to allocate
    first. Freeing one 1 MiB block raises the threshold in every process.
    """
    block = bytearray(1 << 20)
    del block


def run_on_loop(loop_name: str, coro: Awaitable[T]) -> T:
    if loop_name == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


def read_stdin_line() -> Awaitable[str]:
    """The next line of stdin, read in a thread ("" at its end)."""
    import sys

    return asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


Json = dict[str, Any]
