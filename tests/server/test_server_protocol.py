"""The server's transport behaviour on real loopback sockets: pipelining,
coalesced replies, in-order and correlated (concurrent) handling,
backpressure against a peer that never reads, and the stream path
(``TCPServer.handle_client`` under ``asyncio.start_server``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest
from server_peer import TIMEOUT, RawPeer, request

from netaio_core import Limits, Message, MessageReader, MessageType
from netaio_core.correlation import correlation_id, set_correlation_id
from netaio_server import TCPServer
from netaio_server.connection import ServerConnection


def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
    """A sync handler: RESPOND_URI with the request's uri and content."""
    return request(message.body.uri, message.body.content, MessageType.RESPOND_URI)


def correlated(uri: bytes, content: bytes, cid: int) -> Message:
    message = request(uri, content)
    set_correlation_id(message, cid)
    return message


async def only_connection(server: TCPServer[Any], peer: RawPeer) -> ServerConnection[Any]:
    """The server side of ``peer``'s connection, once the server serves it
    (one request/reply makes sure it was accepted)."""
    await peer.request(request(b"warm-up"))
    (connection,) = server._connections.values()
    return connection


class Spy:
    """Counts calls to a method of one object, then calls through."""

    def __init__(self, obj: object, name: str, after: Callable[[], None] | None = None) -> None:
        self.calls = 0
        self.sizes: list[int] = []
        original = getattr(obj, name)

        def spy(*args: Any) -> Any:
            self.calls += 1
            if args and isinstance(args[0], (bytes, bytearray)):
                self.sizes.append(len(args[0]))
            result = original(*args)
            if after is not None:
                after()
            return result

        setattr(obj, name, spy)


# -- (a) pipelining and coalesced replies ------------------------------------


async def test_100_pipelined_requests_get_100_replies_in_order_coalesced(
    serve: Any, connect: Any
) -> None:
    server = TCPServer(host="127.0.0.1", port=0, default_handler=echo)
    await serve(server)
    peer = await connect(server)
    connection = await only_connection(server, peer)
    writes = Spy(connection.transport, "write")
    feeds = Spy(connection, "data_received")

    batch = [request(b"echo", f"request {n}".encode()) for n in range(100)]
    await peer.send_bytes(b"".join(m.encode() for m in batch))
    replies = [await peer.receive() for _ in batch]

    assert [r.body.content for r in replies] == [m.body.content for m in batch]
    assert all(r.header.message_type is MessageType.RESPOND_URI for r in replies)
    # At most one write per feed (partial frames at a feed's end add none):
    # 100 replies, far fewer writes.
    assert 1 <= writes.calls <= feeds.calls, (writes.calls, feeds.calls)
    assert writes.calls < 100
    assert sum(writes.sizes) == sum(len(r.encode()) for r in replies)


async def test_pipelined_requests_split_anywhere_are_answered_in_order(
    serve: Any, connect: Any
) -> None:
    server = TCPServer(host="127.0.0.1", port=0, default_handler=echo)
    await serve(server)
    peer = await connect(server)
    batch = [request(b"echo", f"r{n}".encode() * n) for n in range(30)]
    data = b"".join(m.encode() for m in batch)
    # Cut through headers and bodies alike; each piece sent on its own.
    for start in range(0, len(data), 37):
        await peer.send_bytes(data[start : start + 37])
    replies = [await peer.receive() for _ in batch]
    assert [r.body.content for r in replies] == [m.body.content for m in batch]


# -- (b) an awaited handler holds the frames after it ------------------------


async def test_async_handler_holds_later_uncorrelated_frames(serve: Any, connect: Any) -> None:
    started = asyncio.Event()
    gate = asyncio.Event()
    calls: list[bytes] = []
    server = TCPServer(host="127.0.0.1", port=0, default_handler=echo)

    @server.on((MessageType.REQUEST_URI, b"slow"))
    async def slow(message: Message, writer: asyncio.StreamWriter) -> Message:
        calls.append(message.body.content)
        started.set()
        await gate.wait()
        return request(b"slow", b"slow done", MessageType.RESPOND_URI)

    @server.on((MessageType.REQUEST_URI, b"fast"))
    def fast(message: Message, writer: asyncio.StreamWriter) -> Message:
        calls.append(message.body.content)
        return request(b"fast", message.body.content, MessageType.RESPOND_URI)

    await serve(server)
    peer = await connect(server)
    frames = [request(b"fast", b"before"), request(b"slow", b"hold")]
    frames += [request(b"fast", f"after {n}".encode()) for n in range(5)]
    await peer.send_bytes(b"".join(m.encode() for m in frames))

    await asyncio.wait_for(started.wait(), TIMEOUT)
    first = await peer.receive()
    assert first.body.content == b"before"
    # A full round trip on another connection: the server has had every
    # chance to run the held frames; it must not have.
    other = await connect(server)
    assert (await other.request(request(b"fast", b"other"))).body.content == b"other"
    assert calls == [b"before", b"hold", b"other"]
    pending = asyncio.ensure_future(peer.receive())
    await asyncio.sleep(0)
    assert not pending.done()

    gate.set()
    replies = [await pending] + [await peer.receive() for _ in range(5)]
    assert [r.body.content for r in replies] == [b"slow done"] + [
        f"after {n}".encode() for n in range(5)
    ]
    assert calls[3:] == [f"after {n}".encode() for n in range(5)]


