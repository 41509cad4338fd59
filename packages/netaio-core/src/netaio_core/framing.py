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

    async def read_header(
        self, reader: asyncio.StreamReader, *, skip_unknown: bool = True
    ) -> HeaderProtocol:
        """Read and decode the next header; refuse a frame over the size limit.

        A header naming an unknown message type raises
        ``UnknownMessageTypeError`` once its frame is skipped; with
        ``skip_unknown=False`` it raises before, and the caller must
        ``skip(reader, exc.frame_remainder)`` (a server does, to time the skip
        like the rest of any frame).
        """
        try:
            data = await reader.readexactly(self._header_length)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ConnectionClosedError(
                    "connection closed in the middle of a frame header", partial=True
                ) from None
            raise ConnectionClosedError("connection closed") from None
        try:
            header = self.header_class.decode(data)
        except UnknownMessageTypeError as exc:
            # The frame's extent is known: skip it so the stream stays usable.
            self._check_size(exc.frame_remainder)
            if skip_unknown:
                await self._read(reader, exc.frame_remainder)
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
    def buffered(reader: asyncio.StreamReader) -> int:
        """How many bytes ``reader`` already holds (0 when that cannot be
        told): the rest of a frame that is all here cannot stall."""
        buffer = getattr(reader, "_buffer", None)  # asyncio's read buffer (private)
        return len(buffer) if isinstance(buffer, bytearray) else 0

    async def skip(self, reader: asyncio.StreamReader, n: int) -> None:
        """Read and drop ``n`` bytes: the rest of a frame not to be decoded."""
        await self._read(reader, n)

    @staticmethod
    async def _read(reader: asyncio.StreamReader, n: int) -> bytes:
        try:
            return await reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise _closed_mid_frame() from None

    async def read_rest(self, reader: asyncio.StreamReader, header: HeaderProtocol) -> MessageT:
        """Read the auth section and body announced by ``header``; decode the message.

        The checksum is not verified here: that is ``message.check()``.
        """
        try:
            data = await reader.readexactly(header.auth_length + header.body_length)
        except asyncio.IncompleteReadError:
            raise _closed_mid_frame() from None
        return self._decode_rest(header, data)

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

    async def read(self, reader: asyncio.StreamReader) -> MessageT:
        """Read the next whole message."""
        header = await self.read_header(reader)
        # read_rest, inlined: a coroutine less per message on the hot path.
        try:
            data = await reader.readexactly(header.auth_length + header.body_length)
        except asyncio.IncompleteReadError:
            raise _closed_mid_frame() from None
        return self._decode_rest(header, data)


def _closed_mid_frame() -> ConnectionClosedError:
    return ConnectionClosedError("connection closed in the middle of a frame", partial=True)


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
