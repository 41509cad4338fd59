"""TCPClient: connects to one or many servers and exchanges framed messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Callable, Hashable, Mapping
from types import TracebackType
from typing import Any

from netaio_core import (
    AuthenticationError,
    AuthFields,
    AuthFieldsProtocol,
    AuthPluginProtocol,
    Body,
    BodyProtocol,
    ChecksumError,
    ConnectionClosedError,
    DecodeError,
    Endpoint,
    Handler,
    HandlerEntry,
    Header,
    HeaderProtocol,
    Limits,
    Message,
    MessageProtocol,
    MessageT,
    NotConnectedError,
    keys_extractor,
)

__all__ = ["TCPClient", "default_client_logger"]

default_client_logger = logging.getLogger("netaio.client")
default_client_logger.setLevel(logging.INFO)
default_client_logger.addHandler(logging.NullHandler())

Server = tuple[str, int]


class TCPClient(Endpoint[MessageT]):
    """An asyncio TCP client holding one connection per (host, port).

    Generic over the message class: ``TCPClient()`` is a ``TCPClient[Message]``.
    Every method that talks to a server takes ``server=(host, port)`` and
    defaults to ``default_host``. Read from one server from one task at a
    time (``receive_once`` or a ``receive_loop``, not both at once).
    """

    hosts: dict[Server, tuple[asyncio.StreamReader, asyncio.StreamWriter]]
    default_host: Server
    port: int

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8888,
        header_class: type[HeaderProtocol] = Header,
        body_class: type[BodyProtocol] = Body,
        message_class: type[MessageT] = Message,  # type: ignore[assignment]
        handlers: Mapping[Hashable, Handler[MessageT] | HandlerEntry[MessageT]] = {},
        extract_keys: Callable[[MessageT], list[Hashable]] = keys_extractor,
        logger: logging.Logger = default_client_logger,
        auth_plugin: AuthPluginProtocol | None = None,
        *,
        auth_fields_class: type[AuthFieldsProtocol] = AuthFields,
        limits: Limits | None = None,
    ) -> None:
        """Initialize the TCPClient. Args:
        host: The default host address (IPv4, IPv6 or a name).
        port: The default port to connect to.
        header_class: The header class to use.
        body_class: The body class to use.
        message_class: The message class to use.
        handlers: A dictionary of handlers for specific message keys:
            key -> handler, or key -> (handler, auth_plugin). It is copied.
        extract_keys: A function that extracts the keys from a message.
        logger: The logger to use.
        auth_plugin: The auth plugin to use.
        auth_fields_class: The auth fields class to decode with.
        limits: Frame size and connect timeout limits.
        """
        super().__init__(
            header_class,
            body_class,
            message_class,
            extract_keys,
            logger,
            auth_plugin,
            auth_fields_class,
            limits,
            handlers,
        )
        self.hosts = {}
        self.default_host = (host, port)
        self.port = port
        self._frames = self.message_reader()

    def _streams(
        self, server: Server | None
    ) -> tuple[Server, asyncio.StreamReader, asyncio.StreamWriter]:
        server = self.default_host if server is None else server
        streams = self.hosts.get(server)
        if streams is None:
            raise NotConnectedError(server)
        return server, streams[0], streams[1]

    async def connect(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Connect to a server (the default host and port unless given).

        ``ssl`` makes it a TLS connection (pass a context with a client
        certificate for mutual TLS). ``timeout`` defaults to
        ``limits.connect_timeout``; when it passes, ``TimeoutError`` is
        raised. A live connection to the same server is kept as it is; one
        the server has closed (end of stream reached) is replaced.
        """
        host = self.default_host[0] if host is None else host
        port = self.default_host[1] if port is None else port
        existing = self.hosts.get((host, port))
        if existing is not None:
            if not existing[1].is_closing() and not existing[0].at_eof():
                return
            del self.hosts[(host, port)]
            existing[1].close()
        timeout = self.limits.connect_timeout if timeout is None else timeout
        self.logger.info("Connecting to %s:%s", host, port)
        self._frames = self.message_reader()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=ssl, server_hostname=server_hostname if ssl else None
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise TimeoutError(f"connecting to {host}:{port} timed out after {timeout}s") from None
        self.hosts[(host, port)] = (reader, writer)

    async def send(
        self,
        message: MessageProtocol,
        server: Server | None = None,
        set_auth: bool = True,
    ) -> None:
        """Send a message to the server. If set_auth is True and an auth
        plugin is set, it will be called to set the auth fields on the
        message. Raises ``NotConnectedError`` for a server not connected to
        and ``ConnectionClosedError`` when the connection is closed."""
        server, _, writer = self._streams(server)
        if set_auth and self.auth_plugin is not None:
            self.auth_plugin.make(message.auth_data, message.body)
        data = message.encode()
        transport = writer.transport
        if transport.is_closing():  # what writer.is_closing() asks, a call less
            raise ConnectionClosedError(f"connection to {server[0]}:{server[1]} is closed")
        writer.write(data)
        if transport.get_write_buffer_size():
            await writer.drain()

    async def receive_once(self, server: Server | None = None) -> MessageT | None:
        """Receive a message from the server. If a handler was registered
        for the message key, the handler will be called with the message as
        an argument, and the result will be returned if it is not None;
        otherwise, the received message will be returned. If the message
        checksum fails (or its auth section or body is malformed), the
        message will be discarded and None will be returned. If an auth
        plugin is set, it will be checked before the message handler is
        called, and if the check fails, the message will be discarded and
        None will be returned.

        Raises ``ConnectionClosedError`` when the server has closed the
        connection (``partial`` is True if it did so mid-frame),
        ``FrameError`` for a frame that cannot be read (the connection is
        then unusable), ``NotConnectedError`` for a server not connected to,
        and whatever the handler raises.
        """
        server, reader, writer = self._streams(server)
        try:
            message = await self._frames.read(reader)
        except DecodeError as exc:
            self._discard(server, exc)
            return None
        started = self._start(message, writer)
        if started is None:
            return None
        result, pending = started
        if pending:
            result = await result
        return message if result is None else result

    def _discard(self, server: Server, exc: DecodeError) -> None:
        """Log a malformed message, which is discarded."""
        self.logger.warning(
            "Discarding a malformed message from %s:%s: %s", server[0], server[1], exc
        )

    def _start(self, message: MessageT, writer: asyncio.StreamWriter) -> tuple[Any, bool] | None:
        """Check a message and call its handler, if any: the result and
        whether it must still be awaited; None when the checksum or an auth
        check fails (the message is discarded). Synchronous, so that a
        message without an async handler costs no coroutine."""
        try:
            result, _, pending = self._call_handler(message, writer, None)
        except ChecksumError:
            self.logger.warning("Message checksum failed")
            return None
        except AuthenticationError:
            self.logger.warning("Message auth failed")
            return None
        return result, pending

    async def receive_loop(self, server: Server | None = None) -> None:
        """Receive messages from the server indefinitely. Use with
        asyncio.create_task() to run concurrently, then use task.cancel() to
        stop. Returns when the server closes the connection, or logs why
        and returns when the stream cannot be read further; a handler's
        exception is logged and the loop goes on."""
        server, reader, writer = self._streams(server)
        try:
            while True:
                try:
                    message = await self._frames.read(reader)
                except DecodeError as exc:
                    self._discard(server, exc)
                    continue
                except ConnectionClosedError as exc:
                    self.logger.info("Connection to %s:%s ended: %s", server[0], server[1], exc)
                    return
                except Exception as exc:  # FrameError, OSError, a second reader
                    self.logger.error(
                        "Receive loop for %s:%s stopped: %s", server[0], server[1], exc
                    )
                    return
                try:
                    started = self._start(message, writer)
                    if started is not None and started[1]:
                        await started[0]
                except Exception:
                    self.logger.exception("Handler failed in receive_loop")
        except asyncio.CancelledError:
            self.logger.info("Receive loop cancelled")
            raise

    async def close(self, server: Server | None = None) -> None:
        """Close the connection to the server and forget it."""
        server, _, writer = self._streams(server)
        del self.hosts[server]
        self.logger.info("Closing connection to %s:%s", server[0], server[1])
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def close_all(self) -> None:
        """Close every connection."""
        for server in list(self.hosts):
            await self.close(server)

    async def __aenter__(self) -> TCPClient[MessageT]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close_all()
