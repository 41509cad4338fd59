"""netaio-client: TCPClient, the asyncio client of netaio."""

from __future__ import annotations

from .client import TCPClient, default_client_logger
from .subscription import Subscription, SubscriptionError

__version__ = "0.1.0"

__all__ = ["Subscription", "SubscriptionError", "TCPClient", "default_client_logger"]