# -- (c) correlated requests run concurrently --------------------------------


class Concurrency:
    """A handler that counts how many of its calls run at once and waits on
    ``release`` (or until ``barrier`` calls are in, when given)."""

    def __init__(self, barrier: int | None = None) -> None:
        self.active = 0
        self.most = 0
        self.started = 0
        self.barrier = barrier
        self.release = asyncio.Event()
        self.level_reached = asyncio.Event()
        self.level = barrier
        self.seen_cids: list[int | None] = []

    async def __call__(self, message: Message, writer: asyncio.StreamWriter) -> Message:
        self.seen_cids.append(correlation_id(message))
        self.active += 1
        self.started += 1
        self.most = max(self.most, self.active)
        if self.level is not None and self.active >= self.level:
            self.level_reached.set()
        if self.barrier is not None and self.started >= self.barrier:
            self.release.set()
        try:
            await self.release.wait()
        finally:
            self.active -= 1
        return request(message.body.uri, message.body.content, MessageType.RESPOND_URI)


async def test_correlated_requests_are_handled_concurrently(serve: Any, connect: Any) -> None:
    n = 12
    handler = Concurrency(barrier=n)  # every call waits for all n: sequential would deadlock
    server = TCPServer(host="127.0.0.1", port=0, default_handler=handler)
    await serve(server)
    peer = await connect(server)
    batch = [correlated(b"c", f"request {i}".encode(), 1000 + i) for i in range(n)]
    await peer.send_bytes(b"".join(m.encode() for m in batch))

    replies = [await peer.receive() for _ in batch]
    assert handler.most == n
    by_cid = {correlation_id(r): r for r in replies}
    assert set(by_cid) == {1000 + i for i in range(n)}
    for i in range(n):
        assert by_cid[1000 + i].body.content == f"request {i}".encode()
    assert set(handler.seen_cids) == set(by_cid)


async def test_max_concurrent_requests_bounds_the_correlated_handlers(
    serve: Any, connect: Any
) -> None:
    n, k = 20, 3
    handler = Concurrency()
    handler.level = k
    server = TCPServer(
        host="127.0.0.1",
        port=0,
        default_handler=handler,
        limits=Limits(max_concurrent_requests=k),
    )
    server.add_handler((MessageType.REQUEST_URI, b"other"), echo)
    await serve(server)
    peer = await connect(server)
    batch = [correlated(b"c", f"request {i}".encode(), i) for i in range(n)]
    await peer.send_bytes(b"".join(m.encode() for m in batch))

    await asyncio.wait_for(handler.level_reached.wait(), TIMEOUT)
    # A round trip elsewhere: the server had every chance to start more.
    other = await connect(server)
    reply = await other.request(correlated(b"other", b"x", 7))
    assert correlation_id(reply) == 7  # its own connection is not held back
    assert handler.started == k
    assert handler.most == k

    handler.release.set()
    replies = [await peer.receive() for _ in batch]
    by_cid = {correlation_id(r): r.body.content for r in replies}
    assert by_cid == {i: f"request {i}".encode() for i in range(n)}
    assert handler.started == n
    assert handler.most == k


async def test_correlated_and_uncorrelated_requests_mixed_are_all_answered(
    serve: Any, connect: Any
) -> None:
    order: list[str] = []
    gate = asyncio.Event()
    server = TCPServer(host="127.0.0.1", port=0)

    @server.on((MessageType.REQUEST_URI, b"corr"))
    async def corr(message: Message, writer: asyncio.StreamWriter) -> Message:
        order.append(f"start {message.body.content.decode()}")
        await gate.wait()
        return request(b"corr", message.body.content, MessageType.RESPOND_URI)

    @server.on((MessageType.REQUEST_URI, b"plain"))
    async def plain(message: Message, writer: asyncio.StreamWriter) -> Message:
        order.append("plain")
        return request(b"plain", b"plain", MessageType.RESPOND_URI)

    await serve(server)
    peer = await connect(server)
    frames = [correlated(b"corr", b"a", 1), correlated(b"corr", b"b", 2), request(b"plain")]
    await peer.send_bytes(b"".join(m.encode() for m in frames))

    async def three_replies() -> list[Message]:
        return [await peer.receive() for _ in range(3)]

    replies_task = asyncio.ensure_future(three_replies())
    other = await connect(server)
    await other.request(request(b"unrouted"))  # a round trip: the batch is dispatched
    assert order == ["start a", "start b", "plain"]  # the correlated ones run at once
    gate.set()
    replies = await asyncio.wait_for(replies_task, TIMEOUT)
    assert {correlation_id(r): r.body.content for r in replies} == {
        1: b"a",
        2: b"b",
        None: b"plain",
    }


