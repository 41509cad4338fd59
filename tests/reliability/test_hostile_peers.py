"""Hostile peers: one test (or a few) per attack class, on loopback.

Each test checks that the attack is defeated (sockets and slots freed, caps
enforced, the attack logged) and that a well-behaved client keeps getting
its answer within a second while the attack is under way. Times and counts
are printed as ``MEASURED ...`` lines (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from netaio_client import TCPClient
from netaio_core import (
    AuthFields,
    Body,
    ConnectionClosedError,
    LimitExceededError,
    Limits,
    Message,
    MessageType,
)
from netaio_server import TCPServer

from .conftest import Connect, Serve
from .support import (
    TIMEOUT,
    RawPeer,
    echo_reply,
    echo_server,
    error_reply,
    logged,
    request,
    summary,
    wait_until,
)
from .test_tls_and_ipv6 import client_context, server_context

SHORT = 0.3  # seconds: a timeout short enough to wait for in a test
ANSWERED_WITHIN = 1.0  # seconds a well-behaved client may wait during an attack
TOPIC = b"topic"
BIG_URI = b"big"
FLOOD_URI = b"flood"
BIG = 60_000  # bytes of content of one big reply
FLOOD_REPLIES = 40  # big replies a flood request gets: 2.4 MB
DISCONNECT = (MessageType.DISCONNECT, b"1", b"server stopping")
HAS_PROC_FD = Path("/proc/self/fd").is_dir()


@pytest.fixture(autouse=True)
def _server_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="netaio.server")


async def settle(condition: Callable[[], bool]) -> None:
    """Wait (at most TIMEOUT seconds) for ``condition()``; the caller then
    asserts it, with a message of its own."""
    with contextlib.suppress(asyncio.TimeoutError):
        await wait_until(condition)


def measured(name: str, **values: object) -> None:
    """Print numbers for the release note (shown by ``pytest -s``)."""
    shown = ", ".join(
        f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}"
        for key, value in values.items()
    )
    print(f"MEASURED {name}: {shown}")


def open_fds() -> int:
    """File descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def hostile_server(limits: Limits | None = None, **kwargs: Any) -> TCPServer[Message]:
    """The echo server with the framework's subscription handlers, a route
    with one big reply and a route that floods its caller with big replies."""
    server = echo_server(limits, **kwargs)
    server.enable_subscriptions()  # replaces echo_server's SUBSCRIBE_URI handler

    @server.on((MessageType.REQUEST_URI, BIG_URI))
    def big(message: Message, writer: asyncio.StreamWriter) -> Message:
        return request(bytes(BIG), BIG_URI, MessageType.RESPOND_URI)

    @server.on((MessageType.REQUEST_URI, FLOOD_URI))
    def flood(message: Message, writer: asyncio.StreamWriter) -> Message:
        reply = request(bytes(BIG), FLOOD_URI, MessageType.RESPOND_URI).encode()
        for _ in range(FLOOD_REPLIES - 1):
            writer.write(reply)
        return request(bytes(BIG), FLOOD_URI, MessageType.RESPOND_URI)

    return server


async def round_trip(peer: RawPeer, content: bytes = b"still served") -> float:
    """A well-behaved request: asserts the echo arrives within
    ANSWERED_WITHIN seconds and returns how long it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await asyncio.wait_for(peer.request(request(content)), ANSWERED_WITHIN)
    elapsed = loop.time() - started
    assert summary(reply) == echo_reply(content)
    assert elapsed < ANSWERED_WITHIN
    return elapsed


def server_writer(server: TCPServer[Any], known: set[asyncio.StreamWriter]) -> asyncio.StreamWriter:
    """The one server-side writer that is not in ``known``."""
    (writer,) = set(server.clients) - known
    return writer


RawSockets = Callable[..., Awaitable[socket.socket]]


@pytest.fixture
async def raw_sockets() -> AsyncIterator[RawSockets]:
    """``await raw_sockets(port, rcvbuf=None)``: a connected non-blocking
    socket (with a tiny receive buffer if asked), closed at teardown."""
    made: list[socket.socket] = []

    async def open_socket(port: int, rcvbuf: int | None = None) -> socket.socket:
        sock = socket.socket()
        made.append(sock)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), TIMEOUT)
        return sock

    yield open_socket
    for sock in made:
        sock.close()


def shrink_send_buffer(writer: asyncio.StreamWriter) -> None:
    """Give the server's socket to a stalled peer a small kernel send buffer
    (it would autotune up to tcp_wmem's maximum, MBs): what the peer does not
    take then stays in the server's own buffer, where the limits apply."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


def stalled(server: TCPServer[Any], writer: asyncio.StreamWriter, unsent: int) -> bool:
    """True once the server has stopped writing to ``writer`` (its
    transport is over the high-water mark) with ``unsent`` bytes waiting."""
    connection = server._connections.get(writer)
    return (
        connection is not None
        and connection.write_paused
        and writer.transport.get_write_buffer_size() > unsent
    )


async def send_all(sock: socket.socket, data: bytes) -> None:
    await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(sock, data), TIMEOUT)


