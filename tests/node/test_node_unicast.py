"""UDPNode on 127.0.0.1: requests, retries and deduplication under loss,
datagram limits, subscriptions by address, auth and cipher plugins."""

from __future__ import annotations

import asyncio
import importlib.util
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from enum import Enum
from typing import Any

import pytest
from token_plugin import TokenPlugin

from netaio_core import (
    AuthenticationError,
    Body,
    LimitExceededError,
    Message,
    MessageType,
    ProtocolError,
    ShortUriBody,
    make_message_type_class,
    make_ok_msg,
    make_respond_uri_msg,
    set_correlation_id,
)
from netaio_node import DatagramLimits, DatagramTooLargeError, UDPNode

FAST = DatagramLimits(retry_interval=0.02, max_retry_interval=0.1)
Addr = tuple[str, int]


def _node(**kwargs: Any) -> UDPNode[Message]:
    kwargs.setdefault("limits", FAST)
    return UDPNode(port=0, interface="127.0.0.1", **kwargs)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[UDPNode[Message], UDPNode[Message]]]:
    a, b = _node(), _node()
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


def _echo(node: UDPNode[Message], calls: Counter[bytes] | None = None) -> None:
    @node.on(MessageType.REQUEST_URI)
    def echo(message: Message, addr: Addr) -> Message:
        if calls is not None:
            calls[message.body.content] += 1
        return make_respond_uri_msg(
            message.body.content, message.body.uri, body_class=node.body_class
        )


def _lossy(node: UDPNode[Any], rate: float, seed: int) -> Counter[str]:
    """Drop ``rate`` of the datagrams ``node`` receives (seeded)."""
    rng = random.Random(seed)
    receive = node.datagram_received
    seen: Counter[str] = Counter()

    def datagram_received(data: bytes, addr: Addr) -> None:
        if rng.random() < rate:
            seen["dropped"] += 1
            return
        seen["delivered"] += 1
        receive(data, addr)

    node.datagram_received = datagram_received  # type: ignore[method-assign]
    return seen


async def test_request_response_and_crud(pair: tuple[UDPNode[Message], UDPNode[Message]]) -> None:
    a, b = pair
    _echo(b)

    @b.on((MessageType.CREATE_URI, b"item"))
    def create(message: Message, addr: Addr) -> Message:
        assert addr == a.addr
        return make_ok_msg(b"created " + message.body.content)

    @b.on(MessageType.UPDATE_URI)
    async def update(message: Message, addr: Addr) -> Message:
        await asyncio.sleep(0)
        return make_ok_msg(b"updated")

    @b.once(MessageType.DELETE_URI)
    def delete(message: Message, addr: Addr) -> Message:
        return make_ok_msg(b"deleted")

    reply = await a.request(b"hello", b.addr, content=b"world", timeout=2)
    assert (reply.header.message_type, reply.body.uri, reply.body.content) == (
        MessageType.RESPOND_URI,
        b"hello",
        b"world",
    )
    assert (await a.create(b"item", b"x", b.addr, timeout=2)).body.content == b"created x"
    assert (await a.update(b"item", b"y", b.addr, timeout=2)).body.content == b"updated"
    assert (await a.delete(b"item", b.addr, timeout=2)).body.content == b"deleted"
    assert (await a.delete(b"item", b.addr, timeout=2)).header.message_type is (
        MessageType.NOT_FOUND
    )
    b.remove_handler(MessageType.REQUEST_URI)
    reply = await a.request(b"hello", b.addr, timeout=2)
    assert reply.header.message_type is MessageType.NOT_FOUND
    # concurrent requests each get their own reply
    _echo(b)
    replies = await asyncio.gather(
        *(a.request(b"n", b.addr, content=bytes([i]), timeout=2) for i in range(50))
    )
    assert [r.body.content for r in replies] == [bytes([i]) for i in range(50)]


async def test_retries_and_dedup_under_loss(
    pair: tuple[UDPNode[Message], UDPNode[Message]],
) -> None:
    """30% of the datagrams each way are dropped: every request succeeds by
    retrying, and its handler runs exactly once."""
    a, b = pair
    calls: Counter[bytes] = Counter()
    _echo(b, calls)
    to_b, to_a = _lossy(b, 0.3, seed=1), _lossy(a, 0.3, seed=2)
    contents = [b"req%d" % i for i in range(40)]
    replies = await asyncio.gather(
        *(a.request(b"x", b.addr, content=c, timeout=5) for c in contents)
    )
    assert [r.body.content for r in replies] == contents
    assert calls == Counter(contents)  # once each, however many retries
    assert to_b["dropped"] > 0
    assert to_a["dropped"] > 0
    assert to_b["delivered"] > len(contents)  # retries reached the handler's node


