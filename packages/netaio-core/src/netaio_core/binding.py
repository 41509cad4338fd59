"""Binding what routes a message to its authentication (layer 3).

An auth plugin's MAC covers the auth fields it sets and the body (which
holds the uri), not the header. So before any plugin signs or encrypts, the
sender puts the auth field ``rt`` on the message::

    rt = b"R1" || u8 message_type || u8 direction || (u32 cid, if any)

``direction`` is ``C`` (0x43) for a frame a client sends and ``S`` (0x53)
for one a server sends. A plugin that binds routing (``binds_routing`` is
True, as for ``HMACAuthPlugin`` and the cipher plugins) covers ``rt`` with
its MAC or as associated data; the receiver checks, before calling any
plugin, that ``rt`` is exactly what the frame's own type, correlation id
and the expected direction give. So a frame whose type or id was changed,
or a server's frame sent back to it (reflection), is refused before a
plugin sees it, and cannot enter a plugin's replay cache.
"""

from __future__ import annotations

from struct import Struct
from typing import Any

from .correlation import CORRELATION_FIELD
from .protocols import MessageProtocol

__all__ = [
    "FROM_CLIENT",
    "FROM_SERVER",
    "ROUTE_FIELD",
    "binds_routing",
    "route_matches",
    "set_route",
]

ROUTE_FIELD = "rt"
"""The auth field that carries a frame's routing values."""

FROM_CLIENT = 0x43  # "C"
FROM_SERVER = 0x53  # "S"

_PREFIX = b"R1"
_WITH_ID = Struct("!2sBBI")
_WITHOUT_ID = Struct("!2sBB")


def route_bytes(message: MessageProtocol, direction: int) -> bytes:
    """The ``rt`` value for ``message`` sent in ``direction``."""
    value = int(message.header.message_type.value)
    cid = message.auth_data.fields.get(CORRELATION_FIELD)
    if type(cid) is int and 0 <= cid <= 0xFFFFFFFF:
        return _WITH_ID.pack(_PREFIX, value, direction, cid)
    return _WITHOUT_ID.pack(_PREFIX, value, direction)


def set_route(message: MessageProtocol, direction: int) -> None:
    """Put the ``rt`` field on an outgoing message (after its correlation id
    is set, before any plugin signs or encrypts it)."""
    message.auth_data.fields[ROUTE_FIELD] = route_bytes(message, direction)


def route_matches(message: MessageProtocol, direction: int) -> bool:
    """Whether a received message's ``rt`` field is what its own type and
    correlation id and the expected ``direction`` give."""
    return message.auth_data.fields.get(ROUTE_FIELD) == route_bytes(message, direction)


def binds_routing(plugin: Any) -> bool:
    """Whether a plugin covers ``rt`` (its ``binds_routing`` attribute)."""
    return getattr(plugin, "binds_routing", False) is True