# -- (d) backpressure against a peer that never reads ------------------------

REPLY_CONTENT = b"r" * 10_000


def big_reply(message: Message, writer: asyncio.StreamWriter) -> Message:
    return request(b"big", REPLY_CONTENT, MessageType.RESPOND_URI)


async def open_raw_socket(
    server: TCPServer[Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[socket.socket, ServerConnection[Any]]:
    """A non-blocking client socket with a small receive buffer that the
    test never reads, and the server side of its connection."""
    accepted = asyncio.Event()
    admit = server._admit

    def admit_and_tell(connection: ServerConnection[Any]) -> bool:
        admitted = admit(connection)
        accepted.set()
        return admitted

    monkeypatch.setattr(server, "_admit", admit_and_tell)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", server.port)), TIMEOUT)
    await asyncio.wait_for(accepted.wait(), TIMEOUT)
    monkeypatch.undo()  # later connections are admitted as usual
    (connection,) = server._connections.values()
    return sock, connection


async def test_a_peer_that_never_reads_is_paused_then_dropped(
    serve: Any, connect: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = TCPServer(
        host="127.0.0.1", port=0, limits=Limits(write_timeout=0.3), default_handler=big_reply
    )
    await serve(server)
    loop = asyncio.get_running_loop()
    sock, connection = await open_raw_socket(server, monkeypatch)
    try:
        transport = connection.transport
        paused = asyncio.Event()
        fed = asyncio.Event()

        def after_pause() -> None:
            if not transport.is_reading():
                paused.set()

        writes = Spy(transport, "write")
        Spy(transport, "pause_reading", after_pause)
        Spy(connection, "data_received", fed.set)

        # 20 requests a chunk: 200 KB of replies for each feed.
        chunk = b"".join(request(b"big", f"{n}".encode()).encode() for n in range(20))

        async def flood() -> None:
            """Send a chunk once the server has taken the previous one (so
            each feed is one chunk), until it stops reading."""
            with contextlib.suppress(OSError):
                for _ in range(500):  # up to 10,000 requests, 100 MB of replies
                    fed.clear()
                    await loop.sock_sendall(sock, chunk)
                    if paused.is_set():
                        continue
                    waiting = asyncio.ensure_future(fed.wait())
                    stopping = asyncio.ensure_future(paused.wait())
                    await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
                    stopping.cancel()

        with caplog.at_level(logging.WARNING, logger="netaio.server"):
            flooding = asyncio.ensure_future(flood())
            try:
                await asyncio.wait_for(paused.wait(), TIMEOUT)
                assert not transport.is_reading()
                assert connection.write_paused
                paused_at = loop.time()

                # A well-behaved client is answered promptly meanwhile.
                other = await connect(server)
                reply = await asyncio.wait_for(other.request(request(b"small")), 1.0)
                assert reply.body.content == REPLY_CONTENT

                await asyncio.wait_for(asyncio.shield(connection.closed), TIMEOUT)
                dropped_after = loop.time() - paused_at
            finally:
                flooding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flooding
        assert "write_timeout reached (slow consumer)" in caplog.text
        assert "write_buffer_limit exceeded" not in caplog.text
        assert dropped_after >= 0.25  # the write_timeout, not an earlier drop
        assert connection not in server._connections.values()
        # Memory stayed bounded: one feed's replies at a time.
        assert max(writes.sizes) <= 20 * len(reply.encode())
        # The server still serves the well-behaved client.
        assert (await other.request(request(b"again"))).body.content == REPLY_CONTENT
    finally:
        sock.close()


async def test_one_feed_of_requests_never_queues_more_than_write_buffer_limit(
    serve: Any, connect: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer that never reads sends 2,000 small requests at once (42 KB,
    20 MB of replies). The server must not hold more than
    ``write_buffer_limit`` (plus one reply) of replies for it at any time."""
    limits = Limits(write_timeout=0.3, write_buffer_limit=1024 * 1024)
    server = TCPServer(host="127.0.0.1", port=0, limits=limits, default_handler=big_reply)
    await serve(server)
    sock, connection = await open_raw_socket(server, monkeypatch)
    try:
        writes = Spy(connection.transport, "write")
        data = b"".join(request(b"big", f"{n}".encode()).encode() for n in range(2000))
        loop = asyncio.get_running_loop()
        with caplog.at_level(logging.WARNING, logger="netaio.server"):
            with contextlib.suppress(OSError):
                await asyncio.wait_for(loop.sock_sendall(sock, data), TIMEOUT)
            await asyncio.wait_for(asyncio.shield(connection.closed), TIMEOUT)
        assert "slow consumer" in caplog.text  # dropped, one way or the other
        other = await connect(server)
        assert (await other.request(request(b"small"))).body.content == REPLY_CONTENT
        one_reply = len(big_reply(request(), None).encode())  # type: ignore[arg-type]
        assert max(writes.sizes) <= limits.write_buffer_limit + one_reply, (
            f"one write of {max(writes.sizes)} bytes; write_buffer_limit is "
            f"{limits.write_buffer_limit}"
        )
    finally:
        sock.close()


async def test_pipelined_requests_with_large_replies_reach_a_reading_client(
    serve: Any, connect: Any
) -> None:
    """A client that reads everything pipelines 200 requests (one 2.8 KB
    write) whose replies are 60 KB: it must get all 200, not be dropped as a
    slow consumer because the replies of one feed were queued at once."""
    content = b"r" * 60_000

    def large(message: Message, writer: asyncio.StreamWriter) -> Message:
        return request(message.body.content, content, MessageType.RESPOND_URI)

    server = TCPServer(host="127.0.0.1", port=0, default_handler=large)
    await serve(server)
    peer = await connect(server)
    batch = [request(b"x", f"{n}".encode()) for n in range(200)]
    await peer.send_bytes(b"".join(m.encode() for m in batch))
    received: list[bytes] = []
    try:
        for _ in batch:
            received.append((await peer.receive()).body.uri)
    except ConnectionError:
        pass
    assert len(received) == len(batch), f"dropped after {len(received)} of {len(batch)} replies"
    assert received == [m.body.content for m in batch]


# -- (e) the stream path: handle_client under asyncio.start_server -----------


async def test_handle_client_with_start_server_serves_pipelined_correlated_requests() -> None:
    passed: list[asyncio.StreamWriter] = []
    seen: list[asyncio.StreamWriter] = []
    server = TCPServer(host="127.0.0.1", port=0)

    @server.on((MessageType.REQUEST_URI, b"sync"))
    def sync_handler(message: Message, writer: asyncio.StreamWriter) -> Message:
        seen.append(writer)
        return request(b"sync", message.body.content, MessageType.RESPOND_URI)

    @server.on((MessageType.REQUEST_URI, b"async"))
    async def async_handler(message: Message, writer: asyncio.StreamWriter) -> Message:
        seen.append(writer)
        await asyncio.sleep(0)
        return request(b"async", message.body.content, MessageType.RESPOND_URI)

    done = asyncio.Event()

    async def client_connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        passed.append(writer)
        try:
            await server.handle_client(reader, writer)
        finally:
            done.set()

    listener = await asyncio.start_server(client_connected, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    try:
        batch = [
            correlated(b"sync" if i % 2 else b"async", f"request {i}".encode(), 500 + i)
            for i in range(40)
        ]
        plain = [request(b"sync", f"plain {i}".encode()) for i in range(10)]
        writer.write(b"".join(m.encode() for m in [*batch, *plain]))
        await asyncio.wait_for(writer.drain(), TIMEOUT)
        frames: MessageReader[Message] = MessageReader()
        replies = [
            await asyncio.wait_for(frames.read(reader), TIMEOUT) for _ in range(len(batch) + 10)
        ]
        by_cid = {correlation_id(r): r.body.content for r in replies}
        uncorrelated = [r.body.content for r in replies if correlation_id(r) is None]
        del by_cid[None]
        assert by_cid == {500 + i: f"request {i}".encode() for i in range(40)}
        # The uncorrelated ones in order, without an id.
        assert uncorrelated == [f"plain {i}".encode() for i in range(10)]
        assert len(passed) == 1
        assert len(seen) == 50
        assert all(w is passed[0] for w in seen)
        assert passed[0] in server.clients
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
        await asyncio.wait_for(done.wait(), TIMEOUT)
        listener.close()
        await asyncio.wait_for(listener.wait_closed(), TIMEOUT)
    assert passed[0] not in server.clients
    assert not server._connections