# -- (1) peers that never read, with MBs unsent, then half-close ----------------


@pytest.mark.skipif(not HAS_PROC_FD, reason="counts descriptors in /proc/self/fd")
async def test_never_reading_half_closing_peers_leave_no_socket_behind(
    serve: Serve, connect: Connect, raw_sockets: RawSockets, caplog: pytest.LogCaptureFixture
) -> None:
    limits = Limits(close_timeout=SHORT, write_timeout=0.6)
    server = await serve(hostile_server(limits))
    good = await connect(server.port)
    await round_trip(good)
    (good_writer,) = server.clients
    before = open_fds()

    # 20 peers with a tiny receive buffer pipeline requests whose replies
    # come to 2 MB each (plus 5 big ones), never read, and half-close.
    attackers = [await raw_sockets(server.port, rcvbuf=1024) for _ in range(20)]
    await wait_until(lambda: len(server.clients) == 21)
    victims = set(server.clients) - {good_writer}
    for writer in victims:
        shrink_send_buffer(writer)
    pipeline = request(b"", FLOOD_URI).encode() + request(b"", BIG_URI).encode() * 5
    for sock in attackers:
        await send_all(sock, pipeline)
    await wait_until(lambda: all(stalled(server, writer, 2_000_000) for writer in victims))
    unsent = sum(writer.transport.get_write_buffer_size() for writer in victims)
    during = open_fds() - before
    assert during == 40  # both ends of every attacking connection
    loop = asyncio.get_running_loop()
    for sock in attackers:
        sock.shutdown(socket.SHUT_WR)
    half_closed = loop.time()

    latency = await round_trip(good)
    await wait_until(lambda: len(server._counted) == 1)
    freed_after = loop.time() - half_closed

    # Every server-side socket is gone, within the write and close timeouts.
    assert freed_after < limits.write_timeout + limits.close_timeout
    assert server.clients == {good_writer}
    assert server._per_ip == {"127.0.0.1": 1}
    assert open_fds() - before == 20  # only the attackers' own ends remain
    ended = logged(caplog, "write_timeout reached") + logged(caplog, "close_timeout reached")
    assert len(ended) == 20
    for sock in attackers:
        sock.close()
    assert open_fds() == before
    await round_trip(good)
    measured(
        "never-reading half-closing peers",
        peers=20,
        server_unsent_mb=unsent / 1e6,
        fds_during=during,
        server_fds_after=0,
        freed_after_s=freed_after,
        good_latency_s=latency,
    )


# -- (2) stop() while a client does not read -------------------------------------


async def test_stop_returns_in_bounded_time_while_a_peer_does_not_read(
    serve: Serve, connect: Connect, raw_sockets: RawSockets
) -> None:
    limits = Limits(shutdown_grace=SHORT, close_timeout=0.5, write_timeout=TIMEOUT * 4)
    server = await serve(hostile_server(limits))
    started, never = asyncio.Event(), asyncio.Event()

    @server.on((MessageType.REQUEST_URI, b"hang"))
    async def hang(message: Message, writer: asyncio.StreamWriter) -> Message:
        started.set()
        await never.wait()  # outlives the grace period: cancelled by stop()
        return request(b"", b"hang", MessageType.RESPOND_URI)

    good = await connect(server.port)
    busy = await connect(server.port)
    await busy.send_bytes(request(b"", b"hang").encode())
    await asyncio.wait_for(started.wait(), TIMEOUT)
    known = set(server.clients)
    staller = await raw_sockets(server.port, rcvbuf=1024)
    await wait_until(lambda: len(server.clients) == 3)
    victim = server_writer(server, known)
    shrink_send_buffer(victim)
    await send_all(staller, request(b"", FLOOD_URI).encode())
    await wait_until(lambda: stalled(server, victim, 2_000_000))
    unsent = victim.transport.get_write_buffer_size()
    staller.shutdown(socket.SHUT_WR)
    latency = await round_trip(good)

    loop = asyncio.get_running_loop()
    began = loop.time()
    bound = limits.shutdown_grace + limits.close_timeout + 1.0
    await asyncio.wait_for(server.stop(), bound + TIMEOUT)
    took = loop.time() - began

    assert took < bound
    assert not server.clients
    assert not server._counted
    assert [summary(m) for m in await good.replies_until_end()] == [DISCONNECT]
    measured(
        "stop() with a non-reading peer",
        server_unsent_mb=unsent / 1e6,
        stop_s=took,
        bound_s=bound,
        good_latency_s=latency,
    )


