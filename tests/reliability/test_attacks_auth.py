"""Attacks on the auth and cipher plugins over live loopback connections;
every one must be refused (docs/security.md, "Message authentication")."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
import time
from struct import Struct
from typing import Any

import pytest

from netaio_auth import HMACAuthPlugin
from netaio_client import TCPClient
from netaio_core import AuthenticationError, Body, Message, MessageType
from netaio_core.binding import FROM_CLIENT, set_route
from netaio_core.correlation import set_correlation_id
from netaio_server import TCPServer

from .conftest import Connect, Serve
from .support import ECHO_URI, TIMEOUT, request, summary

SECRET = secrets.token_bytes(32)
HEADER = Struct("!BHHI")
AUTH_ERROR = MessageType.AUTH_ERROR.value
REFUSALS = {MessageType.AUTH_ERROR.value, MessageType.ERROR.value}

Calls = list[tuple[MessageType, bytes, bytes]]


def recording_server(**kwargs: Any) -> tuple[TCPServer[Message], Calls]:
    """A server whose handlers, for every request type, record what they got;
    REQUEST_URI echoes, the others answer OK."""
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0, **kwargs)
    calls: Calls = []

    def record(message: Message, writer: asyncio.StreamWriter) -> Message:
        calls.append(summary(message))
        kind = message.header.message_type
        if kind is MessageType.REQUEST_URI:
            return request(message.body.content, message.body.uri, MessageType.RESPOND_URI)
        return request(b"done", message.body.uri, MessageType.OK)

    for kind in (
        MessageType.REQUEST_URI,
        MessageType.CREATE_URI,
        MessageType.DELETE_URI,
        MessageType.AUTH_ERROR,
        MessageType.RESPOND_URI,
    ):
        server.add_handler(kind, record)
    return server, calls


def frames_of(buffer: bytearray) -> list[bytes]:
    """Take the complete frames out of ``buffer``."""
    frames = []
    while len(buffer) >= 9:
        _, auth_length, body_length, _ = HEADER.unpack_from(buffer)
        end = 9 + auth_length + body_length
        if len(buffer) < end:
            break
        frames.append(bytes(buffer[:end]))
        del buffer[:end]
    return frames


def tap(client: TCPClient[Message]) -> list[bytes]:
    """Every chunk the client writes from now on (its only connection)."""
    (connection,) = client._connections.values()
    transport: Any = connection.transport
    written: list[bytes] = []
    write = transport.write

    def recording_write(data: bytes) -> None:
        written.append(bytes(data))
        write(data)

    transport.write = recording_write
    return written


async def client_for(port: int, **kwargs: Any) -> TCPClient[Message]:
    client: TCPClient[Message] = TCPClient("127.0.0.1", port, **kwargs)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    return client


async def outcome(port: int, frame: bytes) -> list[int]:
    """Send ``frame`` alone on a fresh connection, then end it: the types of
    the replies the server sent before it closed."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    try:
        writer.write(frame)
        writer.write_eof()
        data = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
                data += chunk
        return [f[0] for f in frames_of(data)]
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


async def outcomes(port: int, frames: list[bytes], width: int = 48) -> list[list[int]]:
    """``outcome`` of each frame, ``width`` connections at a time."""
    gate = asyncio.Semaphore(width)

    async def one(frame: bytes) -> list[int]:
        async with gate:
            return await outcome(port, frame)

    return await asyncio.wait_for(asyncio.gather(*(one(f) for f in frames)), 4 * TIMEOUT)


def signed_request(config: dict[str, Any], content: bytes = b"x", cid: int = 5) -> bytes:
    """A request to ``ECHO_URI`` signed as a netaio client signs it."""
    message = request(content)
    set_correlation_id(message, cid)
    set_route(message, FROM_CLIENT)
    HMACAuthPlugin(config).make(message.auth_data, message.body)
    return message.encode()


def with_body(frame: bytes, uri: bytes, content: bytes) -> bytes:
    """``frame`` with another body and a correct checksum (same header type
    and auth section): only a MAC or tag can tell."""
    message = Message.decode(frame)
    return Message.prepare(
        Body.prepare(content, uri), message.header.message_type, message.auth_data
    ).encode()


