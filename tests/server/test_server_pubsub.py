"""TCPServer subscriptions, broadcast and notify."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from server_peer import RawPeer, TaskRecorder, request

from netaio_core import (
    AuthFieldsProtocol,
    BodyProtocol,
    Message,
    MessageProtocol,
    MessageType,
    make_error_response,
)
from netaio_server import TCPServer


class FieldPlugin:
    """Signs with one fixed field; accepts everything."""

    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        auth_fields.fields["sig"] = b"server"

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        return True

    def error(self) -> MessageProtocol:
        return make_error_response("auth failed")


class CountingMessage(Message):
    """A Message that counts its encode() calls."""

    encodes: ClassVar[int] = 0

    def encode(self) -> bytes:
        type(self).encodes += 1
        return super().encode()


def pubsub_server(**kwargs: Any) -> tuple[TCPServer[Message], TaskRecorder]:
    """SUBSCRIBE_URI / UNSUBSCRIBE_URI to the body's uri, confirmed;
    REQUEST_URI b"whoami" records the connection's task."""
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0, **kwargs)
    recorder = TaskRecorder()

    @server.on(MessageType.SUBSCRIBE_URI)
    def subscribe(message: Message, writer: asyncio.StreamWriter) -> Message:
        server.subscribe(message.body.uri, writer)
        return request(message.body.uri, b"", MessageType.CONFIRM_SUBSCRIBE)

    @server.on(MessageType.UNSUBSCRIBE_URI)
    def unsubscribe(message: Message, writer: asyncio.StreamWriter) -> Message:
        server.unsubscribe(message.body.uri, writer)
        return request(message.body.uri, b"", MessageType.CONFIRM_UNSUBSCRIBE)

    server.add_handler((MessageType.REQUEST_URI, b"whoami"), recorder)
    server.add_handler(
        (MessageType.REQUEST_URI, b"ping"),
        lambda m, w: request(b"ping", b"pong", MessageType.RESPOND_URI),
    )
    return server, recorder


async def subscribe(peer: RawPeer, *keys: bytes) -> None:
    for key in keys:
        reply = await peer.request(request(key, b"", MessageType.SUBSCRIBE_URI))
        assert reply.header.message_type is MessageType.CONFIRM_SUBSCRIBE


async def identify(peer: RawPeer, recorder: TaskRecorder) -> asyncio.StreamWriter:
    """The server-side writer of ``peer``'s connection."""
    before = set(recorder.tasks)
    await peer.request(request(b"whoami"))
    (writer,) = set(recorder.tasks) - before
    return writer


async def assert_nothing_pending(peer: RawPeer) -> None:
    """The next frame ``peer`` gets is the answer to a ping: nothing else was sent."""
    reply = await peer.request(request(b"ping"))
    assert reply.body.content == b"pong"


async def test_subscribe_and_unsubscribe_semantics(serve, connect):
    server, recorder = pubsub_server()
    await serve(server)
    a, b = await connect(server), await connect(server)
    writer_a, writer_b = await identify(a, recorder), await identify(b, recorder)

    await subscribe(a, b"news", b"sport")
    await subscribe(b, b"news")
    assert server.subscriptions == {b"news": {writer_a, writer_b}, b"sport": {writer_a}}

    await a.request(request(b"news", b"", MessageType.UNSUBSCRIBE_URI))
    assert server.subscriptions == {b"news": {writer_b}, b"sport": {writer_a}}
    # The key goes away with its last subscriber.
    await a.request(request(b"sport", b"", MessageType.UNSUBSCRIBE_URI))
    assert server.subscriptions == {b"news": {writer_b}}
    # Unsubscribing what one is not subscribed to changes nothing.
    await a.request(request(b"news", b"", MessageType.UNSUBSCRIBE_URI))
    await a.request(request(b"never", b"", MessageType.UNSUBSCRIBE_URI))
    assert server.subscriptions == {b"news": {writer_b}}


async def test_subscribe_directly_accepts_any_hashable_key(serve, connect):
    server, recorder = pubsub_server()
    await serve(server)
    peer = await connect(server)
    writer = await identify(peer, recorder)
    key = (MessageType.NOTIFY_URI, b"topic")

    server.subscribe(key, writer)
    server.subscribe(key, writer)  # idempotent
    assert server.subscriptions == {key: {writer}}
    await server.notify(key, request(b"topic", b"hello", MessageType.NOTIFY_URI))
    assert (await peer.receive()).body.content == b"hello"
    server.unsubscribe(key, writer)
    assert server.subscriptions == {}


async def test_disconnecting_client_leaves_clients_and_every_subscription(serve, connect):
    server, recorder = pubsub_server()
    await serve(server)
    leaving, staying = await connect(server), await connect(server)
    writer_leaving = await identify(leaving, recorder)
    writer_staying = await identify(staying, recorder)
    await subscribe(leaving, b"a", b"b", b"c")
    await subscribe(staying, b"b")
    assert server.clients == {writer_leaving, writer_staying}

    await leaving.close()
    await recorder.wait_done(writer_leaving)

    assert server.clients == {writer_staying}
    assert server.subscriptions == {b"b": {writer_staying}}
    await server.notify(b"b", request(b"b", b"still", MessageType.NOTIFY_URI))
    assert (await staying.receive()).body.content == b"still"


