"""The replies the server makes itself (NOT_FOUND, ERROR, AUTH_ERROR) use
its configured message and body classes, so that a peer with the same
custom classes (here ``ShortUriBody``, netaio 0.0.9's layout) decodes them
without replacing ``make_error`` or the default handler."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from server_peer import RawPeer
from token_plugin import TokenPlugin

from netaio_core import (
    AuthFields,
    Header,
    Message,
    MessageReader,
    MessageType,
    ShortUriBody,
    make_error_msg,
)
from netaio_server import TCPServer, not_found_handler

Serve = Callable[..., Awaitable[TCPServer[Any]]]
Connect = Callable[[TCPServer[Any]], Awaitable[RawPeer]]


def short(uri: bytes, content: bytes = b"x") -> Message:
    return Message.prepare(ShortUriBody.prepare(content, uri), MessageType.REQUEST_URI)


async def short_peer(connect: Connect, server: TCPServer[Message]) -> RawPeer:
    """A raw peer that decodes with ``ShortUriBody``."""
    peer = await connect(server)
    peer.frames = MessageReader(Header, AuthFields, ShortUriBody, Message)
    return peer


async def test_not_found_and_internal_error_in_the_server_body_class(
    serve: Serve, connect: Connect
) -> None:
    server: TCPServer[Message] = await serve(body_class=ShortUriBody)

    @server.on((MessageType.REQUEST_URI, b"boom"))
    def boom(message: Message, writer: asyncio.StreamWriter) -> Message:
        raise RuntimeError("handler bug")

    peer = await short_peer(connect, server)
    missing = await peer.request(short(b"missing"))
    failed = await peer.request(short(b"boom"))
    assert missing.header.message_type is MessageType.NOT_FOUND
    assert type(missing.body) is ShortUriBody
    assert missing.body.content == b"not found"
    assert failed.header.message_type is MessageType.ERROR
    assert type(failed.body) is ShortUriBody
    assert failed.body.content == b"internal server error"


async def test_a_plugin_error_reply_in_the_server_body_class(
    serve: Serve, connect: Connect
) -> None:
    # TokenPlugin.error() builds its reply with the default Body.
    server: TCPServer[Message] = await serve(
        body_class=ShortUriBody, auth_plugin=TokenPlugin("token", b"secret")
    )
    peer = await short_peer(connect, server)
    refused = await peer.request(short(b"anything"))
    assert refused.header.message_type is MessageType.AUTH_ERROR
    assert type(refused.body) is ShortUriBody
    assert refused.body.content == b"auth failed: token"


async def test_a_make_error_the_caller_chose_is_kept(serve: Serve, connect: Connect) -> None:
    def teapot(text: str) -> Message:
        return make_error_msg(f"teapot: {text}", body_class=ShortUriBody)

    server: TCPServer[Message] = await serve(body_class=ShortUriBody, make_error_response=teapot)
    assert server.make_error is teapot
    assert server.default_handler is not_found_handler

    @server.on((MessageType.REQUEST_URI, b"boom"))
    def boom(message: Message, writer: asyncio.StreamWriter) -> Message:
        raise RuntimeError("handler bug")

    peer = await short_peer(connect, server)
    failed = await peer.request(short(b"boom"))
    assert failed.body.content == b"teapot: internal server error"
