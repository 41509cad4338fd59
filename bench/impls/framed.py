"""The framed implementations: the same wire format (netaio's frames).

- ``NetaioServer`` / ``NetaioClient``: netaio through its documented API,
  whatever ``import netaio`` resolves to in this interpreter (this
  repository's umbrella, or netaio 0.0.2 from PyPI in an environment of its
  own); ``NetaioRequestClient``: the same with ``TCPClient.request``.
- ``RawServer`` / ``RawClient``: asyncio streams and struct doing the same
  framing, without routing.
- ``RawProtocolServer`` / ``RawProtocolClient``: a plain ``asyncio.Protocol``
  that parses every complete frame of its buffer in ``data_received`` and
  writes all the replies of that call at once: the ceiling of asyncio.

Servers: ``start() -> port``, ``stop()``, ``clients`` (live connections);
the netaio and raw-streams servers also ``notify()`` subscribers. Clients:
``connect(port)``, ``request(content) -> content``, ``send(content)`` and
``receive() -> content`` (replies in order), ``close()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from collections import deque
from struct import Struct
from typing import Any, cast
from zlib import crc32

from common import ECHO_URI, HOST, PAYLOAD, SECRET, TOPIC, free_port, until

_HEADER = Struct("!BHHI")
_U32 = Struct("!I")
_EMPTY_AUTH = b"\x4d\x40\x00"  # an empty dict in the auth section encoding
# A dict {"nonce": 16 bytes, "ts": 4 bytes, "hmac": 32 bytes} in the auth
# section encoding has a fixed layout: pairs sorted by their encoded bytes
# (ts, hmac, nonce) behind a dict header with their lengths.
_AUTH_PREFIX = bytes((0x4D, 0x40, 3, 15, 45, 30))
_TS_PAIR = bytes((0x4C, 0x40, 2, 4, 6, 0x43, 2)) + b"ts" + bytes((0x41, 4))
_HMAC_PAIR = bytes((0x4C, 0x40, 2, 6, 34, 0x43, 4)) + b"hmac" + bytes((0x41, 32))
_NONCE_PAIR = bytes((0x4C, 0x40, 2, 7, 18, 0x43, 5)) + b"nonce" + bytes((0x41, 16))
_AUTH_LENGTH = 96
_HMAC_KEY = hashlib.sha256(SECRET).digest()  # the key both netaio versions derive


def raw_auth(body: bytes) -> bytes:
    """Sign ``body``: the auth section holding a fresh nonce, ts and hmac."""
    nonce = os.urandom(16)
    ts = int(time.time()).to_bytes(4, "big")
    mac = hmac.new(_HMAC_KEY, nonce + ts + body, hashlib.sha256).digest()
    return _AUTH_PREFIX + _TS_PAIR + ts + _HMAC_PAIR + mac + _NONCE_PAIR + nonce


def raw_auth_ok(auth: bytes, body: bytes) -> bool:
    """Check an auth section made by ``raw_auth`` against ``body``."""
    if len(auth) != _AUTH_LENGTH or not auth.startswith(_AUTH_PREFIX):
        return False
    ts, mac, nonce = auth[17:21], auth[34:66], auth[80:96]
    expected = hmac.new(_HMAC_KEY, nonce + ts + body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, mac)


def raw_frame(message_type: int, uri: bytes, content: bytes, signed: bool) -> bytes:
    body = _U32.pack(len(uri)) + uri + content
    auth = raw_auth(body) if signed else _EMPTY_AUTH
    return _HEADER.pack(message_type, len(auth), len(body), crc32(body)) + auth + body


async def raw_read(reader: asyncio.StreamReader, signed: bool) -> tuple[int, bytes, bytes]:
    """Read one frame; check its checksum (and hmac); return type, uri, content."""
    message_type, auth_length, body_length, checksum = _HEADER.unpack(await reader.readexactly(9))
    data = await reader.readexactly(auth_length + body_length)
    body = data[auth_length:]
    if crc32(body) != checksum:
        raise ValueError("checksum mismatch")
    if signed and not raw_auth_ok(data[:auth_length], body):
        raise ValueError("hmac mismatch")
    (uri_length,) = _U32.unpack_from(body)
    end = 4 + uri_length
    return message_type, body[4:end], body[end:]


class RawServer:
    """Echoes REQUEST_URI, confirms SUBSCRIBE_URI; counts live connections."""

    def __init__(self, signed: bool) -> None:
        self.signed = signed
        self.clients: set[asyncio.StreamWriter] = set()
        self.subscribers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self.handle, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.add(writer)
        signed = self.signed
        try:
            while True:
                message_type, uri, content = await raw_read(reader, signed)
                if message_type == 0:  # REQUEST_URI
                    writer.write(raw_frame(1, uri, content, signed))
                elif message_type == 5:  # SUBSCRIBE_URI
                    self.subscribers.add(writer)
                    writer.write(raw_frame(11, uri, b"ok", signed))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.clients.discard(writer)
            self.subscribers.discard(writer)
            writer.close()

    async def notify(self, content: bytes) -> None:
        data = raw_frame(8, TOPIC, content, self.signed)
        for writer in self.subscribers:
            writer.write(data)
        for writer in self.subscribers:
            await writer.drain()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class RawClient:
    def __init__(self, signed: bool) -> None:
        self.signed = signed

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, port)

    async def send(self, content: bytes) -> None:
        self.writer.write(raw_frame(0, ECHO_URI, content, self.signed))
        await self.writer.drain()

    async def receive(self) -> bytes:
        message_type, _, reply = await raw_read(self.reader, self.signed)
        if message_type != 1:  # RESPOND_URI
            raise AssertionError(f"unexpected message type {message_type}")
        return reply

    async def request(self, content: bytes) -> bytes:
        await self.send(content)
        return await self.receive()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def self_check() -> None:
    """The raw frames are byte for byte what this repository's codec makes."""
    from netaio_core import AuthFields, Body, Message, MessageType

    for signed in (False, True):
        data = raw_frame(0, ECHO_URI, PAYLOAD, signed)
        message = Message.decode(data)
        if message.encode() != data or message.body.content != PAYLOAD:
            raise AssertionError("raw framing differs from netaio's codec")
        if signed and sorted(message.auth_data.fields) != ["hmac", "nonce", "ts"]:
            raise AssertionError("raw auth section differs from netaio's codec")
    fields = {"nonce": bytes(16), "ts": bytes(4), "hmac": bytes(32)}
    expected = Message.prepare(
        Body.prepare(PAYLOAD, ECHO_URI), MessageType.REQUEST_URI, AuthFields(dict(fields))
    ).encode()
    body = _U32.pack(len(ECHO_URI)) + ECHO_URI + PAYLOAD
    auth = _AUTH_PREFIX + _TS_PAIR + bytes(4) + _HMAC_PAIR + bytes(32) + _NONCE_PAIR + bytes(16)
    if expected != _HEADER.pack(0, len(auth), len(body), crc32(body)) + auth + body:
        raise AssertionError("raw auth section layout differs from netaio's codec")


