"""Server-wide byte budgets: a cap on the sum of what all connections hold.

A per-connection limit alone lets N peers hold N times it; a budget bounds
the total. The server keeps two (``Limits.max_unsent_bytes``: replies and
notifications not yet taken by their peers; ``Limits.max_partial_bytes``:
bytes received and not yet handled, such as unfinished frames). When a sum
passes its cap, the connections that hold the most are dropped until it is
back under nine tenths of the cap, so that one burst does not drop one
connection at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ByteBudget"]

Holder = TypeVar("Holder", bound=Hashable)


class ByteBudget(Generic[Holder]):
    """The bytes each holder (a connection) holds, and their sum under a cap.

    ``update`` records a holder's current size; sizes may go stale (a write
    buffer drains without telling), so before dropping anyone the budget
    asks ``measure`` for the true size of every holder it knows. ``drop``
    must end the holder; the budget forgets it at once.
    """

    __slots__ = ("cap", "total", "_held", "_measure", "_drop")

    def __init__(
        self,
        cap: int,
        measure: Callable[[Holder], int],
        drop: Callable[[Holder], None],
    ) -> None:
        self.cap = cap
        self.total = 0
        self._held: dict[Holder, int] = {}
        self._measure = measure
        self._drop = drop

    def __len__(self) -> int:
        return len(self._held)

    def held(self, holder: Holder) -> int:
        """What ``holder`` was last known to hold."""
        return self._held.get(holder, 0)

    def update(self, holder: Holder, size: int) -> None:
        """``holder`` now holds ``size`` bytes; past the cap, shed."""
        held = self._held
        old = held.get(holder, 0)
        if size == old:
            return
        self._set(holder, old, size)
        if self.total > self.cap:
            self._shed()

    def forget(self, holder: Holder) -> None:
        """``holder`` is gone (or holds nothing)."""
        old = self._held.get(holder, 0)
        if old:
            self._set(holder, old, 0)

    def _set(self, holder: Holder, old: int, size: int) -> None:
        if size:
            self._held[holder] = size
        else:
            del self._held[holder]
        self.total += size - old

    def _shed(self) -> None:
        held = self._held
        for holder in list(held):
            self._set(holder, held[holder], max(0, self._measure(holder)))
        if self.total <= self.cap:
            return
        low = self.cap * 9 // 10
        for holder in sorted(held, key=held.__getitem__, reverse=True):
            if self.total <= low:
                break
            self._set(holder, held[holder], 0)
            self._drop(holder)
