"""TCPClient.send and receive_once against a raw server."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from client_peer import TIMEOUT, RawConnection, RawServer, message, received
from token_plugin import TokenPlugin

from netaio_client import TCPClient
from netaio_core import (
    ConnectionClosedError,
    Message,
    MessageType,
)

RawServers = Callable[[], Awaitable[RawServer]]


def with_fields(msg: Message, **fields: bytes) -> Message:
    msg.auth_data.fields.update(fields)
    return msg


async def connected(
    raw_server: RawServers, clients: list[TCPClient[Any]], **kwargs: Any
) -> tuple[TCPClient[Message], RawConnection]:
    """A raw server, a client connected to it by default, and the server's end."""
    server = await raw_server()
    client = TCPClient(port=server.port, **kwargs)
    clients.append(client)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    return client, await server.accept()


async def test_send_then_receive_once_round_trip(raw_server, clients):
    client, peer = await connected(raw_server, clients)

    await client.send(message(b"echo", b"hello", MessageType.REQUEST_URI))
    got = await peer.receive()
    assert (got.header.message_type, got.body.uri, got.body.content) == (
        MessageType.REQUEST_URI,
        b"echo",
        b"hello",
    )
    await peer.send(message(b"echo", b"HELLO"))
    reply = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert isinstance(reply, Message)
    assert (reply.body.uri, reply.body.content) == (b"echo", b"HELLO")


async def test_receive_once_returns_handler_result_when_not_none(raw_server, clients):
    client, peer = await connected(raw_server, clients)
    seen: list[tuple[Message, asyncio.StreamWriter]] = []

    @client.on((MessageType.RESPOND_URI, b"transform"))
    def transform(msg: Message, writer: asyncio.StreamWriter) -> Message:
        seen.append((msg, writer))
        return message(b"transformed", msg.body.content.upper(), MessageType.OK)

    @client.on(MessageType.NOTIFY_URI)
    async def async_transform(msg: Message, writer: asyncio.StreamWriter) -> Message:
        await asyncio.sleep(0)
        return message(b"async", msg.body.content[::-1], MessageType.OK)

    await peer.send(message(b"transform", b"abc"))
    await peer.send(message(b"x", b"abc", MessageType.NOTIFY_URI))

    first = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    second = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert first is not None
    assert (first.body.uri, first.body.content) == (b"transformed", b"ABC")
    assert second is not None
    assert (second.body.uri, second.body.content) == (b"async", b"cba")
    ((msg, writer),) = seen
    assert msg.body.content == b"abc"
    assert writer is client.hosts[client.default_host][1]


async def test_receive_once_returns_the_message_when_handler_returns_none(raw_server, clients):
    client, peer = await connected(raw_server, clients)
    calls: list[bytes] = []

    @client.on(MessageType.RESPOND_URI)
    def observe(msg: Message, writer: asyncio.StreamWriter) -> None:
        calls.append(msg.body.content)

    await peer.send(message(b"a", b"handled"))
    await peer.send(message(b"b", b"unhandled", MessageType.NOTIFY_URI))

    handled = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    unhandled = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert handled is not None
    assert handled.body.content == b"handled"
    assert unhandled is not None
    assert (unhandled.header.message_type, unhandled.body.content) == (
        MessageType.NOTIFY_URI,
        b"unhandled",
    )
    assert calls == [b"handled"]


async def test_specific_key_beats_type_only_key(raw_server, clients):
    client, peer = await connected(raw_server, clients)
    client.add_handler(MessageType.RESPOND_URI, lambda m, w: message(b"", b"type-only"))
    client.add_handler((MessageType.RESPOND_URI, b"x"), lambda m, w: message(b"", b"specific"))

    await peer.send(message(b"x"))
    await peer.send(message(b"y"))

    assert (await received(client)).body.content == b"specific"
    assert (await received(client)).body.content == b"type-only"


async def test_checksum_failure_returns_none_and_the_next_message_is_read(raw_server, clients):
    client, peer = await connected(raw_server, clients)
    calls: list[bytes] = []
    client.add_handler(MessageType.RESPOND_URI, lambda m, w: calls.append(m.body.content))
    bad = bytearray(message(b"x", b"tampered").encode())
    bad[-1] ^= 0x01

    await peer.send_bytes(bytes(bad))
    await peer.send(message(b"x", b"intact"))

    assert await asyncio.wait_for(client.receive_once(), TIMEOUT) is None
    good = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert good is not None
    assert good.body.content == b"intact"
    assert calls == [b"intact"]  # no handler saw the tampered message


