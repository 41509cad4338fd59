"""``TCPServer.on_drop``: one hook for every connection the server refuses
or drops and every message it rejects, with the reason as a ``DropReason``."""

from __future__ import annotations

import asyncio
import importlib.util
import struct
from typing import Any

import pytest
from server_peer import TIMEOUT, RawPeer, request
from token_plugin import TokenPlugin

from netaio_core import Limits, Message, MessageType
from netaio_server import DropReason, TCPServer
from netaio_server.connection import ServerConnection

Seen = list[tuple[ServerConnection[Any], DropReason]]


async def _recording(server: TCPServer[Message]) -> tuple[Seen, asyncio.Event]:
    seen: Seen = []
    event = asyncio.Event()

    @server.on_drop
    def record(connection: ServerConnection[Any], reason: DropReason) -> None:
        seen.append((connection, reason))
        event.set()

    await asyncio.wait_for(server.listen(), TIMEOUT)
    return seen, event


async def test_refused_connection(caplog: pytest.LogCaptureFixture) -> None:
    server: TCPServer[Message] = TCPServer(
        host="127.0.0.1", port=0, limits=Limits(max_connections=1)
    )
    seen, event = await _recording(server)
    first = await RawPeer.open(server.port)
    try:
        assert (await first.request(request(b"x"))).header.message_type is MessageType.NOT_FOUND
        second = await RawPeer.open(server.port)
        assert await second.read_to_end() == b""
        await asyncio.wait_for(event.wait(), TIMEOUT)
        ((connection, reason),) = seen
        assert reason is DropReason.MAX_CONNECTIONS
        assert reason.kind == "refused"
        assert reason.label == "max_connections"
        assert connection.ip == "127.0.0.1"
        await second.close()
    finally:
        await first.close()
        await server.stop(grace=0)


async def test_dropped_for_idle_and_for_a_too_large_frame() -> None:
    server: TCPServer[Message] = TCPServer(
        host="127.0.0.1", port=0, limits=Limits(idle_timeout=0.05, max_frame_size=1024)
    )
    seen, event = await _recording(server)
    try:
        idle = await RawPeer.open(server.port)
        assert await idle.read_to_end() == b""
        await asyncio.wait_for(event.wait(), TIMEOUT)
        event.clear()
        large = await RawPeer.open(server.port)
        # A header announcing a 4,000-byte body: refused before it arrives.
        await large.send_bytes(struct.pack("!BHHI", MessageType.REQUEST_URI.value, 0, 4000, 0))
        reply = await large.receive()
        assert reply.body.content == b"frame too large"
        await asyncio.wait_for(event.wait(), TIMEOUT)
        assert [reason for _, reason in seen] == [
            DropReason.IDLE_TIMEOUT,
            DropReason.FRAME_TOO_LARGE,
        ]
        assert all(reason.kind == "dropped" for _, reason in seen)
        await idle.close()
        await large.close()
    finally:
        await server.stop(grace=0)


async def test_rejected_messages_keep_the_connection() -> None:
    server: TCPServer[Message] = TCPServer(
        host="127.0.0.1", port=0, auth_plugin=TokenPlugin("token", b"t")
    )
    seen, _ = await _recording(server)
    peer = await RawPeer.open(server.port)
    try:
        refused = await peer.request(request(b"x"))
        assert refused.header.message_type is MessageType.AUTH_ERROR
        corrupt = bytearray(request(b"x").encode())
        corrupt[-1] ^= 1  # the checksum no longer matches
        await peer.send_bytes(bytes(corrupt))
        assert (await peer.receive()).body.content == b"invalid message"
        assert [(reason, reason.kind) for _, reason in seen] == [
            (DropReason.AUTH_FAILED, "rejected"),
            (DropReason.CHECKSUM_MISMATCH, "rejected"),
        ]
        signed = request(b"x")
        signed.auth_data.fields["token"] = b"t"
        assert (await peer.request(signed)).header.message_type is MessageType.NOT_FOUND
    finally:
        await peer.close()
        await server.stop(grace=0)


async def test_a_coroutine_hook_runs_and_a_failing_hook_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server: TCPServer[Message] = TCPServer(
        host="127.0.0.1", port=0, limits=Limits(idle_timeout=0.05)
    )
    done = asyncio.Event()

    @server.on_drop
    def broken(connection: ServerConnection[Any], reason: DropReason) -> None:
        raise RuntimeError("hook bug")

    @server.on_drop
    async def later(connection: ServerConnection[Any], reason: DropReason) -> None:
        done.set()

    await asyncio.wait_for(server.listen(), TIMEOUT)
    peer = await RawPeer.open(server.port)
    try:
        await asyncio.wait_for(done.wait(), TIMEOUT)
        assert "hook bug" in caplog.text or "failed" in caplog.text
        again = await RawPeer.open(server.port)  # the server still serves
        assert (await again.request(request(b"x"))).header.message_type is MessageType.NOT_FOUND
        await again.close()
    finally:
        await peer.close()
        await server.stop(grace=0)


@pytest.mark.skipif(
    importlib.util.find_spec("prometheus_client") is None,
    reason="the metrics need prometheus_client (netaio-server[metrics])",
)
async def test_the_metrics_count_through_the_hook() -> None:
    import prometheus_client

    from netaio_server.metrics import instrument

    registry = prometheus_client.CollectorRegistry()
    server: TCPServer[Message] = TCPServer(
        host="127.0.0.1",
        port=0,
        limits=Limits(max_connections=1),
        auth_plugin=TokenPlugin("token", b"t"),
    )
    instrument(server, registry)
    seen, event = await _recording(server)
    first = await RawPeer.open(server.port)
    try:
        await first.request(request(b"x"))  # rejected: no token
        second = await RawPeer.open(server.port)
        assert await second.read_to_end() == b""
        await asyncio.wait_for(event.wait(), TIMEOUT)
        while len(seen) < 2:
            event.clear()
            await asyncio.wait_for(event.wait(), TIMEOUT)
        await second.close()
    finally:
        await first.close()
        await server.stop(grace=0)
    text = prometheus_client.generate_latest(registry).decode()
    assert 'netaio_connections_refused_total{reason="max_connections"} 1.0' in text, text
    assert 'netaio_messages_rejected_total{reason="auth_failed"} 1.0' in text, text
