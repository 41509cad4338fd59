"""The resilient client: reconnecting to a server that was killed and
restarted, heartbeats finding a stopped peer (either end), malicious servers
that go silent, drip bytes, send garbage or stop reading, the connection
error vocabulary and authentication failures of ``request()``.

Peers that must be killed or stopped run in processes of their own
(``resilient_peer.py`` beside this file). Every wait is bounded; sleeps
appear only where time itself is what is tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

import netaio
from netaio_auth import HMACAuthPlugin
from netaio_client import ConnectionState, ReconnectPolicy, TCPClient
from netaio_core import (
    AuthenticationError,
    AuthPluginProtocol,
    ConnectionClosedError,
    ConnectionUnavailableError,
    ConnectRefusedError,
    ConnectTimeoutError,
    FrameError,
    Limits,
    Message,
    MessageType,
    NotConnectedError,
)
from netaio_server import TCPServer

from .conftest import Serve
from .support import TIMEOUT, echo_server, logged, request, subscribers, wait_until

PEER = Path(__file__).resolve().with_name("resilient_peer.py")
STARTUP = 20.0  # a fresh interpreter importing netaio can be slow on a busy machine
SLACK = 0.5  # scheduling slack allowed on top of every documented bound
HEARTBEAT = Limits(heartbeat_interval=0.3, heartbeat_timeout=0.3)
DEAD_AFTER = 0.6  # HEARTBEAT's interval + timeout

Server = tuple[str, int]
StartPeer = Callable[..., Awaitable[asyncio.subprocess.Process]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def start_peer() -> AsyncIterator[StartPeer]:
    """``await start_peer("server", port)``: ``resilient_peer.py`` running and
    ready; killed (after a SIGCONT) and reaped at teardown."""
    processes: list[asyncio.subprocess.Process] = []

    async def start(*args: object) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PEER),
            *(str(arg) for arg in args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        processes.append(proc)
        assert proc.stdout is not None
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stdout.readline(), STARTUP)
        if line != b"ready\n":
            err = await asyncio.wait_for(proc.stderr.read(), TIMEOUT)
            pytest.fail(f"resilient_peer.py {args} did not start:\n{err.decode(errors='replace')}")
        return proc

    yield start
    for proc in processes:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.kill()
        await asyncio.wait_for(proc.communicate(), TIMEOUT)


def record_states(client: TCPClient[Any]) -> tuple[list[ConnectionState], asyncio.Event]:
    """The states the client's hook sees, and an event set at the first LOST."""
    states: list[ConnectionState] = []
    lost = asyncio.Event()

    @client.on_state_change
    def hook(server: Server, state: ConnectionState) -> None:
        states.append(state)
        if state is ConnectionState.LOST:
            lost.set()

    return states, lost


# -- 1. a server killed and restarted on the same port ------------------------


