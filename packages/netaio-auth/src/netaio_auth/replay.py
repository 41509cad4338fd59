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

import math
from collections import deque
from collections.abc import Callable, Mapping

__all__ = ["DEFAULT_MAX_SKEW", "DEFAULT_REPLAY_CACHE_SIZE", "ReplayWindow", "replay_window"]

DEFAULT_MAX_SKEW = 300.0
"""Seconds a message's ts may be off the receiver's clock, when the config
does not say (the ``max_skew`` key of every plugin with replay protection)."""

DEFAULT_REPLAY_CACHE_SIZE = 65_536
"""Nonces remembered for replay protection when the config does not say
(the ``replay_cache_size`` key; about 12 MB at most)."""


def replay_window(
    config: Mapping[str, object], clock: Callable[[], float], owner: str
) -> ReplayWindow | None:
    """The window a plugin's ``max_skew`` and ``replay_cache_size`` config
    keys describe (defaults above); None when ``max_skew`` is None (replay
    protection off). A wrong type is a ``TypeError``, a value out of range a
    ``ValueError``; ``owner`` names the plugin in the message."""
    skew = config.get("max_skew", DEFAULT_MAX_SKEW)
    size = config.get("replay_cache_size", DEFAULT_REPLAY_CACHE_SIZE)
    if skew is None:
        if "replay_cache_size" in config:
            raise ValueError(f'{owner} config "replay_cache_size" has no effect without "max_skew"')
        return None
    if isinstance(skew, bool) or not isinstance(skew, (int, float)):
        raise TypeError(
            f'{owner} config "max_skew" must be a number of seconds or None, '
            f"not {type(skew).__name__}"
        )
    if not 0 < skew < math.inf:
        raise ValueError(f'{owner} config "max_skew" must be > 0 and finite, not {skew}')
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(
            f'{owner} config "replay_cache_size" must be an int, not {type(size).__name__}'
        )
    if size < 1:
        raise ValueError(f'{owner} config "replay_cache_size" must be >= 1, not {size}')
    return ReplayWindow(float(skew), size, clock)


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