async def test_a_repeated_datagram_gets_the_cached_reply(
    pair: tuple[UDPNode[Message], UDPNode[Message]],
) -> None:
    a, b = pair
    calls: Counter[bytes] = Counter()
    _echo(b, calls)
    request = Message.prepare(Body.prepare(b"once", b"x"))
    set_correlation_id(request, 7)
    data = a.encode(request)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.settimeout(2)
        raw.sendto(data, b.addr)
        first = await asyncio.to_thread(raw.recv, 70000)
        raw.sendto(data, b.addr)
        second = await asyncio.to_thread(raw.recv, 70000)
        # malformed datagrams are dropped; the node goes on
        raw.sendto(b"\x00garbage", b.addr)
        raw.sendto(data[:-1], b.addr)
        raw.sendto(data + b"!", b.addr)
    assert first == second
    assert calls == Counter({b"once": 1})
    assert (await a.request(b"x", b.addr, content=b"after", timeout=2)).body.content == b"after"


async def test_a_message_too_large_for_a_datagram(
    pair: tuple[UDPNode[Message], UDPNode[Message]],
) -> None:
    a, b = pair
    _echo(b)
    for size in (65_500, 70_000):
        with pytest.raises(DatagramTooLargeError, match="does not fit in a datagram") as info:
            await a.request(b"big", b.addr, content=b"x" * size, timeout=1)
        assert isinstance(info.value, LimitExceededError)
        assert isinstance(info.value, ProtocolError)
    with pytest.raises(DatagramTooLargeError):
        a.send(make_ok_msg(b"x" * 65_500), b.addr)
    fits = 65_507 - 9 - 3 - 4 - 3 - 16  # header, auth, uri length, uri, cid
    reply = await a.request(b"big", b.addr, content=b"x" * (fits - 200), timeout=2)
    assert len(reply.body.content) == fits - 200
    # a smaller limit on the receiver: a larger datagram is dropped
    small = _node(limits=DatagramLimits(max_frame_size=512, retry_interval=0.02))
    await small.start()
    try:
        _echo(small)
        assert (await a.request(b"s", small.addr, content=b"y" * 100, timeout=1)).body.content
        with pytest.raises(TimeoutError):
            await a.request(b"s", small.addr, content=b"y" * 1000, timeout=0.3)
    finally:
        await small.stop()


async def test_notify_subscribers_by_address(
    pair: tuple[UDPNode[Message], UDPNode[Message]],
) -> None:
    a, b = pair
    c = _node()
    await c.start()
    got: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def listen(name: str) -> Callable[[Message, Addr], None]:
        def on_notify(message: Message, addr: Addr) -> None:
            got.put_nowait((name, message.body.content))

        return on_notify

    b.add_handler((MessageType.NOTIFY_URI, b"room"), listen("b"))
    c.add_handler((MessageType.NOTIFY_URI, b"room"), listen("c"))
    try:
        a.subscribe(b"room", b.addr)
        assert (
            a.notify(b"room", Message.prepare(Body.prepare(b"1", b"room"), MessageType.NOTIFY_URI))
            == 1
        )
        assert await asyncio.wait_for(got.get(), 2) == ("b", b"1")
        # a peer subscribes itself with SUBSCRIBE_URI
        a.enable_subscriptions()
        confirm = await c.request(
            b"room", a.addr, message_type=MessageType.SUBSCRIBE_URI, timeout=2
        )
        assert confirm.header.message_type is MessageType.CONFIRM_SUBSCRIBE
        assert a.subscriptions[b"room"] == {b.addr, c.addr}
        a.notify(b"room", Message.prepare(Body.prepare(b"2", b"room"), MessageType.NOTIFY_URI))
        received = {await asyncio.wait_for(got.get(), 2) for _ in range(2)}
        assert received == {("b", b"2"), ("c", b"2")}
        a.unsubscribe(b"room", b.addr)
        await c.request(b"room", a.addr, message_type=MessageType.UNSUBSCRIBE_URI, timeout=2)
        assert b"room" not in a.subscriptions
        assert a.notify(b"room", make_ok_msg()) == 0
    finally:
        await c.stop()


def _hmac(secret: bytes = b"s" * 32, **config: Any) -> Any:
    auth = pytest.importorskip("netaio_auth", reason="netaio-auth is not installed")
    return auth.HMACAuthPlugin({"secret": secret, **config})


