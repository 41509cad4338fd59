"""``ShortUriBody``: the body layout of netaio 0.0.6 and later (pure, no I/O).

netaio 0.0.6+ frames a body as ``u16 uri_length, uri, content``; the default
``Body`` (netaio 0.0.2's layout) uses a u32 ``uri_length``. Everything else
of the frame (header, auth section) is the same, so selecting this class with
``body_class=ShortUriBody`` on a client, server or node is what talking to a
0.0.6+ peer takes (see PROTOCOL.md, "Wire compatibility with netaio 0.0.6+").
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct

from .codec import Body
from .errors import DecodeError

__all__ = ["MAX_SHORT_URI_LENGTH", "ShortUriBody"]

MAX_SHORT_URI_LENGTH = 0xFFFF
"""The longest uri a ``ShortUriBody`` can carry (its u16 length field)."""

_U16 = Struct("!H")


@dataclass
class ShortUriBody(Body):
    """A body with a 2-byte uri length: ``u16 uri_length, uri, content``.

    A ``Body`` subclass, so it goes wherever a ``Body`` does;
    ``Message.prepare`` keeps its class.
    """

    @classmethod
    def decode(cls, data: bytes) -> ShortUriBody:
        """Decode the body from bytes (``DecodeError`` if malformed)."""
        size = len(data)
        if size < 2:
            raise DecodeError(f"body truncated: need at least 2 bytes, got {size}")
        (uri_length,) = _U16.unpack_from(data)
        end = 2 + uri_length
        if end > size:
            raise DecodeError(
                f"body malformed: uri_length {uri_length} exceeds the {size - 2} bytes after it"
            )
        return cls(uri_length, data[2:end], data[end:])

    def encode(self) -> bytes:
        """Encode the body into bytes; the uri length is taken from ``uri``."""
        uri = self.uri
        if len(uri) > MAX_SHORT_URI_LENGTH:
            raise ValueError(
                f"uri is {len(uri)} bytes; a ShortUriBody carries at most {MAX_SHORT_URI_LENGTH}"
            )
        return _U16.pack(len(uri)) + uri + self.content

    @classmethod
    def prepare(cls, content: bytes, uri: bytes = b"1") -> ShortUriBody:
        """Prepare a body from content and optional arguments."""
        return cls(len(uri), uri, content)
