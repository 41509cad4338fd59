"""Datagram-sized limits and the error for a message too large for one."""

from __future__ import annotations

from dataclasses import dataclass

from netaio_core import LimitExceededError, ProtocolError
from netaio_core.limits import Limits

__all__ = ["MAX_DATAGRAM_SIZE", "DatagramLimits", "DatagramTooLargeError"]

MAX_DATAGRAM_SIZE = 65_507
"""The largest UDP payload over IPv4: 65,535 - 8 (UDP header) - 20 (IP header)."""


class DatagramTooLargeError(LimitExceededError, ProtocolError):
    """A message whose frame does not fit in one datagram
    (``DatagramLimits.max_frame_size``). Nothing was sent."""


@dataclass(frozen=True)
class DatagramLimits(Limits):
    """``Limits`` for a ``UDPNode``: one frame is one datagram.

    Attributes (besides those of ``Limits`` that apply: ``max_auth_size``,
    ``max_auth_fields``):
        max_frame_size: the largest datagram sent or accepted (default
            65,507 bytes, the most IPv4 carries). A larger outgoing message
            raises ``DatagramTooLargeError``; a larger incoming datagram is
            dropped.
        retry_interval: seconds ``request`` waits for a reply before it
            sends the same datagram again; the wait doubles after each try,
            up to ``max_retry_interval``, until the request's timeout.
        max_retry_interval: the longest wait between two tries.
        reply_cache_size: how many (address, correlation id) pairs a node
            remembers with the reply it sent, to answer a retried request
            with the same reply instead of running the handler again.
        reply_cache_ttl: seconds a remembered reply is kept.
        max_peers: peers a node keeps; an advertisement beyond it is ignored.
        max_peer_states: addresses a node keeps a cipher ``PeerState`` for
            (the least recently used is forgotten first).
    """

    max_frame_size: int = MAX_DATAGRAM_SIZE
    retry_interval: float = 0.25
    max_retry_interval: float = 2.0
    reply_cache_size: int = 1024
    reply_cache_ttl: float = 60.0
    max_peers: int = 1024
    max_peer_states: int = 4096

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_frame_size > MAX_DATAGRAM_SIZE:
            raise ValueError(f"max_frame_size is at most {MAX_DATAGRAM_SIZE} for a datagram")
        if self.retry_interval <= 0 or self.max_retry_interval < self.retry_interval:
            raise ValueError("retry_interval must be positive and at most max_retry_interval")
        if self.reply_cache_ttl <= 0:
            raise ValueError("reply_cache_ttl must be positive")
        for name in ("reply_cache_size", "max_peers", "max_peer_states"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
