"""NatsBroker between real `netaio serve` processes and real nats-servers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time

import pytest
from runner.support import Processes, free_port

pytest.importorskip("nats")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

from netaio_client import TCPClient  # noqa: E402
from netaio_core import Body, Message, MessageType  # noqa: E402
from netaio_server.nats import MAX_TOKEN, key_subject  # noqa: E402

N = 10_000


def test_subjects_are_safe_and_distinct() -> None:
    assert key_subject("netaio", "room/1") == "netaio.s.room_2F1"
    assert key_subject("netaio", b"room/1") == "netaio.b.room_2F1"
    assert key_subject("netaio", "a.b*>c d_") == "netaio.s.a_2Eb_2A_3Ec_20d_5F"
    assert key_subject("netaio", "") == "netaio.s._"
    assert key_subject("netaio", None) == "netaio.broadcast"
    assert key_subject("netaio", "é") == "netaio.s._C3_A9"
    long = key_subject("app", "x" * (MAX_TOKEN + 1))
    assert long.startswith("app.s.h_")
    assert len(long) == len("app.s.h_") + 64


async def _publish(client: TCPClient[Message], uri: bytes, content: bytes) -> None:
    reply = await client.request(uri, content, message_type=MessageType.PUBLISH_URI, timeout=10)
    assert reply.header.message_type is MessageType.OK


async def _publish_all(
    client: TCPClient[Message], uri: bytes, contents: list[bytes], window: int = 200
) -> None:
    """Publish ``contents`` in order, ``window`` frames in flight: the frames
    carry no correlation id, so the server handles them strictly in order,
    and every OK is read back before the next window."""
    for start in range(0, len(contents), window):
        chunk = contents[start : start + window]
        for content in chunk:
            await client.send(
                Message.prepare(Body.prepare(content, uri=uri), MessageType.PUBLISH_URI)
            )
        for _ in chunk:
            reply = await client.receive_once(timeout=10)
            assert reply is not None
            assert reply.header.message_type is MessageType.OK


async def _warm_up(publisher: TCPClient[Message], feed: object, uri: bytes) -> None:
    """Publish probes until one crosses: the subscriber's interest reaches
    NATS (and, in a cluster, the other server) a moment after it is
    confirmed to the client."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await _publish(publisher, uri, b"probe")
        try:
            message = await asyncio.wait_for(feed.__anext__(), 0.05)  # type: ignore[attr-defined]
        except asyncio.TimeoutError:  # (not TimeoutError itself before Python 3.11)
            continue
        assert message.body.content == b"probe"
        break
    else:
        raise AssertionError("no probe crossed the broker")
    await _publish(publisher, uri, b"end-of-probes")
    while (await asyncio.wait_for(feed.__anext__(), 5)).body.content != b"end-of-probes":  # type: ignore[attr-defined]
        pass


def _start_pair(procs: Processes, cluster: bool) -> tuple[int, int]:
    if cluster:
        n1, n2, r1, r2 = free_port(), free_port(), free_port(), free_port()
        procs.nats(n1, "--cluster", f"nats://127.0.0.1:{r1}", "--routes", f"nats://127.0.0.1:{r2}")
        second = procs.nats(
            n2, "--cluster", f"nats://127.0.0.1:{r2}", "--routes", f"nats://127.0.0.1:{r1}"
        )
        second.wait_for("Route connection created")
        urls = (f"nats://127.0.0.1:{n1}", f"nats://127.0.0.1:{n2}")
    else:
        n = free_port()
        procs.nats(n)
        urls = (f"nats://127.0.0.1:{n}",) * 2
    ports = free_port(), free_port()
    pairs = zip(ports, urls, strict=True)
    serves = [procs.serve("--port", str(p), "--broker", url) for p, url in pairs]
    for serve in serves:
        serve.wait_for("Server started")
    return ports