async def test_reconnects_to_a_killed_and_restarted_server(start_peer: StartPeer) -> None:
    port = free_port()
    proc = await start_peer("server", port)
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.5)
    client: TCPClient[Message] = TCPClient("127.0.0.1", port, reconnect=policy)
    states, lost = record_states(client)
    outcomes: dict[int, list[object]] = {}
    succeeded = asyncio.Event()
    stop = asyncio.Event()
    counts = {"after": 0}
    restarted = asyncio.Event()

    async def requests() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            token = str(n).encode()
            try:
                reply = await client.request(b"echo", token, timeout=2.0)
            except ConnectionClosedError as exc:
                outcomes.setdefault(n, []).append(exc)
            except Exception as exc:  # anything else is a failure of the test
                outcomes.setdefault(n, []).append(exc)
            else:
                outcomes.setdefault(n, []).append(reply.body.content)
                assert reply.body.content == token, "a reply answered another request"
                succeeded.set()
                if restarted.is_set():
                    counts["after"] += 1
            await asyncio.sleep(0.01)  # pacing: failures during the outage are instant

    async with client:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        async with client.subscribe(b"topic") as feed:
            published = await client.request(
                b"topic", b"before", message_type=MessageType.PUBLISH_URI, timeout=TIMEOUT
            )
            assert published.header.message_type is MessageType.OK
            first = await asyncio.wait_for(feed.__anext__(), TIMEOUT)
            assert first.body.content == b"before"

            loop_task = asyncio.create_task(requests())
            try:
                await asyncio.wait_for(succeeded.wait(), TIMEOUT)
                proc.kill()
                await asyncio.wait_for(proc.wait(), TIMEOUT)
                await asyncio.wait_for(lost.wait(), TIMEOUT)

                await start_peer("server", port)
                ready_at = time.monotonic()
                restarted.set()
                assert await asyncio.wait_for(client.wait_reconnected(), TIMEOUT)
                waited = time.monotonic() - ready_at
                # The next attempt comes at most one (capped) backoff delay later.
                assert waited <= policy.max_delay * (1 + policy.jitter) + SLACK, waited

                # The subscription was renewed on the new connection.
                published = await client.request(
                    b"topic", b"after", message_type=MessageType.PUBLISH_URI, timeout=TIMEOUT
                )
                assert published.header.message_type is MessageType.OK
                second = await asyncio.wait_for(feed.__anext__(), TIMEOUT)
                assert second.body.content == b"after"
                await wait_until(lambda: counts["after"] >= 5)
            finally:
                stop.set()
                await asyncio.wait_for(loop_task, TIMEOUT)

    assert counts["after"] >= 5
    for n, results in outcomes.items():
        assert len(results) == 1, f"request {n} completed {len(results)} times: {results}"
        (result,) = results
        assert result == str(n).encode() or isinstance(result, ConnectionClosedError), (n, result)
    assert any(isinstance(r[0], ConnectionClosedError) for r in outcomes.values())
    sequence = [s for i, s in enumerate(states) if i == 0 or states[i - 1] is not s]
    assert sequence[:4] == [
        ConnectionState.CONNECTED,
        ConnectionState.LOST,
        ConnectionState.RECONNECTING,
        ConnectionState.CONNECTED,
    ], states
    assert states[-1] is ConnectionState.CLOSED


# -- 2. heartbeats: a stopped (SIGSTOP) server or client ----------------------


async def test_client_detects_a_stopped_server(start_peer: StartPeer) -> None:
    port = free_port()
    proc = await start_peer("server", port)
    client: TCPClient[Message] = TCPClient("127.0.0.1", port, limits=HEARTBEAT)
    states, lost = record_states(client)
    async with client:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        reply = await client.request(b"echo", b"alive", timeout=TIMEOUT)
        assert reply.body.content == b"alive"

        proc.send_signal(signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            with pytest.raises(ConnectionClosedError, match="heartbeat") as caught:
                await client.request(b"echo", b"anyone?", timeout=TIMEOUT)
            elapsed = time.monotonic() - stopped_at
            assert elapsed <= DEAD_AFTER + SLACK, elapsed
            assert caught.value.server == ("127.0.0.1", port)
            assert lost.is_set()
            with pytest.raises(ConnectionClosedError):
                await client.request(b"echo", b"again", timeout=TIMEOUT)
        finally:
            proc.send_signal(signal.SIGCONT)
    assert states[:2] == [ConnectionState.CONNECTED, ConnectionState.LOST]


async def test_server_detects_a_stopped_client(
    start_peer: StartPeer, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="netaio.server")
    server = await serve(echo_server(HEARTBEAT))
    proc = await start_peer("client", server.port, 0.3)  # HEARTBEAT's interval
    assert set(subscribers(server)) == {b"topic"}
    assert len(server.clients) == 1

    proc.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    await wait_until(lambda: not server.clients and not server.subscriptions)
    elapsed = time.monotonic() - stopped_at
    assert elapsed <= DEAD_AFTER + SLACK, elapsed
    assert subscribers(server) == {}
    assert logged(caplog, "no heartbeat from the client (dead peer)")


# -- 3. malicious servers ---------------------------------------------------


@contextlib.asynccontextmanager
async def raw_server(
    behave: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    sock: socket.socket | None = None,
) -> AsyncIterator[int]:
    """A bare asyncio server running ``behave`` per connection; its port."""
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        # The client aborting is expected; cancelled at exit, the task ends
        # normally (asyncio.streams reports a cancelled handler task).
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await behave(reader, writer)

    if sock is None:
        listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    else:
        listener = await asyncio.start_server(handle, sock=sock)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        for task in tasks:
            task.cancel()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT)
        for writer in writers:
            writer.transport.abort()
        await asyncio.wait_for(listener.wait_closed(), TIMEOUT)


