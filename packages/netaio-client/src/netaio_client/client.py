"""TCPClient: connects to one or many servers and exchanges framed messages."""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Callable, Hashable, Mapping
from functools import partial
from inspect import isawaitable
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
    CipherPluginProtocol,
    ConnectionClosedError,
    ConnectionUnavailableError,
    ConnectRefusedError,
    ConnectTimeoutError,
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
    MessageType,
    NotConnectedError,
)
from netaio_core import (
    keys_extractor as default_keys_extractor,
)
from netaio_core.correlation import set_correlation_id

from .connection import ClientConnection, Rejected
from .reconnect import ConnectionState, ReconnectPolicy
from .subscription import Subscription

__all__ = ["TCPClient", "default_client_logger"]

default_client_logger = logging.getLogger("netaio.client")
default_client_logger.setLevel(logging.INFO)
default_client_logger.addHandler(logging.NullHandler())

Server = tuple[str, int]
StateHook = Callable[[Server, ConnectionState], object]
"""Called with a server and its new ``ConnectionState``."""
AuthErrorHandler = Callable[["TCPClient[Any]", AuthPluginProtocol | None, Any], object]
"""Called with the client, the plugin whose check failed and the message."""


def _expire(reply: asyncio.Future[Any], name: str, uri: bytes, timeout: float) -> None:
    if not reply.done():
        reply.set_exception(TimeoutError(f"no reply from {name} to {uri!r} within {timeout}s"))


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
        extract_keys: Callable[[MessageT], list[Hashable]] = default_keys_extractor,
        logger: logging.Logger = default_client_logger,
        auth_plugin: AuthPluginProtocol | None = None,
        *,
        auth_fields_class: type[AuthFieldsProtocol] = AuthFields,
        limits: Limits | None = None,
        keys_extractor: Callable[[MessageT], list[Hashable]] | None = None,
        reconnect: bool | ReconnectPolicy = False,
        auth_error_handler: AuthErrorHandler | None = None,
        cipher_plugin: CipherPluginProtocol | None = None,
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
        limits: Frame size, connect timeout and queue limits.
        keys_extractor: An alias of ``extract_keys`` (the server's name).
        reconnect: ``True`` (the default ``ReconnectPolicy``) or a policy:
            reconnect to a server whose connection was lost, renew the
            subscriptions made with ``subscribe`` and restart the managed
            receive loop. Requests pending at the loss fail at once with
            ``ConnectionClosedError``; none is retried.
        cipher_plugin: A cipher plugin that encrypts every message sent and
            decrypts every one received (see ``Endpoint.seal``).
        auth_error_handler: called as ``handler(client, plugin, message)``
            for a message that fails the auth check in a receive loop (it
            may return an awaitable); such a message is otherwise dropped.
        """
        super().__init__(
            header_class,
            body_class,
            message_class,
            extract_keys if keys_extractor is None else keys_extractor,
            logger,
            auth_plugin,
            auth_fields_class,
            limits,
            handlers,
            cipher_plugin,
        )
        self.hosts = {}
        self.default_host = (host, port)
        self.port = port
        self._frames = self.message_reader()
        self._connections: dict[Server, ClientConnection[MessageT]] = {}
        self._receive_loops: dict[Server, asyncio.Task[None]] = {}
        self.reconnect_policy: ReconnectPolicy | None = (
            ReconnectPolicy() if reconnect is True else reconnect or None
        )
        self.auth_error_handler = auth_error_handler
        self._connect_args: dict[
            Server, tuple[ssl_module.SSLContext | None, str | None, float | None]
        ] = {}
        self._closed: set[Server] = set()  # closed by close(): never reconnected
        self._reconnecting: dict[Server, asyncio.Future[None]] = {}
        self._wanted_loops: set[Server] = set()  # managed receive loops to restart
        self._state_hooks: list[StateHook] = []
        self._tasks: set[asyncio.Future[Any]] = set()

    def _connection(self, server: Server | None) -> ClientConnection[MessageT]:
        server = self.default_host if server is None else server
        connection = self._connections.get(server)
        if connection is None:
            raise NotConnectedError(server)
        return connection

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
        the server has closed is replaced.
        """
        host = self.default_host[0] if host is None else host
        port = self.default_host[1] if port is None else port
        server = (host, port)
        existing = self._connections.get(server)
        if existing is not None:
            if not existing.is_lost and not existing.transport.is_closing():
                return
            self._forget(existing)
            existing.transport.close()
        self._closed.discard(server)
        self._connect_args[server] = (ssl, server_hostname, timeout)
        await self._open(server)
        self._set_state(server, ConnectionState.CONNECTED)

    async def _open(self, server: Server) -> ClientConnection[MessageT]:
        """Open a connection to ``server`` with its saved arguments and make
        it the current one. Raises ``ConnectRefusedError``,
        ``ConnectTimeoutError`` or ``ConnectionUnavailableError``."""
        ssl, server_hostname, timeout = self._connect_args[server]
        host, port = server
        timeout = self.limits.connect_timeout if timeout is None else timeout
        self.logger.info("Connecting to %s:%s", host, port)
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    self.connection_factory(server),
                    host,
                    port,
                    ssl=ssl,
                    server_hostname=server_hostname if ssl else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise ConnectTimeoutError(
                f"connecting to {host}:{port} timed out after {timeout}s", server=server
            ) from None
        except ssl_module.SSLError:
            raise  # a TLS failure (an untrusted certificate, say) is no outage
        except ConnectionRefusedError as exc:
            raise ConnectRefusedError(
                f"connecting to {host}:{port} was refused: {exc}", server=server
            ) from exc
        except OSError as exc:
            raise ConnectionUnavailableError(
                f"connecting to {host}:{port} failed: {exc}", server=server
            ) from exc
        return connection

    def connection_factory(self, server: Server) -> Callable[[], ClientConnection[MessageT]]:
        """A protocol factory for one connection to ``server``, for other
        transports than ``connect``'s TCP: ``loop.create_connection`` with
        a socket of your own, a UNIX socket, or the in-memory transports of
        ``netaio_core.testing``. Once connected, the connection is the
        client's current one for ``server`` (in ``hosts``)."""
        return partial(
            ClientConnection, self, server, self.frame_decoder(), self._frames, self.logger
        )

    def _register(self, connection: ClientConnection[MessageT]) -> None:
        """A connection is made (called by the connection)."""
        server = connection.server
        self._connections[server] = connection
        self.hosts[server] = (connection.reader, connection.writer)

    def _forget(self, connection: ClientConnection[MessageT]) -> None:
        server = connection.server
        if self._connections.get(server) is connection:
            del self._connections[server]
            self.hosts.pop(server, None)

    # -- connection states and reconnecting -----------------------------------

    def on_state_change(self, hook: StateHook) -> StateHook:
        """Decorator: call ``hook(server, state)`` (a function or coroutine
        function) on every ``ConnectionState`` change of any server."""
        self._state_hooks.append(hook)
        return hook

    def _set_state(self, server: Server, state: ConnectionState) -> None:
        self.logger.info("Connection to %s:%s: %s", server[0], server[1], state.value)
        for hook in self._state_hooks:
            try:
                result = hook(server, state)
                if isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:
                self.logger.exception("State hook %r failed", hook)

    def _lost(self, connection: ClientConnection[MessageT]) -> None:
        """A connection ended (called by the connection). Without a reconnect
        policy it stays in ``hosts`` until ``close`` or a new ``connect``,
        as documented; with one, reconnecting starts."""
        server = connection.server
        if self._connections.get(server) is not connection or server in self._closed:
            return
        self._set_state(server, ConnectionState.LOST)
        if self.reconnect_policy is None or server in self._reconnecting:
            return
        task = asyncio.ensure_future(self._reconnect(server, connection))
        self._reconnecting[server] = task

    async def _reconnect(self, server: Server, lost: ClientConnection[MessageT]) -> None:
        """Reconnect with backoff; then renew the client-side subscriptions
        and restart the managed receive loop. Gives up after max_attempts."""
        policy = self.reconnect_policy
        assert policy is not None
        attempt = 0
        try:
            while policy.max_attempts is None or attempt < policy.max_attempts:
                attempt += 1
                self._set_state(server, ConnectionState.RECONNECTING)
                await asyncio.sleep(policy.delay(attempt))
                if server in self._closed:
                    return
                try:
                    connection = await self._open(server)
                except ConnectionUnavailableError as exc:
                    self.logger.info("Reconnect attempt %d failed: %s", attempt, exc)
                    continue
                await self._restore(server, lost, connection)
                self._set_state(server, ConnectionState.CONNECTED)
                return
            self._forget(lost)
            for feed in list(lost.feeds.values()):
                feed.wake()
            self._set_state(server, ConnectionState.GAVE_UP)
        finally:
            if self._reconnecting.get(server) is asyncio.current_task():
                del self._reconnecting[server]

    async def _restore(
        self,
        server: Server,
        lost: ClientConnection[MessageT],
        connection: ClientConnection[MessageT],
    ) -> None:
        """Carry a lost connection's subscriptions and receive loop over."""
        feeds, lost.feeds = lost.feeds, {}
        for uri, feed in feeds.items():
            connection.feeds[uri] = feed
            feed.attach(connection)
        for uri, feed in feeds.items():
            try:
                await feed.renew()
            except Exception as exc:
                self.logger.warning("Could not renew the subscription to %r: %s", uri, exc)
        if server in self._wanted_loops:
            await self.start_receive_loop(server)
        for feed in feeds.values():
            feed.wake()

    async def wait_reconnected(self, server: Server | None = None) -> bool:
        """Wait while the client reconnects to the server: True once it is
        connected again, False if it gave up (or was not reconnecting and
        is not connected)."""
        server = self.default_host if server is None else server
        task = self._reconnecting.get(server)
        if task is not None:
            await asyncio.shield(task)
        connection = self._connections.get(server)
        return connection is not None and not connection.is_lost

    async def send(
        self,
        message: MessageProtocol,
        server: Server | None = None,
        set_auth: bool = True,
        *,
        use_auth: bool | None = None,
    ) -> None:
        """Send a message to the server. If set_auth is True and an auth
        plugin is set, it will be called to set the auth fields on the
        message (``use_auth`` is an alias of ``set_auth``). Raises
        ``NotConnectedError`` for a server not connected to and
        ``ConnectionClosedError`` when the connection is closed."""
        connection = self._connection(server)
        if use_auth is not None:
            set_auth = use_auth
        if set_auth:
            message = self.seal(message, None, connection.peer_state)
        self._write(connection, message.encode())
        if connection.write_paused:
            await self._drain(connection)

    def _write(self, connection: ClientConnection[MessageT], data: bytes) -> None:
        """Queue ``data``; a server that lets more than ``write_buffer_limit``
        bytes pile up is taken for stuck and its connection aborted."""
        transport = connection.transport
        if transport.is_closing():
            raise connection.closed_error("is closed")
        transport.write(data)
        connection.last_sent = connection.loop.time()
        if transport.get_write_buffer_size() > self.limits.write_buffer_limit:
            connection.abort("the server is not reading (write_buffer_limit exceeded)")
            raise connection.closed_error("was aborted: the server is not reading")

    async def _drain(self, connection: ClientConnection[MessageT]) -> None:
        """Wait until the server takes our bytes, at most ``write_timeout``;
        then the connection is aborted."""
        try:
            await asyncio.wait_for(connection.writer.drain(), self.limits.write_timeout)
        except asyncio.TimeoutError:
            connection.abort("the server is not reading (write_timeout reached)")
            raise connection.closed_error("was aborted: the server is not reading") from None
        except ConnectionError as exc:
            raise connection.closed_error(f"was lost: {exc}") from exc

    # -- request/response ----------------------------------------------------

    async def request(
        self,
        uri: bytes,
        content: bytes = b"",
        *,
        message_type: MessageType | None = None,
        timeout: float = 10.0,
        server: Server | None = None,
    ) -> MessageT:
        """Send a request and return its reply.

        The request carries a correlation id that the server echoes, so any
        number of tasks may call this at once on one connection and each
        gets its own reply, which goes to no handler. Against a server that
        echoes no id (netaio 0.0.2), replies are matched in order.

        Raises ``TimeoutError`` when no reply comes within ``timeout``
        seconds (the request is then forgotten), ``ConnectionClosedError``
        when the connection ends first, ``NotConnectedError`` for a server
        not connected to, and ``ChecksumError`` or ``AuthenticationError``
        when the reply fails the client's checks, or ``AuthenticationError``
        (its ``reply`` the message) when the server answers AUTH_ERROR.
        Other error replies (NOT_FOUND, ERROR, ...) are returned like any
        other.
        """
        connection = self._connection(server)
        body_class: Any = self.body_class  # the Protocol's prepare() names content only
        message = self.message_class.prepare(
            body_class.prepare(content, uri),
            MessageType.REQUEST_URI if message_type is None else message_type,
        )
        pending = connection.pending
        loop = connection.loop
        cid, reply = pending.add(loop)
        set_correlation_id(message, cid)
        # One timer on the reply's future: cheaper than wait_for's machinery.
        timer = loop.call_later(timeout, _expire, reply, connection.name, uri, timeout)
        try:
            sealed = self.seal(message, None, connection.peer_state)
            self._write(connection, sealed.encode())
            if connection.write_paused:
                await self._drain(connection)
            answer = await reply
        finally:
            timer.cancel()
            pending.forget(cid)
        if answer.header.message_type is MessageType.AUTH_ERROR:
            raise AuthenticationError(self.auth_plugin, reply=answer)
        return answer

    async def create(
        self,
        uri: bytes,
        data: bytes,
        *,
        timeout: float = 10.0,
        server: Server | None = None,
    ) -> MessageT:
        """``request`` a CREATE_URI with ``data`` as its content."""
        return await self.request(
            uri, data, message_type=MessageType.CREATE_URI, timeout=timeout, server=server
        )

    async def update(
        self,
        uri: bytes,
        data: bytes,
        *,
        timeout: float = 10.0,
        server: Server | None = None,
    ) -> MessageT:
        """``request`` an UPDATE_URI with ``data`` as its content."""
        return await self.request(
            uri, data, message_type=MessageType.UPDATE_URI, timeout=timeout, server=server
        )

    async def delete(
        self, uri: bytes, *, timeout: float = 10.0, server: Server | None = None
    ) -> MessageT:
        """``request`` a DELETE_URI."""
        return await self.request(
            uri, message_type=MessageType.DELETE_URI, timeout=timeout, server=server
        )

    def subscribe(
        self, uri: bytes, *, server: Server | None = None, timeout: float = 10.0
    ) -> Subscription[MessageT]:
        """Subscribe to ``uri`` for as long as an ``async with`` lasts::

            async with client.subscribe(b"room") as feed:
                async for message in feed:
                    ...

        Entering sends SUBSCRIBE_URI and waits for CONFIRM_SUBSCRIBE (a
        server with ``enable_subscriptions()`` answers it); the NOTIFY_URI
        messages for ``uri`` then go to the feed, not to handlers or
        ``receive_once``; leaving sends UNSUBSCRIBE_URI."""
        return Subscription(self, uri, server, timeout)

    # -- receiving -----------------------------------------------------------

    async def receive_once(
        self, server: Server | None = None, *, timeout: float | None = None
    ) -> MessageT | None:
        """Receive a message from the server. If a handler was registered
        for the message key, the handler will be called with the message as
        an argument, and the result will be returned if it is not None;
        otherwise, the received message will be returned. If the message
        checksum fails (or its auth section or body is malformed), the
        message will be discarded and None will be returned. If an auth
        plugin is set, it will be checked before the message handler is
        called, and if the check fails, the message will be discarded and
        None will be returned.

        Replies to ``request()`` never come here. One task at a time may
        receive from a server: a second one raises ``RuntimeError`` (use
        one receive loop and ``request()``).

        ``timeout`` (seconds; None waits as long as the connection lives)
        raises ``TimeoutError`` when nothing arrives in time.

        Raises ``ConnectionClosedError`` when the server has closed the
        connection (``partial`` is True if it did so mid-frame), or when it
        stopped answering heartbeats,
        ``FrameError`` for a frame that cannot be read (the connection is
        then unusable), ``NotConnectedError`` for a server not connected to,
        and whatever the handler raises.
        """
        connection = self._connection(server)
        try:
            if timeout is None:
                message = await connection.receive()
            else:
                message = await asyncio.wait_for(connection.receive(), timeout)
        except DecodeError as exc:
            self._discard(connection.server, exc)
            return None
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"nothing received from {connection.name} within {timeout}s"
            ) from None
        started = self._start(message, connection.writer)
        if started is None:
            return None
        result, pending = started
        if pending:
            result = await result
        return message if result is None else result  # type: ignore[return-value]

    def _discard(self, server: Server, exc: DecodeError) -> None:
        """Log a malformed message, which is discarded."""
        self.logger.warning(
            "Discarding a malformed message from %s:%s: %s", server[0], server[1], exc
        )

    def _start(
        self,
        message: MessageT | Rejected[MessageT],
        writer: asyncio.StreamWriter,
        in_loop: bool = False,
    ) -> tuple[Any, bool] | None:
        """Call a checked message's handler, if any: the result and whether
        it must still be awaited; None for a message that failed the
        checksum or an auth check (it is discarded; in a receive loop,
        ``auth_error_handler`` is called). Synchronous, so that a message
        without an async handler costs no coroutine."""
        if isinstance(message, Rejected):
            error = message.error
            if isinstance(error, ChecksumError):
                self.logger.warning("Message checksum failed")
                return None
            self.logger.warning("Message auth failed")
            if in_loop and self.auth_error_handler is not None:
                return self.auth_error_handler(self, error.plugin, message.message), True
            return None
        try:
            result, _, pending = self._call_handler(message, writer, None, None, True)
        except AuthenticationError as exc:  # a handler's own plugin
            self.logger.warning("Message auth failed")
            if in_loop and self.auth_error_handler is not None:
                return self.auth_error_handler(self, exc.plugin, message), True
            return None
        return result, pending

    async def receive_loop(self, server: Server | None = None) -> None:
        """Receive messages from the server indefinitely. Use with
        asyncio.create_task() to run concurrently, then use task.cancel() to
        stop (or ``start_receive_loop``, which manages the task). Returns
        when the server closes the connection, or logs why and returns when
        the stream cannot be read further; a handler's exception is logged
        and the loop goes on. With a reconnect policy, a loop started by
        ``start_receive_loop`` is started again after a reconnect."""
        connection = self._connection(server)
        name = connection.name
        connection.consumers += 1
        try:
            while True:
                try:
                    message = await connection.receive()
                except DecodeError as exc:
                    self._discard(connection.server, exc)
                    continue
                except ConnectionClosedError as exc:
                    self.logger.info("Connection to %s ended: %s", name, exc)
                    return
                except Exception as exc:  # FrameError, OSError, a second reader
                    self.logger.error("Receive loop for %s stopped: %s", name, exc)
                    return
                try:
                    started = self._start(message, connection.writer, True)
                    if started is not None and started[1] and isawaitable(started[0]):
                        await started[0]
                except Exception:
                    self.logger.exception("Handler failed in receive_loop")
        except asyncio.CancelledError:
            self.logger.info("Receive loop cancelled")
            raise
        finally:
            connection.consumers -= 1

    async def start_receive_loop(
        self, server: Server | None = None
    ) -> tuple[asyncio.Task[None], bool]:
        """Run ``receive_loop`` for the server in a task managed by the
        client: the task and whether one was already running (it is then
        returned as it is)."""
        server = self.default_host if server is None else server
        task = self._receive_loops.get(server)
        if task is not None and not task.done():
            return task, True
        self._connection(server)  # NotConnectedError now, not in the task
        self._wanted_loops.add(server)
        task = asyncio.create_task(self.receive_loop(server))
        self._receive_loops[server] = task
        task.add_done_callback(partial(self._loop_done, server))
        return task, False

    def _loop_done(self, server: Server, task: asyncio.Task[None]) -> None:
        if self._receive_loops.get(server) is task:
            del self._receive_loops[server]

    async def stop_receive_loop(self, server: Server | None = None) -> bool:
        """Stop the managed receive loop of the server; False if none ran."""
        server = self.default_host if server is None else server
        self._wanted_loops.discard(server)
        task = self._receive_loops.pop(server, None)
        if task is None or task.done():
            return False
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return True

    async def stop_all_receive_loops(self) -> int:
        """Stop every managed receive loop; returns how many were running."""
        stopped = 0
        for server in list(self._receive_loops):
            stopped += await self.stop_receive_loop(server)
        return stopped

    async def get_receive_loops(self) -> dict[Server, asyncio.Task[None]]:
        """A copy of the running managed receive loops, by server."""
        return {s: t for s, t in self._receive_loops.items() if not t.done()}

    async def close(self, server: Server | None = None) -> None:
        """Close the connection to the server and forget it (its managed
        receive loop stops, its pending requests fail; no reconnect)."""
        connection = self._connection(server)
        self._closed.add(connection.server)
        reconnecting = self._reconnecting.pop(connection.server, None)
        if reconnecting is not None:
            reconnecting.cancel()
        await self.stop_receive_loop(connection.server)
        self._forget(connection)
        self._set_state(connection.server, ConnectionState.CLOSED)
        self.logger.info("Closing connection to %s", connection.name)
        connection.transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(connection.closed), self.limits.write_timeout)
        except asyncio.TimeoutError:
            connection.transport.abort()

    async def close_all(self) -> None:
        """Close every connection."""
        for server in list(self._connections):
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