# -- (3) slowloris with partial headers ------------------------------------------


@pytest.mark.skipif(not HAS_PROC_FD, reason="counts descriptors in /proc/self/fd")
async def test_slowloris_partial_headers_are_closed_and_their_slots_freed(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    attackers_count = 50
    limits = Limits(frame_timeout=SHORT, max_connections=attackers_count + 1)
    server = await serve(hostile_server(limits))
    good = await connect(server.port)
    await round_trip(good)
    before = open_fds()
    loop = asyncio.get_running_loop()

    partial_header = request(b"never finished").encode()[:5]
    attackers = [await RawPeer.open(server.port) for _ in range(attackers_count)]
    for peer in attackers:
        await peer.send_bytes(partial_header)
    last_byte = loop.time()
    await wait_until(lambda: len(server._counted) == attackers_count + 1)
    during = open_fds() - before

    # The server is full: one more connection is refused...
    excess = await connect(server.port)
    assert await excess.wait_closed_by_server() == b""
    assert logged(caplog, "max_connections reached")
    # ...while the well-behaved client is served.
    latency = await round_trip(good)

    closed = await asyncio.wait_for(
        asyncio.gather(*(peer.wait_closed_by_server() for peer in attackers)), TIMEOUT
    )
    assert closed == [b""] * attackers_count
    await wait_until(lambda: len(server._counted) == 1)
    freed_after = loop.time() - last_byte
    assert freed_after < SHORT + 1.0  # frame_timeout is SHORT
    assert len(logged(caplog, "frame_timeout reached mid-frame")) == attackers_count
    assert len(server.clients) == 1
    for peer in [*attackers, excess]:
        await peer.close()
    assert open_fds() == before

    # The freed slots serve new clients.
    fresh = await connect(server.port)
    await round_trip(fresh)
    measured(
        "slowloris (5-byte partial headers)",
        peers=attackers_count,
        fds_during=during,
        freed_after_s=freed_after,
        good_latency_s=latency,
    )


# -- (4) TLS handshakes that never complete --------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def tls_round_trip(client: TCPClient[Message], content: bytes) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.send(request(content))
    reply = await asyncio.wait_for(client.receive_once(), ANSWERED_WITHIN)
    elapsed = loop.time() - started
    assert reply is not None
    assert summary(reply) == echo_reply(content)
    assert elapsed < ANSWERED_WITHIN
    return elapsed


async def test_tls_handshakes_that_never_complete_count_and_are_aborted(
    serve: Serve, connect: Connect, ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    silent_count = 5
    limits = Limits(tls_handshake_timeout=0.5, max_connections=silent_count + 1)
    server = await serve(hostile_server(limits, ssl=server_context(ca)))
    good: TCPClient[Message] = TCPClient("127.0.0.1", server.port)
    later: TCPClient[Message] = TCPClient("127.0.0.1", server.port)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(good.connect(ssl=client_context(ca)), TIMEOUT)
        await tls_round_trip(good, b"before")

        # Raw TCP connections to the TLS port that never send a byte.
        silent = [await connect(server.port) for _ in range(silent_count)]
        opened = loop.time()
        await wait_until(lambda: len(server._counted) == silent_count + 1)
        assert len(server.clients) == 1  # counted, but not serving

        # They count towards max_connections: one more is refused at once.
        excess = await connect(server.port)
        assert await excess.wait_closed_by_server() == b""
        assert logged(caplog, "max_connections reached")
        latency = await tls_round_trip(good, b"during")

        closed = await asyncio.wait_for(
            asyncio.gather(*(peer.wait_closed_by_server() for peer in silent)), TIMEOUT
        )
        assert closed == [b""] * silent_count
        aborted_after = loop.time() - opened
        await settle(lambda: len(server._counted) == 1)
        assert len(server._counted) == 1, (
            f"{len(server._counted) - 1} aborted handshakes still hold a slot "
            f"of max_connections={limits.max_connections}"
        )
        assert aborted_after < limits.tls_handshake_timeout + 1.0
        assert len(logged(caplog, "tls_handshake_timeout reached")) == silent_count

        # A real TLS client gets a freed slot.
        began = loop.time()
        await asyncio.wait_for(later.connect(ssl=client_context(ca)), TIMEOUT)
        connect_s = loop.time() - began
        await tls_round_trip(later, b"after")
        assert len(server.clients) == 2
    finally:
        await good.close_all()
        await later.close_all()
    measured(
        "silent TLS handshakes",
        peers=silent_count,
        aborted_after_s=aborted_after,
        good_latency_s=latency,
        new_tls_connect_s=connect_s,
    )


# -- (5) max_connections_per_ip ---------------------------------------------------


async def test_max_connections_per_ip_refuses_the_excess_from_one_address(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    assert Limits().max_connections_per_ip is None
    per_ip = 4
    server = await serve(hostile_server(Limits(max_connections_per_ip=per_ip)))
    good = await connect(server.port)
    held = [await connect(server.port) for _ in range(per_ip - 1)]
    for peer in held:
        await round_trip(peer)
    assert server._per_ip == {"127.0.0.1": per_ip}

    refused = [await connect(server.port) for _ in range(20)]
    for peer in refused:
        with contextlib.suppress(ConnectionError):  # the server may have closed it already
            await peer.send_bytes(request(b"let me in").encode())
        assert await peer.wait_closed_by_server() == b""  # closed, unanswered
    assert len(logged(caplog, "max_connections_per_ip reached")) == 20
    latency = await round_trip(good)
    assert len(server._counted) == per_ip
    assert server._per_ip == {"127.0.0.1": per_ip}

    # A connection that leaves frees its address's slot.
    await held[0].close()
    await wait_until(lambda: server._per_ip == {"127.0.0.1": per_ip - 1})
    await round_trip(await connect(server.port))
    measured("max_connections_per_ip", refused=20, good_latency_s=latency)


# -- (6) RLIMIT_NOFILE -------------------------------------------------------------

FD_LIMIT = 128  # the child's soft (= hard) RLIMIT_NOFILE
# The connections the server may then serve: 64 descriptors of headroom, a
# quarter of the rest for the accept burst (the backlog), the others for peers.
FD_CAP = (FD_LIMIT - 64) - (FD_LIMIT - 64) // 4
CHILD = textwrap.dedent(
    """
    import asyncio, json, logging, os, resource, sys

    resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))  # hard == soft

    from netaio_core import Body, Limits, Message, MessageType
    from netaio_server import TCPServer

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(name)s %(levelname)s %(message)s")


    async def main():
        server = TCPServer(host="127.0.0.1", port=0, limits=Limits(max_connections=1000))

        @server.on((MessageType.REQUEST_URI, b"echo"))
        def echo(message, writer):
            return Message.prepare(
                Body.prepare(message.body.content, b"echo"), MessageType.RESPOND_URI)

        @server.on((MessageType.REQUEST_URI, b"stats"))
        def stats(message, writer):
            data = json.dumps({{
                "counted": len(server._counted),
                "cap": server._max_connections,
                "fds": len(os.listdir("/proc/self/fd")),
            }}).encode()
            return Message.prepare(Body.prepare(data, b"stats"), MessageType.RESPOND_URI)

        await server.listen()
        print(server.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await server.stop(grace=0)


    asyncio.run(main())
    """
).format(limit=FD_LIMIT)


async def probe(peer: RawPeer) -> bool:
    """True if the server answers ``peer``, False if it closed it."""
    try:
        reply = await peer.request(request(b"am I served?"))
    except (ConnectionError, ConnectionClosedError):
        return False
    assert summary(reply) == echo_reply(b"am I served?")
    return True


async def stats(peer: RawPeer) -> dict[str, int]:
    reply = await peer.request(request(b"", b"stats"))
    return dict(json.loads(reply.body.content))


@pytest.mark.skipif(
    not HAS_PROC_FD or not hasattr(signal, "SIGSTOP"), reason="Linux: /proc and SIGSTOP"
)
@pytest.mark.parametrize(
    "burst",
    [
        pytest.param(False, id="one-by-one"),
        # The child is stopped while the attackers connect, so that they are
        # all pending at once when it resumes (as when its loop is busy).
        pytest.param(True, id="burst"),
    ],
)
async def test_rlimit_nofile_caps_connections_without_emfile(
    tmp_path: Path, connect: Connect, burst: bool
) -> None:
    attackers_count = 150  # more than the child's whole descriptor limit
    log = tmp_path / "child.log"
    with log.open("w") as stderr:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert child.stdin is not None
    assert child.stdout is not None
    loop = asyncio.get_running_loop()
    try:
        port = int(await asyncio.wait_for(child.stdout.readline(), TIMEOUT * 2))
        good = await connect(port)
        await round_trip(good)

        attackers: list[RawPeer] = []
        if burst:
            child.send_signal(signal.SIGSTOP)
            try:
                # Start every connect while the child is stopped; those past
                # its (shrunk) backlog complete once it resumes.
                connecting = [asyncio.ensure_future(connect(port)) for _ in range(attackers_count)]
                await asyncio.wait(connecting, timeout=0.5)
            finally:
                child.send_signal(signal.SIGCONT)
            attackers = await asyncio.wait_for(asyncio.gather(*connecting), TIMEOUT * 2)
            served = await asyncio.wait_for(
                asyncio.gather(*(probe(peer) for peer in attackers)), TIMEOUT * 2
            )
        else:
            served = []
            for _ in range(attackers_count):
                peer = await connect(port)
                attackers.append(peer)
                served.append(await probe(peer))
        latency = await round_trip(good)
        during = await stats(good)
        for peer in attackers:
            await peer.close()

        # Once the attackers are gone a new client is served at once.
        began = loop.time()
        fresh = await connect(port)
        await round_trip(fresh)
        fresh_s = loop.time() - began
    finally:
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), TIMEOUT)
        except asyncio.TimeoutError:
            child.kill()
            await child.wait()
    text = log.read_text()
    emfile = text.count("out of system resource")
    measured(
        f"RLIMIT_NOFILE={FD_LIMIT} ({'burst' if burst else 'one by one'})",
        attackers=attackers_count,
        served=sum(served),
        refused=served.count(False),
        child_fds_during=during["fds"],
        emfile_errors=emfile,
        good_latency_s=latency,
        new_client_s=fresh_s,
    )
    assert f"RLIMIT_NOFILE is {FD_LIMIT}: serving at most {FD_CAP} connections" in text
    assert during["cap"] == FD_CAP
    assert during["counted"] == FD_CAP
    assert sum(served) == FD_CAP - 1  # the good client holds one slot
    assert text.count("max_connections reached") == attackers_count - (FD_CAP - 1)
    assert child.returncode == 0
    # No accept ever failed for want of a descriptor.
    assert emfile == 0, f"{emfile} accept() calls failed with EMFILE"
    assert "Too many open files" not in text
    assert fresh_s < ANSWERED_WITHIN


# -- (7) subscription, key length and auth section caps --------------------------


async def test_subscription_cap_refuses_keys_beyond_max_subscriptions(
    serve: Serve, connect: Connect
) -> None:
    limits = Limits()
    server = await serve(hostile_server())
    good = await connect(server.port)
    await round_trip(good)
    (good_writer,) = server.clients
    attacker = await connect(server.port)
    attempts = 5_000
    frames = b"".join(
        request(b"", b"k%05d" % number, MessageType.SUBSCRIBE_URI).encode()
        for number in range(attempts)
    )
    replies: list[tuple[MessageType, bytes]] = []

    async def read_replies() -> None:
        for _ in range(attempts):
            message = await attacker.receive()
            replies.append((message.header.message_type, message.body.content))

    loop = asyncio.get_running_loop()
    began = loop.time()
    reading = asyncio.create_task(read_replies())
    sending = asyncio.create_task(attacker.send_bytes(frames))
    try:
        await wait_until(lambda: len(replies) >= 2000)
        latency = await round_trip(good)
        await asyncio.wait_for(asyncio.gather(sending, reading), TIMEOUT)
    finally:
        sending.cancel()
        reading.cancel()
    took = loop.time() - began

    refusal = b"subscription refused: a connection may subscribe to at most 1024 keys"
    confirmed = [r for r in replies if r[0] is MessageType.CONFIRM_SUBSCRIBE]
    assert len(confirmed) == limits.max_subscriptions
    assert replies[limits.max_subscriptions :] == [(MessageType.ERROR, refusal)] * (
        attempts - limits.max_subscriptions
    )
    # Memory stays bounded: 1024 keys, whatever was attempted.
    assert len(server.subscriptions) == limits.max_subscriptions
    attacker_writer = server_writer(server, {good_writer})
    assert len(server._connections[attacker_writer].keys) == limits.max_subscriptions
    with pytest.raises(LimitExceededError, match="at most 1024 keys"):
        server.subscribe(b"one more", attacker_writer)
    server.subscribe(b"k00000", attacker_writer)  # already subscribed: fine
    # The connection itself goes on.
    await round_trip(attacker)
    measured(
        "20,000 SUBSCRIBE_URI",
        kept_keys=len(server.subscriptions),
        refused=attempts - len(confirmed),
        attack_s=took,
        good_latency_s=latency,
    )


async def test_subscription_keys_longer_than_max_key_length_are_refused(
    serve: Serve, connect: Connect
) -> None:
    server = await serve(hostile_server(Limits(max_key_length=1024)))
    peer = await connect(server.port)
    longest = b"k" * 1024
    confirm = await peer.request(request(b"", longest, MessageType.SUBSCRIBE_URI))
    assert confirm.header.message_type is MessageType.CONFIRM_SUBSCRIBE
    refused = await peer.request(request(b"", longest + b"k", MessageType.SUBSCRIBE_URI))
    assert summary(refused) == error_reply(
        b"subscription refused: subscription keys are at most 1024 bytes long"
    )
    assert set(server.subscriptions) == {longest}
    (writer,) = server.clients
    for key in ("x" * 1025, (b"x" * 600, "y" * 600)):
        with pytest.raises(LimitExceededError, match="at most 1024 bytes"):
            server.subscribe(key, writer)
    assert set(server.subscriptions) == {longest}
    await round_trip(peer)


def auth_frame(fields: dict[str, Any]) -> bytes:
    return Message.prepare(
        Body.prepare(b"with auth", b"echo"), MessageType.REQUEST_URI, AuthFields(fields=fields)
    ).encode()


async def test_oversized_auth_sections_are_refused_before_decoding(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(hostile_server())
    good = await connect(server.port)
    attacker = await connect(server.port)
    huge = auth_frame({f"f{number:05d}": b"" for number in range(4000)})
    assert len(huge) > 64_000  # a 64 KB auth section of 4000 fields
    many = auth_frame({f"k{number}": number for number in range(33)})  # small, 33 fields
    wide = auth_frame({"big": bytes(8200)})  # one field, over 8192 bytes
    assert len(many) < 8192

    invalid = error_reply(b"invalid message")
    for frame in (many, wide):
        assert summary(await attacker.request_bytes(frame)) == invalid
    # At the limits the frame is served.
    fine = auth_frame({f"k{number}": number for number in range(32)})
    assert summary(await attacker.request_bytes(fine)) == echo_reply(b"with auth")

    # 40 pipelined 64 KB auth sections (2.6 MB): each refused at once.
    loop = asyncio.get_running_loop()
    pipelined = 40
    began = loop.time()
    sending = asyncio.create_task(attacker.send_bytes(huge * pipelined))
    try:
        latency = await round_trip(good)
        replies = [summary(await attacker.receive()) for _ in range(pipelined)]
        await asyncio.wait_for(sending, TIMEOUT)
    finally:
        sending.cancel()
    took = loop.time() - began
    assert replies == [invalid] * pipelined
    assert len(logged(caplog, "auth section of 64004 bytes refused")) == pipelined
    assert logged(caplog, "auth section of 33 fields refused")
    assert took < ANSWERED_WITHIN
    await round_trip(attacker)  # the connection goes on
    measured(
        "64 KB / 4000-field auth sections",
        frames=pipelined,
        all_refused_s=took,
        per_frame_ms=took / pipelined * 1000,
        good_latency_s=latency,
    )


# -- (8) subscribe() after the connection ended; notify prunes closing writers ---


async def test_subscribe_from_a_task_after_the_connection_ended_leaves_nothing(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(hostile_server())
    release, done = asyncio.Event(), asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    @server.on((MessageType.REQUEST_URI, b"later"))
    def later(message: Message, writer: asyncio.StreamWriter) -> Message:
        async def subscribe_later() -> None:
            await release.wait()
            server.subscribe(b"late", writer)
            done.set()

        tasks.append(asyncio.get_running_loop().create_task(subscribe_later()))
        return request(b"later", b"later", MessageType.RESPOND_URI)

    peer = await connect(server.port)
    reply = await peer.request(request(b"", b"later"))
    assert reply.header.message_type is MessageType.RESPOND_URI
    await peer.close()
    await wait_until(lambda: not server.clients)
    release.set()
    await asyncio.wait_for(done.wait(), TIMEOUT)
    await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    assert server.subscriptions == {}
    assert logged(caplog, "not a live connection of this server")

    # Nor is a writer that belongs to another endpoint subscribed.
    client: TCPClient[Message] = TCPClient("127.0.0.1", server.port)
    async with client:
        await client.connect()
        foreign = client.hosts[("127.0.0.1", server.port)][1]
        server.subscribe(b"late", foreign)
        assert server.subscriptions == {}


async def test_notify_prunes_a_subscriber_whose_connection_is_closing(
    serve: Serve, connect: Connect, raw_sockets: RawSockets, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(hostile_server(Limits(close_timeout=SHORT)))
    good = await connect(server.port)
    confirm = await good.request(request(b"", TOPIC, MessageType.SUBSCRIBE_URI))
    assert confirm.header.message_type is MessageType.CONFIRM_SUBSCRIBE
    (good_writer,) = server.clients
    sock = await raw_sockets(server.port, rcvbuf=1024)
    await send_all(sock, request(b"", TOPIC, MessageType.SUBSCRIBE_URI).encode())
    await wait_until(lambda: len(server.subscriptions.get(TOPIC, ())) == 2)
    closing = server_writer(server, {good_writer})

    # Fill the stalled subscriber's socket until a little stays unsent
    # (below the high-water mark: its connection still reads).
    small = request(bytes(1000), TOPIC, MessageType.NOTIFY_URI)
    sent = 0
    for _ in range(5000):
        await server.notify(TOPIC, small)
        sent += 1
        if closing.transport.get_write_buffer_size() > 0:
            break
    else:
        pytest.fail("the stalled subscriber's socket never filled")
    for _ in range(sent):
        assert summary(await good.receive())[0] is MessageType.NOTIFY_URI

    # It half-closes: its connection closes, lingering to send what is unsent.
    sock.shutdown(socket.SHUT_WR)
    await wait_until(closing.is_closing)
    assert closing in server.clients  # its bookkeeping ends with its socket
    await server.notify(TOPIC, request(b"after", TOPIC, MessageType.NOTIFY_URI))
    assert server.subscriptions[TOPIC] == {good_writer}  # pruned by notify
    assert summary(await good.receive()) == (MessageType.NOTIFY_URI, TOPIC, b"after")
    await wait_until(lambda: server.clients == {good_writer})
    assert logged(caplog, "close_timeout reached")
    await round_trip(good)


# -- (9) a stalled subscriber does not hold up the publisher ---------------------


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        pytest.param(
            Limits(write_buffer_limit=256 * 1024),
            "write_buffer_limit exceeded (slow consumer)",
            id="write-buffer-limit",
        ),
        pytest.param(
            Limits(write_timeout=SHORT), "write_timeout reached (slow consumer)", id="write-timeout"
        ),
    ],
)
async def test_a_stalled_subscriber_does_not_hold_up_the_publisher(
    serve: Serve,
    connect: Connect,
    raw_sockets: RawSockets,
    caplog: pytest.LogCaptureFixture,
    limits: Limits,
    reason: str,
) -> None:
    server = await serve(hostile_server(limits))
    subscriber = await connect(server.port)
    confirm = await subscriber.request(request(b"", TOPIC, MessageType.SUBSCRIBE_URI))
    assert confirm.header.message_type is MessageType.CONFIRM_SUBSCRIBE
    (subscriber_writer,) = server.clients
    sock = await raw_sockets(server.port, rcvbuf=1024)
    await send_all(sock, request(b"", TOPIC, MessageType.SUBSCRIBE_URI).encode())
    await wait_until(lambda: len(server.subscriptions.get(TOPIC, ())) == 2)
    victim = server_writer(server, {subscriber_writer})
    shrink_send_buffer(victim)
    requester = await connect(server.port)

    count, size = 120, 10_000
    received: list[bytes] = []

    async def consume() -> None:
        for _ in range(count):
            received.append((await subscriber.receive()).body.content[:8])

    consuming = asyncio.create_task(consume())
    loop = asyncio.get_running_loop()
    slowest = 0.0
    try:
        began = loop.time()
        for number in range(count):
            message = request(b"%08d" % number + bytes(size - 8), TOPIC, MessageType.NOTIFY_URI)
            call = loop.time()
            await asyncio.wait_for(server.notify(TOPIC, message), ANSWERED_WITHIN)
            slowest = max(slowest, loop.time() - call)
            await asyncio.sleep(0)  # a publisher that lets the loop run
        published = loop.time() - began
        latency = await round_trip(requester)
        await wait_until(lambda: victim not in server.clients)
        dropped_after = loop.time() - began
        await asyncio.wait_for(consuming, TIMEOUT)
    finally:
        consuming.cancel()
    assert published < 0.5  # well under a second for 120 calls
    assert received == [b"%08d" % number for number in range(count)]
    assert logged(caplog, reason)
    assert server.subscriptions[TOPIC] == {subscriber_writer}
    assert len(server.clients) == 2  # the subscriber and the requester
    measured(
        f"120 x 10 KB notify, stalled subscriber ({reason.split(' ')[0]})",
        publish_s=published,
        slowest_call_ms=slowest * 1000,
        stalled_dropped_after_s=dropped_after,
        good_latency_s=latency,
    )


# -- (10) KeyboardInterrupt / SystemExit / other BaseExceptions in handlers -------


@pytest.mark.parametrize("fatal", [KeyboardInterrupt, SystemExit])
def test_a_handler_raising_keyboard_interrupt_stops_the_server_gracefully(
    fatal: type[BaseException],
) -> None:
    """Run in a loop of its own: the exception leaves ``server.start()``'s
    task and, as asyncio does for these two, the loop's ``run_until_complete``
    too; the loop then goes on and the test process survives."""
    loop = asyncio.new_event_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        server = hostile_server()

        @server.on((MessageType.REQUEST_URI, b"interrupt"))
        def interrupt(message: Message, writer: asyncio.StreamWriter) -> Message:
            raise fatal("from a handler")

        serving = asyncio.create_task(server.start())
        seen["serving"] = serving
        await asyncio.wait_for(server.wait_started(), TIMEOUT)
        peers = [await RawPeer.open(server.port) for _ in range(3)]
        try:
            for peer in peers:
                await round_trip(peer)
            await peers[0].send_bytes(request(b"", b"interrupt").encode())
            seen["replies"] = [
                [summary(m) for m in await peer.replies_until_end()] for peer in peers
            ]
            await asyncio.wait({serving}, timeout=TIMEOUT)
            seen["clients"] = set(server.clients)
        finally:
            for peer in peers:
                await peer.close()

    main = loop.create_task(scenario())
    interrupted = 0
    try:
        for _ in range(3):  # bounded: the exception surfaces once
            try:
                loop.run_until_complete(main)
                break
            except fatal:
                interrupted += 1
        assert main.done()
        main.result()
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    serving = seen["serving"]
    assert serving.done()
    assert isinstance(serving.exception(), fatal)
    assert interrupted == 1
    internal = error_reply(b"internal server error")
    assert seen["replies"] == [[internal, DISCONNECT], [DISCONNECT], [DISCONNECT]]
    assert seen["clients"] == set()
    assert not errors, errors


class Meltdown(BaseException):
    """Not an Exception, nor a control-flow one."""


@pytest.mark.parametrize("kind", ["plain", "async", "in-thread"])
async def test_a_handler_raising_a_custom_base_exception_is_contained(
    serve: Serve, connect: Connect, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    server = await serve(hostile_server())
    key = (MessageType.REQUEST_URI, b"melt")
    if kind == "async":

        async def melt_async(message: Message, writer: asyncio.StreamWriter) -> Message:
            await asyncio.sleep(0)
            raise Meltdown("async")

        server.add_handler(key, melt_async)
    else:

        def melt(message: Message, writer: asyncio.StreamWriter) -> Message:
            raise Meltdown(kind)

        server.add_handler(key, melt, in_thread=kind == "in-thread")
    peer = await connect(server.port)
    for _ in range(2):
        reply = await peer.request(request(b"", b"melt"))
        assert summary(reply) == error_reply(b"internal server error")
        await round_trip(peer)  # the connection goes on
    assert len(logged(caplog, "Handler failed")) == 2
    assert server._listener is not None  # still serving


# -- (11) blocking handlers in a thread -------------------------------------------


async def test_a_blocking_handler_in_a_thread_does_not_delay_other_clients(
    serve: Serve, connect: Connect
) -> None:
    server = await serve(hostile_server())
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    blocking = 0.5

    @server.on((MessageType.REQUEST_URI, b"block"), in_thread=True)
    def block(message: Message, writer: asyncio.StreamWriter) -> Message:
        loop.call_soon_threadsafe(started.set)
        time.sleep(blocking)
        return request(b"slept", b"block", MessageType.RESPOND_URI)

    with pytest.raises(TypeError, match="plain functions"):

        @server.on((MessageType.REQUEST_URI, b"bad"), in_thread=True)
        async def not_plain(message: Message, writer: asyncio.StreamWriter) -> None:
            return None

    slow, other = await connect(server.port), await connect(server.port)
    began = loop.time()
    await slow.send_bytes(request(b"", b"block").encode())
    await asyncio.wait_for(started.wait(), TIMEOUT)
    latency = await round_trip(other)
    assert latency < 0.2
    assert not slow.reader.at_eof()
    reply = await slow.receive()
    took = loop.time() - began
    assert summary(reply) == (MessageType.RESPOND_URI, b"block", b"slept")
    assert took >= blocking * 0.9
    await round_trip(slow)
    measured("in_thread blocking handler", handler_s=took, other_client_latency_s=latency)


# -- (12) backlog -------------------------------------------------------------------


async def test_backlog_is_used_by_listen_and_300_simultaneous_connects_succeed(
    serve: Serve, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert TCPServer().backlog == 1024
    loop = asyncio.get_running_loop()
    backlogs: list[object] = []
    create_server = loop.create_server

    async def recording(*args: Any, **kwargs: Any) -> asyncio.Server:
        backlogs.append(kwargs.get("backlog"))
        return await create_server(*args, **kwargs)

    monkeypatch.setattr(loop, "create_server", recording)
    server = await serve(hostile_server(backlog=300))
    assert backlogs == [300]
    good = await connect(server.port)
    await round_trip(good)

    count = 300
    began = loop.time()
    opening = asyncio.gather(*(RawPeer.open(server.port) for _ in range(count)))
    latency = await round_trip(good)
    peers = await asyncio.wait_for(opening, TIMEOUT)
    try:
        connected = loop.time() - began
        replies = await asyncio.wait_for(
            asyncio.gather(*(peer.request(request(b"%d" % n)) for n, peer in enumerate(peers))),
            TIMEOUT,
        )
        answered = loop.time() - began
        assert [summary(r) for r in replies] == [echo_reply(b"%d" % n) for n in range(count)]
        assert len(server.clients) == count + 1
    finally:
        for peer in peers:
            await peer.close()
    assert connected < 2.0
    measured(
        "300 simultaneous connects (backlog=300)",
        connected_s=connected,
        all_answered_s=answered,
        good_latency_s=latency,
    )
