"""UDPNode: netaio messages over UDP, one frame per datagram.

The node is an ``Endpoint`` (netaio-core's dispatch path: checksum, auth and
cipher plugins, handler lookup by ``extract_keys``); what it adds is the
datagram transport, requests that are retried until a timeout, a cache that
answers a retried request with the reply already sent, subscriptions by
address, and peer advertisement and discovery over a multicast group.

Handlers are called with the message and the sender's address ``(host,
port)`` (where a TCP endpoint passes the connection's writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable, Mapping
from enum import Enum
from typing import Any, NamedTuple, TypeAlias, TypeVar, cast

from netaio_core import (
    AuthenticationError,
    AuthFields,
    AuthFieldsProtocol,
    AuthPluginProtocol,
    Body,
    BodyProtocol,
    ChecksumError,
    CipherPluginProtocol,
    DecodeError,
    Endpoint,
    FrameCodec,
    Handler,
    Header,
    HeaderProtocol,
    Message,
    MessageProtocol,
    MessageT,
    MessageType,
    PendingRequests,
    ProtocolError,
    UnknownMessageTypeError,
    correlation_id,
    header_class_for,
    make_not_found_msg,
    set_correlation_id,
)
from netaio_core import keys_extractor as default_keys_extractor
from netaio_core.correlation import REPLY_TYPES
from netaio_core.dispatch import HandlerLayer
from netaio_core.protocols import PeerState

from .limits import DatagramLimits, DatagramTooLargeError
from .peers import Addr, DefaultPeerPlugin, Peer, PeerPluginProtocol

__all__ = [
    "DEFAULT_MULTICAST_GROUP",
    "DEFAULT_MULTICAST_PORT",
    "FROM_NODE",
    "DatagramFrames",
    "TimeoutContext",
    "TimeoutErrorHandler",
    "UDPHandler",
    "UDPNode",
    "default_node_logger",
]

default_node_logger = logging.getLogger("netaio.node")
default_node_logger.setLevel(logging.INFO)
default_node_logger.addHandler(logging.NullHandler())

DEFAULT_MULTICAST_GROUP = "239.255.0.1"
"""The default discovery group (administratively scoped: it stays on site)."""

DEFAULT_MULTICAST_PORT = 8889
"""The default port every node of a host shares for discovery."""

FROM_NODE = 0x4E  # "N"
"""The routing direction of every frame a node sends (``netaio_core.binding``):
nodes are peers, so each expects from others what it sends itself."""

UDPHandler: TypeAlias = Callable[
    [MessageT, Addr],
    MessageT | Coroutine[Any, Any, MessageT | None] | None,
]
"""A node's handler: called with the message and the sender's address;
returns the reply (or None for none), directly or as a coroutine."""

_AnyHandler = TypeVar("_AnyHandler", bound=Callable[..., Any])

TimeoutContext: TypeAlias = dict[str, Any]
"""What a timeout handler is told of the request: ``uri``, ``timeout``
(seconds) and ``server`` (the address asked)."""

TimeoutErrorHandler: TypeAlias = Callable[
    ["UDPNode[Any]", str, "Addr | None", TimeoutError, TimeoutContext],
    Coroutine[Any, Any, None] | None,
]
"""Called as ``handler(node, kind, addr, error, context)`` when a request
times out, before ``request`` raises ``error``; ``kind`` is
``"request_timeout"``. A coroutine it returns runs as a task of the node."""


class _Sealing(NamedTuple):
    """How ``send`` and its kin seal one message (see ``UDPNode.send``)."""

    layer: HandlerLayer | None
    use_auth: bool
    use_cipher: bool

    @classmethod
    def of(
        cls,
        use_auth: bool,
        use_cipher: bool,
        auth_plugin: AuthPluginProtocol | None,
        cipher_plugin: CipherPluginProtocol | None,
    ) -> _Sealing:
        extra = (
            None
            if auth_plugin is None and cipher_plugin is None
            else HandlerLayer(auth_plugin, cipher_plugin)
        )
        return cls(extra, use_auth, use_cipher)


_REQUEST_TYPES = frozenset(
    {
        MessageType.REQUEST_URI,
        MessageType.CREATE_URI,
        MessageType.UPDATE_URI,
        MessageType.DELETE_URI,
        MessageType.SUBSCRIBE_URI,
        MessageType.UNSUBSCRIBE_URI,
        MessageType.PUBLISH_URI,
    }
)
"""Types the default handler answers NOT_FOUND (it ignores the others)."""


def _as_handler(handler: UDPHandler[MessageT] | Handler[MessageT]) -> Handler[MessageT]:
    """The one place a node's handler is taken for an ``Endpoint`` handler:
    the endpoint passes its second argument through, and a node passes the
    sender's address there."""
    return cast("Handler[MessageT]", handler)


