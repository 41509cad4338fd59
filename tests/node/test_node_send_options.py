"""Per-call sealing of UDPNode.send and its kin (netaio 0.0.9's arguments):
an extra auth or cipher plugin for one message, and leaving out the node's
own; and the timeout handler of set_timeout_handler."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from token_plugin import TokenPlugin

from netaio_core import AuthenticationError, Body, Message, MessageType, make_respond_uri_msg
from netaio_node import DatagramLimits, UDPNode

FAST = DatagramLimits(retry_interval=0.02, max_retry_interval=0.1)
Addr = tuple[str, int]


def _node(**kwargs: Any) -> UDPNode[Message]:
    return UDPNode(port=0, interface="127.0.0.1", limits=FAST, **kwargs)


@pytest.fixture
async def nodes() -> AsyncIterator[list[UDPNode[Message]]]:
    started: list[UDPNode[Message]] = []
    yield started
    for node in started:
        await node.stop(announce=False)


async def _started(nodes: list[UDPNode[Message]], **kwargs: Any) -> UDPNode[Message]:
    node = _node(**kwargs)
    await node.start()
    nodes.append(node)
    return node


def _echo(node: UDPNode[Message], plugin: TokenPlugin | None = None) -> list[bytes]:
    got: list[bytes] = []

    def echo(message: Message, addr: Addr) -> Message:
        got.append(message.body.content)
        return make_respond_uri_msg(message.body.content, message.body.uri)

    node.add_handler((MessageType.REQUEST_URI, b"echo"), echo, plugin)
    return got


async def test_an_extra_auth_plugin_for_one_request(nodes: list[UDPNode[Message]]) -> None:
    a = await _started(nodes)
    b = await _started(nodes)
    got = _echo(b, TokenPlugin("admin", b"a-token"))  # the handler's own plugin
    admin = TokenPlugin("admin", b"a-token")
    with pytest.raises(AuthenticationError):
        await a.request(b"echo", b.addr, content=b"plain", timeout=2)
    reply = await a.request(b"echo", b.addr, content=b"signed", timeout=2, auth_plugin=admin)
    assert reply.body.content == b"signed"
    assert got == [b"signed"]


async def test_use_auth_false_leaves_out_the_node_plugin(nodes: list[UDPNode[Message]]) -> None:
    a = await _started(nodes, auth_plugin=TokenPlugin("token", b"t"))
    b = await _started(nodes, auth_plugin=TokenPlugin("token", b"t"))
    got = _echo(b)
    assert (await a.request(b"echo", b.addr, content=b"one", timeout=2)).body.content == b"one"
    with pytest.raises(AuthenticationError):
        await a.request(b"echo", b.addr, content=b"two", timeout=2, use_auth=False)
    # An extra plugin still signs when the node's own is left out.
    extra = TokenPlugin("token", b"t")
    reply = await a.request(
        b"echo", b.addr, content=b"three", timeout=2, use_auth=False, auth_plugin=extra
    )
    assert reply.body.content == b"three"
    assert got == [b"one", b"three"]


async def test_use_cipher_false_leaves_out_the_node_cipher(
    nodes: list[UDPNode[Message]],
) -> None:
    pytest.importorskip("netaio_auth", reason="the cipher plugins are netaio-auth's")
    pytest.importorskip("cryptography", reason="AEADCipherPlugin needs netaio-auth[crypto]")
    from netaio_auth import AEADCipherPlugin

    a = await _started(nodes, cipher_plugin=AEADCipherPlugin({"secret": "s"}))
    b = await _started(nodes, cipher_plugin=AEADCipherPlugin({"secret": "s"}))
    got = _echo(b)
    assert (await a.request(b"echo", b.addr, content=b"sealed", timeout=2)).body.content == (
        b"sealed"
    )
    with pytest.raises(AuthenticationError):
        await a.request(b"echo", b.addr, content=b"clear", timeout=2, use_cipher=False)
    assert got == [b"sealed"]


async def test_send_broadcast_and_notify_take_the_same_arguments(
    nodes: list[UDPNode[Message]],
) -> None:
    a = await _started(nodes)
    b = await _started(nodes)
    heard: asyncio.Queue[Message] = asyncio.Queue()
    b.add_handler(
        (MessageType.PUBLISH_URI, b"news"),
        lambda message, addr: heard.put_nowait(message),
        TokenPlugin("pub", b"p"),
    )
    news = Message.prepare
    plugin = TokenPlugin("pub", b"p")

    a.send(news(Body.prepare(b"1", b"news"), MessageType.PUBLISH_URI), b.addr, auth_plugin=plugin)
    a.subscribe(b"news", b.addr)
    a.notify(
        b"news", news(Body.prepare(b"2", b"news"), MessageType.PUBLISH_URI), auth_plugin=plugin
    )
    got = [await asyncio.wait_for(heard.get(), 2) for _ in range(2)]
    assert sorted(m.body.content for m in got) == [b"1", b"2"]
    assert all(m.auth_data.fields["pub"] == b"p" for m in got)


async def test_the_timeout_handler_is_told_then_request_raises(
    nodes: list[UDPNode[Message]],
) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    calls: list[tuple[Any, ...]] = []
    done = asyncio.Event()

    async def later(*args: Any) -> None:
        calls.append(("async", *args))
        done.set()

    try:
        a = await _started(nodes)
        a.set_timeout_handler(lambda *args: calls.append(("sync", *args)))
        addr = silent.getsockname()
        with pytest.raises(TimeoutError) as raised:
            await a.request(b"where", addr, timeout=0.1)
        ((how, node, kind, where, error, context),) = calls
        assert (how, node, kind, where, error) == ("sync", a, "request_timeout", addr, raised.value)
        assert context == {"uri": b"where", "timeout": 0.1, "server": addr}
        a.set_timeout_handler(later)
        with pytest.raises(TimeoutError):
            await a.request(b"where", addr, timeout=0.1)
        await asyncio.wait_for(done.wait(), 2)
        assert calls[-1][:3] == ("async", a, "request_timeout")
        a.set_timeout_handler(None)
        with pytest.raises(TimeoutError):
            await a.request(b"where", addr, timeout=0.1)
        assert len(calls) == 2
    finally:
        silent.close()
