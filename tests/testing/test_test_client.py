"""netaio.testing: a handler tested in memory, through the real codec,
auth plugins and dispatch, with no socket opened."""

from __future__ import annotations

import asyncio
import socket

import pytest

from netaio import (
    AuthenticationError,
    HMACAuthPlugin,
    Message,
    MessageType,
    TCPServer,
)
from netaio.testing import TestClient, connect_pair
from netaio_core import correlation_id

TIMEOUT = 5.0


def items_server() -> TCPServer[Message]:
    server: TCPServer[Message] = TCPServer(auth_plugin=HMACAuthPlugin({"secret": "s"}))
    server.enable_subscriptions()
    items: dict[bytes, bytes] = {}

    @server.on((MessageType.CREATE_URI, b"/items"))
    async def create(message: Message, writer: asyncio.StreamWriter) -> Message:
        items[message.body.content] = message.body.content
        await server.notify(
            b"/items", Message.request(b"/items", message.body.content, MessageType.NOTIFY_URI)
        )
        return message.reply(b"created", MessageType.OK)

    @server.on((MessageType.REQUEST_URI, b"/items"))
    def listing(message: Message, writer: asyncio.StreamWriter) -> Message:
        return message.reply(b",".join(sorted(items)))

    return server


async def test_a_handler_is_tested_in_memory_without_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_sockets(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "socket", no_sockets)
    server = items_server()
    async with TestClient(server, auth_plugin=HMACAuthPlugin({"secret": "s"})) as client:
        async with client.subscribe(b"/items") as feed:
            created = await asyncio.wait_for(client.create(b"/items", b"apple"), TIMEOUT)
            assert created.header.message_type is MessageType.OK
            assert correlation_id(created) is not None  # reply() kept the request's id
            notification = await asyncio.wait_for(anext(feed), TIMEOUT)
            assert notification.body.content == b"apple"
        listing = await client.request(b"/items")
        assert listing.body.content == b"apple"
        missing = await client.request(b"/nowhere")
        assert missing.header.message_type is MessageType.NOT_FOUND
        assert len(server.clients) == 1
    assert server.clients == set()
    assert server.subscriptions == {}


async def test_the_server_auth_plugin_applies_in_memory() -> None:
    server = items_server()
    async with TestClient(server, auth_plugin=HMACAuthPlugin({"secret": "wrong"})) as client:
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(client.request(b"/items"), TIMEOUT)
    async with TestClient(server) as anonymous:  # no plugin: the server answers AUTH_ERROR
        with pytest.raises(AuthenticationError) as info:
            await asyncio.wait_for(anonymous.request(b"/items"), TIMEOUT)
        assert info.value.reply is not None
        assert info.value.reply.header.message_type is MessageType.AUTH_ERROR


async def test_memory_transports_deliver_in_order_and_close_both_ends() -> None:
    received: list[bytes] = []
    lost: list[str] = []

    class Recorder(asyncio.Protocol):
        def __init__(self, name: str) -> None:
            self.name = name

        def data_received(self, data: bytes) -> None:
            received.append(data)

        def connection_lost(self, exc: Exception | None) -> None:
            lost.append(self.name)

    a, b = Recorder("a"), Recorder("b")
    ta, tb = connect_pair(a, b)
    for chunk in (b"one", b"two", b"three"):
        ta.write(chunk)
    await asyncio.sleep(0)  # delivered on the next turn of the loop, in order
    assert received == [b"one", b"two", b"three"]
    tb.pause_reading()
    ta.write(b"held")
    await asyncio.sleep(0)
    assert received == [b"one", b"two", b"three"]  # held while reading is paused
    tb.resume_reading()
    ta.close()
    for _ in range(10):
        await asyncio.sleep(0)
    assert received == [b"one", b"two", b"three", b"held"]
    assert sorted(lost) == ["a", "b"]
    assert ta.is_closing()
    assert tb.is_closing()


def test_message_request_and_reply_are_the_short_forms_of_prepare() -> None:
    request = Message.request("/items/1", "hello")
    assert request.header.message_type is MessageType.REQUEST_URI
    assert (request.body.uri, request.body.content) == (b"/items/1", b"hello")
    assert request.check()
    request.auth_data.fields["cid"] = 9
    reply = request.reply(b"world")
    assert reply.header.message_type is MessageType.RESPOND_URI
    assert (reply.body.uri, reply.body.content) == (b"/items/1", b"world")
    assert correlation_id(reply) == 9
    assert Message.decode(reply.encode()) == reply