@pytest.mark.parametrize("cluster", [False, True], ids=["one-nats", "two-nats-cluster"])
async def test_every_notification_crosses_in_order(procs: Processes, cluster: bool) -> None:
    port_a, port_b = _start_pair(procs, cluster)
    subscriber: TCPClient[Message] = TCPClient("127.0.0.1", port_a)
    publisher: TCPClient[Message] = TCPClient("127.0.0.1", port_b)
    await subscriber.connect()
    await publisher.connect()
    try:
        async with subscriber.subscribe(b"stream") as feed:
            await _warm_up(publisher, feed, b"stream")
            got: list[bytes] = []

            async def receive() -> None:
                async for message in feed:
                    got.append(message.body.content)
                    if len(got) == N:
                        return

            receiving = asyncio.ensure_future(receive())
            await _publish_all(publisher, b"stream", [b"%d" % i for i in range(N)])
            await asyncio.wait_for(receiving, 20)
        assert got == [b"%d" % i for i in range(N)]
    finally:
        await subscriber.close_all()
        await publisher.close_all()


async def test_nats_restart_mid_stream(procs: Processes) -> None:
    nats_port = free_port()
    nats = procs.nats(nats_port)
    url = f"nats://127.0.0.1:{nats_port}"
    port_a, port_b = free_port(), free_port()
    serves = [procs.serve("--port", str(p), "--broker", url) for p in (port_a, port_b)]
    for serve in serves:
        serve.wait_for("Server started")
    remote: TCPClient[Message] = TCPClient("127.0.0.1", port_a)
    local: TCPClient[Message] = TCPClient("127.0.0.1", port_b)
    publisher: TCPClient[Message] = TCPClient("127.0.0.1", port_b)
    for client in (remote, local, publisher):
        await client.connect()
    remote_got: list[int] = []
    local_got: list[int] = []
    last_sent = -1
    arrived = asyncio.Event()  # set when either list gains last_sent

    async def collect(feed: object, into: list[int]) -> None:
        async for message in feed:  # type: ignore[attr-defined]
            if message.body.content.isdigit():
                into.append(int(message.body.content))
                if into[-1] == last_sent:
                    arrived.set()

    try:
        async with remote.subscribe(b"feed") as remote_feed, local.subscribe(b"feed") as local_feed:
            await _warm_up(publisher, remote_feed, b"feed")
            await asyncio.wait_for(_drain_probes(local_feed), 5)
            tasks = [
                asyncio.ensure_future(collect(remote_feed, remote_got)),
                asyncio.ensure_future(collect(local_feed, local_got)),
            ]
            i = 0
            killed_at = restarted_at = -1
            start = time.monotonic()
            while time.monotonic() - start < 15:
                await _publish(publisher, b"feed", b"%d" % i)
                i += 1
                await asyncio.sleep(0.001)
                if i == 500:
                    nats.popen.kill()  # SIGKILL: no goodbye to the clients
                    nats.popen.wait(5)
                    killed_at = i
                elif i == 1000:
                    nats = procs.nats(nats_port)
                    restarted_at = i
                elif restarted_at > 0 and remote_got and remote_got[-1] > restarted_at and i > 1500:
                    break
            sent = i
            last_sent = sent - 1
            # Every message published has been answered: wait (bounded) for
            # the last one to reach both subscribers.
            deadline = time.monotonic() + 10
            while not (local_got[-1:] == [last_sent] and remote_got[-1:] == [last_sent]):
                arrived.clear()  # no await since the check: nothing missed
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(arrived.wait(), max(0.0, deadline - time.monotonic()))
                if time.monotonic() >= deadline:
                    break
            for task in tasks:
                task.cancel()
        assert local_got == list(range(sent)), "local delivery must not miss anything"
        assert remote_got == sorted(remote_got)
        assert remote_got[-1] == sent - 1, "remote delivery resumed after the reconnect"
        lost = sorted(set(range(sent)) - set(remote_got))
        assert all(killed_at - 50 <= n <= sent for n in lost)
        print(
            f"\nNATS down from message {killed_at} to {restarted_at} of {sent}: "
            f"remote subscriber lost {len(lost)} "
            f"({lost[0] if lost else '-'}..{lost[-1] if lost else '-'})"
        )
        for serve in serves:
            assert "Reconnected to NATS" in serve.err()
            serve.signal(signal.SIGTERM)
            assert serve.wait(10) == 0
    finally:
        for client in (remote, local, publisher):
            await client.close_all()


async def _drain_probes(feed: object) -> None:
    while (await feed.__anext__()).body.content != b"end-of-probes":  # type: ignore[attr-defined]
        pass
