"""Discovery scenarios, run by test_node_discovery.py inside a private
network namespace that has only loopback (``unshare -n``).

Usage: python netns_scenarios.py <scenario>. Refuses to run unless the only
network interface is ``lo``, so that nothing is ever sent beyond loopback.
Prints ``OK <scenario>`` on success; any failure is an exception.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from netaio_core import Message, MessageType, make_respond_uri_msg
from netaio_node import DatagramLimits, Peer, UDPNode

INTERVAL = 0.3
TIMEOUT = 1.0
LIMITS = DatagramLimits(retry_interval=0.05, max_retry_interval=0.2)


def _only_loopback() -> None:
    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        raise SystemExit(f"refusing to run outside a loopback-only namespace: {interfaces}")


def _node(name: str, **kwargs: Any) -> UDPNode[Message]:
    node: UDPNode[Message] = UDPNode(
        port=0, interface="127.0.0.1", local_peer=Peer(name.encode()), limits=LIMITS, **kwargs
    )

    @node.on((MessageType.REQUEST_URI, b"whoami"))
    def whoami(message: Message, addr: tuple[str, int]) -> Message:
        return make_respond_uri_msg(name.encode() + b":" + message.body.content, message.body.uri)

    return node


async def _start(nodes: list[UDPNode[Message]]) -> None:
    for node in nodes:
        await node.start()
        await node.manage_peers_automatically(advertise_every=INTERVAL, peer_timeout=TIMEOUT)


def _knows_all(nodes: list[UDPNode[Message]], expected: int) -> bool:
    return all(len(node.peers) == expected for node in nodes)


async def _within(seconds: float, condition: Callable[[], bool]) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def two() -> None:
    a, b = _node("a"), _node("b")
    await _start([a, b])
    await _within(INTERVAL, lambda: _knows_all([a, b], 1))
    peer = a.get_peer(b"b")
    assert peer is not None, peer
    assert peer.addrs == {b.addr}, peer
    assert a.get_peer(addr=b.addr) is peer
    reply = await a.request(b"whoami", b.addr, content=b"x", timeout=2)
    assert reply.body.content == b"b:x", reply
    # b stops without a word: a drops it after the peer timeout
    await b.stop(announce=False)
    stopped = time.monotonic()
    await _within(TIMEOUT + 2 * INTERVAL + 0.5, lambda: not a.peers)
    assert time.monotonic() - stopped >= TIMEOUT - 0.05
    # a stopped peer that says goodbye is dropped at once
    c = _node("c")
    await _start([c])
    await _within(INTERVAL, lambda: _knows_all([a, c], 1))
    await c.stop()
    await _within(0.2, lambda: not a.peers)
    await a.stop()


def _plugins(cipher: bool) -> dict[str, Any]:
    from netaio_auth import HMACAuthPlugin

    plugins: dict[str, Any] = {"auth_plugin": HMACAuthPlugin({"secret": b"s" * 32, "max_skew": 60})}
    if cipher:
        from netaio_auth import AEADCipherPlugin

        plugins["cipher_plugin"] = AEADCipherPlugin({"secret": b"k" * 32})
    return plugins


async def _ten(cipher: bool) -> None:
    nodes = [_node(f"n{i}", **_plugins(cipher)) for i in range(10)]
    await _start(nodes)
    # Discovery time is ten_plain's subject; here, the authenticated exchange
    # (a loaded machine may need more than one interval to sign and check).
    await _within(10 * INTERVAL, lambda: _knows_all(nodes, 9))
    # authenticated (and encrypted) requests between every pair of peers
    calls = [
        node.request(b"whoami", other.addr, content=node.local_peer.id, timeout=3)  # type: ignore[union-attr]
        for node in nodes
        for other in nodes
        if other is not node
    ]
    replies = await asyncio.gather(*calls)
    assert len(replies) == 90
    assert all(r.header.message_type is MessageType.RESPOND_URI for r in replies), [
        (r.header.message_type, r.body.content) for r in replies[:3]
    ]
    names = {r.body.content for r in replies}
    assert len(names) == 90, sorted(names)
    # a node with another secret is not accepted as a peer
    stranger = _node("stranger", auth_plugin=_other_secret())
    await _start([stranger])
    await asyncio.sleep(INTERVAL * 1.5)
    assert not stranger.peers
    assert all(len(n.peers) == 9 for n in nodes)
    await stranger.stop()
    for node in nodes:
        await node.stop()


def _other_secret() -> Any:
    from netaio_auth import HMACAuthPlugin

    return HMACAuthPlugin({"secret": b"o" * 32})


async def ten_hmac() -> None:
    await _ten(cipher=False)


async def ten_cipher() -> None:
    await _ten(cipher=True)


async def ten_plain() -> None:
    nodes = [_node(f"p{i}") for i in range(10)]
    await _start(nodes)
    elapsed = await _within(INTERVAL, lambda: _knows_all(nodes, 9))
    print(f"ten nodes discovered each other in {elapsed:.3f}s")
    for node in nodes:
        await node.stop()


async def _in_dev_mode(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run under ``-X dev`` for its checks (unawaited coroutines, unclosed
    resources), without its slow-callback report: a busy test machine makes
    any step slow, and that is not a fault of the scenario."""
    asyncio.get_running_loop().slow_callback_duration = 60.0
    await scenario()


SCENARIOS: dict[str, Callable[[], Awaitable[None]]] = {
    "two": two,
    "ten_plain": ten_plain,
    "ten_hmac": ten_hmac,
    "ten_cipher": ten_cipher,
}

if __name__ == "__main__":
    _only_loopback()
    name = sys.argv[1]
    if name == "ten_cipher" and importlib.util.find_spec("cryptography") is None:
        print(f"SKIP {name}: cryptography is not installed")
        sys.exit(0)
    asyncio.run(_in_dev_mode(SCENARIOS[name]))
    print(f"OK {name}")
