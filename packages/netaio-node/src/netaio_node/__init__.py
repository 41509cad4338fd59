"""netaio-node: UDPNode, netaio messages over UDP with peer discovery."""

from __future__ import annotations

from .limits import MAX_DATAGRAM_SIZE, DatagramLimits, DatagramTooLargeError
from .node import (
    DEFAULT_MULTICAST_GROUP,
    DEFAULT_MULTICAST_PORT,
    DatagramFrames,
    TimeoutContext,
    TimeoutErrorHandler,
    UDPHandler,
    UDPNode,
    default_node_logger,
)
from .peers import Addr, DefaultPeerPlugin, Peer, PeerPluginProtocol

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MULTICAST_GROUP",
    "DEFAULT_MULTICAST_PORT",
    "MAX_DATAGRAM_SIZE",
    "Addr",
    "DatagramFrames",
    "DatagramLimits",
    "DatagramTooLargeError",
    "DefaultPeerPlugin",
    "Peer",
    "PeerPluginProtocol",
    "TimeoutContext",
    "TimeoutErrorHandler",
    "UDPHandler",
    "UDPNode",
    "default_node_logger",
]