async def test_notify_reaches_subscribers_of_that_key_only(serve, connect):
    server, _ = pubsub_server()
    await serve(server)
    news1, news2, sport, idle = [await connect(server) for _ in range(4)]
    await subscribe(news1, b"news")
    await subscribe(news2, b"news")
    await subscribe(sport, b"sport")

    await server.notify(b"news", request(b"news", b"headline", MessageType.NOTIFY_URI))
    await server.notify(b"nobody", request(b"nobody", b"lost", MessageType.NOTIFY_URI))

    for peer in (news1, news2):
        got = await peer.receive()
        assert (got.header.message_type, got.body.content) == (MessageType.NOTIFY_URI, b"headline")
    for peer in (news1, news2, sport, idle):
        await assert_nothing_pending(peer)
    assert b"nobody" not in server.subscriptions


async def test_broadcast_reaches_every_connected_client(serve, connect):
    server, _ = pubsub_server()
    await serve(server)
    peers = [await connect(server) for _ in range(5)]
    for peer in peers:  # the server has registered each connection
        await assert_nothing_pending(peer)

    await server.broadcast(request(b"all", b"to everyone", MessageType.NOTIFY_URI))

    for peer in peers:
        assert (await peer.receive()).body.content == b"to everyone"
        await assert_nothing_pending(peer)


async def test_broadcast_and_notify_encode_the_message_once(serve, connect):
    server, _ = pubsub_server(auth_plugin=FieldPlugin())
    await serve(server)
    peers = [await connect(server) for _ in range(4)]
    for peer in peers:
        await subscribe(peer, b"k")

    message = CountingMessage.prepare(request(b"k", b"once").body, MessageType.NOTIFY_URI)
    CountingMessage.encodes = 0
    await server.broadcast(message)
    assert CountingMessage.encodes == 1

    CountingMessage.encodes = 0
    await server.notify(b"k", message)
    assert CountingMessage.encodes == 1

    for peer in peers:
        assert (await peer.receive()).body.content == b"once"
        assert (await peer.receive()).body.content == b"once"


async def test_broadcast_and_notify_sign_as_use_auth_says(serve, connect):
    server, _ = pubsub_server(auth_plugin=FieldPlugin())
    await serve(server)
    peers = [await connect(server) for _ in range(2)]
    for peer in peers:
        await subscribe(peer, b"k")

    await server.broadcast(request(b"all", b"signed"))
    await server.broadcast(request(b"all", b"plain"), use_auth=False)
    await server.notify(b"k", request(b"k", b"signed"))
    await server.notify(b"k", request(b"k", b"plain"), use_auth=False)

    for peer in peers:
        got = [await peer.receive() for _ in range(4)]
        assert [(m.body.content, m.auth_data.fields) for m in got] == [
            (b"signed", {"sig": b"server"}),
            (b"plain", {}),
        ] * 2


def break_writes(writer: asyncio.StreamWriter) -> None:
    """Make every write to ``writer`` fail, as on a dead socket."""

    def fail(data: bytes) -> None:
        raise ConnectionResetError("peer went away")

    setattr(writer, "write", fail)  # noqa: B010 (an instance attribute shadows the method)


async def test_broadcast_drops_a_failing_recipient_and_reaches_the_others(serve, connect, caplog):
    server, recorder = pubsub_server()
    await serve(server)
    first, broken, last = [await connect(server) for _ in range(3)]
    writers = [await identify(p, recorder) for p in (first, broken, last)]
    break_writes(writers[1])

    with caplog.at_level(logging.INFO, logger="netaio.server"):
        await server.broadcast(request(b"all", b"news"))

    for peer in (first, last):
        assert (await peer.receive()).body.content == b"news"
    assert writers[1] not in server.clients
    assert await broken.read_to_end() == b""  # its connection was closed
    await recorder.wait_done(writers[1])
    assert server.clients == {writers[0], writers[2]}
    assert any(r.exc_info for r in caplog.records)  # the failure is logged


async def test_notify_drops_a_failing_subscriber_and_reaches_the_others(serve, connect):
    server, recorder = pubsub_server()
    await serve(server)
    first, broken, last = [await connect(server) for _ in range(3)]
    writers = [await identify(p, recorder) for p in (first, broken, last)]
    for peer in (first, broken, last):
        await subscribe(peer, b"k", b"other")
    break_writes(writers[1])

    await server.notify(b"k", request(b"k", b"update"))

    for peer in (first, last):
        assert (await peer.receive()).body.content == b"update"
    assert server.subscriptions[b"k"] == {writers[0], writers[2]}
    await recorder.wait_done(writers[1])
    assert server.subscriptions == {
        b"k": {writers[0], writers[2]},
        b"other": {writers[0], writers[2]},
    }
    assert writers[1] not in server.clients


async def test_send_to_a_failing_client_removes_it_from_the_given_collection(serve, connect):
    server, recorder = pubsub_server()
    await serve(server)
    peer = await connect(server)
    writer = await identify(peer, recorder)
    break_writes(writer)
    collection = {writer}

    await server.send(writer, request(b"x", b"y"), collection)  # does not raise

    assert collection == set()
    await recorder.wait_done(writer)
    assert server.clients == set()