def flipped_bits(frame: bytes) -> list[bytes]:
    mutated = []
    for bit in range(len(frame) * 8):
        copy = bytearray(frame)
        copy[bit // 8] ^= 1 << (bit % 8)
        mutated.append(bytes(copy))
    return mutated


# -- (a) reflection ------------------------------------------------------------


@pytest.mark.parametrize("max_skew", [None, 30])
async def test_a_reflected_auth_error_is_refused(
    serve: Serve, connect: Connect, max_skew: int | None
) -> None:
    config: dict[str, Any] = {"secret": SECRET, "max_skew": max_skew}
    server, calls = recording_server(auth_plugin=HMACAuthPlugin(config))
    peer = await connect((await serve(server)).port)
    junk = request(b"no signature", MessageType.REQUEST_URI.name.encode()).encode()
    reply = await peer.request_bytes(junk)
    assert reply.header.message_type is MessageType.AUTH_ERROR
    signed = reply.encode()
    assert HMACAuthPlugin(config).check(Message.decode(signed).auth_data, reply.body)

    straight_back = await peer.request_bytes(signed)
    turned = bytearray(signed)
    turned[0] = MessageType.CREATE_URI.value
    as_create = await peer.request_bytes(bytes(turned))
    for answer in (straight_back, as_create):
        assert summary(answer) == (MessageType.AUTH_ERROR, b"ERROR", b"HMAC auth failed")
    assert calls == []
    # Refused before the plugin: nothing entered its replay cache.
    assert server.auth_plugin is not None
    assert server.auth_plugin._seen == set()  # type: ignore[attr-defined]


REFLECTIONS = 6000  # past the server's replay_cache_size of 4096


async def test_reflection_flood_does_not_starve_a_skewed_honest_client(serve: Serve) -> None:
    """An attacker sends every signed reply straight back, at full speed,
    while an honest client whose clock is 5 s behind keeps asking. Had
    reflected frames entered the (small) replay cache, evicting them would
    raise its horizon past the honest client's timestamps."""
    server_plugin = HMACAuthPlugin({"secret": SECRET, "max_skew": 30, "replay_cache_size": 4096})
    server, calls = recording_server(auth_plugin=server_plugin)
    port = (await serve(server)).port
    honest = await client_for(
        port,
        auth_plugin=HMACAuthPlugin(
            {"secret": SECRET, "max_skew": 30}, clock=lambda: time.time() - 5
        ),
    )
    reflected = 0
    stop = asyncio.Event()

    async def attacker() -> None:
        nonlocal reflected
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request(b"junk").encode() * 64)  # 64 signed replies to bounce
            buffer = bytearray()
            # More reflections than the cache holds; the deadline only bounds
            # a stalled run (the count, not the clock, ends a healthy one).
            deadline = time.monotonic() + 4 * TIMEOUT
            while reflected < REFLECTIONS and time.monotonic() < deadline:
                chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
                if not chunk:
                    break
                buffer += chunk
                for frame in frames_of(buffer):
                    writer.write(frame)
                    reflected += 1
                await writer.drain()
        finally:
            stop.set()
            writer.close()

    async def honest_load() -> tuple[int, int]:
        ok = total = 0
        while not stop.is_set() or total < 200:
            total += 1
            with contextlib.suppress(AuthenticationError, TimeoutError):
                reply = await honest.request(ECHO_URI, b"%d" % total, timeout=2.0)
                ok += reply.body.content == b"%d" % total
        return ok, total

    try:
        _, (ok, total) = await asyncio.wait_for(
            asyncio.gather(attacker(), honest_load()), 6 * TIMEOUT
        )
    finally:
        await honest.close()
    assert reflected >= REFLECTIONS, reflected
    assert ok >= 0.99 * total, (ok, total)
    assert all(kind is MessageType.REQUEST_URI for kind, _, _ in calls)
    assert len(server_plugin._seen) <= total  # only honest nonces were remembered


# -- (b) replay ------------------------------------------------------------------


DEFAULT = "default"  # the config names only the secret


