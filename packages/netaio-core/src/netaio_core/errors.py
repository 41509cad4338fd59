"""The one exception hierarchy of netaio.

Every error that netaio raises on purpose is a ``NetaioError``. Errors about
bytes that break the wire format are also ``ValueError``, so code written
against the reference API (``except ValueError``) keeps working.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocols import AuthFieldsProtocol, AuthPluginProtocol


class NetaioError(Exception):
    """Base class of every error netaio raises on purpose."""


class ProtocolError(NetaioError, ValueError):
    """Bytes or values that do not fit the wire format."""


class DecodeError(ProtocolError):
    """Malformed bytes in a header, auth section, body or whole message.

    When raised while reading a stream, the frame's boundaries were intact:
    the connection can go on with the next frame. ``auth_data`` holds the
    frame's auth fields when they decoded before the body failed (so that
    an error reply can carry the request's correlation id).
    """

    auth_data: AuthFieldsProtocol | None = None


class ChecksumError(DecodeError):
    """The body's CRC-32 does not match the checksum in the header."""


class UnknownMessageTypeError(DecodeError):
    """A header names a message type this header class does not know.

    The header's lengths were readable, so ``frame_remainder`` (the auth and
    body bytes that follow) lets a stream reader skip the frame and go on.
    """

    def __init__(self, message: str, frame_remainder: int) -> None:
        super().__init__(message)
        self.frame_remainder = frame_remainder


class FrameError(ProtocolError):
    """The stream cannot be read further: the connection must be closed.

    Raised for a header that cannot be decoded (so the frame's length is
    unknown) and for a frame over the size limit, which is refused before its
    bytes are read.
    """


class FrameTooLargeError(FrameError):
    """A frame announced more bytes than ``Limits.max_frame_size`` allows."""


class ConnectionUnavailableError(NetaioError, ConnectionError):
    """A connection cannot be used: never made, refused, timed out, closed
    by the peer, reset, or found dead. ``server`` names it when known.

    Every such error a client raises is one of its subclasses, so that one
    ``except ConnectionUnavailableError`` (or ``except ConnectionError``)
    covers them all.
    """

    def __init__(self, message: str, *, server: tuple[str, int] | None = None) -> None:
        super().__init__(message)
        self.server = server


class ConnectionClosedError(ConnectionUnavailableError):
    """The connection ended: closed by the peer, reset, or aborted because
    the peer stopped answering (heartbeat) or reading.

    ``partial`` is True when it closed in the middle of a frame (the frame is
    lost), False when it closed cleanly between frames.
    """

    def __init__(
        self, message: str, *, partial: bool = False, server: tuple[str, int] | None = None
    ) -> None:
        super().__init__(message, server=server)
        self.partial = partial


class NotConnectedError(ConnectionUnavailableError):
    """A client was asked to use a server it has no open connection to."""

    def __init__(self, server: tuple[str, int]) -> None:
        super().__init__(
            f"not connected to {server[0]}:{server[1]}; call connect() first", server=server
        )


class ConnectRefusedError(ConnectionUnavailableError, ConnectionRefusedError):
    """``connect()`` was refused (no server listens there)."""


class ConnectTimeoutError(ConnectionUnavailableError, TimeoutError):
    """``connect()`` took longer than its timeout."""


class AuthenticationError(NetaioError):
    """A received message failed an auth plugin's check, or (raised by
    ``TCPClient.request``) the server answered AUTH_ERROR.

    ``plugin`` is the plugin whose ``check`` failed (a server sends its
    ``error()``); ``reply`` is the AUTH_ERROR message, when there is one.
    """

    def __init__(
        self,
        plugin: AuthPluginProtocol | None,
        key: Hashable | None = None,
        *,
        reply: object = None,
    ) -> None:
        super().__init__(
            "message failed the auth check"
            if reply is None
            else "the server refused the request's authentication (AUTH_ERROR)"
        )
        self.plugin = plugin
        self.key = key
        self.reply = reply


class LimitExceededError(NetaioError):
    """An operation would pass one of the ``Limits`` (the message names it)."""
