"""Exceptions from handlers and auth plugins stay contained to their message:
an error reply, a logged traceback, and the connection goes on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from netaio_client import TCPClient
from netaio_core import (
    AuthFieldsProtocol,
    BodyProtocol,
    Message,
    MessageProtocol,
    MessageType,
    make_error_response,
)
from netaio_server import TCPServer

from .conftest import Connect, Serve
from .support import (
    ECHO_URI,
    TIMEOUT,
    echo_reply,
    echo_server,
    error_reply,
    logged,
    request,
    summary,
    wait_until,
)

BOOM = b"boom"  # the content that makes the faulty part raise


class FaultyPlugin:
    """An auth plugin whose ``method`` fails on messages whose content is BOOM
    (``check`` and ``make`` raise; for ``error``, ``check`` rejects and
    ``error()`` raises). It signs with a ``signed`` field."""

    def __init__(self, method: str, always: bool = False) -> None:
        self.method = method
        self.always = always

    def _fails(self, method: str, body: BodyProtocol) -> bool:
        return self.method == method and (self.always or body.content == BOOM)

    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        if self._fails("make", body):
            raise RuntimeError("make exploded")
        auth_fields.fields["signed"] = b"yes"

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        if self._fails("check", body):
            raise RuntimeError("check exploded")
        return not self._fails("error", body)

    def error(self) -> MessageProtocol:
        if self.method == "error":
            raise RuntimeError("error exploded")
        return make_error_response("auth failed")


def faulty_server(part: str, method: str) -> TCPServer[Message]:
    """An echo server whose ``part`` (handler, instance plugin or the echo
    route's plugin) fails with ``method`` on BOOM."""
    instance = FaultyPlugin(method) if part == "instance-plugin" else None
    route = FaultyPlugin(method) if part == "handler-plugin" else None
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0, auth_plugin=instance)

    if method == "async":

        @server.on((MessageType.REQUEST_URI, ECHO_URI), route)
        async def echo_async(message: Message, writer: asyncio.StreamWriter) -> Message:
            await asyncio.sleep(0)
            if part == "handler" and message.body.content == BOOM:
                raise RuntimeError("async handler exploded")
            return request(message.body.content, ECHO_URI, MessageType.RESPOND_URI)

    else:

        @server.on((MessageType.REQUEST_URI, ECHO_URI), route)
        def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
            if part == "handler" and message.body.content == BOOM:
                raise RuntimeError("sync handler exploded")
            return request(message.body.content, ECHO_URI, MessageType.RESPOND_URI)

    return server


def traceback_logged(caplog: pytest.LogCaptureFixture, logger: str) -> bool:
    """Whether ``logger`` logged an 'exploded' exception with its traceback."""
    return any(
        record.name == logger
        and record.exc_info is not None
        and "exploded" in str(record.exc_info[1])
        and record.exc_info[2] is not None
        for record in caplog.records
    )


INTERNAL_ERROR = error_reply(b"internal server error")
AUTH_ERROR = (MessageType.AUTH_ERROR, b"ERROR", b"auth failed")


@pytest.mark.parametrize(
    ("part", "method", "reply"),
    [
        pytest.param(part, method, reply, id=f"{part}-{method}")
        for part, method, reply in [
            ("handler", "sync", INTERNAL_ERROR),
            ("handler", "async", INTERNAL_ERROR),
            ("instance-plugin", "check", INTERNAL_ERROR),
            ("handler-plugin", "check", INTERNAL_ERROR),
            ("instance-plugin", "make", INTERNAL_ERROR),
            ("handler-plugin", "make", INTERNAL_ERROR),
            ("instance-plugin", "error", AUTH_ERROR),
            ("handler-plugin", "error", AUTH_ERROR),
        ]
    ],
)
async def test_failure_gets_an_error_reply_and_the_connection_goes_on(
    serve: Serve,
    connect: Connect,
    caplog: pytest.LogCaptureFixture,
    part: str,
    method: str,
    reply: tuple[MessageType, bytes, bytes],
) -> None:
    caplog.set_level(logging.INFO, logger="netaio.server")
    server = await serve(faulty_server(part, method))
    peer = await connect(server.port)

    answer = await peer.request(request(BOOM))
    assert summary(answer) == reply  # generic: "exploded" is not leaked
    assert traceback_logged(caplog, "netaio.server")

    fine = await peer.request(request(b"fine"))
    assert summary(fine) == echo_reply(b"fine")
    if part == "instance-plugin":
        assert answer.auth_data.fields == fine.auth_data.fields == {"signed": b"yes"}
    assert len(server.clients) == 1


async def test_instance_plugin_that_cannot_sign_gets_unsigned_errors(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(echo_server(auth_plugin=FaultyPlugin("make", always=True)))
    peer = await connect(server.port)
    for content in (b"one", b"two"):
        answer = await peer.request(request(content))
        assert summary(answer) == error_reply(b"internal server error")
        assert answer.auth_data.fields == {}
    assert traceback_logged(caplog, "netaio.server")
    assert len(server.clients) == 1


async def test_failing_make_error_closes_only_that_connection(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    def make_error(text: str) -> Message:
        raise RuntimeError("make_error exploded")

    server = await serve(echo_server(make_error_response=make_error))
    victim, bystander = await connect(server.port), await connect(server.port)

    bad_checksum = bytearray(request(b"x").encode())
    bad_checksum[5:9] = bytes(4)
    await victim.send_bytes(bytes(bad_checksum))  # its error reply needs make_error
    assert await victim.wait_closed_by_server() == b""
    assert logged(caplog, "Unexpected error on the connection")
    assert traceback_logged(caplog, "netaio.server")
    assert summary(await bystander.request(request(b"ok"))) == echo_reply(b"ok")


@pytest.mark.parametrize("failing", ["handler", "plugin-check"])
async def test_client_receive_loop_survives_a_failing_handler_or_plugin(
    serve: Serve, caplog: pytest.LogCaptureFixture, failing: str
) -> None:
    caplog.set_level(logging.INFO, logger="netaio.client")
    server = await serve(echo_server())
    received: list[bytes] = []

    def record(message: Message, writer: asyncio.StreamWriter) -> None:
        if failing == "handler" and message.body.content == BOOM:
            raise RuntimeError("client handler exploded")
        received.append(message.body.content)

    plugin = FaultyPlugin("check") if failing == "plugin-check" else None
    client: TCPClient[Message] = TCPClient("127.0.0.1", server.port, auth_plugin=plugin)
    client.add_handler(MessageType.NOTIFY_URI, record)
    async with client:
        await client.connect()
        await client.send(request(b"", b"t", MessageType.SUBSCRIBE_URI), set_auth=False)
        confirm = await asyncio.wait_for(client.receive_once(), TIMEOUT)
        assert confirm is not None
        loop_task = asyncio.create_task(client.receive_loop())
        for content in (b"first", BOOM, b"last"):
            await server.notify(b"t", request(content, b"t", MessageType.NOTIFY_URI))
        await wait_until(lambda: b"last" in received)
        assert received == [b"first", b"last"]
        assert traceback_logged(caplog, "netaio.client")
        assert not loop_task.done()
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
