"""Reconnecting after a lost connection: the policy and the states."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

__all__ = ["ConnectionState", "ReconnectPolicy"]


class ConnectionState(enum.Enum):
    """What happened to a client's connection to one server."""

    CONNECTED = "connected"  # connect() or a reconnect succeeded
    LOST = "lost"  # the connection ended without close()
    RECONNECTING = "reconnecting"  # an attempt is about to be made
    GAVE_UP = "gave up"  # max_attempts reached: the server is forgotten
    CLOSED = "closed"  # close() or close_all()


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a ``TCPClient`` reconnects to a server whose connection was lost.

    The n-th attempt waits ``min(max_delay, initial_delay * multiplier**(n-1))``
    seconds, spread by up to ``jitter`` times that either way (so that many
    clients do not come back at once); ``max_attempts`` None tries forever.
    """

    initial_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < self.initial_delay:
            raise ValueError("need 0 <= initial_delay <= max_delay")
        if self.multiplier < 1 or not 0 <= self.jitter < 1:
            raise ValueError("need multiplier >= 1 and 0 <= jitter < 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 or None")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (from 1)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        spread = base * self.jitter
        return max(0.0, base + random.uniform(-spread, spread))

    def bound(self, attempt: int) -> float:
        """The longest ``delay(attempt)`` can be."""
        return min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1)) * (
            1 + self.jitter
        )
