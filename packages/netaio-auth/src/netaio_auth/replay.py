"""A replay window: accept each (ts, nonce) once, within a clock skew.

Shared by the HMAC and cipher plugins. A nonce is remembered only once its
message has been authenticated (the caller checks ``fresh``, then the MAC or
tag, then calls ``remember``), so strangers cannot fill the cache. Nonces
leave it when they age past ``max_skew``, or when it is full, by raising a
horizon: every ts at or below that of a forgotten nonce is refused from then
on, so a replay is never accepted (fresh messages may be, when more than
``size`` arrive within ``max_skew``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["ReplayWindow"]


class ReplayWindow:
    """The nonces accepted within ``max_skew`` seconds of ``clock()``."""

    __slots__ = ("max_skew", "size", "_clock", "_seen", "_order", "_horizon")

    def __init__(self, max_skew: float, size: int, clock: Callable[[], float]) -> None:
        self.max_skew = max_skew
        self.size = size
        self._clock = clock
        self._seen: set[bytes] = set()
        self._order: deque[tuple[int, bytes]] = deque()
        self._horizon = -1

    def fresh(self, nonce: bytes, sent: int) -> bool:
        """Whether a message sent at ``sent`` with ``nonce`` may be new: its
        ts within the skew and above the horizon, its nonce not seen."""
        now = self._clock()
        # Written so that a NaN clock refuses rather than accepts.
        return abs(sent - now) <= self.max_skew and sent > self._horizon and nonce not in self._seen

    def remember(self, nonce: bytes, sent: int) -> None:
        """Record an authenticated message's nonce; forget expired ones and,
        when full, the oldest, raising the horizon to the ts of each."""
        oldest = self._clock() - self.max_skew
        order, seen, horizon = self._order, self._seen, self._horizon
        while order and (order[0][0] < oldest or len(order) >= self.size):
            old_ts, old_nonce = order.popleft()
            seen.discard(old_nonce)
            if old_ts > horizon:
                horizon = old_ts
        self._horizon = horizon
        order.append((sent, nonce))
        seen.add(nonce)
