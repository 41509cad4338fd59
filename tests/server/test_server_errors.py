"""TCPServer answers bad messages and failing handlers, and keeps serving."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest
from server_peer import request

from netaio_core import Message, MessageType, make_error_response
from netaio_server import TCPServer

SECRET = "database password is hunter2"


def echo_server() -> TCPServer[Message]:
    server = TCPServer(host="127.0.0.1", port=0)

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        return request(b"echo", message.body.content, MessageType.RESPOND_URI)

    return server


def with_bad_checksum(message: Message) -> bytes:
    data = bytearray(message.encode())
    struct.pack_into("!I", data, 5, (message.header.checksum + 1) & 0xFFFFFFFF)
    return bytes(data)


async def test_checksum_failure_gets_invalid_message_and_connection_stays(serve, connect):
    server = echo_server()
    called: list[bytes] = []
    server.add_handler(MessageType.PUBLISH_URI, lambda m, w: called.append(m.body.content))
    await serve(server)
    peer = await connect(server)

    await peer.send_bytes(with_bad_checksum(request(b"p", b"tampered", MessageType.PUBLISH_URI)))
    error = await peer.receive()

    assert error == make_error_response("invalid message")
    assert error.header.message_type is MessageType.ERROR
    assert called == []  # no handler sees a message that fails its checksum
    reply = await peer.request(request(b"echo", b"still here"))
    assert reply.body.content == b"still here"


async def test_malformed_body_gets_invalid_message_and_connection_stays(serve, connect):
    server = await serve(echo_server())
    peer = await connect(server)
    # A well-framed message whose body announces a uri longer than itself.
    body = struct.pack("!I", 50) + b"short"
    auth = request().auth_data.encode()
    header = struct.pack("!BHHI", 0, len(auth), len(body), 0)
    await peer.send_bytes(header + auth + body)

    assert await peer.receive() == make_error_response("invalid message")
    assert (await peer.request(request(b"echo", b"ok"))).body.content == b"ok"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_raising_handler_gets_generic_error_and_traceback_is_logged(
    serve, connect, caplog, kind
):
    server = echo_server()

    def fail_sync(message: Message, writer: asyncio.StreamWriter) -> Message:
        raise RuntimeError(SECRET)

    async def fail_async(message: Message, writer: asyncio.StreamWriter) -> Message:
        await asyncio.sleep(0)
        raise RuntimeError(SECRET)

    server.add_handler(
        (MessageType.REQUEST_URI, b"boom"), fail_sync if kind == "sync" else fail_async
    )
    await serve(server)
    peer = await connect(server)

    with caplog.at_level(logging.ERROR, logger="netaio.server"):
        reply = await peer.request(request(b"boom", b"x"))

    assert reply.header.message_type is MessageType.ERROR
    wire = reply.encode()
    for leak in (SECRET.encode(), b"RuntimeError", b"Traceback", b"boom"):
        assert leak not in wire
    failures = [r for r in caplog.records if r.name == "netaio.server" and r.exc_info]
    assert len(failures) == 1
    assert failures[0].levelno == logging.ERROR
    exc_type, exc, _ = failures[0].exc_info
    assert exc_type is RuntimeError
    assert str(exc) == SECRET
    assert SECRET in caplog.text  # the traceback itself, with the message
    assert "Traceback" in caplog.text
    # The connection is still served.
    assert (await peer.request(request(b"echo", b"after"))).body.content == b"after"
    assert len(server.clients) == 1


async def test_raising_default_handler_is_contained_too(serve, connect, caplog):
    def broken_default(message: Message, writer: asyncio.StreamWriter) -> Message:
        raise KeyError(SECRET)

    server = echo_server()
    server.default_handler = broken_default
    await serve(server)
    peer = await connect(server)

    with caplog.at_level(logging.ERROR, logger="netaio.server"):
        reply = await peer.request(request(b"nowhere"))

    assert reply.header.message_type is MessageType.ERROR
    assert SECRET.encode() not in reply.encode()
    assert any(r.exc_info for r in caplog.records)
    assert (await peer.request(request(b"echo", b"alive"))).body.content == b"alive"


async def test_a_failing_connection_does_not_disturb_another(serve, connect):
    server = echo_server()
    server.add_handler((MessageType.REQUEST_URI, b"boom"), lambda m, w: 1 / 0)
    await serve(server)
    good = await connect(server)
    bad = await connect(server)

    await bad.send_bytes(with_bad_checksum(request(b"echo", b"x")))
    await bad.send(request(b"boom"))
    assert (await good.request(request(b"echo", b"fine"))).body.content == b"fine"
    assert (await bad.receive()).body.content == b"invalid message"
    assert (await bad.receive()).header.message_type is MessageType.ERROR
