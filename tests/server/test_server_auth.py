"""TCPServer auth: the instance plugin, then the handler's plugin, checks
each message; a failure is answered by that plugin's error(); replies are
signed by both plugins."""

from __future__ import annotations

import asyncio

from server_peer import request
from token_plugin import TokenPlugin

from netaio_core import (
    Message,
    MessageType,
)
from netaio_server import TCPServer


def signed(message: Message, *fields: tuple[str, bytes]) -> Message:
    for name, value in fields:
        message.auth_data.fields[name] = value
    return message


def make_server(log: list[str], calls: list[bytes]) -> TCPServer[Message]:
    """A server with an instance plugin ("outer") and a handler plugin
    ("inner") on (REQUEST_URI, b"guarded"); other requests are open."""
    server = TCPServer(host="127.0.0.1", port=0, auth_plugin=TokenPlugin("outer", b"o-token", log))

    @server.on((MessageType.REQUEST_URI, b"guarded"), TokenPlugin("inner", b"i-token", log))
    def guarded(message: Message, writer: asyncio.StreamWriter) -> Message:
        calls.append(message.body.content)
        return request(b"guarded", b"secret stuff", MessageType.RESPOND_URI)

    @server.on(MessageType.REQUEST_URI)
    def open_handler(message: Message, writer: asyncio.StreamWriter) -> Message:
        calls.append(message.body.content)
        return request(b"open", b"public stuff", MessageType.RESPOND_URI)

    return server


OUTER = ("outer", b"o-token")
INNER = ("inner", b"i-token")


async def test_both_plugins_pass_then_handler_runs_and_reply_is_signed_by_both(serve, connect):
    log: list[str] = []
    calls: list[bytes] = []
    server = await serve(make_server(log, calls))
    peer = await connect(server)

    reply = await peer.request(signed(request(b"guarded", b"hi"), OUTER, INNER))

    assert log == ["outer", "inner"]  # instance plugin first, then the handler's
    assert calls == [b"hi"]
    assert reply.body.content == b"secret stuff"
    assert reply.auth_data.fields == {"outer": b"o-token", "inner": b"i-token"}


async def test_instance_plugin_checks_every_message_and_signs_every_reply(serve, connect):
    log: list[str] = []
    calls: list[bytes] = []
    server = await serve(make_server(log, calls))
    peer = await connect(server)

    opened = await peer.request(signed(request(b"open", b"a"), OUTER))
    not_found = await peer.request(signed(request(b"x", b"b", MessageType.CREATE_URI), OUTER))

    assert log == ["outer", "outer"]  # the handler without a plugin adds no check
    assert calls == [b"a"]
    assert opened.body.content == b"public stuff"
    assert opened.auth_data.fields == {"outer": b"o-token"}
    assert not_found.header.message_type is MessageType.NOT_FOUND
    assert not_found.auth_data.fields == {"outer": b"o-token"}


async def test_instance_plugin_failure_replies_its_error_and_skips_handler(serve, connect):
    log: list[str] = []
    calls: list[bytes] = []
    server = await serve(make_server(log, calls))
    peer = await connect(server)

    unsigned = await peer.request(request(b"guarded", b"no auth"))
    forged = await peer.request(signed(request(b"guarded", b"bad"), ("outer", b"forged"), INNER))

    for reply in (unsigned, forged):
        assert reply.header.message_type is MessageType.AUTH_ERROR
        assert reply.body.content == b"auth failed: outer"
    assert calls == []
    assert log == ["outer", "outer"]  # the handler's plugin is never reached
    # The connection is still served.
    assert (await peer.request(signed(request(b"open", b"ok"), OUTER))).body.content == (
        b"public stuff"
    )


async def test_handler_plugin_failure_replies_its_error_and_skips_handler(serve, connect):
    log: list[str] = []
    calls: list[bytes] = []
    server = await serve(make_server(log, calls))
    peer = await connect(server)

    reply = await peer.request(signed(request(b"guarded", b"x"), OUTER, ("inner", b"wrong")))

    assert reply.header.message_type is MessageType.AUTH_ERROR
    assert reply.body.content == b"auth failed: inner"
    assert calls == []
    assert log == ["outer", "inner"]
    # The error reply is signed by the instance plugin only: the peer failed
    # the handler's plugin, so nothing of it goes back.
    assert reply.auth_data.fields == {"outer": b"o-token"}
    assert (await peer.request(signed(request(b"guarded", b"y"), OUTER, INNER))).body.content == (
        b"secret stuff"
    )
    assert calls == [b"y"]


async def test_handler_plugin_without_instance_plugin(serve, connect):
    server = TCPServer(host="127.0.0.1", port=0)
    calls: list[bytes] = []

    @server.on((MessageType.REQUEST_URI, b"guarded"), TokenPlugin("inner", b"i-token"))
    def guarded(message: Message, writer: asyncio.StreamWriter) -> Message:
        calls.append(message.body.content)
        return request(b"guarded", b"ok", MessageType.RESPOND_URI)

    await serve(server)
    peer = await connect(server)

    refused = await peer.request(request(b"guarded", b"a"))
    accepted = await peer.request(signed(request(b"guarded", b"b"), INNER))
    open_ = await peer.request(request(b"elsewhere", b"c"))

    assert refused.body.content == b"auth failed: inner"
    assert refused.auth_data.fields == {}
    assert accepted.auth_data.fields == {"inner": b"i-token"}
    assert open_.header.message_type is MessageType.NOT_FOUND
    assert calls == [b"b"]


async def test_send_signs_as_use_auth_says(serve, connect):
    server = TCPServer(host="127.0.0.1", port=0, auth_plugin=TokenPlugin("outer", b"o-token"))
    writers: list[asyncio.StreamWriter] = []

    @server.on(MessageType.REQUEST_URI)
    def remember(message: Message, writer: asyncio.StreamWriter) -> Message:
        writers.append(writer)
        return request(b"ok", b"", MessageType.OK)

    await serve(server)
    peer = await connect(server)
    await peer.request(signed(request(), OUTER))

    await server.send(writers[0], request(b"push", b"signed"))
    await server.send(writers[0], request(b"push", b"plain"), use_auth=False)

    signed_push, plain_push = await peer.receive(), await peer.receive()
    assert (signed_push.body.content, signed_push.auth_data.fields) == (b"signed", dict([OUTER]))
    assert (plain_push.body.content, plain_push.auth_data.fields) == (b"plain", {})