def plugins(netaio: Any, signed: bool | str) -> tuple[Any, Any]:
    """The (auth plugin, cipher plugin) of a mode: ``True`` HMAC,
    ``"aead"`` AEADCipherPlugin (this repository's netaio only)."""
    if signed == "aead":
        if not hasattr(netaio, "AEADCipherPlugin"):
            raise ValueError("this netaio has no cipher plugins")
        return None, netaio.AEADCipherPlugin({"secret": SECRET})
    return (netaio.HMACAuthPlugin({"secret": SECRET}) if signed else None), None


def _cipher_kwargs(cipher: Any) -> dict[str, Any]:
    """``cipher_plugin=`` only when there is one (netaio 0.0.2 has no such argument)."""
    return {} if cipher is None else {"cipher_plugin": cipher}


def message(netaio: Any, signed: bool | str, content: bytes, uri: bytes, message_type: Any) -> Any:
    """A message made as each version's documentation shows. A signed one
    gets fresh auth fields: 0.0.2's default auth_data is one shared object."""
    body = netaio.Body.prepare(content, uri)
    if signed:
        return netaio.Message.prepare(body, message_type, netaio.AuthFields({}))
    return netaio.Message.prepare(body, message_type)


class NetaioServer:
    """A netaio TCPServer echoing REQUEST_URI and confirming SUBSCRIBE_URI.

    netaio 0.0.2 has neither ``port=0`` nor ``stop()``: it gets a free port
    bound beforehand and its ``start()`` runs in a task cancelled at the end.
    """

    def __init__(self, signed: bool | str) -> None:
        import netaio

        self.netaio = netaio
        self.plugin, cipher = plugins(netaio, signed)
        self.modern = hasattr(netaio.TCPServer, "listen")
        port = 0 if self.modern else free_port()
        server = netaio.TCPServer(
            host=HOST, port=port, auth_plugin=self.plugin, **_cipher_kwargs(cipher)
        )
        self.server = server
        self._task: asyncio.Task[None] | None = None
        T = netaio.MessageType

        def echo(request: Any, writer: asyncio.StreamWriter) -> Any:
            return message(netaio, signed, request.body.content, ECHO_URI, T.RESPOND_URI)

        def subscribe(request: Any, writer: asyncio.StreamWriter) -> Any:
            server.subscribe(TOPIC, writer)
            return message(netaio, signed, b"ok", TOPIC, T.CONFIRM_SUBSCRIBE)

        server.add_handler((T.REQUEST_URI, ECHO_URI), echo)
        server.add_handler((T.SUBSCRIBE_URI, TOPIC), subscribe)

    @property
    def clients(self) -> set[Any]:
        clients: set[Any] = self.server.clients
        return clients

    async def start(self) -> int:
        if self.modern:
            await self.server.listen()
        else:
            self._task = asyncio.create_task(self.server.start())
            for _ in range(500):  # wait until it listens
                try:
                    _, writer = await asyncio.open_connection(HOST, self.server.port)
                except ConnectionRefusedError:
                    await asyncio.sleep(0.01)
                    continue
                writer.close()
                await writer.wait_closed()
                await until(lambda: not self.server.clients, "probe connection not closed")
                break
        port: int = self.server.port
        return port

    async def notify(self, content: bytes) -> None:
        n = self.netaio
        await self.server.notify(TOPIC, message(n, False, content, TOPIC, n.MessageType.NOTIFY_URI))

    async def stop(self) -> None:
        if self.modern:
            await self.server.stop()
        elif self._task is not None:
            # Let the connection tasks see their peers leave, then cancel.
            for _ in range(100):
                if not self.server.clients:
                    break
                await asyncio.sleep(0.01)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class NetaioClient:
    def __init__(self, signed: bool | str) -> None:
        import netaio

        self.netaio = netaio
        self.signed = signed
        self.plugin, self.cipher = plugins(netaio, signed)
        self.client: Any = None

    async def connect(self, port: int) -> None:
        n = self.netaio
        self.client = n.TCPClient(
            HOST, port, auth_plugin=self.plugin, **_cipher_kwargs(self.cipher)
        )
        await self.client.connect(HOST, port)

    async def send(self, content: bytes) -> None:
        n = self.netaio
        await self.client.send(
            message(n, self.signed, content, ECHO_URI, n.MessageType.REQUEST_URI)
        )

    async def receive(self) -> bytes:
        reply = await self.client.receive_once()
        if reply is None:
            raise AssertionError("reply discarded (checksum or auth failed)")
        content: bytes = reply.body.content
        return content

    async def request(self, content: bytes) -> bytes:
        await self.send(content)
        return await self.receive()

    async def close(self) -> None:
        await self.client.close()


