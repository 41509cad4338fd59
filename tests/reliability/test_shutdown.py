"""Graceful shutdown: stop accepting, let in-flight handlers finish within the
grace period, send DISCONNECT, close everything, leave nothing behind."""

from __future__ import annotations

import asyncio
import gc

import pytest

from netaio_client import TCPClient
from netaio_core import ConnectionClosedError, Message, MessageType
from netaio_server import TCPServer

from .conftest import Serve
from .support import TIMEOUT, echo_server, request, summary

DISCONNECT = (MessageType.DISCONNECT, b"1", b"server stopping")


class SlowRoute:
    """A handler on ``(REQUEST_URI, b"slow")`` that answers once released and
    records whether it was cancelled."""

    def __init__(self, server: TCPServer[Message]) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False
        server.add_handler((MessageType.REQUEST_URI, b"slow"), self.handle)

    async def handle(self, message: Message, writer: asyncio.StreamWriter) -> Message:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return request(b"finished", b"slow", MessageType.RESPOND_URI)


async def connected_client(port: int) -> TCPClient[Message]:
    client: TCPClient[Message] = TCPClient("127.0.0.1", port)
    await client.connect()
    return client


def pending_tasks() -> list[asyncio.Task[object]]:
    current = asyncio.current_task()
    return [task for task in asyncio.all_tasks() if task is not current and not task.done()]


async def test_stop_finishes_in_flight_work_then_disconnects_everyone(serve: Serve) -> None:
    server = await serve(echo_server())
    slow = SlowRoute(server)
    busy, idle = await connected_client(server.port), await connected_client(server.port)
    disconnects: list[Message] = []
    idle.add_handler(MessageType.DISCONNECT, lambda message, writer: disconnects.append(message))
    idle_loop = asyncio.create_task(idle.receive_loop())
    try:
        await busy.send(request(b"", b"slow"))
        await asyncio.wait_for(slow.started.wait(), TIMEOUT)

        stopping = asyncio.create_task(server.stop(grace=TIMEOUT))
        await asyncio.sleep(0)  # one turn: stop() runs up to its wait for busy handlers
        assert not stopping.done()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), TIMEOUT)

        slow.release.set()
        # The in-flight request is answered, then the server says goodbye...
        reply = await asyncio.wait_for(busy.receive_once(), TIMEOUT)
        assert reply is not None
        assert summary(reply) == (MessageType.RESPOND_URI, b"slow", b"finished")
        goodbye = await asyncio.wait_for(busy.receive_once(), TIMEOUT)
        assert goodbye is not None
        assert summary(goodbye) == DISCONNECT
        # ...and ends the stream cleanly, between frames.
        with pytest.raises(ConnectionClosedError) as ended:
            await asyncio.wait_for(busy.receive_once(), TIMEOUT)
        assert ended.value.partial is False

        # The idle client's receive_loop saw DISCONNECT and returned normally.
        await asyncio.wait_for(idle_loop, TIMEOUT)  # returned, did not raise
        assert [summary(m) for m in disconnects] == [DISCONNECT]

        await asyncio.wait_for(stopping, TIMEOUT)
        assert not slow.cancelled
        assert not server.clients
        assert not server.subscriptions
        assert pending_tasks() == []
    finally:
        idle_loop.cancel()
        await busy.close_all()
        await idle.close_all()
    gc.collect()  # an unclosed transport would warn here (warnings are errors)


async def test_stop_cancels_a_handler_that_outlives_the_grace_period(serve: Serve) -> None:
    server = await serve(echo_server())
    slow = SlowRoute(server)
    client = await connected_client(server.port)
    try:
        await client.send(request(b"", b"slow"))
        await asyncio.wait_for(slow.started.wait(), TIMEOUT)

        await asyncio.wait_for(server.stop(grace=0.2), TIMEOUT)
        assert slow.cancelled
        # No reply for the cancelled request: DISCONNECT, then a clean end.
        goodbye = await asyncio.wait_for(client.receive_once(), TIMEOUT)
        assert goodbye is not None
        assert summary(goodbye) == DISCONNECT
        with pytest.raises(ConnectionClosedError) as ended:
            await asyncio.wait_for(client.receive_once(), TIMEOUT)
        assert ended.value.partial is False
        assert not server.clients
        assert pending_tasks() == []
    finally:
        await client.close_all()


async def test_cancelling_start_stops_the_server_gracefully() -> None:
    server = echo_server()
    serving = asyncio.create_task(server.start())
    await asyncio.wait_for(server.wait_started(), TIMEOUT)
    client = await connected_client(server.port)
    try:
        await client.send(request(b"hi"))
        reply = await asyncio.wait_for(client.receive_once(), TIMEOUT)
        assert reply is not None

        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(serving, TIMEOUT)
        goodbye = await asyncio.wait_for(client.receive_once(), TIMEOUT)
        assert goodbye is not None
        assert summary(goodbye) == DISCONNECT
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(client.receive_once(), TIMEOUT)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), TIMEOUT)
        assert pending_tasks() == []
    finally:
        await client.close_all()
