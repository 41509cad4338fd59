"""TCPServer: accepts connections and answers framed messages with handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl as ssl_module
from collections.abc import Callable, Coroutine, Hashable, Iterable
from functools import partial
from inspect import isawaitable
from types import TracebackType
from typing import Any

from netaio_core import (
    BROADCAST,
    AuthenticationError,
    AuthFields,
    AuthFieldsProtocol,
    AuthPluginProtocol,
    Body,
    BodyProtocol,
    BrokerProtocol,
    ChecksumError,
    CipherPluginProtocol,
    Endpoint,
    Handler,
    Header,
    HeaderProtocol,
    LimitExceededError,
    Limits,
    Message,
    MessageProtocol,
    MessageT,
    MessageType,
    keys_extractor,
    make_error_response,
)
from netaio_core.binding import FROM_SERVER
from netaio_core.dispatch import HandlerLayer

from .budget import ByteBudget
from .connection import ServerConnection
from .drops import DropReason

__all__ = ["ConnectionHook", "DropHook", "TCPServer", "default_server_logger", "not_found_handler"]

ConnectionHook = Callable[[asyncio.StreamWriter], object]
"""A function (or coroutine function) called with a connection's writer."""

DropHook = Callable[[ServerConnection[Any], DropReason], object]
"""A function (or coroutine function) called with a connection and why the
server refused or dropped it or rejected one of its messages."""

default_server_logger = logging.getLogger("netaio.server")
default_server_logger.setLevel(logging.INFO)
default_server_logger.addHandler(logging.NullHandler())


def not_found_handler(message: MessageProtocol, writer: asyncio.StreamWriter) -> Message:
    """The default handler: a NOT_FOUND reply for a message no handler matched,
    built with the message and body classes of ``message`` (the server's), so
    that a peer using custom classes decodes it."""
    if type(message) is Message and type(message.body) is Body:
        return make_error_response("not found")
    make_body: Any = type(message.body).prepare  # the Protocol's prepare() names content only
    reply: Any = type(message).prepare(make_body(b"not found", b"ERROR"), MessageType.NOT_FOUND)
    return reply  # type: ignore[no-any-return]


_make_error_response = make_error_response  # TCPServer.__init__'s parameter hides the name


def _unsent_bytes(connection: ServerConnection[Any]) -> int:
    try:
        return int(connection.transport.get_write_buffer_size())
    except Exception:  # a transport already torn down
        return 0


def _partial_bytes(connection: ServerConnection[Any]) -> int:
    return connection.decoder.buffered


async def _after(joining: asyncio.Future[Any], reply: MessageT) -> MessageT:
    """``reply``, once ``joining`` is done (whatever its outcome)."""
    with contextlib.suppress(Exception):
        await asyncio.shield(joining)
    return reply


def _copy(message: MessageProtocol) -> MessageProtocol:
    """A message of the same class, type, uri, content and auth fields."""
    body = message.body
    make_body: Any = type(body).prepare  # the Protocol's prepare() names content only
    fields = type(message.auth_data)(dict(message.auth_data.fields))  # type: ignore[call-arg]
    return type(message).prepare(
        make_body(body.content, body.uri), message.header.message_type, fields
    )


def _key_length(key: Hashable) -> int:
    """The length a subscription key is held to: of bytes or str, or the
    sum over a tuple's items."""
    if isinstance(key, (bytes, str)):
        return len(key)
    if isinstance(key, tuple):
        return sum(_key_length(item) for item in key)
    return 0


_FD_HEADROOM = 64  # descriptors kept free for the listener, logs, files, clients