async def test_hmac_auth_plugin_on_datagrams_with_loss() -> None:
    """Signed requests with replay protection: retries of one request are
    the same datagram, answered from the reply cache before the replay
    check (which would refuse them)."""
    a, b = _node(auth_plugin=_hmac(max_skew=30)), _node(auth_plugin=_hmac(max_skew=30))
    stranger = _node(auth_plugin=_hmac(b"x" * 32))
    for node in (a, b, stranger):
        await node.start()
    try:
        calls: Counter[bytes] = Counter()
        _echo(b, calls)
        _lossy(b, 0.3, seed=3)
        _lossy(a, 0.3, seed=4)
        contents = [b"signed%d" % i for i in range(20)]
        replies = await asyncio.gather(
            *(a.request(b"x", b.addr, content=c, timeout=5) for c in contents)
        )
        assert [r.body.content for r in replies] == contents
        assert "hmac" in replies[0].auth_data.fields
        assert calls == Counter(contents)
        # another secret: refused, and the AUTH_ERROR raised
        with pytest.raises(AuthenticationError):
            await stranger.request(b"x", b.addr, content=b"nope", timeout=2)
        assert calls[b"nope"] == 0
        # unsigned: refused too
        plain = _node()
        await plain.start()
        with pytest.raises((AuthenticationError, TimeoutError)):
            await plain.request(b"x", b.addr, content=b"plain", timeout=0.5)
        await plain.stop()
        assert calls[b"plain"] == 0
    finally:
        for node in (a, b, stranger):
            await node.stop()


async def test_aead_cipher_plugin_on_datagrams() -> None:
    if importlib.util.find_spec("cryptography") is None:
        pytest.skip("AEADCipherPlugin needs the `cryptography` package (netaio-auth[crypto])")
    auth = pytest.importorskip("netaio_auth", reason="netaio-auth is not installed")

    def cipher() -> Any:
        return auth.AEADCipherPlugin({"secret": b"k" * 32})

    a, b = _node(cipher_plugin=cipher()), _node(cipher_plugin=cipher(), auth_plugin=None)
    await a.start()
    await b.start()
    sent: list[bytes] = []
    assert a.transport is not None
    sendto = a.transport.sendto

    def spy(data: Any, addr: Any = None) -> None:
        sent.append(bytes(data))
        sendto(data, addr)

    a.transport.sendto = spy  # type: ignore[method-assign]
    states: list[Any] = []
    try:
        calls: Counter[bytes] = Counter()
        _echo(b, calls)
        _lossy(b, 0.3, seed=5)
        replies = await asyncio.gather(
            *(a.request(b"x", b.addr, content=b"secret%d" % i, timeout=5) for i in range(10))
        )
        assert [r.body.content for r in replies] == [b"secret%d" % i for i in range(10)]
        assert calls == Counter(b"secret%d" % i for i in range(10))
        assert sent
        assert not any(b"secret" in d for d in sent)
        states.append(b.peer_state(a.addr))
        assert states[0]["addr"] == a.addr
        assert b.peer_state(a.addr) is states[0]
    finally:
        await a.stop()
        await b.stop()


async def test_short_uri_body_and_a_custom_message_type() -> None:
    """``body_class=ShortUriBody`` on both ends, and a type of an
    application's message-type class."""
    app_types: type[Enum] = make_message_type_class("AppTypes", {"GOSSIP": 40})
    gossip: Any = app_types["GOSSIP"]
    a = _node(body_class=ShortUriBody, message_type_class=app_types)
    b = _node(body_class=ShortUriBody, message_type_class=app_types)
    await a.start()
    await b.start()
    heard: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    @b.on((gossip, b"news"))
    def on_gossip(message: Message, addr: Addr) -> None:
        heard.set_result(message)

    _echo(b)
    try:
        reply = await a.request(b"short", b.addr, content=b"uri", timeout=2)
        assert type(reply.body) is ShortUriBody
        assert reply.body.content == b"uri"
        a.send(Message.prepare(ShortUriBody.prepare(b"hi", b"news"), gossip), b.addr)
        message = await asyncio.wait_for(heard, 2)
        assert message.header.message_type is gossip
        assert message.body.content == b"hi"
    finally:
        await a.stop()
        await b.stop()


async def test_an_auth_refusal_in_the_node_body_class() -> None:
    """The AUTH_ERROR a node answers (its plugin's ``error()``, built with
    the default Body) reaches a ShortUriBody peer in ShortUriBody."""
    a = _node(body_class=ShortUriBody)
    b = _node(body_class=ShortUriBody, auth_plugin=TokenPlugin("token", b"secret"))
    await a.start()
    await b.start()
    _echo(b)
    try:
        with pytest.raises(AuthenticationError) as refused:
            await a.request(b"short", b.addr, content=b"unsigned", timeout=2)
        reply = refused.value.reply
        assert reply is not None
        assert reply.header.message_type is MessageType.AUTH_ERROR
        assert type(reply.body) is ShortUriBody
        assert reply.body.content == b"auth failed: token"
    finally:
        await a.stop()
        await b.stop()


async def test_not_started_and_timeout() -> None:
    node = _node()
    with pytest.raises(RuntimeError, match="start"):
        await node.request(b"x", ("127.0.0.1", 9), timeout=0.1)
    await node.start()
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(TimeoutError, match="no reply"):
            await node.request(b"x", silent.getsockname(), timeout=0.2)
    finally:
        silent.close()
        await node.stop()
