"""What HMAC auth protects on a live connection, and what it does not, as
docs/security.md states it."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from netaio_auth import HMACAuthPlugin
from netaio_core import Message, MessageType
from netaio_core.binding import FROM_CLIENT, set_route
from netaio_server import TCPServer

from .conftest import Connect, Serve
from .support import ECHO_URI, echo_reply, request, summary

SECRET = secrets.token_bytes(32)
AUTH_FAILED = (MessageType.AUTH_ERROR, b"ERROR", b"HMAC auth failed")


def guarded_server(config: dict[str, object]) -> tuple[TCPServer[Message], list[bytes]]:
    """An HMAC-guarded server that echoes requests and records deletions."""
    server: TCPServer[Message] = TCPServer(
        host="127.0.0.1", port=0, auth_plugin=HMACAuthPlugin(config)
    )
    deleted: list[bytes] = []

    @server.on((MessageType.REQUEST_URI, ECHO_URI))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        return request(message.body.content, ECHO_URI, MessageType.RESPOND_URI)

    @server.on((MessageType.DELETE_URI, ECHO_URI))
    def delete(message: Message, writer: asyncio.StreamWriter) -> Message:
        deleted.append(message.body.content)
        return request(b"deleted", ECHO_URI, MessageType.OK)

    return server, deleted


def signed(content: bytes, config: dict[str, object]) -> Message:
    """A request signed as a netaio client signs it: routing field, then MAC."""
    message = request(content)
    set_route(message, FROM_CLIENT)
    HMACAuthPlugin(config).make(message.auth_data, message.body)
    return message


async def test_signed_request_is_answered_and_the_reply_is_signed(
    serve: Serve, connect: Connect
) -> None:
    config: dict[str, object] = {"secret": SECRET}
    server, _ = guarded_server(config)
    peer = await connect((await serve(server)).port)
    reply = await peer.request(signed(b"hello", config))
    assert summary(reply) == echo_reply(b"hello")
    assert HMACAuthPlugin(config).check(reply.auth_data, reply.body)


@pytest.mark.parametrize("part", ["content", "uri", "nonce", "ts"])
async def test_tampering_with_a_covered_part_is_refused(
    serve: Serve, connect: Connect, part: str
) -> None:
    config: dict[str, object] = {"secret": SECRET}
    server, _ = guarded_server(config)
    peer = await connect((await serve(server)).port)
    message = signed(b"pay 10", config)
    if part == "content":
        message.body.content = b"pay 99"
    elif part == "uri":
        message.body.uri = b"elsewhere"
    else:
        value = message.auth_data.fields[part]
        assert isinstance(value, bytes)
        message.auth_data.fields[part] = bytes([value[0] ^ 1]) + value[1:]
    # encode() recomputes lengths and checksum: only the MAC can tell.
    assert summary(await peer.request(message)) == AUTH_FAILED


async def test_wrong_secret_is_refused(serve: Serve, connect: Connect) -> None:
    server, _ = guarded_server({"secret": SECRET})
    peer = await connect((await serve(server)).port)
    forged = signed(b"hello", {"secret": secrets.token_bytes(32)})
    assert summary(await peer.request(forged)) == AUTH_FAILED


async def test_replay_is_refused_by_default_and_accepted_with_max_skew_none(
    serve: Serve, connect: Connect
) -> None:
    protected, _ = guarded_server({"secret": SECRET})
    plain, _ = guarded_server({"secret": SECRET, "max_skew": None})
    captured = signed(b"once", {"secret": SECRET}).encode()

    peer = await connect((await serve(protected)).port)
    await peer.send_bytes(captured)
    assert summary(await peer.receive()) == echo_reply(b"once")
    await peer.send_bytes(captured)
    assert summary(await peer.receive()) == AUTH_FAILED

    peer = await connect((await serve(plain)).port)
    for _ in range(2):
        await peer.send_bytes(captured)
        assert summary(await peer.receive()) == echo_reply(b"once")


async def test_message_type_tampering_is_refused(serve: Serve, connect: Connect) -> None:
    config: dict[str, object] = {"secret": SECRET}
    server, deleted = guarded_server(config)
    peer = await connect((await serve(server)).port)
    frame = bytearray(signed(b"record 7", config).encode())
    assert b"record 7" in frame  # no confidentiality: the content is in clear

    frame[0] = MessageType.DELETE_URI.value  # the type is bound by the rt field
    reply = await peer.request_bytes(bytes(frame))
    assert summary(reply) == AUTH_FAILED
    assert deleted == []


async def test_without_bind_routing_the_type_is_not_covered(serve: Serve, connect: Connect) -> None:
    """The 0.0.2-compatible mode: what bind_routing=False gives up."""
    config: dict[str, object] = {"secret": SECRET, "bind_routing": False}
    server, deleted = guarded_server(config)
    peer = await connect((await serve(server)).port)
    message = request(b"record 7")
    HMACAuthPlugin(config).make(message.auth_data, message.body)
    frame = bytearray(message.encode())
    frame[0] = MessageType.DELETE_URI.value
    reply = await peer.request_bytes(bytes(frame))
    assert summary(reply) == (MessageType.OK, ECHO_URI, b"deleted")
    assert deleted == [b"record 7"]
