"""Reading frames from an ``asyncio.StreamReader`` (layer 2).

A frame is a header, then ``auth_length`` bytes of auth section, then
``body_length`` bytes of body. Errors say whether the stream is still usable:

- ``DecodeError``: the frame was read whole but its auth section or body is
  malformed, or its header names an unknown message type (the frame is then
  skipped); the next frame can be read.
- ``FrameError`` (``FrameTooLargeError``): the header cannot be decoded (so
  the frame's extent is unknown) or announces too many bytes; the stream must
  be closed.
- ``ConnectionClosedError``: the peer closed the stream (``partial`` tells
  whether it did so in the middle of a frame).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic

from .codec import AuthFields, Body, Header, Message
from .errors import (
    ConnectionClosedError,
    DecodeError,
    FrameError,
    FrameTooLargeError,
    UnknownMessageTypeError,
)
from .limits import PROTOCOL_MAX_FRAME_SIZE
from .protocols import (
    AuthFieldsProtocol,
    BodyProtocol,
    HeaderProtocol,
    MessageProtocol,
    MessageT,
)

__all__ = ["MessageReader", "read_message"]


class MessageReader(Generic[MessageT]):
    """Reads messages of the given classes from stream readers.

    One instance serves any number of streams; it holds only configuration.
    """

    __slots__ = (
        "header_class",
        "auth_fields_class",
        "body_class",
        "message_class",
        "max_frame_size",
        "_header_length",
    )

    def __init__(
        self,
        header_class: type[HeaderProtocol] = Header,
        auth_fields_class: type[AuthFieldsProtocol] = AuthFields,
        body_class: type[BodyProtocol] = Body,
        message_class: type[MessageT] = Message,  # type: ignore[assignment]
        max_frame_size: int = PROTOCOL_MAX_FRAME_SIZE,
    ) -> None:
        self.header_class = header_class
        self.auth_fields_class = auth_fields_class
        self.body_class = body_class
        self.message_class = message_class
        self.max_frame_size = max_frame_size
        self._header_length = header_class.header_length()

    def _decode_header(self, data: bytes) -> HeaderProtocol:
        """Decode a header and refuse a frame over the size limit. An unknown
        message type raises ``UnknownMessageTypeError`` once the size of its
        frame is checked: the caller skips that frame."""
        try:
            header = self.header_class.decode(data)
        except UnknownMessageTypeError as exc:
            self._check_size(exc.frame_remainder)
            raise
        except Exception as exc:
            raise FrameError(f"undecodable frame header: {exc}") from exc
        if self._header_length + header.auth_length + header.body_length > self.max_frame_size:
            self._check_size(header.auth_length + header.body_length)  # raises
        return header

    def _check_size(self, remainder: int) -> None:
        size = self._header_length + remainder
        if size > self.max_frame_size:
            raise FrameTooLargeError(
                f"frame of {size} bytes refused: the limit is {self.max_frame_size}"
            )

    @staticmethod
    def _buffered(reader: asyncio.StreamReader) -> int:
        """How many bytes ``reader`` already holds (0 when that cannot be
        told): the rest of a frame that is all here cannot stall."""
        buffer = getattr(reader, "_buffer", None)  # asyncio's read buffer (private)
        return len(buffer) if isinstance(buffer, bytearray) else 0

    def _decode_rest(self, header: HeaderProtocol, data: bytes) -> MessageT:
        """Decode the auth section and body that follow ``header``."""
        auth_length = header.auth_length
        try:
            auth = self.auth_fields_class.decode(data[:auth_length])
            body = self.body_class.decode(data[auth_length:])
            # The documented constructor is (header, auth_data, body).
            message_class: Any = self.message_class
            return message_class(header, auth, body)  # type: ignore[no-any-return]
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"malformed message: {exc}") from exc

    async def read(
        self, reader: asyncio.StreamReader, stalled: Callable[[], object] | None = None
    ) -> MessageT:
        """Read the next whole message (see the module doc for its errors).

        ``stalled``, when given, is called once a header is read if the rest
        of its frame is not all buffered yet, before waiting for it: a server
        arms its frame timeout there. The checksum is not verified here: that
        is ``message.check()``.
        """
        try:
            data = await reader.readexactly(self._header_length)
        except asyncio.IncompleteReadError as exc:
            raise _closed_at_header(exc) from None
        try:
            header = self._decode_header(data)
        except UnknownMessageTypeError as exc:
            rest = exc.frame_remainder
            if stalled is not None and self._buffered(reader) < rest:
                stalled()
            await _read_rest(reader, rest)  # skip the frame: the stream stays usable
            raise
        rest = header.auth_length + header.body_length
        if stalled is not None and self._buffered(reader) < rest:
            stalled()
        return self._decode_rest(header, await _read_rest(reader, rest))


async def _read_rest(reader: asyncio.StreamReader, n: int) -> bytes:
    try:
        return await reader.readexactly(n)
    except asyncio.IncompleteReadError:
        raise ConnectionClosedError(
            "connection closed in the middle of a frame", partial=True
        ) from None


def _closed_at_header(exc: asyncio.IncompleteReadError) -> ConnectionClosedError:
    if exc.partial:
        return ConnectionClosedError(
            "connection closed in the middle of a frame header", partial=True
        )
    return ConnectionClosedError("connection closed")


async def read_message(
    reader: asyncio.StreamReader,
    header_class: type[HeaderProtocol] = Header,
    body_class: type[BodyProtocol] = Body,
    message_class: type[MessageProtocol] = Message,
    *,
    auth_fields_class: type[AuthFieldsProtocol] = AuthFields,
    max_frame_size: int = PROTOCOL_MAX_FRAME_SIZE,
) -> MessageProtocol:
    """Read the next message from ``reader`` (see the module doc for errors).

    For many reads, build one ``MessageReader`` and call its ``read``.
    """
    frames: MessageReader[MessageProtocol] = MessageReader(
        header_class, auth_fields_class, body_class, message_class, max_frame_size
    )
    return await frames.read(reader)
