"""TCPServer lifecycle, independence of instances, and its logger."""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any

import pytest
from server_peer import TIMEOUT, RawPeer, TaskRecorder, request

from netaio_core import Message, MessageType
from netaio_server import TCPServer, default_server_logger


def other_tasks() -> set[asyncio.Task[Any]]:
    """Every task of the loop but the test's own."""
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


def ping_server() -> TCPServer[Message]:
    server = TCPServer(host="127.0.0.1", port=0)
    server.add_handler(
        (MessageType.REQUEST_URI, b"ping"),
        lambda m, w: request(b"ping", b"pong", MessageType.RESPOND_URI),
    )
    return server


async def assert_refused(port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)


async def assert_closed_by_server(peer: RawPeer) -> None:
    """The server ends the connection: at most a DISCONNECT frame, then EOF."""
    rest = await peer.read_to_end()
    if rest:
        assert rest[0] == MessageType.DISCONNECT.value
    assert peer.reader.at_eof()


async def test_port_zero_binds_a_free_port_readable_afterwards():
    server = ping_server()
    assert server.port == 0
    async with server:
        assert server.port > 0
        peer = await RawPeer.open(server.port)
        assert (await peer.request(request(b"ping"))).body.content == b"pong"
        await peer.close()


async def test_documented_defaults():
    server = TCPServer()
    assert (server.host, server.port) == ("0.0.0.0", 8888)
    assert server.logger is default_server_logger
    assert server.auth_plugin is None
    assert (server.handlers, server.subscriptions, server.clients) == ({}, {}, set())


async def test_start_in_a_task_wait_started_then_stop():
    server = ping_server()
    serving = asyncio.create_task(server.start())
    await asyncio.wait_for(server.wait_started(), TIMEOUT)
    peer = await RawPeer.open(server.port)
    assert (await peer.request(request(b"ping"))).body.content == b"pong"

    await asyncio.wait_for(server.stop(), TIMEOUT)

    await asyncio.wait_for(serving, TIMEOUT)  # start() returns once stopped
    assert serving.exception() is None
    await assert_closed_by_server(peer)
    await peer.close()
    await assert_refused(server.port)
    assert server.clients == set()
    assert other_tasks() == set()


async def test_cancelling_start_stops_the_server():
    server = ping_server()
    serving = asyncio.create_task(server.start())
    await asyncio.wait_for(server.wait_started(), TIMEOUT)
    peer = await RawPeer.open(server.port)
    await peer.request(request(b"ping"))

    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(serving, TIMEOUT)

    await assert_closed_by_server(peer)
    await peer.close()
    await assert_refused(server.port)
    assert other_tasks() == set()


async def test_async_with_closes_listener_and_every_connection_leaving_no_task():
    server = ping_server()
    recorder = TaskRecorder()
    server.add_handler((MessageType.REQUEST_URI, b"whoami"), recorder)
    async with server as entered:
        assert entered is server
        peers = [await RawPeer.open(server.port) for _ in range(3)]
        for peer in peers:
            await peer.request(request(b"whoami"))
        assert len(server.clients) == 3
        assert other_tasks() == set()  # connections are protocols: no task each

    assert server.clients == set()
    assert all(writer.is_closing() for writer in recorder.tasks)
    assert other_tasks() == set()
    for peer in peers:
        await assert_closed_by_server(peer)
        await peer.close()
    await assert_refused(server.port)


async def test_stop_waits_for_a_handler_in_flight_and_its_reply_is_sent():
    server = TCPServer(host="127.0.0.1", port=0)
    entered, release = asyncio.Event(), asyncio.Event()

    @server.on(MessageType.REQUEST_URI)
    async def slow(message: Message, writer: asyncio.StreamWriter) -> Message:
        entered.set()
        await release.wait()
        return request(b"slow", b"done", MessageType.RESPOND_URI)

    await server.listen()
    peer = await RawPeer.open(server.port)
    await peer.send(request(b"slow"))
    await asyncio.wait_for(entered.wait(), TIMEOUT)

    stopping = asyncio.create_task(server.stop(grace=TIMEOUT))
    await asyncio.sleep(0)  # let stop() close the listener
    release.set()
    await asyncio.wait_for(stopping, TIMEOUT)

    assert (await peer.receive()).body.content == b"done"
    await assert_closed_by_server(peer)
    await peer.close()
    assert other_tasks() == set()


async def test_stop_is_idempotent_and_server_can_listen_again():
    server = ping_server()
    await server.stop()  # never started: nothing to do
    async with server:
        first_port = server.port
    await server.stop()
    server.port = 0
    async with server:
        peer = await RawPeer.open(server.port)
        assert (await peer.request(request(b"ping"))).body.content == b"pong"
        await peer.close()
    assert first_port > 0
    assert other_tasks() == set()


