"""NatsBroker: carry ``notify`` and ``broadcast`` across server instances
through NATS (``pip install "netaio-server[nats]"``, which brings nats-py).

Give each instance its own broker, all pointing at one NATS server or
cluster::

    server = TCPServer(port=8888, broker=NatsBroker("nats://127.0.0.1:4222"))

Subjects. A key becomes one NATS subject of the broker's ``prefix``
(default ``netaio``):

- a str key ``k``: ``<prefix>.s.<token>`` with ``token`` the escaped UTF-8
  bytes of ``k``; a bytes key: ``<prefix>.b.<token>`` (``b"x"`` and ``"x"``
  are different keys on the server, so they are kept apart here);
- a broadcast: ``<prefix>.broadcast`` (reserved: no key maps to it);
- the escaping keeps the bytes ``A-Z a-z 0-9 -`` and writes every other
  byte as ``_`` and two upper-case hex digits (``room/1`` is ``room_2F1``,
  ``a.b`` is ``a_2Eb``); the empty key is the token ``_``. NATS subjects are
  dot-separated tokens where ``*`` and ``>`` are wildcards and whitespace
  ends the subject, so ``.``, ``*``, ``>``, spaces and control bytes must
  not reach the subject as they are; escaping (rather than hex or base32 of
  the whole key) keeps usual keys readable in NATS monitoring
  (``nats sub 'netaio.>'``) and is unambiguous, since ``_`` is always
  followed by two hex digits but in the empty token;
- a token longer than ``MAX_TOKEN`` (256) characters is replaced by ``h_``
  and the SHA-256 hex digest of the escaped token (the subject stays far
  below NATS's 4 KiB control line).

Interest. An instance subscribes to a key's subject only while it has a
local subscriber for that key (the server calls ``subscribe`` for the first
and ``unsubscribe`` after the last), and always to the broadcast subject.

Echo. The connection is made with ``no_echo`` (NATS does not send an
instance its own publications), and each publication carries the
instance's id in the ``Netaio-Instance`` header, which is checked on receipt
too: an instance never delivers its own notify twice.

Outages. nats-py reconnects for ever (``reconnect_time_wait`` apart) and
renews the subscriptions. While it is disconnected, ``publish`` buffers up
to ``pending_size`` bytes, which are sent after the reconnect; past that a
publication is dropped, counted in ``dropped`` and logged (once per outage),
and never raised into ``notify``: local delivery has already happened.
Frames lost in the gap are those NATS accepted while a subscribing
instance was itself disconnected (NATS keeps nothing for an absent
subscriber) and those in flight in a socket when the NATS server died.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from netaio_core.broker import BROADCAST, Deliver

__all__ = ["MAX_TOKEN", "NatsBroker", "key_subject"]

MAX_TOKEN = 256
"""The longest escaped key token kept as it is (longer ones are hashed)."""

INSTANCE_HEADER = "Netaio-Instance"

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPES = [chr(b) if b in _SAFE else f"_{b:02X}" for b in range(256)]

_logger = logging.getLogger("netaio.broker")


def escape_token(data: bytes) -> str:
    """``data`` as one safe NATS subject token (see the module docs)."""
    if not data:
        return "_"
    return "".join([_ESCAPES[b] for b in data])


def key_subject(prefix: str, key: bytes | str | None) -> str:
    """The NATS subject of a key (``BROADCAST``: the broadcast subject)."""
    if key is BROADCAST:
        return f"{prefix}.broadcast"
    kind, data = ("s", key.encode()) if isinstance(key, str) else ("b", key)
    token = escape_token(data)
    if len(token) > MAX_TOKEN:
        token = "h_" + hashlib.sha256(token.encode()).hexdigest()
    return f"{prefix}.{kind}.{token}"


def _load_nats() -> Any:
    try:
        return importlib.import_module("nats")
    except ImportError:
        raise ImportError('NatsBroker needs nats-py: pip install "netaio-server[nats]"') from None


class NatsBroker:
    """A ``BrokerProtocol`` on NATS, with nats-py (see the module docs).

    servers: a NATS URL or a list of them (of one cluster).
    prefix: the first subject token(s) of every subject; instances must
        share it to see each other, and distinct prefixes keep services
        apart on one NATS.
    instance_id: this instance's id in the ``Netaio-Instance`` header
        (default: a random one).
    reconnect_time_wait: seconds between reconnect attempts.
    pending_size: bytes of publications buffered while NATS is away.
    connect_timeout: seconds the first connection may take; ``start`` (so
        ``server.listen()``) fails when NATS cannot be reached.
    options: more keyword arguments to ``nats.connect`` (``user``,
        ``password``, ``token``, ``tls``, ``user_credentials``...).
    """

    def __init__(
        self,
        servers: str | list[str] = "nats://127.0.0.1:4222",
        *,
        prefix: str = "netaio",
        instance_id: str | None = None,
        reconnect_time_wait: float = 0.5,
        pending_size: int = 8 * 1024 * 1024,
        connect_timeout: float = 5.0,
        options: Mapping[str, Any] | None = None,
        logger: logging.Logger = _logger,
    ) -> None:
        if not prefix or any(c in prefix for c in " \t\r\n*>") or prefix.endswith("."):
            raise ValueError(f"invalid NATS subject prefix {prefix!r}")
        self.servers = servers
        self.prefix = prefix
        self.instance_id = instance_id or uuid.uuid4().hex
        self.reconnect_time_wait = reconnect_time_wait
        self.pending_size = pending_size
        self.connect_timeout = connect_timeout
        self.options = dict(options or {})
        self.logger = logger
        self.published = 0
        """Frames handed to NATS."""
        self.delivered = 0
        """Frames from other instances handed to the server."""
        self.dropped = 0
        """Publications dropped (NATS away and the buffer full, or closed)."""
        self.reconnects = 0
        self._headers = {INSTANCE_HEADER: self.instance_id}
        self._nc: Any = None
        self._deliver: Deliver | None = None
        self._subs: dict[bytes | str, Any] = {}
        self._broadcast_sub: Any = None
        self._lock = asyncio.Lock()
        self._outage_drops = 0

    @property
    def connected(self) -> bool:
        """Whether the NATS connection is up now."""
        return self._nc is not None and bool(self._nc.is_connected)

    def subject(self, key: bytes | str | None) -> str:
        """The subject of ``key`` under this broker's prefix."""
        return key_subject(self.prefix, key)

    async def start(self, deliver: Deliver) -> None:
        nats = _load_nats()
        if self._nc is not None:
            return
        self._deliver = deliver
        self._lock = asyncio.Lock()  # bound to the loop start() runs in
        options: dict[str, Any] = {
            "name": f"netaio-{self.instance_id[:12]}",
            "no_echo": True,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": self.reconnect_time_wait,
            "pending_size": self.pending_size,
            "connect_timeout": self.connect_timeout,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }
        options.update(self.options)
        try:
            self._nc = await nats.connect(self.servers, **options)
        except Exception as exc:
            raise ConnectionError(f"cannot connect to NATS at {self.servers}: {exc}") from exc
        self._broadcast_sub = await self._nc.subscribe(
            self.subject(BROADCAST), cb=self._callback(BROADCAST)
        )
        for key in list(self._subs):  # restarted: renew the interest kept
            self._subs[key] = await self._nc.subscribe(self.subject(key), cb=self._callback(key))
        await self._nc.flush()
        self.logger.info("Connected to NATS at %s", self._nc.connected_url.netloc)

    async def stop(self) -> None:
        nc, self._nc = self._nc, None
        self._deliver = None
        self._broadcast_sub = None
        if nc is None:
            return
        try:
            await asyncio.wait_for(nc.drain(), self.connect_timeout)
        except Exception:
            pass
        finally:
            if not nc.is_closed:
                try:
                    await nc.close()
                except Exception as exc:
                    self.logger.debug("Closing the NATS connection failed: %s", exc)
        self._subs = dict.fromkeys(self._subs)  # keep the interest, drop the subscriptions

    async def publish(self, key: bytes | str | None, frame: bytes) -> None:
        nc = self._nc
        if nc is None:
            self.dropped += 1
            return
        try:
            await nc.publish(self.subject(key), frame, headers=self._headers)
        except Exception as exc:
            self.dropped += 1
            self._outage_drops += 1
            if self._outage_drops == 1:
                self.logger.warning(
                    "NATS publish failed (%s): dropping cross-instance publications "
                    "until it is back; local delivery goes on",
                    type(exc).__name__,
                )
            return
        self.published += 1

    async def subscribe(self, key: bytes | str) -> None:
        async with self._lock:
            if self._subs.get(key) is not None:
                return
            self._subs[key] = None
            if self._nc is not None:
                self._subs[key] = await self._nc.subscribe(
                    self.subject(key), cb=self._callback(key)
                )

    async def unsubscribe(self, key: bytes | str) -> None:
        async with self._lock:
            if key not in self._subs:
                return
            sub = self._subs.pop(key)
            if sub is not None and self._nc is not None and not self._nc.is_closed:
                await sub.unsubscribe()

    def _callback(self, key: bytes | str | None) -> Any:
        async def on_message(msg: Any) -> None:
            headers = msg.headers
            if headers is not None and headers.get(INSTANCE_HEADER) == self.instance_id:
                return
            deliver = self._deliver
            if deliver is not None:
                self.delivered += 1
                deliver(key, msg.data)

        return on_message

    async def _on_error(self, exc: Exception) -> None:
        self.logger.warning("NATS: %s", exc or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        if self._nc is not None:
            self.logger.warning("Disconnected from NATS: reconnecting")

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        drops, self._outage_drops = self._outage_drops, 0
        url = self._nc.connected_url.netloc if self._nc is not None else "?"
        if drops:
            self.logger.warning(
                "Reconnected to NATS at %s; %d publications were dropped meanwhile", url, drops
            )
        else:
            self.logger.info("Reconnected to NATS at %s", url)