async def discard_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(65536):
        pass


async def test_silent_server_times_out_then_fails_the_heartbeat() -> None:
    async with raw_server(discard_forever) as port:
        quiet: TCPClient[Message] = TCPClient("127.0.0.1", port)
        async with quiet:
            await asyncio.wait_for(quiet.connect(), TIMEOUT)
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="no reply"):
                await quiet.request(b"echo", b"?", timeout=0.3)
            assert time.monotonic() - started <= 0.3 + SLACK
            with pytest.raises(TimeoutError):
                await quiet.receive_once(timeout=0.2)

        client: TCPClient[Message] = TCPClient("127.0.0.1", port, limits=HEARTBEAT)
        async with client:
            await asyncio.wait_for(client.connect(), TIMEOUT)
            started = time.monotonic()
            with pytest.raises(ConnectionClosedError, match="heartbeat"):
                await client.request(b"echo", b"?", timeout=TIMEOUT)
            assert time.monotonic() - started <= DEAD_AFTER + SLACK


async def test_dripping_server_hits_the_frame_timeout() -> None:
    frame = request(b"x" * 100, b"echo", MessageType.RESPOND_URI).encode()
    first_byte = asyncio.Event()

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in range(len(frame)):
            writer.write(frame[i : i + 1])
            first_byte.set()
            await asyncio.sleep(0.1)  # the drip is the time under test

    async with raw_server(drip) as port:
        client: TCPClient[Message] = TCPClient("127.0.0.1", port, limits=Limits(frame_timeout=0.5))
        async with client:
            await asyncio.wait_for(client.connect(), TIMEOUT)
            pending = asyncio.create_task(client.request(b"echo", b"?", timeout=TIMEOUT))
            await asyncio.wait_for(first_byte.wait(), TIMEOUT)
            started = time.monotonic()
            with pytest.raises(ConnectionClosedError, match="frame_timeout"):
                await pending
            assert time.monotonic() - started <= 0.5 + SLACK
            with pytest.raises(ConnectionClosedError):
                await client.receive_once(timeout=TIMEOUT)


