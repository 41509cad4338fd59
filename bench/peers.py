"""Lean peers of netaio's frames, and the fan-out subscribers.

    python bench/peers.py subscribe HOST PORT SUBSCRIBERS
    python bench/peers.py nats-subscribe HOST PORT SUBSCRIBERS

``Requester`` is the lean load generator of the 50-connection workload
(bench/drive.py): an asyncio protocol per connection, raw frames, every
reply checked, so that the figure measures the server. ``subscribe``
subscribes SUBSCRIBERS connections to the topic, prints ``ready``, then
prints the round number each time every subscriber has received that
round's notification; it exits when its stdin closes. ``nats-subscribe``
does the same with SUBSCRIBERS nats-py connections to the broker at PORT,
each subscribed to the subject ``topic``. Both run on uvloop when it is
installed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from struct import Struct
from typing import Any, cast
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
    """Sequential request/response on one connection while ``running``
    (``start()`` sends the first request)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.running = False
        self.in_flight = False
        self.expected = b""

    def start(self) -> None:
        self.running = True
        if not self.in_flight:
            self.send()

    def send(self) -> None:
        assert self.transport is not None
        content = content_for(self.count)
        self.expected = frame(RESPOND_URI, ECHO_URI, content)
        self.in_flight = True
        self.transport.write(frame(REQUEST_URI, ECHO_URI, content))

    def replied(self) -> None:
        self.count += 1
        self.in_flight = False
        if self.running:
            self.send()

    def data_received(self, data: bytes) -> None:
        if not self.buffer and data == self.expected:  # the whole reply, as expected
            self.replied()
            return
        super().data_received(data)

    def frame(self, message_type: int, uri: bytes, content: bytes) -> None:
        if message_type != RESPOND_URI or content != content_for(self.count):
            raise AssertionError("wrong reply")
        self.replied()


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


async def nats_subscribe(host: str, port: int, subscribers: int) -> None:
    import nats

    hub = Hub(subscribers)
    errors: list[BaseException] = []

    def subscriber() -> Callable[[Any], Awaitable[None]]:
        received = 0

        async def deliver(msg: Any) -> None:
            nonlocal received
            if msg.data != content_for(received):
                errors.append(AssertionError("wrong notification"))
            hub.delivered(received)
            received += 1

        return deliver

    connections = []
    for _ in range(subscribers):
        nc = await nats.connect(f"nats://{host}:{port}", allow_reconnect=False)
        connections.append(nc)
        await nc.subscribe(TOPIC.decode(), cb=subscriber())
    for nc in connections:
        await nc.flush(timeout=WAIT)  # the broker has every subscription
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # until the driver closes stdin
    for nc in connections:
        await nc.close()
    if errors:
        raise errors[0]


def main() -> None:
    mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    coro = subscribe(host, port, n) if mode == "subscribe" else nats_subscribe(host, port, n)
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
