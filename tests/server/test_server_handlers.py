"""TCPServer routes each message to one handler, as a raw peer sees it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

from server_peer import request

from netaio_core import Message, MessageType, make_error_response
from netaio_server import TCPServer, not_found_handler


def reply_with(content: bytes) -> Callable[[Message, asyncio.StreamWriter], Message]:
    """A sync handler whose reply tells which handler answered."""

    def handler(message: Message, writer: asyncio.StreamWriter) -> Message:
        return request(message.body.uri, content, MessageType.RESPOND_URI)

    return handler


async def test_specific_key_beats_type_only_key(serve, connect):
    server = TCPServer(host="127.0.0.1", port=0)
    # Registered first, yet the (type, uri) key comes first in extract_keys.
    server.add_handler(MessageType.REQUEST_URI, reply_with(b"type-only"))
    server.add_handler((MessageType.REQUEST_URI, b"echo"), reply_with(b"specific"))
    await serve(server)
    peer = await connect(server)

    specific = await peer.request(request(b"echo", b"x"))
    other_uri = await peer.request(request(b"other", b"x"))

    assert specific.header.message_type is MessageType.RESPOND_URI
    assert specific.body.content == b"specific"
    assert other_uri.body.content == b"type-only"
    assert other_uri.body.uri == b"other"


async def test_first_registered_key_in_extract_keys_order_wins(serve, connect):
    seen_keys: list[list[Hashable]] = []

    def extract(message: Message) -> list[Hashable]:
        keys: list[Hashable] = ["unregistered", "second", "third"]
        seen_keys.append(keys)
        return keys

    server = TCPServer(host="127.0.0.1", port=0, keys_extractor=extract)
    server.add_handler("third", reply_with(b"third"))
    server.add_handler("second", reply_with(b"second"))
    await serve(server)
    peer = await connect(server)

    assert (await peer.request(request())).body.content == b"second"
    assert len(seen_keys) == 1

    del server.handlers["second"]
    assert (await peer.request(request())).body.content == b"third"


async def test_sync_and_async_handlers_both_answer(serve, connect):
    server = TCPServer(host="127.0.0.1", port=0)

    @server.on((MessageType.REQUEST_URI, b"sync"))
    def sync_handler(message: Message, writer: asyncio.StreamWriter) -> Message:
        return request(b"sync", message.body.content.upper(), MessageType.RESPOND_URI)

    @server.on((MessageType.REQUEST_URI, b"async"))
    async def async_handler(message: Message, writer: asyncio.StreamWriter) -> Message:
        await asyncio.sleep(0)
        return request(b"async", message.body.content[::-1], MessageType.RESPOND_URI)

    await serve(server)
    peer = await connect(server)

    assert (await peer.request(request(b"sync", b"abc"))).body.content == b"ABC"
    assert (await peer.request(request(b"async", b"abc"))).body.content == b"cba"


async def test_on_returns_the_function_unchanged():
    server = TCPServer(host="127.0.0.1", port=0)

    def handler(message: Message, writer: asyncio.StreamWriter) -> None:
        return None

    assert server.on("key")(handler) is handler
    assert server.handlers["key"] == (handler, None)


async def test_unmatched_message_gets_not_found_from_default_handler(serve, connect):
    server = TCPServer(host="127.0.0.1", port=0)
    server.add_handler((MessageType.REQUEST_URI, b"known"), reply_with(b"known"))
    assert server.default_handler is not_found_handler
    await serve(server)
    peer = await connect(server)

    reply = await peer.request(request(b"unknown", b"x", MessageType.CREATE_URI))

    assert reply.header.message_type is MessageType.NOT_FOUND
    assert reply.body.content == b"not found"
    assert reply == make_error_response("not found")


async def test_custom_default_handler_and_make_error_are_used(serve, connect):
    def default(message: Message, writer: asyncio.StreamWriter) -> Message:
        return request(b"fallback", message.body.uri, MessageType.OK)

    def make_error(text: str) -> Message:
        return request(b"custom-error", text.encode(), MessageType.ERROR)

    server = TCPServer(
        host="127.0.0.1", port=0, default_handler=default, make_error_response=make_error
    )
    await serve(server)
    peer = await connect(server)

    fallback = await peer.request(request(b"nowhere"))
    assert (fallback.header.message_type, fallback.body.content) == (MessageType.OK, b"nowhere")

    corrupt = bytearray(request(b"x", b"payload").encode())
    corrupt[-1] ^= 0xFF  # the body no longer matches the checksum
    await peer.send_bytes(bytes(corrupt))
    error = await peer.receive()
    assert (error.body.uri, error.body.content) == (b"custom-error", b"invalid message")


async def test_handler_returning_none_sends_no_reply(serve, connect):
    server = TCPServer(host="127.0.0.1", port=0)
    received: list[bytes] = []

    @server.on((MessageType.PUBLISH_URI, b"quiet"))
    def quiet(message: Message, writer: asyncio.StreamWriter) -> None:
        received.append(message.body.content)

    server.add_handler((MessageType.REQUEST_URI, b"ping"), reply_with(b"pong"))
    await serve(server)
    peer = await connect(server)

    await peer.send(request(b"quiet", b"one", MessageType.PUBLISH_URI))
    # The next frame on the wire is the reply to the ping: "quiet" sent none.
    assert (await peer.request(request(b"ping"))).body.content == b"pong"
    assert received == [b"one"]


async def test_handler_gets_the_message_and_its_connections_writer(serve, connect):
    server = TCPServer(host="127.0.0.1", port=0)
    calls: list[tuple[Message, asyncio.StreamWriter]] = []

    @server.on(MessageType.REQUEST_URI)
    def record(message: Message, writer: asyncio.StreamWriter) -> Message:
        calls.append((message, writer))
        return request(b"ok", b"", MessageType.OK)

    await serve(server)
    first = await connect(server)
    second = await connect(server)
    await first.request(request(b"a", b"from first"))
    await second.request(request(b"b", b"from second"))

    (message_a, writer_a), (message_b, writer_b) = calls
    assert isinstance(message_a, Message)
    assert (message_a.body.uri, message_a.body.content) == (b"a", b"from first")
    assert message_b.body.content == b"from second"
    assert writer_a is not writer_b
    assert server.clients == {writer_a, writer_b}
    # Each writer is the server's end of that peer's connection.
    assert writer_a.get_extra_info("peername") == first.writer.get_extra_info("sockname")


async def test_add_handler_again_replaces_the_handler(serve, connect):
    server = TCPServer(host="127.0.0.1", port=0)
    server.add_handler(MessageType.REQUEST_URI, reply_with(b"old"))
    server.add_handler(MessageType.REQUEST_URI, reply_with(b"new"))
    await serve(server)
    peer = await connect(server)

    assert (await peer.request(request())).body.content == b"new"
    assert len(server.handlers) == 1


async def test_replies_are_answered_in_order_on_one_connection(serve, connect):
    server = TCPServer(host="127.0.0.1", port=0)

    @server.on(MessageType.REQUEST_URI)
    async def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        return request(message.body.uri, message.body.content, MessageType.RESPOND_URI)

    await serve(server)
    peer = await connect(server)
    await peer.send_bytes(b"".join(request(b"n", b"%d" % i).encode() for i in range(20)))

    replies = [await peer.receive() for _ in range(20)]
    assert [r.body.content for r in replies] == [b"%d" % i for i in range(20)]