@contextlib.asynccontextmanager
async def garbage_client() -> AsyncIterator[tuple[TCPClient[Message], asyncio.Task[Message]]]:
    """A client whose server answers its request with 1 MB of garbage: the
    client and the task of that request."""
    # With the default header every 9 bytes decode (an unknown message type
    # is skipped as a frame), so the garbage is made undecodable by the
    # client's limit: a frame over max_frame_size cannot be read.
    garbage = b"\xff" * (1024 * 1024)

    async def spew(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the request has arrived
        writer.write(garbage)
        await writer.drain()
        await discard_forever(reader, writer)

    async with raw_server(spew) as port:
        limits = Limits(max_frame_size=4096)
        client: TCPClient[Message] = TCPClient("127.0.0.1", port, limits=limits)
        async with client:
            await asyncio.wait_for(client.connect(), TIMEOUT)
            pending = asyncio.create_task(client.request(b"echo", b"?", timeout=TIMEOUT))
            yield client, pending


async def test_garbage_from_the_server_aborts_the_connection() -> None:
    async with garbage_client() as (client, pending):
        started = time.monotonic()
        with pytest.raises(ConnectionClosedError, match="undecodable"):
            await pending
        assert time.monotonic() - started <= SLACK
        with pytest.raises(FrameError, match="refused"):
            await client.receive_once(timeout=TIMEOUT)
        with pytest.raises(ConnectionClosedError):
            await client.send(request(b"?"))
        with pytest.raises(ConnectionClosedError):
            await client.request(b"echo", b"?", timeout=TIMEOUT)


async def test_garbage_raises_frame_error_once_then_connection_closed() -> None:
    """receive_once raises the FrameError once; after it, the connection is
    simply closed (a loop that goes on after a FrameError must not spin)."""
    async with garbage_client() as (client, pending):
        with pytest.raises(ConnectionClosedError):
            await pending
        with pytest.raises(FrameError):
            await client.receive_once(timeout=TIMEOUT)
        with pytest.raises(ConnectionClosedError):
            await client.receive_once(timeout=TIMEOUT)


async def test_server_that_never_reads_fails_the_send() -> None:
    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited on accept
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    listening.setblocking(False)

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    async with raw_server(never_read, sock=listening) as port:
        client: TCPClient[Message] = TCPClient("127.0.0.1", port, limits=Limits(write_timeout=0.5))
        async with client:
            await asyncio.wait_for(client.connect(), TIMEOUT)
            big = request(b"x" * 60_000)

            async def flood() -> float:
                while True:
                    started = time.monotonic()
                    try:
                        await client.send(big)
                    except ConnectionClosedError as exc:
                        reasons.append(str(exc))
                        return time.monotonic() - started

            reasons: list[str] = []
            last_send = await asyncio.wait_for(flood(), TIMEOUT)
            assert "not reading" in reasons[0], reasons
            assert last_send <= 0.5 + SLACK, last_send
            with pytest.raises(ConnectionClosedError):
                await client.send(big)


# -- 4. the error vocabulary --------------------------------------------------


async def test_a_closed_port_raises_connect_refused() -> None:
    port = free_port()
    client: TCPClient[Message] = TCPClient("127.0.0.1", port)
    with pytest.raises(ConnectRefusedError) as caught:
        await asyncio.wait_for(client.connect(), TIMEOUT)
    error = caught.value
    assert isinstance(error, ConnectionRefusedError)
    assert isinstance(error, ConnectionUnavailableError)
    assert isinstance(error, ConnectionError)
    assert isinstance(error, netaio.NetaioError)
    assert error.server == ("127.0.0.1", port)
    assert netaio.ConnectRefusedError is ConnectRefusedError
    assert not client.hosts


async def test_a_hanging_connect_raises_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    async def never_connects(*args: Any, **kwargs: Any) -> NoReturn:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(asyncio.get_running_loop(), "create_connection", never_connects)
    client: TCPClient[Message] = TCPClient("127.0.0.1", 9)
    with pytest.raises(ConnectTimeoutError) as caught:
        await asyncio.wait_for(client.connect(timeout=0.1), TIMEOUT)
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, ConnectionUnavailableError)
    assert error.server == ("127.0.0.1", 9)
    assert netaio.ConnectTimeoutError is ConnectTimeoutError


async def test_not_connected_is_a_connection_unavailable_error() -> None:
    client: TCPClient[Message] = TCPClient("127.0.0.1", 9)
    with pytest.raises(ConnectionUnavailableError) as caught:
        await client.request(b"echo", b"?", timeout=1.0)
    assert isinstance(caught.value, NotConnectedError)
    assert isinstance(caught.value, ConnectionError)
    assert caught.value.server == ("127.0.0.1", 9)
    with pytest.raises(NotConnectedError):
        await client.send(request(b"?"))
    assert netaio.NotConnectedError is NotConnectedError
    assert netaio.ConnectionUnavailableError is ConnectionUnavailableError
    assert issubclass(netaio.ConnectionClosedError, ConnectionUnavailableError)


# -- 5. authentication failures -------------------------------------------------


async def test_request_raises_for_an_auth_error_reply(serve: Serve) -> None:
    server = await serve(
        echo_server(auth_plugin=HMACAuthPlugin({"secret": "server", "bind_routing": False}))
    )
    client: TCPClient[Message] = TCPClient("127.0.0.1", server.port)
    async with client:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        with pytest.raises(AuthenticationError) as caught:
            await client.request(b"echo", b"?", timeout=TIMEOUT)
    reply = caught.value.reply
    assert isinstance(reply, Message)
    assert reply.header.message_type is MessageType.AUTH_ERROR


async def test_request_raises_for_an_auth_error_with_different_secrets(serve: Serve) -> None:
    server = await serve(
        echo_server(auth_plugin=HMACAuthPlugin({"secret": "server", "bind_routing": False}))
    )
    plugin = HMACAuthPlugin({"secret": "client", "bind_routing": False})
    client: TCPClient[Message] = TCPClient("127.0.0.1", server.port, auth_plugin=plugin)
    async with client:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        with pytest.raises(AuthenticationError):
            await client.request(b"echo", b"?", timeout=TIMEOUT)
        # The connection goes on.
        with pytest.raises(AuthenticationError):
            await client.request(b"echo", b"again", timeout=TIMEOUT)