@pytest.mark.parametrize("max_skew", [DEFAULT, 30, None])
async def test_replay_of_a_captured_create(
    serve: Serve, connect: Connect, max_skew: int | str | None
) -> None:
    """A captured signed CREATE sent four more times, on fresh connections:
    the handler runs once unless replay protection was turned off."""
    config: dict[str, Any] = {"secret": SECRET}
    if max_skew != DEFAULT:
        config["max_skew"] = max_skew
    server, calls = recording_server(auth_plugin=HMACAuthPlugin(config))
    port = (await serve(server)).port
    client = await client_for(port, auth_plugin=HMACAuthPlugin(config))
    try:
        written = tap(client)
        reply = await client.request(b"accounts", b"open 10", message_type=MessageType.CREATE_URI)
        assert reply.header.message_type is MessageType.OK
    finally:
        await client.close()
    (captured,) = written
    for _ in range(4):
        peer = await connect(port)
        replayed = await peer.request_bytes(captured)
        if max_skew is None:
            # Documented: max_skew=None turns replay protection off.
            assert replayed.header.message_type is MessageType.OK
        else:
            assert replayed.header.message_type is MessageType.AUTH_ERROR
    creates = [call for call in calls if call[0] is MessageType.CREATE_URI]
    assert len(creates) == (5 if max_skew is None else 1)


# -- (c) tampering ------------------------------------------------------------------


async def captured_request(port: int, config: dict[str, Any], content: bytes) -> bytes:
    """A request frame a real client sent (and the server answered)."""
    client = await client_for(port, auth_plugin=HMACAuthPlugin(config))
    try:
        written = tap(client)
        await client.request(ECHO_URI, content)
    finally:
        await client.close()
    (frame,) = written
    return frame


@pytest.mark.parametrize("part", ["type", "uri", "content", "cid"])
async def test_tampering_is_refused(serve: Serve, connect: Connect, part: str) -> None:
    config: dict[str, Any] = {"secret": SECRET}  # no max_skew: only the MAC refuses
    server, calls = recording_server(auth_plugin=HMACAuthPlugin(config))
    port = (await serve(server)).port
    frame = bytearray(await captured_request(port, config, b"record 7"))
    calls.clear()
    if part == "type":
        frame[0] = MessageType.DELETE_URI.value
    elif part == "uri":
        frame = bytearray(with_body(bytes(frame), b"elsewhere", b"record 7"))
    elif part == "content":
        frame = bytearray(with_body(bytes(frame), ECHO_URI, b"record 8"))
    else:
        marker = b"\x43\x03cid\x44"  # key "cid", then an int in one byte
        at = frame.index(marker) + len(marker)
        before = frame[at]
        frame[at] ^= 0x01
        assert Message.decode(bytes(frame)).auth_data.fields["cid"] == before ^ 0x01
    peer = await connect(port)
    reply = await peer.request_bytes(bytes(frame))
    assert reply.header.message_type is MessageType.AUTH_ERROR
    assert calls == []


async def test_every_single_bit_flip_of_a_signed_frame_is_refused(serve: Serve) -> None:
    config: dict[str, Any] = {"secret": SECRET}
    server, calls = recording_server(auth_plugin=HMACAuthPlugin(config))
    port = (await serve(server)).port
    frame = signed_request(config)
    results = await outcomes(port, flipped_bits(frame))
    assert calls == []
    for bit, replies in enumerate(results):
        assert set(replies) <= REFUSALS, (bit, replies)
    assert await outcome(port, frame) == [MessageType.RESPOND_URI.value]  # the intact one passes
    assert len(calls) == 1


# -- (d) the AEAD cipher ---------------------------------------------------------------


