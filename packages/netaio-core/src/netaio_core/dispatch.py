"""The dispatch path shared by client and server (layer 3).

``Endpoint`` holds the handler table and turns one received message into a
handler's result: verify the checksum, check auth (the endpoint's plugin,
then the matched handler's), resolve the handler from ``extract_keys`` (most
specific key first) and call it, awaiting the result when it is awaitable.
Client and server add only what differs: what to do with the result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Mapping
from inspect import isawaitable, iscoroutinefunction
from typing import Any, Generic, NamedTuple, TypeAlias

from .binding import FROM_CLIENT, FROM_SERVER, binds_routing, route_matches, set_route
from .codec import AuthFields, Body, Header, Message
from .defaults import keys_extractor, make_error_msg
from .errors import AuthenticationError, ChecksumError
from .framing import FrameDecoder, MessageReader
from .limits import Limits
from .message_type import MessageType
from .protocols import (
    AuthFieldsProtocol,
    AuthPluginProtocol,
    BodyProtocol,
    CipherPluginProtocol,
    Handler,
    HeaderProtocol,
    MessageProtocol,
    MessageT,
    PeerState,
)

__all__ = ["Endpoint", "HandlerEntry", "HandlerLayer"]

HandlerEntry: TypeAlias = tuple[Handler[MessageT], AuthPluginProtocol | None]
"""A registered handler and its own auth plugin (or None)."""


class HandlerLayer(NamedTuple):
    """A handler's own auth and cipher plugins: checked and decrypted after
    the endpoint's own (inner layer), applied to its reply before them."""

    auth: AuthPluginProtocol | None
    cipher: CipherPluginProtocol | None


_DEFAULT_LIMITS = Limits()
_LOGGER = logging.getLogger("netaio")


def _threaded(handler: Handler[MessageT]) -> Handler[MessageT]:
    """A coroutine function that runs ``handler`` in a worker thread."""

    async def in_thread(message: MessageT, writer: asyncio.StreamWriter) -> MessageT | None:
        result = await asyncio.to_thread(handler, message, writer)
        if isawaitable(result):
            raise TypeError("in_thread=True is for plain functions, not coroutine functions")
        return result

    in_thread.__wrapped__ = handler  # type: ignore[attr-defined]
    return in_thread


