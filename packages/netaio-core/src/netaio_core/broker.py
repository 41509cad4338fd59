"""The Broker Protocol: pub/sub across server instances (layer 5).

A server given a broker publishes every ``notify`` and ``broadcast`` through
it as well as delivering it to its own subscribers, and delivers what the
broker brings from other instances to its own. The message travels encoded
(one frame, signed by the publishing instance), so it is encoded once per
publish. Only bytes and str subscription keys cross instances; other keys
stay local.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["BROADCAST", "BrokerProtocol", "Deliver"]

BROADCAST = None
"""The key ``deliver`` is called with for a broadcast (to every client)."""

Deliver = Callable[[bytes | str | None, bytes], None]
"""``deliver(key, frame)``: hand a frame published by another instance to
this instance's subscribers of ``key`` (``BROADCAST``: to every client)."""


@runtime_checkable
class BrokerProtocol(Protocol):
    """What a server needs of a message broker. An implementation must not
    deliver an instance's own publications back to it, and must keep order
    per key from one publisher."""

    async def start(self, deliver: Deliver) -> None:
        """Connect; from now on call ``deliver`` for remote publications."""
        ...

    async def stop(self) -> None:
        """Disconnect; ``deliver`` is not called any more."""
        ...

    async def publish(self, key: bytes | str | None, frame: bytes) -> None:
        """Publish a frame for ``key`` (``BROADCAST``: for every client)."""
        ...

    async def subscribe(self, key: bytes | str) -> None:
        """This instance has a local subscriber for ``key`` (called when the
        first one arrives)."""
        ...

    async def unsubscribe(self, key: bytes | str) -> None:
        """This instance has no local subscriber for ``key`` any more."""
        ...
