"""request()/reply correlation, receive loops, ephemeral handlers,
subscriptions, hooks and helpers, end to end over loopback sockets.

Every wait is bounded (``asyncio.wait_for``); tests synchronise on events
and futures, never on sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Hashable

import pytest
from token_plugin import TokenPlugin

from netaio import (
    AuthenticationError,
    Body,
    ConnectionClosedError,
    HMACAuthPlugin,
    Limits,
    Message,
    MessageType,
    NotConnectedError,
    TCPClient,
    TCPServer,
    make_error_msg,
    make_not_found_msg,
    make_not_permitted_msg,
    make_ok_msg,
    make_respond_uri_msg,
)
from netaio_client import SubscriptionError
from netaio_core import AuthFields, MessageReader, correlation_id, set_correlation_id

TIMEOUT = 5.0


def msg(uri: bytes, content: bytes = b"", kind: MessageType = MessageType.REQUEST_URI) -> Message:
    return Message.prepare(Body.prepare(content, uri), kind)


def reply(uri: bytes, content: bytes = b"") -> Message:
    return msg(uri, content, MessageType.RESPOND_URI)


@pytest.fixture
async def server() -> AsyncIterator[TCPServer[Message]]:
    """A server on a free loopback port with an echo handler; tests add more."""
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        return reply(b"echo", message.body.content)

    async with server:
        yield server


@pytest.fixture
async def client(server: TCPServer[Message]) -> AsyncIterator[TCPClient[Message]]:
    async with TCPClient(port=server.port) as client:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        yield client


# -- request(): many tasks, one connection ------------------------------------


async def test_1000_concurrent_requests_each_get_their_own_reply(server, client):
    drawn: list[float] = []
    active = 0
    most_active = 0

    @server.on((MessageType.REQUEST_URI, b"work"))
    async def work(message: Message, writer: asyncio.StreamWriter) -> Message:
        nonlocal active, most_active
        delay = random.uniform(0, 0.020)
        drawn.append(delay)
        active += 1
        most_active = max(most_active, active)
        try:
            await asyncio.sleep(delay)  # the handler's work, not a synchronisation
        finally:
            active -= 1
        return reply(b"work", message.body.content)

    async def asker(task: int) -> list[tuple[bytes, bytes]]:
        pairs = []
        for n in range(5):
            token = f"{task}:{n}:{random.getrandbits(32)}".encode()
            answer = await client.request(b"work", token)
            pairs.append((token, answer.body.content))
        return pairs

    started = time.perf_counter()
    results = await asyncio.wait_for(asyncio.gather(*(asker(t) for t in range(200))), 60)
    elapsed = time.perf_counter() - started

    pairs = [pair for task in results for pair in task]
    assert len(pairs) == 1000
    assert all(sent == got for sent, got in pairs)
    assert len(drawn) == 1000
    sequential = sum(drawn)
    assert elapsed < 0.1 * sequential, f"{elapsed:.3f}s vs sequential {sequential:.3f}s"
    assert 1 < most_active <= Limits().max_concurrent_requests


async def test_error_replies_come_back_promptly_with_their_requests_cid(server, client):
    gate = asyncio.Event()

    @server.on((MessageType.REQUEST_URI, b"slow"))
    async def slow(message: Message, writer: asyncio.StreamWriter) -> Message:
        await gate.wait()
        return reply(b"slow", b"finally")

    @server.on((MessageType.REQUEST_URI, b"boom"))
    async def boom(message: Message, writer: asyncio.StreamWriter) -> Message:
        raise RuntimeError("handler failure")

    server.add_handler(
        (MessageType.REQUEST_URI, b"guarded"),
        lambda m, w: reply(b"guarded", b"secret"),
        TokenPlugin("token", b"right"),
    )

    async def refused_reply() -> Message:
        # An AUTH_ERROR reply is raised as AuthenticationError, which holds it.
        with pytest.raises(AuthenticationError) as info:
            await client.request(b"guarded")
        assert isinstance(info.value.reply, Message)
        return info.value.reply

    slow_task = asyncio.ensure_future(client.request(b"slow", timeout=TIMEOUT))
    missing, failed, refused, echoed = await asyncio.wait_for(
        asyncio.gather(
            client.request(b"nowhere", b"?"),
            client.request(b"boom"),
            refused_reply(),
            client.request(b"echo", b"normal"),
        ),
        TIMEOUT,
    )
    assert not slow_task.done()  # the others did not wait for it
    gate.set()
    slow_reply = await asyncio.wait_for(slow_task, TIMEOUT)

    assert missing.header.message_type is MessageType.NOT_FOUND
    assert failed.header.message_type is MessageType.ERROR
    assert failed.body.content == b"internal server error"
    assert refused.header.message_type is MessageType.AUTH_ERROR
    assert refused.body.content == b"auth failed: token"
    assert echoed.body.content == b"normal"
    assert slow_reply.body.content == b"finally"
    cids = [correlation_id(m) for m in (missing, failed, refused, echoed, slow_reply)]
    assert None not in cids
    assert len(set(cids)) == 5


async def test_framework_replies_echo_the_cid_on_the_wire(server):
    """A raw peer picks its own ids: every kind of framework reply echoes them."""
    server.add_handler((MessageType.REQUEST_URI, b"boom"), lambda m, w: 1 / 0)
    server.add_handler(
        (MessageType.REQUEST_URI, b"guarded"), lambda m, w: None, TokenPlugin("token", b"right")
    )
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", server.port), TIMEOUT
    )
    try:
        frames = []
        for cid, uri in ((101, b"nowhere"), (102, b"boom"), (103, b"guarded"), (104, b"echo")):
            message = msg(uri, b"x")
            set_correlation_id(message, cid)
            frames.append(message.encode())
        corrupt = msg(b"echo", b"abc")
        set_correlation_id(corrupt, 0xFFFFFFFF)
        raw = bytearray(corrupt.encode())
        raw[-1] ^= 0xFF  # the checksum no longer matches
        frames.append(bytes(raw))
        writer.write(b"".join(frames))
        frames_reader: MessageReader[Message] = MessageReader()
        replies = {}
        for _ in range(5):
            answer = await asyncio.wait_for(frames_reader.read(reader), TIMEOUT)
            replies[correlation_id(answer)] = answer
    finally:
        writer.close()
    assert replies[101].header.message_type is MessageType.NOT_FOUND
    assert replies[102].body.content == b"internal server error"
    assert replies[103].header.message_type is MessageType.AUTH_ERROR
    assert replies[104].body.content == b"x"
    assert replies[0xFFFFFFFF].body.content == b"invalid message"


async def test_reply_failing_the_clients_auth_raises_authentication_error():
    server: TCPServer[Message] = TCPServer(
        host="127.0.0.1", port=0, auth_plugin=HMACAuthPlugin({"secret": "server"})
    )
    async with (
        server,
        TCPClient(port=server.port, auth_plugin=HMACAuthPlugin({"secret": "other"})) as client,
    ):
        await client.connect()
        # The server refuses the request and signs its AUTH_ERROR with its own
        # secret, which the client's check rejects: request() raises.
        with pytest.raises(AuthenticationError):
            await client.request(b"anything", timeout=TIMEOUT)


async def test_timeout_forgets_the_request_and_a_late_reply_is_dropped(server, client, caplog):
    release = asyncio.Event()
    returned = asyncio.Event()

    @server.on((MessageType.REQUEST_URI, b"late"))
    async def late(message: Message, writer: asyncio.StreamWriter) -> Message:
        await release.wait()
        returned.set()  # the reply is written in the same step
        return reply(b"late", b"too late")

    @server.on((MessageType.REQUEST_URI, b"after-late"))
    async def after_late(message: Message, writer: asyncio.StreamWriter) -> Message:
        release.set()
        await returned.wait()  # so the late reply leaves first
        return reply(b"after-late", b"fine")

    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await client.request(b"late", timeout=0.2)
    assert time.perf_counter() - started < 2

    with caplog.at_level(logging.WARNING, logger="netaio.client"):
        answer = await asyncio.wait_for(client.request(b"after-late"), TIMEOUT)
    assert answer.body.content == b"fine"
    assert any("matches no pending request" in r.getMessage() for r in caplog.records)
    assert (await client.request(b"echo", b"still works")).body.content == b"still works"


async def test_late_reply_with_nothing_pending_reaches_no_receiver(server, client):
    """The late reply must be dropped even when no other request is pending:
    it must not surface from receive_once (replies never go to receivers)."""
    release = asyncio.Event()
    returned = asyncio.Event()

    @server.on((MessageType.REQUEST_URI, b"late"))
    async def late(message: Message, writer: asyncio.StreamWriter) -> Message:
        await release.wait()
        returned.set()
        return reply(b"late", b"too late")

    with pytest.raises(TimeoutError):
        await client.request(b"late", timeout=0.2)
    release.set()
    await asyncio.wait_for(returned.wait(), TIMEOUT)
    await server.broadcast(msg(b"marker", b"", MessageType.NOTIFY_URI))
    received = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert received is not None
    assert (received.header.message_type, received.body.uri) == (MessageType.NOTIFY_URI, b"marker")


async def test_lost_connection_fails_every_pending_request_at_once(server, client):
    writers: list[asyncio.StreamWriter] = []
    arrived = asyncio.Event()

    @server.on((MessageType.REQUEST_URI, b"hang"))
    async def hang(message: Message, writer: asyncio.StreamWriter) -> Message:
        writers.append(writer)
        if len(writers) == 10:
            arrived.set()
        await asyncio.Event().wait()  # never replies
        raise AssertionError("unreachable")

    pending = [asyncio.ensure_future(client.request(b"hang", timeout=30)) for _ in range(10)]
    await asyncio.wait_for(arrived.wait(), TIMEOUT)
    started = time.perf_counter()
    writers[0].transport.abort()
    results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), TIMEOUT)
    assert time.perf_counter() - started < 2
    assert all(isinstance(r, ConnectionClosedError) for r in results), results


async def test_request_to_an_unknown_server_raises_not_connected(client):
    with pytest.raises(NotConnectedError):
        await client.request(b"echo", server=("127.0.0.1", 1))


async def test_create_update_delete_and_message_type(server, client):
    for kind in (
        MessageType.CREATE_URI,
        MessageType.UPDATE_URI,
        MessageType.DELETE_URI,
        MessageType.PUBLISH_URI,
    ):

        def answer(m: Message, w: asyncio.StreamWriter) -> Message:
            return reply(m.body.uri, f"{m.header.message_type.name}:".encode() + m.body.content)

        server.add_handler(kind, answer)

    created = await client.create(b"/a", b"1")
    updated = await client.update(b"/a", b"2")
    deleted = await client.delete(b"/a")
    published = await client.request(b"/a", b"3", message_type=MessageType.PUBLISH_URI)
    requested = await client.request(b"echo", b"4")

    assert created.body.content == b"CREATE_URI:1"
    assert updated.body.content == b"UPDATE_URI:2"
    assert deleted.body.content == b"DELETE_URI:"
    assert published.body.content == b"PUBLISH_URI:3"
    assert requested.body.content == b"4"


# -- receive loops ------------------------------------------------------------------


async def test_managed_receive_loops():
    async with (
        TCPServer(host="127.0.0.1", port=0) as one,
        TCPServer(host="127.0.0.1", port=0) as two,
        TCPClient(port=one.port) as client,
    ):
        other = ("127.0.0.1", two.port)
        await client.connect()
        await client.connect(*other)
        assert await client.get_receive_loops() == {}
        assert await client.stop_receive_loop() is False

        task, was_running = await client.start_receive_loop()
        again, was_running_again = await client.start_receive_loop(("127.0.0.1", one.port))
        assert (was_running, was_running_again) == (False, True)
        assert again is task
        other_task, _ = await client.start_receive_loop(other)
        assert await client.get_receive_loops() == {
            ("127.0.0.1", one.port): task,
            other: other_task,
        }

        assert await client.stop_receive_loop() is True
        assert task.done()
        assert await client.stop_receive_loop() is False
        assert await client.get_receive_loops() == {other: other_task}

        await client.start_receive_loop()
        assert await client.stop_all_receive_loops() == 2
        assert other_task.done()
        assert await client.get_receive_loops() == {}
        assert await client.stop_all_receive_loops() == 0

        with pytest.raises(NotConnectedError):
            await client.start_receive_loop(("127.0.0.1", 1))


async def test_notifications_reach_handlers_while_requests_run(server, client):
    notified: list[bytes] = []
    all_notified = asyncio.Event()
    replies_seen: list[Message] = []

    @server.on((MessageType.REQUEST_URI, b"chatty"))
    async def chatty(message: Message, writer: asyncio.StreamWriter) -> Message:
        await server.send(writer, msg(b"news", message.body.content, MessageType.NOTIFY_URI))
        return reply(b"chatty", message.body.content)

    @client.on((MessageType.NOTIFY_URI, b"news"))
    def news(message: Message, writer: asyncio.StreamWriter) -> None:
        notified.append(message.body.content)
        if len(notified) == 20:
            all_notified.set()

    client.add_handler(MessageType.RESPOND_URI, lambda m, w: replies_seen.append(m))

    await client.start_receive_loop()
    tokens = [str(n).encode() for n in range(20)]
    answers = await asyncio.wait_for(
        asyncio.gather(*(client.request(b"chatty", t) for t in tokens)), TIMEOUT
    )
    await asyncio.wait_for(all_notified.wait(), TIMEOUT)
    assert [a.body.content for a in answers] == tokens
    assert sorted(notified) == sorted(tokens)
    assert replies_seen == []  # replies to request() never reach handlers
    assert await client.stop_receive_loop() is True


async def test_second_concurrent_receive_once_raises_runtime_error(server, client):
    first = asyncio.ensure_future(client.receive_once())
    second = asyncio.ensure_future(client.receive_once())
    done, _ = await asyncio.wait({first, second}, timeout=TIMEOUT, return_when="FIRST_COMPLETED")
    assert len(done) == 1
    loser = done.pop()
    winner = second if loser is first else first
    with pytest.raises(RuntimeError, match="another task is already receiving"):
        loser.result()
    await server.broadcast(msg(b"hello", b"", MessageType.NOTIFY_URI))
    received = await asyncio.wait_for(winner, TIMEOUT)
    assert received is not None
    assert received.body.uri == b"hello"


# -- ephemeral handlers -------------------------------------------------------------


async def test_server_ephemeral_handler_runs_once_before_the_persistent_one(server, client):
    key = (MessageType.REQUEST_URI, b"thing")
    server.add_handler(key, lambda m, w: reply(b"thing", b"persistent"))
    server.add_ephemeral_handler(key, lambda m, w: reply(b"thing", b"ephemeral"))

    first = await client.request(b"thing")
    second = await client.request(b"thing")
    assert (first.body.content, second.body.content) == (b"ephemeral", b"persistent")

    server.add_ephemeral_handler(key, lambda m, w: reply(b"thing", b"never"))
    server.remove_ephemeral_handler(key)
    assert (await client.request(b"thing")).body.content == b"persistent"

    server.remove_handler(key)
    server.remove_handler(key)  # removing twice is harmless
    server.remove_ephemeral_handler(key)
    assert (await client.request(b"thing")).header.message_type is MessageType.NOT_FOUND


async def test_server_once_decorator(server, client):
    calls: list[bytes] = []

    @server.once((MessageType.REQUEST_URI, b"one-shot"))
    async def one_shot(message: Message, writer: asyncio.StreamWriter) -> Message:
        calls.append(message.body.content)
        return reply(b"one-shot", b"done")

    assert callable(one_shot)  # returned unchanged
    first = await client.request(b"one-shot", b"a")
    second = await client.request(b"one-shot", b"b")
    assert first.body.content == b"done"
    assert second.header.message_type is MessageType.NOT_FOUND
    assert calls == [b"a"]


async def test_client_ephemeral_handlers(server, client):
    key = (MessageType.NOTIFY_URI, b"tick")
    seen: list[str] = []
    client.add_handler(key, lambda m, w: seen.append("persistent"))

    @client.once(key)
    def first_tick(message: Message, writer: asyncio.StreamWriter) -> Message:
        seen.append("ephemeral")
        return msg(b"tick", b"handled once", MessageType.OK)

    client.add_ephemeral_handler((MessageType.NOTIFY_URI, b"gone"), lambda m, w: seen.append("no"))
    client.remove_ephemeral_handler((MessageType.NOTIFY_URI, b"gone"))

    for uri in (b"tick", b"tick", b"gone"):
        await server.broadcast(msg(uri, b"", MessageType.NOTIFY_URI))
    one = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    two = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    three = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert one is not None
    assert one.body.content == b"handled once"
    assert two is not None
    assert two.header.message_type is MessageType.NOTIFY_URI
    assert three is not None
    assert three.body.uri == b"gone"
    assert seen == ["ephemeral", "persistent"]

    client.remove_handler(key)
    await server.broadcast(msg(b"tick", b"", MessageType.NOTIFY_URI))
    assert await asyncio.wait_for(client.receive_once(), TIMEOUT) is not None
    assert seen == ["ephemeral", "persistent"]


# -- subscriptions and hooks ----------------------------------------------------------


async def test_subscribe_feed_and_unsubscribe_on_exit(server, client):
    server.enable_subscriptions()
    async with client.subscribe(b"room") as feed:
        assert set(server.subscriptions) == {b"room"}
        await server.notify(b"room", msg(b"room", b"first", MessageType.NOTIFY_URI))
        await server.broadcast(msg(b"elsewhere", b"", MessageType.NOTIFY_URI))
        await server.notify(b"room", msg(b"room", b"second", MessageType.NOTIFY_URI))
        got = [(await asyncio.wait_for(feed.__anext__(), TIMEOUT)).body.content for _ in "12"]
        assert got == [b"first", b"second"]
        # A notification for another uri is not the feed's: it is queued.
        other = await asyncio.wait_for(client.receive_once(), TIMEOUT)
        assert other is not None
        assert other.body.uri == b"elsewhere"
    assert server.subscriptions == {}


async def test_subscribe_async_for(server, client):
    server.enable_subscriptions()
    contents = []
    async with client.subscribe(b"feed") as feed:
        for n in range(3):
            await server.notify(b"feed", msg(b"feed", str(n).encode(), MessageType.NOTIFY_URI))

        async def take() -> None:
            async for message in feed:
                contents.append(message.body.content)
                if len(contents) == 3:
                    return

        await asyncio.wait_for(take(), TIMEOUT)
    assert contents == [b"0", b"1", b"2"]


async def test_subscribe_without_enable_subscriptions_raises(server, client):
    with pytest.raises(SubscriptionError) as raised:
        async with client.subscribe(b"room"):
            pytest.fail("entered an unconfirmed subscription")
    assert raised.value.reply.header.message_type is MessageType.NOT_FOUND
    assert server.subscriptions == {}
    assert (await client.request(b"echo", b"ok")).body.content == b"ok"


async def test_connection_hooks_sync_async_and_failing(caplog):
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)
    events: list[str] = []
    connected = asyncio.Event()
    disconnected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    @server.on_connect
    def sync_connect(writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        events.append("sync connect")

    @server.on_connect
    async def async_connect(writer: asyncio.StreamWriter) -> None:
        events.append("async connect")
        connected.set()

    @server.on_connect
    def failing_sync(writer: asyncio.StreamWriter) -> None:
        raise RuntimeError("sync hook failure")

    @server.on_connect
    async def failing_async(writer: asyncio.StreamWriter) -> None:
        raise RuntimeError("async hook failure")

    @server.on_disconnect
    def sync_disconnect(writer: asyncio.StreamWriter) -> None:
        events.append("sync disconnect")
        assert writer not in server.clients

    @server.on_disconnect
    async def async_disconnect(writer: asyncio.StreamWriter) -> None:
        events.append("async disconnect")
        disconnected.set()

    server.add_handler(MessageType.REQUEST_URI, lambda m, w: reply(b"ok", b"served"))
    with caplog.at_level(logging.ERROR, logger="netaio.server"):
        async with server, TCPClient(port=server.port) as client:
            await client.connect()
            await asyncio.wait_for(connected.wait(), TIMEOUT)
            answer = await client.request(b"x")  # the failing hooks harmed nothing
            assert answer.body.content == b"served"
            await client.close()
            await asyncio.wait_for(disconnected.wait(), TIMEOUT)

    assert events == ["sync connect", "async connect", "sync disconnect", "async disconnect"]
    assert len(writers) == 1
    failures = [r for r in caplog.records if "hook" in r.getMessage().lower()]
    assert len(failures) == 2
    texts = " ".join(str(r.exc_info[1]) for r in failures if r.exc_info)
    assert "sync hook failure" in texts
    assert "async hook failure" in texts


# -- server ordering and concurrency -----------------------------------------------------


async def test_uncorrelated_messages_are_handled_strictly_in_order(server, client):
    active = 0
    most_active = 0
    handled: list[bytes] = []

    @server.on((MessageType.REQUEST_URI, b"ordered"))
    async def ordered(message: Message, writer: asyncio.StreamWriter) -> Message:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        # Earlier messages take longer: handled concurrently, they would finish
        # (and reply) in reverse.
        await asyncio.sleep(0.002 * (10 - int(message.body.content)))
        handled.append(message.body.content)
        active -= 1
        return reply(b"ordered", message.body.content)

    tokens = [str(n).encode() for n in range(10)]
    for token in tokens:
        await client.send(msg(b"ordered", token))
    got = []
    for _ in tokens:
        answer = await asyncio.wait_for(client.receive_once(), TIMEOUT)
        assert answer is not None
        assert correlation_id(answer) is None
        got.append(answer.body.content)
    assert got == tokens
    assert handled == tokens
    assert most_active == 1


@pytest.mark.parametrize("limit", [1, 3, 8])
async def test_max_concurrent_requests_is_honoured(limit):
    server: TCPServer[Message] = TCPServer(
        host="127.0.0.1", port=0, limits=Limits(max_concurrent_requests=limit)
    )
    active = 0
    most_active = 0
    full = asyncio.Event()

    @server.on((MessageType.REQUEST_URI, b"work"))
    async def work(message: Message, writer: asyncio.StreamWriter) -> Message:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        if active >= limit:
            full.set()
        try:
            await asyncio.wait_for(full.wait(), TIMEOUT)  # until the limit is reached
            await asyncio.sleep(0.001)
        finally:
            active -= 1
        return reply(b"work", message.body.content)

    async with server, TCPClient(port=server.port) as client:
        await client.connect()
        tokens = [str(n).encode() for n in range(4 * limit + 5)]
        answers = await asyncio.wait_for(
            asyncio.gather(*(client.request(b"work", t) for t in tokens)), TIMEOUT
        )
    assert [a.body.content for a in answers] == tokens
    assert most_active == limit


async def test_stop_lets_in_flight_correlated_handlers_finish(server, client):
    started = asyncio.Event()

    @server.on((MessageType.REQUEST_URI, b"slow"))
    async def slow(message: Message, writer: asyncio.StreamWriter) -> Message:
        started.set()
        await asyncio.sleep(0.05)
        return reply(b"slow", b"finished")

    pending = asyncio.ensure_future(client.request(b"slow"))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    await asyncio.wait_for(server.stop(grace=TIMEOUT), TIMEOUT)
    answer = await asyncio.wait_for(pending, TIMEOUT)
    assert answer.body.content == b"finished"


# -- helpers and aliases ------------------------------------------------------------------


def test_message_helpers():
    ok = make_ok_msg()
    assert (ok.header.message_type, ok.body.uri, ok.body.content) == (MessageType.OK, b"", b"")
    ok = make_ok_msg("done", b"/job")
    assert (ok.body.uri, ok.body.content) == (b"/job", b"done")
    respond = make_respond_uri_msg(b"data", b"/x")
    assert (respond.header.message_type, respond.body.uri, respond.body.content) == (
        MessageType.RESPOND_URI,
        b"/x",
        b"data",
    )
    missing = make_not_found_msg()
    assert (missing.header.message_type, missing.body.content) == (
        MessageType.NOT_FOUND,
        b"not found",
    )
    refused = make_not_permitted_msg(uri=b"/admin")
    assert (refused.header.message_type, refused.body.uri, refused.body.content) == (
        MessageType.NOT_PERMITTED,
        b"/admin",
        b"not permitted",
    )
    assert MessageType.NOT_PERMITTED.value == 25
    for text, kind in (
        ("item not found", MessageType.NOT_FOUND),
        (b"auth failed", MessageType.AUTH_ERROR),
        ("not permitted here", MessageType.NOT_PERMITTED),
        ("disk on fire", MessageType.ERROR),
    ):
        error = make_error_msg(text)
        assert error.header.message_type is kind, text
        assert error.body.uri == b"ERROR"
        assert error.body.content == (text.encode() if isinstance(text, str) else text)
    forced = make_error_msg("not found", b"/u", message_type=MessageType.ERROR)
    assert (forced.header.message_type, forced.body.uri) == (MessageType.ERROR, b"/u")
    # They round-trip on the wire.
    assert Message.decode(refused.encode()) == refused


def test_helpers_are_exported_by_core_and_umbrella():
    import netaio
    import netaio_core

    for name in (
        "make_ok_msg",
        "make_respond_uri_msg",
        "make_not_found_msg",
        "make_not_permitted_msg",
        "make_error_msg",
    ):
        assert getattr(netaio, name) is getattr(netaio_core, name)


async def test_aliases():
    def extract(message: Message) -> list[Hashable]:
        return ["all"]

    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0, extract_keys=extract)
    assert server.extract_keys is extract
    fields_seen: list[dict[str, object]] = []

    @server.on("all")
    def everything(message: Message, writer: asyncio.StreamWriter) -> Message:
        fields_seen.append(dict(message.auth_data.fields))
        return reply(b"all", b"routed by alias")

    plugin = TokenPlugin("token", b"t")
    async with (
        server,
        TCPClient(port=server.port, keys_extractor=extract, auth_plugin=plugin) as client,
    ):
        assert client.extract_keys is extract
        await client.connect()
        await client.send(msg(b"anything"), use_auth=False)
        plain = await asyncio.wait_for(client.receive_once(), TIMEOUT)
        await client.send(msg(b"anything"))
        signed = await asyncio.wait_for(client.receive_once(), TIMEOUT)
    assert plain is None or plain.body.content == b"routed by alias"
    assert fields_seen[0] == {}
    assert fields_seen[1] == {"token": b"t"}
    assert signed is None or signed.body.content == b"routed by alias"


def test_auth_fields_carry_cid():
    message = msg(b"echo", b"hi")
    set_correlation_id(message, 7)
    assert message.auth_data.fields == {"cid": 7}
    decoded = Message.decode(message.encode())
    assert correlation_id(decoded) == 7
    assert isinstance(decoded.auth_data, AuthFields)
