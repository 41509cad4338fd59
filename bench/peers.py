"""Load generator and subscribers for the server-side workloads.

    python bench/peers.py load HOST PORT CLIENTS SECONDS
    python bench/peers.py subscribe HOST PORT SUBSCRIBERS

The same lean peers (asyncio protocols on uvloop when it is installed, raw
frames, every reply checked) drive every implementation under test, from a
process of their own, so that the figure measures the server.

``load`` keeps CLIENTS connections each doing sequential request/response,
then prints ``{"count": ..., "elapsed": ..., "best": ...}`` for the timed
part (best: the best 0.1-s window's replies per second).
``subscribe`` subscribes SUBSCRIBERS connections to the topic, prints
``ready``, then prints the round number each time every subscriber has
received that round's notification; it exits when its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from struct import Struct
from typing import cast
from zlib import crc32

HEADER = Struct("!BHHI")
U32 = Struct("!I")
EMPTY_AUTH = b"\x4d\x40\x00"
PAYLOAD = bytes(range(100))
ECHO_URI, TOPIC = b"echo", b"topic"
REQUEST_URI, RESPOND_URI, SUBSCRIBE_URI, NOTIFY_URI, CONFIRM_SUBSCRIBE = 0, 1, 5, 8, 11
WAIT = 30.0


def content_for(i: int) -> bytes:
    return i.to_bytes(4, "big") + PAYLOAD[4:]


def frame(message_type: int, uri: bytes, content: bytes) -> bytes:
    body = U32.pack(len(uri)) + uri + content
    return HEADER.pack(message_type, len(EMPTY_AUTH), len(body), crc32(body)) + EMPTY_AUTH + body


class FrameProtocol(asyncio.Protocol):
    """Splits the stream into frames; checks each checksum."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.error: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        try:
            while len(buffer) >= 9:
                message_type, auth_length, body_length, checksum = HEADER.unpack_from(buffer)
                end = 9 + auth_length + body_length
                if len(buffer) < end:
                    break
                body = bytes(buffer[9 + auth_length : end])
                del buffer[:end]
                if crc32(body) != checksum:
                    raise ValueError("checksum mismatch")
                (uri_length,) = U32.unpack_from(body)
                self.frame(message_type, body[4 : 4 + uri_length], body[4 + uri_length :])
        except Exception as exc:  # reported by the driver
            self.error = exc
            assert self.transport is not None
            self.transport.abort()

    def frame(self, message_type: int, uri: bytes, content: bytes) -> None:
        raise NotImplementedError


class Requester(FrameProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.running = True
        self.expected = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        content = content_for(self.count)
        self.expected = frame(RESPOND_URI, ECHO_URI, content)
        self.transport.write(frame(REQUEST_URI, ECHO_URI, content))

    def data_received(self, data: bytes) -> None:
        if not self.buffer and data == self.expected:  # the whole reply, as expected
            self.count += 1
            if self.running:
                self.send()
            return
        super().data_received(data)

    def frame(self, message_type: int, uri: bytes, content: bytes) -> None:
        if message_type != RESPOND_URI or content != content_for(self.count):
            raise AssertionError("wrong reply")
        self.count += 1
        if self.running:
            self.send()


class Subscriber(FrameProtocol):
    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.write(frame(SUBSCRIBE_URI, TOPIC, b""))

    def data_received(self, data: bytes) -> None:
        if not self.buffer and data == self.hub.frame_for(self.received):
            self.hub.delivered(self.received)  # the whole notification, as expected
            self.received += 1
            return
        super().data_received(data)

    def frame(self, message_type: int, uri: bytes, content: bytes) -> None:
        if message_type == CONFIRM_SUBSCRIBE:
            self.hub.confirmed()
            return
        if message_type != NOTIFY_URI or uri != TOPIC:
            raise AssertionError(f"unexpected message type {message_type}")
        if content != content_for(self.received):
            raise AssertionError("wrong notification")
        self.hub.delivered(self.received)
        self.received += 1


class Hub:
    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.confirmations = 0
        self.ready = asyncio.Event()
        self.counts: dict[int, int] = {}
        self.frames: dict[int, bytes] = {}

    def frame_for(self, round_: int) -> bytes:
        """The exact frame of round ``round_``'s notification (made once)."""
        data = self.frames.get(round_)
        if data is None:
            data = self.frames[round_] = frame(NOTIFY_URI, TOPIC, content_for(round_))
        return data

    def confirmed(self) -> None:
        self.confirmations += 1
        if self.confirmations == self.subscribers:
            self.ready.set()

    def delivered(self, round_: int) -> None:
        count = self.counts.get(round_, 0) + 1
        if count == self.subscribers:
            del self.counts[round_]
            self.frames.pop(round_, None)
            sys.stdout.write(f"{round_}\n")
            sys.stdout.flush()
        else:
            self.counts[round_] = count


async def load(host: str, port: int, clients: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    peers = [Requester() for _ in range(clients)]
    for peer in peers:
        await loop.create_connection(lambda p=peer: p, host, port)  # type: ignore[misc]
    await asyncio.sleep(0.3)  # warm-up
    c0, t0 = sum(p.count for p in peers), time.perf_counter()
    best, c, t = 0.0, c0, t0
    while t - t0 < seconds:  # windows of 0.1 s: the best one is the figure
        await asyncio.sleep(0.1)
        c_next, t_next = sum(p.count for p in peers), time.perf_counter()
        best = max(best, (c_next - c) / (t_next - t))
        c, t = c_next, t_next
    c1, t1 = c, t
    for peer in peers:
        peer.running = False
        if peer.error is not None:
            raise peer.error
        assert peer.transport is not None
        peer.transport.close()
    if c1 - c0 == 0:
        raise RuntimeError("no reply in the timed window")
    print(json.dumps({"count": c1 - c0, "elapsed": t1 - t0, "best": best}), flush=True)


async def subscribe(host: str, port: int, subscribers: int) -> None:
    loop = asyncio.get_running_loop()
    hub = Hub(subscribers)
    peers = [Subscriber(hub) for _ in range(subscribers)]
    for peer in peers:
        await loop.create_connection(lambda p=peer: p, host, port)  # type: ignore[misc]
    await asyncio.wait_for(hub.ready.wait(), WAIT)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # until the driver closes stdin
    errors = [p.error for p in peers if p.error is not None]
    for peer in peers:
        assert peer.transport is not None
        peer.transport.close()
    if errors:
        raise errors[0]


def main() -> None:
    mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    coro = load(host, port, n, float(sys.argv[5])) if mode == "load" else subscribe(host, port, n)
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coro)
    finally:
        loop.close()


if __name__ == "__main__":
    main()