async def test_malformed_body_returns_none_and_the_next_message_is_read(raw_server, clients):
    client, peer = await connected(raw_server, clients)
    body = struct.pack("!I", 99) + b"short"
    auth = message().auth_data.encode()
    await peer.send_bytes(struct.pack("!BHHI", 1, len(auth), len(body), 0) + auth + body)
    await peer.send(message(b"x", b"next"))

    assert await asyncio.wait_for(client.receive_once(), TIMEOUT) is None
    assert (await received(client)).body.content == b"next"


async def test_instance_plugin_failure_returns_none_without_calling_handler(raw_server, clients):
    log: list[str] = []
    client, peer = await connected(raw_server, clients, auth_plugin=TokenPlugin("outer", b"o", log))
    calls: list[bytes] = []
    client.add_handler(MessageType.RESPOND_URI, lambda m, w: calls.append(m.body.content))

    await peer.send(message(b"x", b"unsigned"))
    await peer.send(with_fields(message(b"x", b"forged"), outer=b"wrong"))
    await peer.send(with_fields(message(b"x", b"signed"), outer=b"o"))

    assert await client.receive_once() is None
    assert await client.receive_once() is None
    accepted = await client.receive_once()
    assert accepted is not None
    assert accepted.body.content == b"signed"
    assert calls == [b"signed"]
    assert log == ["outer"] * 3


async def test_handler_plugin_failure_returns_none_without_calling_handler(raw_server, clients):
    log: list[str] = []
    client, peer = await connected(raw_server, clients, auth_plugin=TokenPlugin("outer", b"o", log))
    calls: list[bytes] = []

    @client.on((MessageType.RESPOND_URI, b"guarded"), TokenPlugin("inner", b"i", log))
    def guarded(msg: Message, writer: asyncio.StreamWriter) -> None:
        calls.append(msg.body.content)

    await peer.send(with_fields(message(b"guarded", b"outer only"), outer=b"o"))
    await peer.send(with_fields(message(b"guarded", b"both"), outer=b"o", inner=b"i"))
    await peer.send(with_fields(message(b"open", b"open"), outer=b"o"))

    assert await client.receive_once() is None
    assert (await received(client)).body.content == b"both"
    assert (await received(client)).body.content == b"open"
    assert calls == [b"both"]
    # The instance plugin checks every message (as it arrives), the handler's
    # only those for its key, after the instance plugin's.
    assert log.count("outer") == 3
    assert log.count("inner") == 2
    assert log.index("inner") > log.index("outer")


async def test_send_signs_only_when_set_auth_is_true(raw_server, clients):
    client, peer = await connected(raw_server, clients, auth_plugin=TokenPlugin("outer", b"o"))

    await client.send(message(b"x", b"signed", MessageType.REQUEST_URI))
    await client.send(message(b"x", b"plain", MessageType.REQUEST_URI), set_auth=False)

    signed, plain = await peer.receive(), await peer.receive()
    assert signed.auth_data.fields == {"outer": b"o"}
    assert plain.auth_data.fields == {}


async def test_clean_end_of_stream_raises_connection_closed_not_partial(raw_server, clients):
    client, peer = await connected(raw_server, clients)
    await peer.send(message(b"x", b"last"))
    await peer.close()

    assert (await received(client)).body.content == b"last"
    with pytest.raises(ConnectionClosedError) as caught:
        await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert caught.value.partial is False


@pytest.mark.parametrize("cut", [4, 9, 20])
async def test_end_of_stream_mid_frame_raises_connection_closed_partial(raw_server, clients, cut):
    client, peer = await connected(raw_server, clients)
    data = message(b"uri", b"a body that will be cut short").encode()
    await peer.send_bytes(data[:cut])
    await peer.close()

    with pytest.raises(ConnectionClosedError) as caught:
        await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert caught.value.partial is True
    assert isinstance(caught.value, ConnectionError)