class Endpoint(Generic[MessageT]):
    """What a client and a server share: classes, handlers, auth, dispatch.

    Generic over the message class, so that handlers annotated with a
    concrete class (``msg: Message``) type-check.
    """

    header_class: type[HeaderProtocol]
    auth_fields_class: type[AuthFieldsProtocol]
    body_class: type[BodyProtocol]
    message_class: type[MessageT]
    handlers: dict[Hashable, HandlerEntry[MessageT]]
    ephemeral_handlers: dict[Hashable, HandlerEntry[MessageT]]
    extract_keys: Callable[[MessageT], list[Hashable]]
    logger: logging.Logger
    auth_plugin: AuthPluginProtocol | None
    cipher_plugin: CipherPluginProtocol | None
    limits: Limits
    direction: int = FROM_CLIENT
    """The direction of the frames this endpoint sends (``binding``)."""

    def __init__(
        self,
        header_class: type[HeaderProtocol] = Header,
        body_class: type[BodyProtocol] = Body,
        message_class: type[MessageT] = Message,  # type: ignore[assignment]
        extract_keys: Callable[[MessageT], list[Hashable]] = keys_extractor,
        logger: logging.Logger = _LOGGER,
        auth_plugin: AuthPluginProtocol | None = None,
        auth_fields_class: type[AuthFieldsProtocol] = AuthFields,
        limits: Limits | None = None,
        handlers: Mapping[Hashable, Handler[MessageT] | HandlerEntry[MessageT]] | None = None,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> None:
        self.header_class = header_class
        self.body_class = body_class
        self.message_class = message_class
        self.auth_fields_class = auth_fields_class
        self.extract_keys = extract_keys
        self.logger = logger
        self.auth_plugin = auth_plugin
        self.cipher_plugin = cipher_plugin
        self.limits = _DEFAULT_LIMITS if limits is None else limits
        self.handlers = {}
        self.ephemeral_handlers = {}
        self._layers: dict[Hashable, HandlerLayer] = {}  # keys with a plugin of their own
        for key, entry in (handlers or {}).items():
            if isinstance(entry, tuple):
                self.add_handler(key, *entry)
            else:
                self.add_handler(key, entry)

    def add_handler(
        self,
        key: Hashable,
        handler: Handler[MessageT],
        auth_plugin: AuthPluginProtocol | None = None,
        *,
        in_thread: bool = False,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> None:
        """Register a handler for a specific key. The handler must accept a
        message and the connection's StreamWriter, and return a message,
        None, or a Coroutine that resolves to a message or None. If an auth
        plugin is provided, it will be used to check the message in addition
        to the endpoint's own auth plugin, and to sign the handler's reply.
        Registering a key again replaces its handler.

        A plain function runs on the event loop: while it runs, nothing else
        does. ``in_thread=True`` runs a blocking one in a worker thread
        (``asyncio.to_thread``) instead; it must then not touch the loop's
        objects except through ``loop.call_soon_threadsafe``.

        ``cipher_plugin`` decrypts the messages this handler gets (after the
        endpoint's own cipher) and encrypts its replies (before it)."""
        self.logger.debug("Adding handler for key=%s", key)
        if in_thread:
            if iscoroutinefunction(handler):
                raise TypeError("in_thread=True is for plain functions, not coroutine functions")
            handler = _threaded(handler)
        self.handlers[key] = (handler, auth_plugin)
        self._set_layer(key, auth_plugin, cipher_plugin)

    def _set_layer(
        self,
        key: Hashable,
        auth_plugin: AuthPluginProtocol | None,
        cipher_plugin: CipherPluginProtocol | None,
    ) -> None:
        if auth_plugin is None and cipher_plugin is None:
            self._layers.pop(key, None)
        else:
            self._layers[key] = HandlerLayer(auth_plugin, cipher_plugin)

    def on(
        self,
        key: Hashable,
        auth_plugin: AuthPluginProtocol | None = None,
        *,
        in_thread: bool = False,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> Callable[[Handler[MessageT]], Handler[MessageT]]:
        """Decorator to register a handler for a specific key (see
        ``add_handler``); returns the function unchanged."""

        def decorator(func: Handler[MessageT]) -> Handler[MessageT]:
            self.add_handler(
                key, func, auth_plugin, in_thread=in_thread, cipher_plugin=cipher_plugin
            )
            return func

        return decorator

    def add_ephemeral_handler(
        self,
        key: Hashable,
        handler: Handler[MessageT],
        auth_plugin: AuthPluginProtocol | None = None,
    ) -> None:
        """Register a one-shot handler: it runs for the first message that
        matches ``key`` and is then removed. On the same key it takes
        precedence over a persistent handler."""
        self.logger.debug("Adding ephemeral handler for key=%s", key)
        self.ephemeral_handlers[key] = (handler, auth_plugin)

    def once(
        self, key: Hashable, auth_plugin: AuthPluginProtocol | None = None
    ) -> Callable[[Handler[MessageT]], Handler[MessageT]]:
        """Decorator to register a one-shot handler (see
        ``add_ephemeral_handler``); returns the function unchanged."""

        def decorator(func: Handler[MessageT]) -> Handler[MessageT]:
            self.add_ephemeral_handler(key, func, auth_plugin)
            return func

        return decorator

    def remove_handler(self, key: Hashable) -> None:
        """Remove the persistent handler for ``key``, if any."""
        self.handlers.pop(key, None)
        self._layers.pop(key, None)

    def remove_ephemeral_handler(self, key: Hashable) -> None:
        """Remove the one-shot handler for ``key``, if any."""
        self.ephemeral_handlers.pop(key, None)

    def set_logger(self, logger: logging.Logger) -> None:
        """Replace the current logger."""
        self.logger = logger

    def error_reply(self, text: str, message_type: MessageType | None = None) -> MessageT:
        """An error reply the framework sends itself (NOT_FOUND, ERROR,
        AUTH_ERROR, NOT_PERMITTED; without ``message_type`` the text chooses,
        as in ``make_error_msg``), built with this endpoint's message and
        body classes so that a peer using the same classes decodes it."""
        return make_error_msg(
            text,
            message_type=message_type,
            message_class=self.message_class,
            body_class=self.body_class,
        )

    def in_own_classes(self, reply: MessageProtocol) -> MessageProtocol:
        """``reply`` (say, an auth plugin's ``error()``, built with the
        default classes) rebuilt with this endpoint's message and body
        classes when it uses others: same type, uri and content."""
        if type(reply) is self.message_class and type(reply.body) is self.body_class:
            return reply
        make_body: Any = self.body_class.prepare  # the Protocol's prepare() names content only
        return self.message_class.prepare(
            make_body(reply.body.content, reply.body.uri), reply.header.message_type
        )

    def message_reader(self) -> MessageReader[MessageT]:
        """A frame reader for the current classes and limits."""
        limits = self.limits
        return MessageReader(
            self.header_class,
            self.auth_fields_class,
            self.body_class,
            self.message_class,
            limits.max_frame_size,
            max_auth_size=limits.max_auth_size,
            max_auth_fields=limits.max_auth_fields,
        )

    def frame_decoder(self) -> FrameDecoder[MessageT]:
        """A sans-I/O frame decoder for one connection, with the current
        classes and limits."""
        limits = self.limits
        return FrameDecoder(
            self.header_class,
            self.auth_fields_class,
            self.body_class,
            self.message_class,
            limits.max_frame_size,
            max_auth_size=limits.max_auth_size,
            max_auth_fields=limits.max_auth_fields,
        )

    async def dispatch(
        self,
        message: MessageT,
        writer: asyncio.StreamWriter,
        fallback: Handler[MessageT] | None = None,
    ) -> tuple[MessageT | None, AuthPluginProtocol | None]:
        """Run one received message through checks and its handler.

        Returns the handler's result and the handler's auth plugin (which
        must also sign a reply). Without a matching handler, ``fallback`` is
        called, or ``(None, None)`` returned when there is none.

        Raises ``ChecksumError`` when ``message.check()`` fails and
        ``AuthenticationError`` when an auth plugin rejects the message;
        whatever the handler raises propagates.
        """
        result, layer, pending = self._call_handler(message, writer, fallback)
        if pending:
            result = await result
        return result, None if layer is None else layer.auth

    def verify(self, message: MessageProtocol) -> None:
        """Check a received message's checksum, its routing binding (when the
        endpoint's auth plugin binds routing or a cipher plugin is set), then
        the endpoint's auth plugin: ``ChecksumError`` or
        ``AuthenticationError`` when it fails."""
        if not message.check():
            raise ChecksumError("checksum mismatch: the body does not match the header")
        plugin = self.auth_plugin
        if plugin is not None or self.cipher_plugin is not None:
            if (self.cipher_plugin is not None or binds_routing(plugin)) and not route_matches(
                message, self._incoming
            ):
                raise AuthenticationError(plugin)
            if plugin is not None and not plugin.check(message.auth_data, message.body):
                raise AuthenticationError(plugin)

    def open(self, message: MessageT, peer: PeerState | None = None) -> MessageT:
        """``verify`` a received message, then decrypt it with the
        endpoint's cipher plugin: the message to use. A failed decryption
        is an ``AuthenticationError``."""
        self.verify(message)
        cipher = self.cipher_plugin
        if cipher is None:
            return message
        return self._decrypt(cipher, message, peer, None)

    def _decrypt(
        self,
        cipher: CipherPluginProtocol,
        message: MessageT,
        peer: PeerState | None,
        key: Hashable | None,
    ) -> MessageT:
        try:
            return cipher.decrypt(message, peer)  # type: ignore[return-value]
        except Exception as exc:
            self.logger.info("Decryption failed: %s", exc)
            raise AuthenticationError(self.auth_plugin, key) from exc

    @property
    def _incoming(self) -> int:
        return FROM_SERVER if self.direction == FROM_CLIENT else FROM_CLIENT

    def _call_handler(
        self,
        message: MessageT,
        writer: asyncio.StreamWriter,
        fallback: Handler[MessageT] | None,
        peer: PeerState | None = None,
        opened: bool = False,
    ) -> tuple[Any, HandlerLayer | None, bool]:
        """``dispatch`` up to the handler's call, without a coroutine: the
        result, the handler's own plugins and whether the result must still
        be awaited. A server calls it directly, a coroutine less per
        message. ``opened``: the message went through ``open`` already."""
        if not opened:
            if self.auth_plugin is None and self.cipher_plugin is None:
                # open() reduced to its one check, a call or two less per message.
                if not message.check():
                    raise ChecksumError("checksum mismatch: the body does not match the header")
            else:
                message = self.open(message, peer)
        handlers = self.handlers
        ephemeral = self.ephemeral_handlers
        layer: HandlerLayer | None = None
        # An empty table (a client's usual case) needs no keys.
        for key in self.extract_keys(message) if handlers or ephemeral else ():
            entry = ephemeral.get(key) if ephemeral else None
            one_shot = entry is not None
            if entry is None:
                entry = handlers.get(key)
            if entry is not None:
                handler, handler_plugin = entry
                if handler_plugin is not None:
                    if binds_routing(handler_plugin) and not route_matches(message, self._incoming):
                        raise AuthenticationError(handler_plugin, key)
                    if not handler_plugin.check(message.auth_data, message.body):
                        raise AuthenticationError(handler_plugin, key)
                if one_shot:
                    del ephemeral[key]
                    if handler_plugin is not None:
                        layer = HandlerLayer(handler_plugin, None)
                else:
                    layer = self._layers.get(key) if self._layers else None
                if layer is not None and layer.cipher is not None:
                    if not route_matches(message, self._incoming):
                        raise AuthenticationError(handler_plugin, key)
                    message = self._decrypt(layer.cipher, message, peer, key)
                break
        else:
            if fallback is None:
                return None, None, False
            handler = fallback
        result = handler(message, writer)
        # The usual results, None or a message, skip the (slower) awaitable test.
        pending = (
            result is not None and type(result) is not self.message_class and isawaitable(result)
        )
        return result, layer, pending

    def sign(
        self, message: MessageProtocol, handler_plugin: AuthPluginProtocol | None = None
    ) -> None:
        """Set auth fields on an outgoing message: the endpoint's plugin
        first, then the handler's (see ``seal`` for the whole of it)."""
        self.seal(message, None if handler_plugin is None else HandlerLayer(handler_plugin, None))

    def seal(
        self,
        message: MessageProtocol,
        layer: HandlerLayer | None = None,
        peer: PeerState | None = None,
        *,
        use_auth: bool = True,
        use_cipher: bool = True,
    ) -> MessageProtocol:
        """Prepare an outgoing message: its routing binding, then the
        handler's cipher and auth plugins (inner layer), then the
        endpoint's cipher and auth plugins (outer layer; ``use_cipher`` /
        ``use_auth`` False leave them out). Returns the message to send (a
        cipher plugin may return a new one)."""
        auth = self.auth_plugin if use_auth else None
        cipher = self.cipher_plugin if use_cipher else None
        if layer is None and auth is None and cipher is None:
            return message
        if (
            cipher is not None
            or binds_routing(auth)
            or (layer is not None and (layer.cipher is not None or binds_routing(layer.auth)))
        ):
            set_route(message, self.direction)
        if layer is not None:
            if layer.cipher is not None:
                message = layer.cipher.encrypt(message, peer)
            if layer.auth is not None:
                layer.auth.make(message.auth_data, message.body)
        if cipher is not None:
            message = cipher.encrypt(message, peer)
        if auth is not None:
            auth.make(message.auth_data, message.body)
        return message