class DatagramFrames(asyncio.DatagramProtocol):
    """The datagram protocol of a node's sockets: each datagram is handed to
    the node, which decodes it as one frame."""

    def __init__(self, node: UDPNode[Any], multicast: bool = False) -> None:
        self.node = node
        self.multicast = multicast
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.node.datagram_received(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.node.logger.info("UDP error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class _ReplyCache:
    """Recent (address, correlation id) -> the request's digest and the
    reply sent (None: none, or not yet), bounded in size and age."""

    _RUNNING = b""

    def __init__(self, size: int, ttl: float) -> None:
        self.size, self.ttl = size, ttl
        self._entries: OrderedDict[tuple[Addr, int], tuple[bytes, bytes | None, float]] = (
            OrderedDict()
        )

    @staticmethod
    def digest(request: bytes) -> bytes:
        return hashlib.blake2b(request, digest_size=16).digest()

    def lookup(self, addr: Addr, cid: int, digest: bytes) -> tuple[bytes | None] | None:
        """``(reply,)`` for a request seen before (reply None: none to send),
        or None for a new one."""
        entry = self._entries.get((addr, cid))
        if entry is None or entry[0] != digest:
            return None
        if entry[2] < time.monotonic():
            del self._entries[(addr, cid)]
            return None
        return (entry[1],)

    def store(self, addr: Addr, cid: int, digest: bytes, reply: bytes | None) -> None:
        entries = self._entries
        key = (addr, cid)
        entries.pop(key, None)
        entries[key] = (digest, reply, time.monotonic() + self.ttl)
        while len(entries) > self.size:
            entries.popitem(last=False)

    def discard(self, addr: Addr, cid: int) -> None:
        self._entries.pop((addr, cid), None)


class UDPNode(Endpoint[MessageT]):
    """An asyncio UDP endpoint that is both client and server of its peers.

    Generic over the message class: ``UDPNode()`` is a ``UDPNode[Message]``.
    Call ``start()`` to bind ``(interface, port)``; ``port=0`` picks a free
    port (``node.port`` then tells it).
    """

    port: int
    interface: str
    multicast_group: str
    multicast_port: int
    local_peer: Peer | None
    peers: dict[bytes, Peer]
    peer_addrs: dict[Addr, bytes]
    peer_plugin: PeerPluginProtocol
    subscriptions: dict[Hashable, set[Addr]]
    transport: asyncio.DatagramTransport | None
    limits: DatagramLimits
    message_type_class: type[Enum]
    direction: int = FROM_NODE

    def __init__(
        self,
        port: int = 8888,
        interface: str = "0.0.0.0",
        multicast_group: str = DEFAULT_MULTICAST_GROUP,
        local_peer: Peer | None = None,
        header_class: type[HeaderProtocol] = Header,
        message_type_class: type[Enum] = MessageType,
        auth_fields_class: type[AuthFieldsProtocol] = AuthFields,
        body_class: type[BodyProtocol] = Body,
        message_class: type[MessageT] = Message,  # type: ignore[assignment]
        default_handler: UDPHandler[MessageT] | None = None,
        extract_keys: Callable[[MessageT], list[Hashable]] = default_keys_extractor,
        logger: logging.Logger = default_node_logger,
        auth_plugin: AuthPluginProtocol | None = None,
        cipher_plugin: CipherPluginProtocol | None = None,
        peer_plugin: PeerPluginProtocol | None = None,
        *,
        multicast_port: int = DEFAULT_MULTICAST_PORT,
        limits: DatagramLimits | None = None,
        handlers: Mapping[Hashable, UDPHandler[MessageT]] | None = None,
        timeout_error_handler: TimeoutErrorHandler | None = None,
    ) -> None:
        """Initialize the node. Args:
        port, interface: the unicast address to bind (``start``).
        multicast_group, multicast_port: where peers are advertised and
            discovered; every node of a host binds ``multicast_port`` with
            SO_REUSEADDR/SO_REUSEPORT, each keeping its own unicast port.
        local_peer: this node's ``Peer`` (id and data), for discovery.
        header_class, auth_fields_class, body_class, message_class: the
            message classes (``body_class=ShortUriBody`` for netaio 0.0.6+).
        message_type_class: a class from ``make_message_type_class``: with
            the default ``header_class`` the header decodes its types.
        default_handler: called for a message no handler matches (default:
            NOT_FOUND for a request type, nothing for other types).
        extract_keys, logger: as for ``TCPServer``.
        auth_plugin, cipher_plugin: sign/check and encrypt/decrypt every
            datagram; a cipher plugin gets one ``PeerState`` per address.
        peer_plugin: packs ``local_peer`` into advertisements.
        limits: ``DatagramLimits`` (datagram size, retries, reply cache).
        handlers: key -> handler, registered with ``add_handler``.
        timeout_error_handler: see ``set_timeout_handler``.
        """
        if message_type_class is not MessageType and header_class is Header:
            header_class = header_class_for(message_type_class)
        self.limits = DatagramLimits() if limits is None else limits
        super().__init__(
            header_class,
            body_class,
            message_class,
            extract_keys,
            logger,
            auth_plugin,
            auth_fields_class,
            self.limits,
            None,
            cipher_plugin,
        )
        self.message_type_class = message_type_class
        self.port = port
        self.interface = interface
        self.multicast_group = multicast_group
        self.multicast_port = multicast_port
        self.local_peer = local_peer
        self.peer_plugin = DefaultPeerPlugin() if peer_plugin is None else peer_plugin
        self.peers = {}
        self.peer_addrs = {}
        self.subscriptions = {}
        self.transport = None
        self.default_handler: Handler[MessageT] = _as_handler(
            self._not_found if default_handler is None else default_handler
        )
        for key, handler in (handlers or {}).items():
            self.add_handler(key, handler)
        limits_ = self.limits
        self._codec: FrameCodec[MessageT] = FrameCodec(
            header_class,
            auth_fields_class,
            body_class,
            message_class,
            limits_.max_frame_size,
            max_auth_size=limits_.max_auth_size,
            max_auth_fields=limits_.max_auth_fields,
        )
        self._replies = _ReplyCache(limits_.reply_cache_size, limits_.reply_cache_ttl)
        self._running: set[tuple[Addr, int]] = set()  # requests whose handler runs
        self._pending: dict[Addr, PendingRequests[MessageT]] = {}
        self._peer_states: OrderedDict[Addr, PeerState] = OrderedDict()
        self._multicast_transport: asyncio.DatagramTransport | None = None
        self._advertising: dict[bytes, asyncio.Task[None]] = {}
        self._managed: dict[bytes, HandlerLayer] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.handle_timeout_error = timeout_error_handler

    # -- handlers (typed for (message, addr)) -------------------------------

    def add_handler(
        self,
        key: Hashable,
        handler: UDPHandler[MessageT] | Handler[MessageT],
        auth_plugin: AuthPluginProtocol | None = None,
        *,
        in_thread: bool = False,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> None:
        """Register ``handler(message, addr)`` for ``key`` (see
        ``Endpoint.add_handler`` for the plugins and ``in_thread``)."""
        super().add_handler(
            key, _as_handler(handler), auth_plugin, in_thread=in_thread, cipher_plugin=cipher_plugin
        )

    def on(
        self,
        key: Hashable,
        auth_plugin: AuthPluginProtocol | None = None,
        *,
        in_thread: bool = False,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> Callable[[_AnyHandler], _AnyHandler]:
        """Decorator registering ``handler(message, addr)`` for ``key``."""

        def decorator(func: _AnyHandler) -> _AnyHandler:
            self.add_handler(
                key, func, auth_plugin, in_thread=in_thread, cipher_plugin=cipher_plugin
            )
            return func

        return decorator

    def add_ephemeral_handler(
        self,
        key: Hashable,
        handler: UDPHandler[MessageT] | Handler[MessageT],
        auth_plugin: AuthPluginProtocol | None = None,
    ) -> None:
        """Register a one-shot ``handler(message, addr)`` for ``key``."""
        super().add_ephemeral_handler(key, _as_handler(handler), auth_plugin)

    def once(
        self, key: Hashable, auth_plugin: AuthPluginProtocol | None = None
    ) -> Callable[[_AnyHandler], _AnyHandler]:
        """Decorator registering a one-shot ``handler(message, addr)``."""

        def decorator(func: _AnyHandler) -> _AnyHandler:
            self.add_ephemeral_handler(key, func, auth_plugin)
            return func

        return decorator

    @property
    def _incoming(self) -> int:
        return self.direction  # peers send what they expect

    # -- lifecycle ------------------------------------------------------------

    @property
    def addr(self) -> Addr:
        """The bound unicast address (after ``start``)."""
        return (self.interface, self.port)

    async def start(self) -> None:
        """Bind the unicast socket on ``(interface, port)``."""
        if self.transport is not None:
            return
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: DatagramFrames(self),
            local_addr=(self.interface, self.port),
            family=socket.AF_INET,
        )
        self.transport = transport
        sock = transport.get_extra_info("socket")
        self.port = sock.getsockname()[1]
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            if self.interface not in ("", "0.0.0.0"):
                sock.setsockopt(
                    socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.interface)
                )
        self.logger.info("UDPNode started on %s:%s", self.interface, self.port)

    async def _join_multicast(self) -> None:
        """Bind the shared discovery port and join the group."""
        if self._multicast_transport is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            # Linux filters by the bound group; elsewhere bind the wildcard.
            host = self.multicast_group if sys.platform.startswith("linux") else ""
            sock.bind((host, self.multicast_port))
            interface = self.interface if self.interface not in ("", "0.0.0.0") else "0.0.0.0"
            membership = socket.inet_aton(self.multicast_group) + socket.inet_aton(interface)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: DatagramFrames(self, multicast=True), sock=sock
        )
        self._multicast_transport = transport
        self.logger.info("UDPNode joined %s on port %s", self.multicast_group, self.multicast_port)

    async def stop(self, *, announce: bool = True) -> None:
        """Stop peer management (``announce``: tell the peers with a
        DISCONNECT), fail pending requests and close the sockets."""
        for app_id in list(self._managed):
            await self.stop_peer_management(app_id, announce=announce)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        pending, self._pending = self._pending, {}
        for table in pending.values():
            table.fail_all(ConnectionError("the node stopped"))
        for transport in (self._multicast_transport, self.transport):
            if transport is not None:
                transport.close()
        self._multicast_transport = self.transport = None
        self.logger.info("UDPNode on port %s stopped", self.port)

    # -- sending --------------------------------------------------------------

    def _unicast(self) -> asyncio.DatagramTransport:
        if self.transport is None:
            raise RuntimeError("the node is not started: call start() first")
        return self.transport

    def encode(self, message: MessageProtocol) -> bytes:
        """Encode ``message`` as one datagram: ``DatagramTooLargeError`` if
        it does not fit ``limits.max_frame_size``."""
        limit = self.limits.max_frame_size
        try:
            data = message.encode()
        except ValueError as exc:
            raise self._too_large(exc) from exc
        if len(data) > limit:
            raise DatagramTooLargeError(
                f"message of {len(data)} bytes does not fit in a datagram: "
                f"the limit is {limit} bytes"
            )
        return data

    def _too_large(self, exc: ValueError) -> ValueError:
        """``DatagramTooLargeError`` for a section over its length field
        (``exc`` itself for any other ValueError)."""
        if "a frame carries at most" not in str(exc):
            return exc
        return DatagramTooLargeError(
            f"message does not fit in a datagram ({exc}); "
            f"the limit is {self.limits.max_frame_size} bytes"
        )

    def peer_state(self, addr: Addr) -> PeerState:
        """The ``PeerState`` cipher plugins get for ``addr`` (one per
        address, the least recently used forgotten beyond
        ``limits.max_peer_states``). Holds ``"addr"``, and ``"peer"`` once
        the address belongs to a known ``Peer``."""
        states = self._peer_states
        state = states.get(addr)
        if state is None:
            state = {"addr": addr}
            states[addr] = state
            while len(states) > self.limits.max_peer_states:
                states.popitem(last=False)
        else:
            states.move_to_end(addr)
        peer_id = self.peer_addrs.get(addr)
        if peer_id is not None and peer_id in self.peers:
            state["peer"] = self.peers[peer_id]
        return state

    def _sealed(self, message: MessageProtocol, addr: Addr, how: _Sealing) -> bytes:
        message = self.seal(
            message,
            how.layer,
            self.peer_state(addr),
            use_auth=how.use_auth,
            use_cipher=how.use_cipher,
        )
        return self.encode(message)

    def send(
        self,
        message: MessageProtocol,
        addr: Addr,
        *,
        use_auth: bool = True,
        use_cipher: bool = True,
        auth_plugin: AuthPluginProtocol | None = None,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> None:
        """Send ``message`` to ``addr`` (unicast or a multicast group).

        ``auth_plugin`` and ``cipher_plugin`` seal it first, in addition to
        the node's own plugins (as a handler's plugins do, see ``seal``);
        ``use_auth=False`` / ``use_cipher=False`` leave out the node's auth /
        cipher plugin. Raises ``DatagramTooLargeError`` for a message too
        large for a datagram."""
        how = _Sealing.of(use_auth, use_cipher, auth_plugin, cipher_plugin)
        self._unicast().sendto(self._sealed(message, addr, how), addr)

    def _copy(self, message: MessageProtocol) -> Callable[[], MessageProtocol]:
        """Fresh copies of ``message`` (each destination seals its own)."""
        data = self.encode(message)
        codec = self._codec
        length = codec.header_length

        def copy() -> MessageProtocol:
            header, _ = codec.decode_header(data[:length])
            assert not isinstance(header, UnknownMessageTypeError)
            return codec.decode_rest(header, data[length:])

        return copy

    def broadcast(
        self,
        message: MessageProtocol,
        *,
        use_auth: bool = True,
        use_cipher: bool = True,
        auth_plugin: AuthPluginProtocol | None = None,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> int:
        """Send ``message`` to every known peer (one address each); returns
        how many it went to. The keyword arguments are ``send``'s."""
        how = _Sealing.of(use_auth, use_cipher, auth_plugin, cipher_plugin)
        copy = self._copy(message)
        transport = self._unicast()
        sent = 0
        for peer in list(self.peers.values()):
            if peer.addrs:
                addr = min(peer.addrs)
                transport.sendto(self._sealed(copy(), addr, how), addr)
                sent += 1
        return sent

    def multicast(
        self,
        message: MessageProtocol,
        port: int | None = None,
        *,
        use_auth: bool = True,
        use_cipher: bool = True,
        auth_plugin: AuthPluginProtocol | None = None,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> None:
        """Send ``message`` to the multicast group (on ``port``, by default
        ``multicast_port``). The keyword arguments are ``send``'s."""
        addr = (self.multicast_group, self.multicast_port if port is None else port)
        how = _Sealing.of(use_auth, use_cipher, auth_plugin, cipher_plugin)
        self._unicast().sendto(self._sealed(message, addr, how), addr)

    def subscribe(self, key: Hashable, addr: Addr) -> None:
        """Subscribe ``addr`` to ``key``: ``notify(key, ...)`` sends there."""
        self.subscriptions.setdefault(key, set()).add(addr)

    def unsubscribe(self, key: Hashable, addr: Addr) -> None:
        """Unsubscribe ``addr`` from ``key`` (nothing if it was not)."""
        subscribers = self.subscriptions.get(key)
        if subscribers is not None:
            subscribers.discard(addr)
            if not subscribers:
                del self.subscriptions[key]

    def notify(
        self,
        key: Hashable,
        message: MessageProtocol,
        *,
        use_auth: bool = True,
        use_cipher: bool = True,
        auth_plugin: AuthPluginProtocol | None = None,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> int:
        """Send ``message`` to every address subscribed to ``key``; returns
        how many it went to. The keyword arguments are ``send``'s."""
        subscribers = self.subscriptions.get(key)
        if not subscribers:
            return 0
        how = _Sealing.of(use_auth, use_cipher, auth_plugin, cipher_plugin)
        copy = self._copy(message)
        transport = self._unicast()
        for addr in list(subscribers):
            transport.sendto(self._sealed(copy(), addr, how), addr)
        return len(subscribers)

    def enable_subscriptions(self, auth_plugin: AuthPluginProtocol | None = None) -> None:
        """Answer SUBSCRIBE_URI / UNSUBSCRIBE_URI from peers: subscribe the
        sender's address to the message's uri (or unsubscribe it) and
        confirm with CONFIRM_SUBSCRIBE / CONFIRM_UNSUBSCRIBE."""

        def confirm(message: MessageT, message_type: MessageType) -> MessageT:
            body_class: Any = self.body_class
            reply = self.message_class.prepare(
                body_class.prepare(b"", message.body.uri), message_type
            )
            return reply  # type: ignore[return-value]

        def on_subscribe(message: MessageT, addr: Addr) -> MessageT:
            self.subscribe(message.body.uri, addr)
            return confirm(message, MessageType.CONFIRM_SUBSCRIBE)

        def on_unsubscribe(message: MessageT, addr: Addr) -> MessageT:
            self.unsubscribe(message.body.uri, addr)
            return confirm(message, MessageType.CONFIRM_UNSUBSCRIBE)

        self.add_handler(MessageType.SUBSCRIBE_URI, on_subscribe, auth_plugin)
        self.add_handler(MessageType.UNSUBSCRIBE_URI, on_unsubscribe, auth_plugin)

    # -- requests -------------------------------------------------------------

    async def request(
        self,
        uri: bytes,
        addr: Addr,
        *,
        content: bytes = b"",
        message_type: MessageType | None = None,
        timeout: float = 10.0,
        use_auth: bool = True,
        use_cipher: bool = True,
        auth_plugin: AuthPluginProtocol | None = None,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> MessageT:
        """Send a request to ``addr`` and return its reply (the plugin
        arguments are ``send``'s).

        The request carries a correlation id; the same datagram is sent
        again after ``limits.retry_interval`` (doubling, at most
        ``max_retry_interval``) until a reply comes or ``timeout`` seconds
        pass (``TimeoutError``). A netaio node answers a retry from its
        reply cache without running the handler again. Raises
        ``DatagramTooLargeError`` for a request too large for a datagram,
        ``AuthenticationError`` (its ``reply`` the message) when the peer
        answers AUTH_ERROR. Other error replies are returned.
        """
        transport = self._unicast()
        loop = asyncio.get_running_loop()
        body_class: Any = self.body_class  # the Protocol's prepare() names content only
        try:
            message = self.message_class.prepare(
                body_class.prepare(content, uri),
                MessageType.REQUEST_URI if message_type is None else message_type,
            )
        except ValueError as exc:
            raise self._too_large(exc) from exc
        pending = self._pending.get(addr)
        if pending is None:
            # Ids continue per address and start at random: a peer's reply
            # cache never takes a new request for a retry of an old one.
            pending = self._pending[addr] = PendingRequests(secrets.randbits(32))
            while len(self._pending) > self.limits.max_peer_states:
                idle = next((a for a, p in self._pending.items() if not len(p)), None)
                if idle is None:
                    break
                del self._pending[idle]
        else:
            self._pending[addr] = self._pending.pop(addr)  # most recently used last
        how = _Sealing.of(use_auth, use_cipher, auth_plugin, cipher_plugin)
        cid, reply = pending.add(loop)
        try:
            set_correlation_id(message, cid)
            data = self._sealed(message, addr, how)
            deadline = loop.time() + timeout
            wait = self.limits.retry_interval
            while True:
                transport.sendto(data, addr)
                remaining = deadline - loop.time()
                if remaining > 0:
                    done, _ = await asyncio.wait((reply,), timeout=min(wait, remaining))
                    if done:
                        break
                if loop.time() >= deadline:
                    error = TimeoutError(f"no reply from {addr} to {uri!r} within {timeout}s")
                    self._timed_out(addr, error, {"uri": uri, "timeout": timeout, "server": addr})
                    raise error
                wait = min(wait * 2, self.limits.max_retry_interval)
            answer = reply.result()
        finally:
            pending.forget(cid)
        if answer.header.message_type is MessageType.AUTH_ERROR:
            raise AuthenticationError(self.auth_plugin, reply=answer)
        return answer

    def set_timeout_handler(self, handler: TimeoutErrorHandler | None) -> None:
        """Set or replace (None: remove) the function called when a request
        times out (``TimeoutErrorHandler``), e.g. to forget a silent peer or
        to count timeouts; ``request`` still raises. An exception it raises
        is logged, not raised."""
        self.handle_timeout_error = handler

    def _timed_out(self, addr: Addr, error: TimeoutError, context: TimeoutContext) -> None:
        handler = self.handle_timeout_error
        if handler is None:
            return
        try:
            result = handler(self, "request_timeout", addr, error, context)
        except Exception:
            self.logger.exception("The timeout handler failed")
            return
        if result is not None:
            task = asyncio.ensure_future(self._run_timeout_handler(result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_timeout_handler(self, pending: Coroutine[Any, Any, None]) -> None:
        try:
            await pending
        except Exception:
            self.logger.exception("The timeout handler failed")

    async def create(
        self, uri: bytes, data: bytes, addr: Addr, *, timeout: float = 10.0
    ) -> MessageT:
        """``request`` a CREATE_URI with ``data`` as its content."""
        return await self.request(
            uri, addr, content=data, message_type=MessageType.CREATE_URI, timeout=timeout
        )

    async def update(
        self, uri: bytes, data: bytes, addr: Addr, *, timeout: float = 10.0
    ) -> MessageT:
        """``request`` an UPDATE_URI with ``data`` as its content."""
        return await self.request(
            uri, addr, content=data, message_type=MessageType.UPDATE_URI, timeout=timeout
        )

    async def delete(self, uri: bytes, addr: Addr, *, timeout: float = 10.0) -> MessageT:
        """``request`` a DELETE_URI."""
        return await self.request(uri, addr, message_type=MessageType.DELETE_URI, timeout=timeout)

    # -- receiving ------------------------------------------------------------

    def _not_found(self, message: MessageT, addr: Addr) -> MessageT | None:
        if message.header.message_type not in _REQUEST_TYPES:
            return None
        return make_not_found_msg(message_class=self.message_class, body_class=self.body_class)

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        """Handle one datagram: one frame (anything else is dropped)."""
        codec = self._codec
        length = codec.header_length
        try:
            if len(data) < length:
                raise DecodeError(f"datagram of {len(data)} bytes is shorter than a header")
            header, rest = codec.decode_header(data[:length])
            if length + rest != len(data):
                raise DecodeError(
                    f"datagram of {len(data)} bytes holds no single frame of {length + rest}"
                )
            if isinstance(header, UnknownMessageTypeError):
                raise header
            message = codec.decode_rest(header, data[length:])
        except ProtocolError as exc:
            self.logger.info("Dropping a datagram from %s:%s: %s", addr[0], addr[1], exc)
            return
        message_type = message.header.message_type
        cid = correlation_id(message)
        is_reply = message_type in REPLY_TYPES
        digest = b""
        if cid is not None and not is_reply:
            if (addr, cid) in self._running:
                return  # a retry while the handler runs: the reply will come
            digest = _ReplyCache.digest(data)
            seen = self._replies.lookup(addr, cid, digest)
            if seen is not None:
                if seen[0] is not None:
                    self._unicast().sendto(seen[0], addr)
                return
        state = self.peer_state(addr)
        try:
            message = self.open(message, state)
        except (ChecksumError, AuthenticationError) as exc:
            self._refused(message, addr, exc, cid, is_reply)
            return
        self._heard(addr)
        if is_reply:
            pending = self._pending.get(addr)
            if (pending is not None and pending.match(message)) or cid is not None:
                return  # a reply (one with an id nobody waits for: late or repeated)
        self._dispatch(message, addr, cid, digest, state)

    def _refused(
        self,
        message: MessageT,
        addr: Addr,
        exc: ChecksumError | AuthenticationError,
        cid: int | None,
        is_reply: bool,
    ) -> None:
        """A datagram that failed the checksum or an auth check."""
        self.logger.info("Refusing a datagram from %s:%s: %s", addr[0], addr[1], exc)
        if is_reply:
            pending = self._pending.get(addr)
            if (
                pending is not None
                and message.header.message_type is MessageType.AUTH_ERROR
                and cid is not None
            ):
                pending.match(message)  # the peer refused our request
            return
        if cid is not None and isinstance(exc, AuthenticationError):
            plugin = exc.plugin
            reply: MessageProtocol = (
                self.in_own_classes(plugin.error())
                if plugin is not None
                else self.error_reply("auth failed", MessageType.AUTH_ERROR)
            )
            set_correlation_id(reply, cid)
            with contextlib.suppress(Exception):
                self._unicast().sendto(self.encode(reply), addr)

    def _dispatch(
        self, message: MessageT, addr: Addr, cid: int | None, digest: bytes, state: PeerState
    ) -> None:
        writer = cast("asyncio.StreamWriter", addr)  # see _as_handler
        try:
            result, layer, awaited = self._call_handler(
                message, writer, self.default_handler, state, True
            )
        except AuthenticationError as exc:  # a handler's own plugin
            self._refused(message, addr, exc, cid, False)
            return
        except Exception:
            self.logger.exception("Handler failed on a datagram from %s:%s", addr[0], addr[1])
            self._reply(self._internal_error(), None, addr, cid, digest, state)
            return
        if not awaited:
            self._reply(result, layer, addr, cid, digest, state)
            return
        if cid is not None:
            self._running.add((addr, cid))
        task = asyncio.ensure_future(self._finish(result, layer, addr, cid, digest, state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _internal_error(self) -> MessageProtocol:
        return self.error_reply("internal error")

    async def _finish(
        self,
        result: Any,
        layer: HandlerLayer | None,
        addr: Addr,
        cid: int | None,
        digest: bytes,
        state: PeerState,
    ) -> None:
        try:
            reply = await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self.logger.exception("Handler failed on a datagram from %s:%s", addr[0], addr[1])
            reply, layer = self._internal_error(), None
        finally:
            if cid is not None:
                self._running.discard((addr, cid))
        self._reply(reply, layer, addr, cid, digest, state)

    def _reply(
        self,
        reply: MessageProtocol | None,
        layer: HandlerLayer | None,
        addr: Addr,
        cid: int | None,
        digest: bytes,
        state: PeerState,
    ) -> None:
        """Send a handler's reply (with the request's id) and remember it."""
        data: bytes | None = None
        if reply is not None:
            if cid is not None:
                set_correlation_id(reply, cid)
            try:
                data = self.encode(self.seal(reply, layer, state))
            except DatagramTooLargeError as exc:
                self.logger.error("Reply to %s:%s not sent: %s", addr[0], addr[1], exc)
                error = self.error_reply("reply too large for a datagram")
                if cid is not None:
                    set_correlation_id(error, cid)
                data = self.encode(self.seal(error, None, state))
        if cid is not None and digest:
            self._replies.store(addr, cid, digest, data)
        if data is not None and self.transport is not None:
            self.transport.sendto(data, addr)

    # -- peers ------------------------------------------------------------------

    def _heard(self, addr: Addr) -> None:
        peer_id = self.peer_addrs.get(addr)
        if peer_id is not None:
            peer = self.peers.get(peer_id)
            if peer is not None:
                peer.update()

    def add_or_update_peer(self, peer_id: bytes, peer_data: bytes, addr: Addr) -> bool:
        """Add the peer heard from at ``addr`` (or update it). False for the
        local peer, a peer the peer plugin refuses, or a new one beyond
        ``limits.max_peers``; True otherwise."""
        if self.local_peer is not None and peer_id == self.local_peer.id:
            return False
        peer = self.peers.get(peer_id)
        if peer is None:
            if len(self.peers) >= self.limits.max_peers:
                self.logger.warning("Ignoring a peer: max_peers reached")
                return False
            peer = Peer(peer_id, peer_data, {addr})
            if not self.peer_plugin.validate(peer):
                return False
            self.peers[peer_id] = peer
            self.logger.debug("New peer %r at %s:%s", peer_id, addr[0], addr[1])
        else:
            peer.update(peer_data)
            peer.addrs.add(addr)
        old = self.peer_addrs.get(addr)
        if old is not None and old != peer_id:
            self.remove_peer(addr, old)
        self.peer_addrs[addr] = peer_id
        return True

    def get_peer(self, peer_id: bytes | None = None, addr: Addr | None = None) -> Peer | None:
        """The peer with ``peer_id``, or the one heard from at ``addr``."""
        if peer_id is None and addr is not None:
            peer_id = self.peer_addrs.get(addr)
        return None if peer_id is None else self.peers.get(peer_id)

    def remove_peer(self, addr: Addr, peer_id: bytes) -> None:
        """Forget ``addr`` of the peer (the peer too once it has no address
        left) and the subscriptions of ``addr``."""
        if self.peer_addrs.get(addr) == peer_id:
            del self.peer_addrs[addr]
        peer = self.peers.get(peer_id)
        if peer is not None:
            peer.addrs.discard(addr)
            if not peer.addrs:
                del self.peers[peer_id]
        state = self._peer_states.get(addr)
        if state is not None:
            state.pop("peer", None)
        for key in list(self.subscriptions):
            self.unsubscribe(key, addr)

    def remove_timed_out_peers(self, timeout: float) -> list[Peer]:
        """Forget the peers silent for more than ``timeout`` seconds."""
        gone = [peer for peer in self.peers.values() if peer.timed_out(timeout)]
        for peer in gone:
            for addr in list(peer.addrs):
                self.remove_peer(addr, peer.id)
            self.peers.pop(peer.id, None)
        return gone

    def _peer_message(self, message_type: MessageType, app_id: bytes) -> MessageT:
        if self.local_peer is None:
            raise RuntimeError("peer management needs a local_peer")
        body_class: Any = self.body_class
        message = self.message_class.prepare(
            body_class.prepare(self.peer_plugin.pack(self.local_peer), app_id), message_type
        )
        return message  # type: ignore[return-value]

    def _advertised(self, message: MessageProtocol, addr: Addr) -> Peer | None:
        try:
            peer = self.peer_plugin.unpack(message.body.content)
        except Exception as exc:
            self.logger.info("Bad peer advertisement from %s:%s: %s", addr[0], addr[1], exc)
            return None
        if self.local_peer is not None and peer.id == self.local_peer.id:
            return None
        return peer

    async def manage_peers_automatically(
        self,
        advertise_every: float = 20.0,
        app_id: bytes = b"netaio",
        peer_timeout: float = 60.0,
        *,
        auth_plugin: AuthPluginProtocol | None = None,
        cipher_plugin: CipherPluginProtocol | None = None,
    ) -> None:
        """Advertise ``local_peer`` to the multicast group every
        ``advertise_every`` seconds (uri ``app_id``), answer others'
        advertisements with PEER_DISCOVERED, forget a peer on its DISCONNECT
        or after ``peer_timeout`` seconds of silence. Joins the group on
        ``multicast_port`` (shared by the nodes of a host, with
        SO_REUSEADDR/SO_REUSEPORT) and starts the node if needed.
        ``auth_plugin``/``cipher_plugin``: plugins of these messages only."""
        if self.local_peer is None:
            raise RuntimeError("peer management needs a local_peer")
        if advertise_every <= 0 or peer_timeout <= 0:
            raise ValueError("advertise_every and peer_timeout must be positive")
        await self.start()
        await self._join_multicast()

        def on_advertise(message: MessageT, addr: Addr) -> MessageT | None:
            peer = self._advertised(message, addr)
            if peer is None or not self.add_or_update_peer(peer.id, peer.data, addr):
                return None
            return self._peer_message(MessageType.PEER_DISCOVERED, app_id)

        def on_discovered(message: MessageT, addr: Addr) -> None:
            peer = self._advertised(message, addr)
            if peer is not None:
                self.add_or_update_peer(peer.id, peer.data, addr)

        def on_disconnect(message: MessageT, addr: Addr) -> None:
            peer = self._advertised(message, addr)
            if peer is not None:
                self.remove_peer(addr, peer.id)

        for message_type, handler in (
            (MessageType.ADVERTISE_PEER, on_advertise),
            (MessageType.PEER_DISCOVERED, on_discovered),
            (MessageType.DISCONNECT, on_disconnect),
        ):
            self.add_handler(
                (message_type, app_id), handler, auth_plugin, cipher_plugin=cipher_plugin
            )
        layer = HandlerLayer(auth_plugin, cipher_plugin)
        self._managed[app_id] = layer
        old = self._advertising.pop(app_id, None)
        if old is not None:
            old.cancel()
        self._advertising[app_id] = asyncio.ensure_future(
            self._advertise(advertise_every, app_id, peer_timeout, layer)
        )

    def _multicast_peer_message(
        self, message_type: MessageType, app_id: bytes, layer: HandlerLayer
    ) -> None:
        addr = (self.multicast_group, self.multicast_port)
        message = self._peer_message(message_type, app_id)
        self._unicast().sendto(self.encode(self.seal(message, layer, self.peer_state(addr))), addr)

    async def _advertise(
        self, every: float, app_id: bytes, peer_timeout: float, layer: HandlerLayer
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                self.remove_timed_out_peers(peer_timeout)
                self._multicast_peer_message(MessageType.ADVERTISE_PEER, app_id, layer)
            except Exception as exc:
                self.logger.error("Peer advertisement failed: %s", exc)
            await asyncio.sleep(max(0.01, every - (loop.time() - started)))

    async def stop_peer_management(
        self, app_id: bytes = b"netaio", *, announce: bool = True
    ) -> None:
        """Stop advertising under ``app_id`` and remove its handlers;
        ``announce`` multicasts a DISCONNECT so that peers forget this node
        at once (otherwise they do after their peer timeout)."""
        task = self._advertising.pop(app_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        layer = self._managed.pop(app_id, None)
        if layer is not None and announce and self.transport is not None:
            try:
                self._multicast_peer_message(MessageType.DISCONNECT, app_id, layer)
            except Exception as exc:
                self.logger.info("DISCONNECT not sent: %s", exc)
        for message_type in (
            MessageType.ADVERTISE_PEER,
            MessageType.PEER_DISCOVERED,
            MessageType.DISCONNECT,
        ):
            self.remove_handler((message_type, app_id))