class Proxy:
    """A loopback TCP proxy that records the bytes of each direction."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.up = bytearray()
        self.down = bytearray()
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(
            self._pipe(reader, up_writer, self.up),
            self._pipe(up_reader, writer, self.down),
            return_exceptions=True,
        )

    @staticmethod
    async def _pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                record += chunk
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()

    async def close(self) -> None:
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), TIMEOUT)


def aead(secret: str = "aead secret", **config: Any) -> Any:
    pytest.importorskip("cryptography")
    from netaio_auth import AEADCipherPlugin

    return AEADCipherPlugin({"secret": secret, **config})


@pytest.mark.parametrize("encrypt_uri", [False, True])
async def test_the_wire_never_holds_the_plaintext(serve: Serve, encrypt_uri: bool) -> None:
    server, calls = recording_server(cipher_plugin=aead(encrypt_uri=encrypt_uri))
    proxy = Proxy((await serve(server)).port)
    client = await client_for(await proxy.start(), cipher_plugin=aead(encrypt_uri=encrypt_uri))
    uri = b"ledger/secret-account"
    content = b"transfer 1000 to mallory"
    try:
        for _ in range(3):
            reply = await client.request(uri, content)
            assert summary(reply) == (MessageType.RESPOND_URI, uri, content)
    finally:
        await client.close()
        await proxy.close()
    assert calls == [(MessageType.REQUEST_URI, uri, content)] * 3
    assert len(proxy.up) > 0
    assert len(proxy.down) > 0
    for stream in (bytes(proxy.up), bytes(proxy.down)):
        assert content not in stream
        assert b"mallory" not in stream
        assert (uri in stream) is not encrypt_uri


async def test_tampering_any_byte_of_an_encrypted_frame_is_refused(serve: Serve) -> None:
    server, calls = recording_server(cipher_plugin=aead())
    port = (await serve(server)).port
    client = await client_for(port, cipher_plugin=aead(max_skew=None))
    try:
        written = tap(client)
        await client.request(ECHO_URI, b"pay 5")
    finally:
        await client.close()
    (frame,) = written
    calls.clear()
    # Any byte of the frame, as it goes on the wire (header and checksum too).
    mutated = []
    for at in range(len(frame)):
        copy = bytearray(frame)
        copy[at] ^= 0x01
        mutated.append(bytes(copy))
    for at, replies in enumerate(await outcomes(port, mutated)):
        assert set(replies) <= REFUSALS, (at, replies)
    # Any byte of the content with a correct checksum: only the tag can tell.
    message = Message.decode(frame)
    content = message.body.content
    forged = [
        with_body(
            frame, message.body.uri, content[:at] + bytes((content[at] ^ 0x80,)) + content[at + 1 :]
        )
        for at in range(len(content))
    ]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"".join(forged))
        buffer = bytearray()
        replies: list[bytes] = []
        while len(replies) < len(forged):
            chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
            assert chunk
            buffer += chunk
            replies += frames_of(buffer)
    finally:
        writer.close()
    assert {reply[0] for reply in replies} == {AUTH_ERROR}
    assert calls == []


async def test_the_wrong_key_gets_auth_error_on_the_wire(serve: Serve) -> None:
    server, calls = recording_server(cipher_plugin=aead("the server's secret"))
    proxy = Proxy((await serve(server)).port)
    client = await client_for(await proxy.start(), cipher_plugin=aead("another secret"))
    try:
        with pytest.raises(AuthenticationError):
            await client.request(ECHO_URI, b"let me in", timeout=TIMEOUT)
    finally:
        await client.close()
        await proxy.close()
    assert calls == []
    assert proxy.down[0] == AUTH_ERROR


async def test_a_handler_cipher_alone_binds_the_message_type(
    serve: Serve, connect: Connect
) -> None:
    """A per-handler cipher with no endpoint plugin: a captured encrypted
    REQUEST_URI whose type byte is changed to DELETE_URI (a handler with the
    same cipher) must not reach the DELETE handler. The tag covers ``rt``,
    but ``rt`` must also be checked against the frame's type."""
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=0)
    deleted: list[bytes] = []
    cipher = aead("handler secret", max_skew=None)  # so that a replay alone passes

    @server.on((MessageType.REQUEST_URI, b"vault"), cipher_plugin=cipher)
    def read(message: Message, writer: asyncio.StreamWriter) -> Message:
        return request(b"contents", b"vault", MessageType.RESPOND_URI)

    @server.on((MessageType.DELETE_URI, b"vault"), cipher_plugin=cipher)
    def delete(message: Message, writer: asyncio.StreamWriter) -> Message:
        deleted.append(message.body.content)
        return request(b"deleted", b"vault", MessageType.OK)

    port = (await serve(server)).port
    client = await client_for(port, cipher_plugin=aead("handler secret"))
    try:
        written = tap(client)
        reply = await client.request(b"vault", b"show")
        assert reply.body.content == b"contents"
    finally:
        await client.close()
    frame = bytearray(written[0])
    frame[0] = MessageType.DELETE_URI.value
    peer = await connect(port)
    answer = await peer.request_bytes(bytes(frame))
    assert answer.header.message_type is MessageType.AUTH_ERROR
    assert deleted == []