def signing_server(secret: str) -> TCPServer[Message]:
    """A server without an auth plugin whose echo replies are signed with
    ``secret`` (so that they fail the check of a client with another one).
    The handler signs before the server adds the correlation id, so the
    plugins here do not bind routing (see netaio_core.binding)."""
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)
    signer = HMACAuthPlugin({"secret": secret, "bind_routing": False})

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        reply = request(message.body.content, b"echo", MessageType.RESPOND_URI)
        signer.make(reply.auth_data, reply.body)
        return reply

    return server


async def test_request_raises_for_a_reply_failing_the_clients_check(serve: Serve) -> None:
    server = await serve(signing_server("server"))
    plugin = HMACAuthPlugin({"secret": "client", "bind_routing": False})
    client: TCPClient[Message] = TCPClient("127.0.0.1", server.port, auth_plugin=plugin)
    async with client:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        with pytest.raises(AuthenticationError) as caught:
            await client.request(b"echo", b"?", timeout=TIMEOUT)
        assert caught.value.plugin is plugin

    same: TCPClient[Message] = TCPClient(
        "127.0.0.1",
        server.port,
        auth_plugin=HMACAuthPlugin({"secret": "server", "bind_routing": False}),
    )
    async with same:
        await asyncio.wait_for(same.connect(), TIMEOUT)
        reply = await same.request(b"echo", b"ok", timeout=TIMEOUT)
        assert reply.body.content == b"ok"


async def test_auth_error_handler_in_receive_loop_and_receive_once(serve: Serve) -> None:
    server = await serve(signing_server("server"))
    plugin = HMACAuthPlugin({"secret": "client", "bind_routing": False})
    calls: list[tuple[object, AuthPluginProtocol | None, bytes]] = []
    called = asyncio.Event()

    def on_auth_error(client: object, failed: AuthPluginProtocol | None, message: Any) -> None:
        calls.append((client, failed, message.body.content))
        called.set()

    looping: TCPClient[Message] = TCPClient(
        "127.0.0.1", server.port, auth_plugin=plugin, auth_error_handler=on_auth_error
    )
    async with looping:
        await asyncio.wait_for(looping.connect(), TIMEOUT)
        await looping.start_receive_loop()
        await looping.send(request(b"pushed"))
        await asyncio.wait_for(called.wait(), TIMEOUT)
    assert calls == [(looping, plugin, b"pushed")]

    once: TCPClient[Message] = TCPClient(
        "127.0.0.1", server.port, auth_plugin=plugin, auth_error_handler=on_auth_error
    )
    async with once:
        await asyncio.wait_for(once.connect(), TIMEOUT)
        await once.send(request(b"polled"))
        assert await once.receive_once(timeout=TIMEOUT) is None
    assert len(calls) == 1  # receive_once does not call the handler


async def test_a_busy_subscriber_is_not_taken_for_dead(serve: Serve) -> None:
    """A subscriber that receives notifications more often than the interval
    has no reason to ping, yet it is alive: the server must not drop it."""
    server = await serve(echo_server(HEARTBEAT))
    client: TCPClient[Message] = TCPClient("127.0.0.1", server.port, limits=HEARTBEAT)
    states, lost = record_states(client)
    async with client:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        async with client.subscribe(b"topic") as feed:
            await asyncio.sleep(2 * 0.3)  # HEARTBEAT's interval, twice: one heartbeat is sent
            received = 0
            for n in range(15):  # 1.5 s: more than twice interval + timeout
                note = request(str(n).encode(), b"topic", MessageType.NOTIFY_URI)
                await server.notify(b"topic", note)
                message = await asyncio.wait_for(feed.__anext__(), TIMEOUT)
                received += message.body.content == str(n).encode()
                await asyncio.sleep(0.1)  # the notification rate is what is tested
            assert received == 15
            assert not lost.is_set(), "the server dropped a live, busy subscriber"
            reply = await client.request(b"echo", b"alive", timeout=TIMEOUT)
            assert reply.body.content == b"alive"
    assert ConnectionState.LOST not in states
