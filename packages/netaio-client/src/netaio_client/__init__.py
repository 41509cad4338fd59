"""netaio-client: TCPClient, the asyncio client of netaio."""

from __future__ import annotations

from .client import TCPClient, default_client_logger
from .reconnect import ConnectionState, ReconnectPolicy
from .subscription import Subscription, SubscriptionError

__version__ = "0.1.0"

__all__ = [
    "ConnectionState",
    "ReconnectPolicy",
    "Subscription",
    "SubscriptionError",
    "TCPClient",
    "default_client_logger",
]