async def test_two_servers_share_no_mutable_state(serve, connect):
    one, two = TCPServer(host="127.0.0.1", port=0), TCPServer(host="127.0.0.1", port=0)
    for attr in ("handlers", "subscriptions", "clients"):
        assert getattr(one, attr) is not getattr(two, attr)
    recorder = TaskRecorder()
    one.add_handler((MessageType.REQUEST_URI, b"whoami"), recorder)

    @one.on(MessageType.SUBSCRIBE_URI)
    def subscribe(message: Message, writer: asyncio.StreamWriter) -> Message:
        one.subscribe(message.body.uri, writer)
        return request(message.body.uri, b"", MessageType.CONFIRM_SUBSCRIBE)

    await serve(one)
    await serve(two)
    assert one.port != two.port
    peer_one = await connect(one)
    await peer_one.request(request(b"whoami"))
    await peer_one.request(request(b"topic", b"", MessageType.SUBSCRIBE_URI))
    peer_two = await connect(two)
    # two knows none of one's handlers: its default handler answers.
    not_found = await peer_two.request(request(b"whoami"))

    assert not_found.header.message_type is MessageType.NOT_FOUND
    assert set(two.handlers) == set()
    assert set(one.subscriptions) == {b"topic"}
    assert two.subscriptions == {}
    assert len(one.clients) == 1
    assert len(two.clients) == 1
    assert one.clients.isdisjoint(two.clients)


def test_logger_is_netaio_server_at_info_with_only_a_null_handler():
    logger = logging.getLogger("netaio.server")
    assert default_server_logger is logger
    assert logger.level == logging.INFO
    assert [type(h) for h in logger.handlers] == [logging.NullHandler]


async def test_set_logger_replaces_the_logger(serve, connect, caplog):
    logger = logging.getLogger("tests.server.custom")
    server = ping_server()
    server.set_logger(logger)
    assert server.logger is logger
    with caplog.at_level(logging.INFO, logger="tests.server.custom"):
        await serve(server)
        peer = await connect(server)
        await peer.request(request(b"ping"))
    assert any(r.name == "tests.server.custom" for r in caplog.records)
    assert not any(r.name == "netaio.server" for r in caplog.records)


async def test_wait_started_raises_when_start_cannot_bind(serve):
    taken = await serve()
    server = TCPServer(host="127.0.0.1", port=taken.port)
    serving = asyncio.create_task(server.start())

    # (TimeoutError is an OSError too: check that it is the bind error.)
    with pytest.raises(OSError) as caught:
        await asyncio.wait_for(server.wait_started(), TIMEOUT)
    assert caught.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as caught:
        await asyncio.wait_for(serving, TIMEOUT)
    assert caught.value.errno == errno.EADDRINUSE

    # Once the port is free, the same server starts.
    await taken.stop()
    server.port = 0
    serving = asyncio.create_task(server.start())
    await asyncio.wait_for(server.wait_started(), TIMEOUT)
    await server.stop()
    await asyncio.wait_for(serving, TIMEOUT)


async def test_a_handler_can_stop_the_server():
    server = TCPServer(host="127.0.0.1", port=0)

    @server.on((MessageType.REQUEST_URI, b"shutdown"))
    async def shutdown(message: Message, writer: asyncio.StreamWriter) -> Message:
        await server.stop()
        return request(b"shutdown", b"bye", MessageType.OK)

    serving = asyncio.create_task(server.start())
    await asyncio.wait_for(server.wait_started(), TIMEOUT)
    caller, bystander = await RawPeer.open(server.port), await RawPeer.open(server.port)
    await bystander.request(request(b"unknown"))  # the server has registered it

    reply = await caller.request(request(b"shutdown"))

    assert reply.body.content == b"bye"  # the handler that stopped it still answers
    await asyncio.wait_for(serving, TIMEOUT)
    for peer in (caller, bystander):
        await assert_closed_by_server(peer)
        await peer.close()
    await assert_refused(server.port)
    assert server.clients == set()


def test_a_server_can_serve_again_in_another_event_loop():
    server = ping_server()

    async def serve_once() -> bytes:
        server.port = 0
        serving = asyncio.create_task(server.start())
        await asyncio.wait_for(server.wait_started(), TIMEOUT)
        peer = await RawPeer.open(server.port)
        reply = await peer.request(request(b"ping"))
        await server.stop()
        await asyncio.wait_for(serving, TIMEOUT)
        await peer.close()
        return reply.body.content

    assert asyncio.run(serve_once()) == b"pong"
    assert asyncio.run(serve_once()) == b"pong"  # its events are not bound to the first loop