# -- (e) X25519 -----------------------------------------------------------------------


def x25519(**config: Any) -> Any:
    pytest.importorskip("cryptography")
    from netaio_auth import X25519CipherPlugin

    config.setdefault("private_key", X25519CipherPlugin.generate_private_key())
    return X25519CipherPlugin(config)


@pytest.mark.parametrize("ephemeral", [False, True])
async def test_x25519_clients_each_with_their_own_key(serve: Serve, ephemeral: bool) -> None:
    clients_plugins = [x25519(ephemeral=ephemeral) for _ in range(4)]
    server_plugin = x25519(
        ephemeral=ephemeral, trusted_public_keys=[p.public_key for p in clients_plugins]
    )
    server, calls = recording_server(cipher_plugin=server_plugin)
    proxy = Proxy((await serve(server)).port)
    port = await proxy.start()
    clients = []
    for plugin in clients_plugins:
        plugin.peer_public_key = server_plugin.public_key
        clients.append(await client_for(port, cipher_plugin=plugin))
    stranger = await client_for(
        port, cipher_plugin=x25519(ephemeral=ephemeral, peer_public_key=server_plugin.public_key)
    )
    try:

        async def ask(client: TCPClient[Message], n: int) -> None:
            for i in range(5):
                content = b"client %d asks %d" % (n, i)
                reply = await client.request(ECHO_URI, content, timeout=TIMEOUT)
                assert reply.body.content == content

        await asyncio.wait_for(asyncio.gather(*(ask(c, n) for n, c in enumerate(clients))), TIMEOUT)
        with pytest.raises(AuthenticationError):
            await stranger.request(ECHO_URI, b"stranger", timeout=TIMEOUT)
    finally:
        for client in [*clients, stranger]:
            await client.close()
        await proxy.close()
    assert len(calls) == 20
    assert all(content.startswith(b"client ") for _, _, content in calls)
    for stream in (bytes(proxy.up), bytes(proxy.down)):
        assert b"asks" not in stream
        assert b"stranger" not in stream


async def test_x25519_client_refuses_a_server_with_another_key(serve: Serve) -> None:
    impostor = x25519()
    server, _ = recording_server(cipher_plugin=impostor)
    port = (await serve(server)).port
    expected = x25519()  # the key the client trusts is not the impostor's
    client = await client_for(port, cipher_plugin=x25519(peer_public_key=expected.public_key))
    try:
        with pytest.raises((AuthenticationError, TimeoutError)):
            await client.request(ECHO_URI, b"hello", timeout=2.0)
    finally:
        await client.close()


# -- (f) netaio-auth without cryptography --------------------------------------------

WITHOUT_CRYPTOGRAPHY = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == "cryptography" or name.startswith("cryptography."):
            raise ImportError("blocked: " + name)
        return None

sys.meta_path.insert(0, Blocker())
for name in [m for m in sys.modules if m.startswith("cryptography")]:
    del sys.modules[name]

import netaio_auth
from netaio_auth import AEADCipherPlugin, HMACAuthPlugin, X25519CipherPlugin
from netaio_core import Body, Message

plugin = HMACAuthPlugin({"secret": "s", "max_skew": 30})
message = Message.prepare(Body.prepare(b"hi", b"u"))
plugin.make(message.auth_data, message.body)
assert HMACAuthPlugin({"secret": "s"}).check(message.auth_data, message.body)
for make in (lambda: AEADCipherPlugin({"secret": "x"}),
             lambda: X25519CipherPlugin({"private_key": bytes(32)})):
    try:
        make()
    except ImportError as exc:
        assert "netaio-auth[crypto]" in str(exc), exc
    else:
        raise AssertionError("no ImportError without cryptography")
assert not any(m.startswith("cryptography") for m in sys.modules)
print("ok")
"""


def test_netaio_auth_works_without_cryptography() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_CRYPTOGRAPHY],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