def _fit_to_fd_limit(max_connections: int, backlog: int, logger: logging.Logger) -> tuple[int, int]:
    """Make room under RLIMIT_NOFILE for ``max_connections`` sockets plus a
    burst of ``backlog`` accepted at once (asyncio accepts up to that many
    before any refused one is closed): raise the soft limit towards the
    hard one if needed, else serve fewer connections with a smaller
    backlog, so that an accept never fails with EMFILE. Says what it did in
    the log; returns the connection cap and the backlog to use."""
    try:
        import resource
    except ImportError:  # not on this platform
        return max_connections, backlog
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + backlog + _FD_HEADROOM
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return max_connections, backlog
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            logger.info("Raised RLIMIT_NOFILE from %d to %d for max_connections", soft, target)
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("Could not raise RLIMIT_NOFILE from %d: %s", soft, exc)
    if soft >= needed:
        return max_connections, backlog
    room = max(2, soft - _FD_HEADROOM)
    backlog = max(1, min(backlog, room // 4))
    cap = max(1, min(max_connections, room - backlog))
    logger.warning(
        "RLIMIT_NOFILE is %d: serving at most %d connections (not max_connections=%d), backlog %d",
        soft,
        cap,
        max_connections,
        backlog,
    )
    return cap, backlog


class TCPServer(Endpoint[MessageT]):
    """An asyncio TCP server that routes framed messages to handlers.

    Generic over the message class: ``TCPServer()`` is a
    ``TCPServer[Message]``; pass ``message_class`` (and the matching header,
    body and error classes) to use your own.
    """

    host: str
    port: int
    default_handler: Handler[MessageT]
    make_error: Callable[[str], MessageT]
    subscriptions: dict[Hashable, set[asyncio.StreamWriter]]
    clients: set[asyncio.StreamWriter]
    ssl: ssl_module.SSLContext | None
    direction = FROM_SERVER

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = 8888,
        header_class: type[HeaderProtocol] = Header,
        body_class: type[BodyProtocol] = Body,
        message_class: type[MessageT] = Message,  # type: ignore[assignment]
        keys_extractor: Callable[[MessageT], list[Hashable]] = keys_extractor,
        make_error_response: Callable[[str], MessageT] = make_error_response,  # type: ignore[assignment]
        default_handler: Handler[MessageT] = not_found_handler,  # type: ignore[assignment]
        logger: logging.Logger = default_server_logger,
        auth_plugin: AuthPluginProtocol | None = None,
        *,
        auth_fields_class: type[AuthFieldsProtocol] = AuthFields,
        limits: Limits | None = None,
        ssl: ssl_module.SSLContext | None = None,
        backlog: int = 1024,
        extract_keys: Callable[[MessageT], list[Hashable]] | None = None,
        broker: BrokerProtocol | None = None,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> None:
        """Initialize the TCPServer. Args:
        host: The host to listen on.
        port: The port to listen on; 0 picks a free port, readable from
            ``port`` once listening.
        header_class: The header class to use.
        body_class: The body class to use.
        message_class: The message class to use.
        keys_extractor: A function that extracts the keys from a message.
        make_error_response: A function that makes an error response (by
            default the server's ``error_reply``: the reply is built with
            ``message_class`` and ``body_class``).
        default_handler: The default handler to use for messages that do
            not match any registered handler keys.
        logger: The logger to use.
        auth_plugin: The auth plugin to use.
        auth_fields_class: The auth fields class to decode with.
        limits: Frame size, connection, timeout and buffer limits.
        ssl: A server-side SSLContext to serve TLS (mutual TLS when it
            requires client certificates).
        backlog: The listen backlog: connections the kernel queues before
            they are accepted.
        extract_keys: An alias of ``keys_extractor`` (the client's name).
        cipher_plugin: A cipher plugin (``CipherPluginProtocol``) that
            decrypts every message received and encrypts every one sent,
            outside the handlers' own (see ``Endpoint.seal``).
        broker: A message broker (``BrokerProtocol``, e.g.
            ``netaio_server.nats.NatsBroker``) that carries ``notify`` and
            ``broadcast`` to the subscribers of other instances.
        """
        super().__init__(
            header_class,
            body_class,
            message_class,
            keys_extractor if extract_keys is None else extract_keys,
            logger,
            auth_plugin,
            auth_fields_class,
            limits,
            cipher_plugin=cipher_plugin,
        )
        self.host = host
        self.port = port
        # The framework's own replies use this server's classes unless the
        # caller chose its own functions.
        self.make_error = (
            self.error_reply if make_error_response is _make_error_response else make_error_response
        )
        self.default_handler = default_handler
        self.subscriptions = {}
        self.clients = set()
        self.ssl = ssl
        self.backlog = backlog
        self.broker = broker
        self.reuse_port = False
        self._connections: dict[asyncio.StreamWriter, ServerConnection[MessageT]] = {}
        self._listener: asyncio.Server | None = None
        self._counted: set[ServerConnection[MessageT]] = set()  # handshakes included
        self._per_ip: dict[str, int] = {}
        self._max_connections = self.limits.max_connections
        # Server-wide byte budgets (Limits.max_unsent_bytes, max_partial_bytes).
        self._unsent: ByteBudget[ServerConnection[MessageT]] = ByteBudget(
            self.limits.max_unsent_bytes, _unsent_bytes, self._dropper(DropReason.MAX_UNSENT_BYTES)
        )
        self._partial: ByteBudget[ServerConnection[MessageT]] = ByteBudget(
            self.limits.max_partial_bytes,
            _partial_bytes,
            self._dropper(DropReason.MAX_PARTIAL_BYTES),
        )
        self._fatal: BaseException | None = None
        self._connect_hooks: list[ConnectionHook] = []
        self._drop_hooks: list[DropHook] = []
        self._disconnect_hooks: list[ConnectionHook] = []
        self._hook_tasks: set[asyncio.Future[Any]] = set()
        self._broker_joining: dict[Hashable, asyncio.Future[Any]] = {}
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._start_error: Exception | None = None
        self._closing = False

    # -- subscriptions -----------------------------------------------------

    def subscribe(self, key: Hashable, writer: asyncio.StreamWriter) -> None:
        """Subscribe a client to a specific key. The key must be a Hashable object.

        A writer that is not a live connection of this server (one that has
        ended, say) is not subscribed. Raises ``LimitExceededError`` past
        ``limits.max_subscriptions`` keys for the connection or for a key
        longer than ``limits.max_key_length``.
        """
        connection = self._connections.get(writer)
        if connection is None or connection.is_lost or writer.is_closing():
            self.logger.info("Not subscribing to key=%s: not a live connection of this server", key)
            return
        keys = connection.keys
        if key not in keys:
            limits = self.limits
            if len(keys) >= limits.max_subscriptions:
                raise LimitExceededError(
                    f"a connection may subscribe to at most {limits.max_subscriptions} keys"
                )
            if _key_length(key) > limits.max_key_length:
                raise LimitExceededError(
                    f"subscription keys are at most {limits.max_key_length} bytes long"
                )
        self.logger.debug("Subscribing client to key=%s", key)
        subscribers = self.subscriptions.get(key)
        if subscribers is None:
            subscribers = self.subscriptions[key] = set()
            self._broker_interest(key, True)
        subscribers.add(writer)
        keys.add(key)

    def unsubscribe(self, key: Hashable, writer: asyncio.StreamWriter) -> None:
        """Unsubscribe a client from a specific key. If no subscribers are
        left, the key will be removed from the subscriptions dictionary.
        Unsubscribing a client that is not subscribed does nothing."""
        self.logger.debug("Unsubscribing client from key=%s", key)
        subscribers = self.subscriptions.get(key)
        if subscribers is not None:
            subscribers.discard(writer)
            if not subscribers:
                del self.subscriptions[key]
                self._broker_interest(key, False)
        connection = self._connections.get(writer)
        if connection is not None:
            connection.keys.discard(key)

    def enable_subscriptions(self, auth_plugin: AuthPluginProtocol | None = None) -> None:
        """Serve SUBSCRIBE_URI and UNSUBSCRIBE_URI: the sender is subscribed
        to (unsubscribed from) the message's uri and gets CONFIRM_SUBSCRIBE
        (CONFIRM_UNSUBSCRIBE) back. ``auth_plugin`` guards both, beside the
        server's own. Then ``notify(uri, message)`` reaches the subscribers,
        and ``TCPClient.subscribe(uri)`` works against this server."""

        def subscribe(
            message: MessageT, writer: asyncio.StreamWriter
        ) -> MessageT | Coroutine[Any, Any, MessageT]:
            uri = message.body.uri
            try:
                self.subscribe(uri, writer)
            except LimitExceededError as exc:
                return self.make_error(f"subscription refused: {exc}")
            confirm = self._confirm(message, MessageType.CONFIRM_SUBSCRIBE)
            joining = self._broker_joining.get(uri)
            if joining is not None and not joining.done():
                # Confirm once the broker delivers this key here too, so that
                # nothing published elsewhere after the confirmation is missed.
                return _after(joining, confirm)
            return confirm

        def unsubscribe(message: MessageT, writer: asyncio.StreamWriter) -> MessageT:
            self.unsubscribe(message.body.uri, writer)
            return self._confirm(message, MessageType.CONFIRM_UNSUBSCRIBE)

        self.add_handler(MessageType.SUBSCRIBE_URI, subscribe, auth_plugin)
        self.add_handler(MessageType.UNSUBSCRIBE_URI, unsubscribe, auth_plugin)

    def _confirm(self, message: MessageProtocol, message_type: MessageType) -> MessageT:
        body_class: Any = self.body_class  # the Protocol's prepare() names content only
        confirm = self.message_class.prepare(
            body_class.prepare(b"", message.body.uri), message_type
        )
        return confirm  # type: ignore[return-value]

    # -- connection hooks ------------------------------------------------------

    def on_connect(self, hook: ConnectionHook) -> ConnectionHook:
        """Decorator: call ``hook(writer)`` (a function or a coroutine
        function) for every connection the server accepts."""
        self._connect_hooks.append(hook)
        return hook

    def on_disconnect(self, hook: ConnectionHook) -> ConnectionHook:
        """Decorator: call ``hook(writer)`` once a connection has ended and
        left ``clients`` and ``subscriptions``."""
        self._disconnect_hooks.append(hook)
        return hook

    def on_drop(self, hook: DropHook) -> DropHook:
        """Decorator: call ``hook(connection, reason)`` (a function or a
        coroutine function) whenever the server refuses a connection, drops
        one or rejects a message (``DropReason``; ``reason.kind`` says
        which); ``connection`` is the ``ServerConnection`` (``peer``,
        ``ip``, ``writer``). Called before the connection is aborted."""
        self._drop_hooks.append(hook)
        return hook

    def _dropped(self, connection: ServerConnection[MessageT], reason: DropReason) -> None:
        """The one place every refusal, drop and rejection is reported (a
        connection's drop once, whatever else then fails on it)."""
        if reason.kind == "dropped":
            if connection.dropped is not None:
                return
            connection.dropped = reason
        if self._drop_hooks:
            self._run_hooks(self._drop_hooks, connection, reason)

    def _run_hooks(self, hooks: list[Callable[..., object]], *args: Any) -> None:
        """Call connection hooks; a failing one is logged, never fatal."""
        for hook in hooks:
            try:
                result = hook(*args)
                if isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._hook_tasks.add(task)
                    task.add_done_callback(self._hook_done)
            except Exception:
                self.logger.exception("Connection hook %r failed", hook)

    def _hook_done(self, task: asyncio.Future[Any]) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("Connection hook failed", exc_info=task.exception())

    # -- connections ---------------------------------------------------------

    async def handle_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Handle a client connection. When a client connects, it is added
        to the clients set. The client is then read from until the
        connection is lost, and the proper handlers are called if they are
        defined and the message is valid.

        ``listen()`` serves connections without streams, on an
        ``asyncio.Protocol``; this coroutine serves a pair of streams, for
        use with ``asyncio.start_server``. Both run the same connection
        code: a frame that is intact but invalid (bad checksum, malformed
        auth section or body) gets an error reply and the connection goes
        on; a frame that cannot be delimited (undecodable header, over the
        size limit) gets an error reply and the connection is closed.
        """
        connection = ServerConnection(self, writer)
        if not connection.admitted:
            return
        await connection.serve_stream(reader)

    def _count_in(self, connection: ServerConnection[MessageT]) -> bool:
        """Count a new connection (TLS handshakes included) towards the
        limits, or refuse it: stopping, at ``max_connections``, or at
        ``max_connections_per_ip`` for its address."""
        limits = self.limits
        ip = connection.ip
        per_ip = limits.max_connections_per_ip
        if self._closing:
            reason = DropReason.STOPPING
        elif len(self._counted) >= self._max_connections:
            reason = DropReason.MAX_CONNECTIONS
        elif per_ip is not None and self._per_ip.get(ip, 0) >= per_ip:
            reason = DropReason.MAX_CONNECTIONS_PER_IP
        else:
            self._counted.add(connection)
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
            connection.counted = True
            return True
        self.logger.warning("Refusing connection from %s: %s", connection.peer, reason)
        self._dropped(connection, reason)
        return False

    def _admit(self, connection: ServerConnection[MessageT]) -> None:
        """A counted connection starts serving: it joins ``clients``."""
        self.logger.info("Client connected from %s", connection.peer)
        self._connections[connection.writer] = connection
        self.clients.add(connection.writer)
        if self._connect_hooks:
            self._run_hooks(self._connect_hooks, connection.writer)

    def _forget(self, connection: ServerConnection[MessageT], exc: Exception | None) -> None:
        """Remove an ended connection from every collection and count."""
        self._counted.discard(connection)
        self._unsent.forget(connection)
        self._partial.forget(connection)
        ip = connection.ip
        left = self._per_ip.get(ip, 1) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)
        if not connection.admitted:
            return
        writer = connection.writer
        self.clients.discard(writer)
        self._connections.pop(writer, None)
        for key in tuple(connection.keys):
            self.unsubscribe(key, writer)
        if exc is None:
            self.logger.info("Client disconnected from %s", connection.peer)
        else:
            self.logger.info("Connection from %s lost: %s", connection.peer, exc)
        if self._disconnect_hooks:
            self._run_hooks(self._disconnect_hooks, writer)

    def _error_reply(
        self, connection: ServerConnection[MessageT], exc: BaseException
    ) -> MessageProtocol:
        """The reply to a message that failed a check or whose handler raised
        ``exc`` (called while handling it). A ``KeyboardInterrupt`` or
        ``SystemExit`` from a handler stops the server gracefully, and
        ``start()`` then raises it."""
        if isinstance(exc, ChecksumError):
            self.logger.info("Checksum mismatch in message from %s", connection.peer)
            self._dropped(connection, DropReason.CHECKSUM_MISMATCH)
            return self.make_error("invalid message")
        if isinstance(exc, AuthenticationError):
            self.logger.warning("Auth check failed for message from %s", connection.peer)
            self._dropped(connection, DropReason.AUTH_FAILED)
            try:
                if exc.plugin is not None:
                    return self.in_own_classes(exc.plugin.error())
            except Exception:
                self.logger.exception("Auth plugin error() failed for %s", connection.peer)
            return self.make_error("auth failed")
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            self.logger.error(
                "A handler raised %s on a message from %s: stopping the server",
                type(exc).__name__,
                connection.peer,
            )
            if self._fatal is None:
                self._fatal = exc
                task = asyncio.ensure_future(self.stop())
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_tasks.discard)
        else:
            self.logger.error("Handler failed on a message from %s", connection.peer, exc_info=exc)
        return self.make_error("internal server error")

    def _encode_reply(
        self,
        connection: ServerConnection[MessageT],
        reply: MessageProtocol,
        layer: HandlerLayer | None,
    ) -> bytes | None:
        """Seal and encode a reply; a failure here is contained and logged
        (an error reply instead, or None after aborting the connection)."""
        try:
            if layer is None and self.auth_plugin is None and self.cipher_plugin is None:
                return reply.encode()
            return self.seal(reply, layer, connection.peer_state).encode()
        except Exception:
            self.logger.exception("Could not sign or encode a reply to %s", connection.peer)
        try:
            reply = self.make_error("internal server error")
            with contextlib.suppress(Exception):
                # Unsigned when the endpoint's own plugin is what failed:
                # the peer still learns that its message failed.
                self.sign(reply)
            return reply.encode()
        except Exception:
            self.logger.exception(
                "Unexpected error on the connection from %s; closing it", connection.peer
            )
            connection.transport.abort()
            return None

    # -- sending -------------------------------------------------------------

    def _write(
        self,
        writer: asyncio.StreamWriter,
        data: bytes,
        collection: set[asyncio.StreamWriter] | None,
    ) -> None:
        """Queue ``data`` for ``writer`` without waiting. A peer whose unsent
        bytes pass ``limits.write_buffer_limit``, or whose write fails, is
        dropped; one that stops taking bytes altogether is dropped by its
        connection after ``limits.write_timeout``."""
        if writer.is_closing():  # ending: its connection is about to leave
            if collection is not None:
                collection.discard(writer)
            return
        try:
            writer.write(data)
            unsent = writer.transport.get_write_buffer_size()
        except Exception:
            self.logger.exception("Error sending to a client")
            self._drop(writer, collection, DropReason.SEND_FAILED)
            return
        if unsent > self.limits.write_buffer_limit:
            self._drop(writer, collection, DropReason.SLOW_CONSUMER)
        elif unsent:
            connection = self._connections.get(writer)
            if connection is not None:
                self._unsent.update(connection, unsent)

    def _dropper(self, reason: DropReason) -> Callable[[ServerConnection[MessageT]], None]:
        """What a byte budget does to a connection over it."""

        def drop(connection: ServerConnection[MessageT]) -> None:
            if connection.admitted:
                self._drop(connection.writer, None, reason)
            else:
                connection.transport.abort()

        return drop

    def _drop(
        self,
        writer: asyncio.StreamWriter,
        collection: set[asyncio.StreamWriter] | None,
        reason: DropReason,
    ) -> None:
        """Remove ``writer`` from ``collection`` and abort its connection; the
        connection then removes itself everywhere else."""
        connection = self._connections.get(writer)
        peer = connection.peer if connection is not None else writer.get_extra_info("peername")
        if reason is DropReason.SEND_FAILED:
            self.logger.info("Removing client %s from collection", peer)
        else:
            self.logger.warning("Dropping client %s: %s", peer, reason)
        if connection is not None:
            self._dropped(connection, reason)
        if collection is not None:
            collection.discard(writer)
        writer.transport.abort()

    def _send_bytes(
        self,
        data: bytes,
        writers: Iterable[asyncio.StreamWriter],
        collection: set[asyncio.StreamWriter] | None,
    ) -> None:
        """Send one encoded message to many peers; none is waited for."""
        for writer in tuple(writers):
            self._write(writer, data, collection)

    async def send(
        self,
        client: asyncio.StreamWriter,
        message: MessageProtocol,
        collection: set[asyncio.StreamWriter] | None = None,
        use_auth: bool = True,
    ) -> None:
        """Helper coroutine to send a message to a client. On error, it logs
        the exception and removes the client from the given collection."""
        if self.cipher_plugin is not None:
            self._send_sealed(message, (client,), collection)
            return
        if use_auth:
            self.sign(message)
        self._send_bytes(message.encode(), (client,), collection)

    def _send_sealed(
        self,
        message: MessageProtocol,
        writers: Iterable[asyncio.StreamWriter],
        collection: set[asyncio.StreamWriter] | None,
    ) -> None:
        """With a cipher plugin, each peer gets its own encryption of the
        message (a key per peer, with X25519); a peer it cannot be
        encrypted for is skipped with a log line. Not carried by a broker:
        other instances hold other peers' keys."""
        for writer in tuple(writers):
            connection = self._connections.get(writer)
            peer = None if connection is None else connection.peer_state
            try:
                data = self.seal(_copy(message), None, peer).encode()
            except Exception as exc:
                self.logger.warning("Could not encrypt a message for a client: %s", exc)
                continue
            self._write(writer, data, collection)

    async def broadcast(self, message: MessageProtocol, use_auth: bool = True) -> None:
        """Send the message to all connected clients. The message is signed
        and encoded once and queued for every client without waiting for
        any; a client whose send fails or whose buffer is full is dropped.
        With a broker, the clients of every other instance get it too."""
        if self.cipher_plugin is not None:
            self._send_sealed(message, self.clients, self.clients)
            return
        if use_auth:
            self.sign(message)
        data = message.encode()
        self._send_bytes(data, self.clients, self.clients)
        if self.broker is not None:
            await self._publish(BROADCAST, data)

    async def notify(self, key: Hashable, message: MessageProtocol, use_auth: bool = True) -> None:
        """Send the message to all subscribed clients for the given key. The
        message is signed and encoded once and queued for every subscriber
        without waiting for any; a subscriber whose send fails or whose
        buffer is full is dropped. With a broker (and a bytes or str key),
        the subscribers of every other instance get it too."""
        subscribers = self.subscriptions.get(key)
        remote = self.broker is not None and isinstance(key, (bytes, str))
        if not subscribers and not remote:
            self.logger.debug("No subscribers found for key=%s, skipping notification", key)
            return
        if self.cipher_plugin is not None:
            if subscribers:
                self._send_sealed(message, subscribers, subscribers)
            return
        if use_auth:
            self.sign(message)
        data = message.encode()
        if subscribers:
            self._send_bytes(data, subscribers, subscribers)
        if remote:
            await self._publish(key, data)  # type: ignore[arg-type]

    # -- the broker ----------------------------------------------------------

    async def _publish(self, key: bytes | str | None, data: bytes) -> None:
        """Publish through the broker; a broker failure is logged, and local
        delivery (already done) is unaffected."""
        assert self.broker is not None
        try:
            await self.broker.publish(key, data)
        except Exception as exc:
            self.logger.warning("Broker publish for key=%s failed: %s", key, exc)

    def _deliver(self, key: bytes | str | None, data: bytes) -> None:
        """A frame another instance published: to the local subscribers."""
        if key is BROADCAST:
            self._send_bytes(data, self.clients, self.clients)
            return
        subscribers = self.subscriptions.get(key)
        if subscribers:
            self._send_bytes(data, subscribers, subscribers)

    def _broker_interest(self, key: Hashable, subscribed: bool) -> None:
        """Tell the broker that the first local subscriber of ``key`` came or
        the last one left."""
        if self.broker is None or not isinstance(key, (bytes, str)) or self._listener is None:
            return
        call = self.broker.subscribe if subscribed else self.broker.unsubscribe
        task = asyncio.ensure_future(call(key))
        self._hook_tasks.add(task)
        task.add_done_callback(self._broker_done)
        if subscribed:
            self._broker_joining[key] = task
            task.add_done_callback(lambda _: self._broker_joining.pop(key, None))

    def _broker_done(self, task: asyncio.Future[Any]) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.logger.warning("Broker subscription change failed: %s", task.exception())

    def _disconnect_frame(self, connection: ServerConnection[MessageT]) -> bytes:
        message = self.message_class.prepare(
            self.body_class.prepare(b"server stopping"), MessageType.DISCONNECT
        )
        return self.seal(message, None, connection.peer_state).encode()

    def _shut(self, connection: ServerConnection[MessageT]) -> None:
        """Say DISCONNECT to a connection and close it (once), or abort it
        mid-handshake."""
        if connection.is_lost or connection.transport.is_closing():
            return
        if not connection.admitted:
            connection.transport.abort()
            return
        with contextlib.suppress(Exception):
            connection.write(self._disconnect_frame(connection))
        connection.close()

    def _closed_after_reply(self, connection: ServerConnection[MessageT]) -> None:
        """A handler that was running when ``stop()`` began has replied."""
        self._shut(connection)

    # -- lifecycle -----------------------------------------------------------

    async def listen(self, sock: socket.socket | None = None) -> None:
        """Bind and start accepting connections, then return; idempotent.

        With ``port=0`` the chosen port is in ``port`` afterwards. ``sock``
        serves an already bound socket instead (a runner's workers share
        one); ``reuse_port`` (an attribute, False by default) binds with
        SO_REUSEPORT so that several processes can listen on one port. With
        a broker, it is started first.
        """
        if self._listener is not None:
            return
        self._closing = False
        self._stopped.clear()
        self._started.clear()
        self._start_error = None
        self._max_connections, backlog = _fit_to_fd_limit(
            self.limits.max_connections, self.backlog, self.logger
        )
        loop = asyncio.get_running_loop()
        try:
            if self.broker is not None:
                await self.broker.start(self._deliver)
                for key in self.subscriptions:
                    if isinstance(key, (bytes, str)):
                        await self.broker.subscribe(key)
            factory = partial(ServerConnection, self)
            if sock is not None:
                self._listener = await loop.create_server(factory, sock=sock, backlog=backlog)
            else:
                self._listener = await loop.create_server(
                    factory,
                    self.host,
                    self.port,
                    backlog=backlog,
                    reuse_port=self.reuse_port or None,
                )
        except Exception as exc:
            # Wake the current wait_started() callers with the reason; later
            # callers wait for the next start, on a fresh event.
            self._start_error = exc
            self._started.set()
            self._started = asyncio.Event()
            raise
        sockets = self._listener.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self.logger.info("Server started on %s:%s", self.host, self.port)
        self._started.set()

    async def start(self) -> None:
        """Start the server and serve until ``stop()`` is called or this
        coroutine is cancelled (which stops the server gracefully). A
        handler that raised ``KeyboardInterrupt`` or ``SystemExit`` stops
        it gracefully too, and that exception is then raised here."""
        await self.listen()
        try:
            await self._stopped.wait()
        except asyncio.CancelledError:
            await self.stop()
            raise
        fatal, self._fatal = self._fatal, None
        if fatal is not None:
            raise fatal

    async def wait_started(self) -> None:
        """Wait until the server listens (for ``start()`` run in a task);
        raises the error that made it fail to listen (an ``OSError`` such as
        the port being in use)."""
        await self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: stop accepting, let in-flight handlers finish
        within ``grace`` seconds (default ``limits.shutdown_grace``), send
        DISCONNECT to every client, close every connection and wait for
        their tasks to end. A handler may call it: its own connection then
        ends once it has replied."""
        listener = self._listener
        if listener is None:
            return
        self._listener = None
        self._closing = True
        listener.close()
        grace = self.limits.shutdown_grace if grace is None else grace
        # A handler may call stop(): its own connection is not waited for nor
        # closed here; it ends once the handler has replied.
        current = asyncio.current_task()
        connections = [c for c in self._connections.values() if current not in c.handler_tasks()]
        from_handler = len(connections) < len(self._connections)
        busy = [task for c in connections for task in c.handler_tasks()]
        if busy and grace > 0:
            await asyncio.wait(busy, timeout=grace)
        for connection in connections:
            for task in connection.handler_tasks():
                task.cancel()
            self._shut(connection)
        closing = [c.closed for c in connections if not c.closed.done()]
        if closing:
            await asyncio.wait(closing, timeout=self.limits.close_timeout + 1.0)
            for connection in connections:
                if not connection.closed.done():
                    connection.transport.abort()
        if not from_handler:  # (on 3.12+ it also waits for the caller's connection)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), self.limits.write_timeout)
        self._stopped.set()
        # Fresh events (the set one has woken start()): asyncio binds an event
        # to the loop that first waits on it, and the server may serve again
        # in another loop.
        self._started, self._stopped = asyncio.Event(), asyncio.Event()
        if self.broker is not None:
            try:
                await self.broker.stop()
            except Exception as exc:
                self.logger.warning("Broker stop failed: %s", exc)
        self.logger.info("Server stopped")

    async def __aenter__(self) -> TCPServer[MessageT]:
        await self.listen()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