class NetaioRequestClient(NetaioClient):
    """netaio's ``TCPClient.request(uri, content)``: the reply is matched to
    its request by the client, so many requests may be awaited at once."""

    concurrent = True

    @staticmethod
    def available() -> bool:
        import netaio

        return hasattr(netaio.TCPClient, "request")

    async def request(self, content: bytes) -> bytes:
        reply = await self.client.request(ECHO_URI, content)
        if reply is None:
            raise AssertionError("reply discarded (checksum or auth failed)")
        content_: bytes = reply.body.content
        return content_


def parse_frames(buffer: bytearray) -> list[tuple[int, bytes, bytes]]:
    """Take every complete frame (no auth) out of ``buffer``, checksums checked:
    a list of (message type, uri, content)."""
    frames = []
    offset, size = 0, len(buffer)
    while size - offset >= 9:
        message_type, auth_length, body_length, checksum = _HEADER.unpack_from(buffer, offset)
        start = offset + 9 + auth_length
        end = start + body_length
        if end > size:
            break
        body = bytes(buffer[start:end])
        if crc32(body) != checksum:
            raise ValueError("checksum mismatch")
        (uri_length,) = _U32.unpack_from(body)
        frames.append((message_type, body[4 : 4 + uri_length], body[4 + uri_length :]))
        offset = end
    if offset:
        del buffer[:offset]
    return frames


class _EchoProtocol(asyncio.Protocol):
    def __init__(self, clients: set[_EchoProtocol]) -> None:
        self.clients = clients
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        self.clients.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.clients.discard(self)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        assert self.transport is not None
        try:
            frames = parse_frames(buffer)
        except ValueError:
            self.transport.abort()
            return
        replies = [
            raw_frame(1, uri, content, False)
            for message_type, uri, content in frames
            if message_type == 0 and uri == ECHO_URI  # REQUEST_URI
        ]
        if replies:
            self.transport.write(b"".join(replies))


class RawProtocolServer:
    """A plain asyncio.Protocol echo server (no auth, no subscriptions)."""

    def __init__(self, signed: bool) -> None:
        if signed:
            raise ValueError("the raw asyncio.Protocol server has no auth")
        self.clients: set[_EchoProtocol] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _EchoProtocol(self.clients), HOST, 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class _ReplyProtocol(asyncio.Protocol):
    """Queues the contents of the replies received, in order."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.replies: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            frames = parse_frames(self.buffer)
            for message_type, _, content in frames:
                if message_type != 1:  # RESPOND_URI
                    raise AssertionError(f"unexpected message type {message_type}")
                self.replies.append(content)
        except Exception as exc:
            self._fail(exc)
            assert self.transport is not None
            self.transport.abort()
            return
        if frames:
            self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("connection closed"))

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class RawProtocolClient:
    def __init__(self, signed: bool) -> None:
        if signed:
            raise ValueError("the raw asyncio.Protocol client has no auth")

    async def connect(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.transport, self.protocol = await loop.create_connection(_ReplyProtocol, HOST, port)

    async def send(self, content: bytes) -> None:
        self.transport.write(raw_frame(0, ECHO_URI, content, False))

    async def receive(self) -> bytes:
        protocol = self.protocol
        while not protocol.replies:
            if protocol.error is not None:
                raise protocol.error
            protocol.waiter = asyncio.get_running_loop().create_future()
            await protocol.waiter
        return protocol.replies.popleft()

    async def request(self, content: bytes) -> bytes:
        await self.send(content)
        return await self.receive()

    async def close(self) -> None:
        self.transport.close()
