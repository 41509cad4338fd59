"""Peers of a ``UDPNode`` and the plugin that packs them into advertisements."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from netaio_core import decode_auth_fields, encode_auth_fields

__all__ = ["Addr", "DefaultPeerPlugin", "Peer", "PeerPluginProtocol"]

Addr = tuple[str, int]
"""A UDP address: (host, port)."""


@dataclass(eq=False)
class Peer:
    """Another node: its id, its application data, the addresses it was
    heard from and when it was last heard from (``time.monotonic()``)."""

    id: bytes
    data: bytes = b""
    addrs: set[Addr] = field(default_factory=set)
    last_rx: float = field(default_factory=time.monotonic)

    def update(self, data: bytes | None = None) -> None:
        """Record that the peer was heard from (with new data, if given)."""
        if data is not None:
            self.data = data
        self.last_rx = time.monotonic()

    def timed_out(self, timeout: float = 60.0) -> bool:
        """Whether the peer has been silent for more than ``timeout`` seconds."""
        return time.monotonic() - self.last_rx > timeout


@runtime_checkable
class PeerPluginProtocol(Protocol):
    """How a node turns its local peer into an advertisement and back."""

    def validate(self, peer: Peer) -> bool:
        """Whether to accept an advertised peer (must not raise)."""
        ...

    def parse_data(self, peer: Peer) -> Mapping[str, Any]:
        """The peer's data as a mapping."""
        ...

    def encode_data(self, peer_data: Mapping[str, Any], peer_id: bytes | None = None) -> bytes:
        """Encode application data for ``Peer.data``."""
        ...

    def pack(self, peer: Peer) -> bytes:
        """The advertisement content for ``peer`` (addresses need not be in it)."""
        ...

    def unpack(self, data: bytes) -> Peer:
        """The peer an advertisement describes (raise if it is malformed)."""
        ...


class DefaultPeerPlugin:
    """The default peer plugin: id and data packed as a netaio auth-section
    dict (``{"id": bytes, "data": bytes}``); data as a dict of str to bytes
    or int. Accepts every peer with a non-empty id."""

    def validate(self, peer: Peer) -> bool:
        """Accept a peer with a non-empty id."""
        return bool(peer.id)

    def parse_data(self, peer: Peer) -> Mapping[str, Any]:
        """Decode ``peer.data`` (empty data: an empty mapping)."""
        return decode_auth_fields(peer.data) if peer.data else {}

    def encode_data(self, peer_data: Mapping[str, Any], peer_id: bytes | None = None) -> bytes:
        """Encode a mapping of str to bytes or int; ``peer_id`` is not used."""
        return encode_auth_fields(dict(peer_data))

    def pack(self, peer: Peer) -> bytes:
        """Pack the id and data (not the addresses)."""
        return encode_auth_fields({"id": peer.id, "data": peer.data})

    def unpack(self, data: bytes) -> Peer:
        """Unpack an id and data; the addresses are left empty."""
        fields = decode_auth_fields(data)
        peer_id, peer_data = fields.get("id"), fields.get("data", b"")
        if not isinstance(peer_id, bytes) or not isinstance(peer_data, bytes):
            raise ValueError("a peer advertisement needs bytes id and data")
        return Peer(peer_id, peer_data)
