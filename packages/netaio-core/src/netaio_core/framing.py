"""Framing: turning a byte stream into messages (layer 2, no I/O of its own).

A frame is a header, then ``auth_length`` bytes of auth section, then
``body_length`` bytes of body. One codec, two ways for bytes to arrive:

- ``FrameDecoder`` is sans-I/O: feed it bytes with ``receive_data`` as they
  come (from ``asyncio.Protocol.data_received``, a datagram, a test) and take
  every complete message with ``next_message``. The frame size limit is
  enforced from the header alone, before the rest of the frame is buffered.
- ``MessageReader`` reads one message at a time from an
  ``asyncio.StreamReader`` (the documented stream path).

Errors say whether the stream is still usable:

- ``DecodeError``: the frame was delimited but its auth section or body is
  malformed, or its header names an unknown message type; the frame is
  consumed and the next one can be read.
- ``FrameError`` (``FrameTooLargeError``): the header cannot be decoded (so
  the frame's extent is unknown) or announces too many bytes; the stream must
  be closed. A ``FrameDecoder`` raises it again on every later call.
- ``ConnectionClosedError`` (``MessageReader`` only): the peer closed the
  stream (``partial`` tells whether it did so in the middle of a frame).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic

from .auth_section import auth_field_count
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

__all__ = ["FrameCodec", "FrameDecoder", "MessageReader", "read_message"]


class FrameCodec(Generic[MessageT]):
    """The message classes and frame size limit, and the two decoding steps
    every way of reading frames shares: a header, then the rest of its frame.
    Holds no per-stream state."""

    __slots__ = (
        "header_class",
        "auth_fields_class",
        "body_class",
        "message_class",
        "max_frame_size",
        "max_auth_size",
        "max_auth_fields",
        "header_length",
        "_count_fields",
        "_defaults",
    )

    def __init__(
        self,
        header_class: type[HeaderProtocol] = Header,
        auth_fields_class: type[AuthFieldsProtocol] = AuthFields,
        body_class: type[BodyProtocol] = Body,
        message_class: type[MessageT] = Message,  # type: ignore[assignment]
        max_frame_size: int = PROTOCOL_MAX_FRAME_SIZE,
        *,
        max_auth_size: int | None = None,
        max_auth_fields: int | None = None,
    ) -> None:
        self.header_class = header_class
        self.auth_fields_class = auth_fields_class
        self.body_class = body_class
        self.message_class = message_class
        self.max_frame_size = max_frame_size
        self.max_auth_size = max_auth_size
        self.max_auth_fields = max_auth_fields
        self.header_length = header_class.header_length()
        # Fields are counted from the wire before decoding for the default
        # auth section only; a custom class's format is its own.
        self._count_fields = max_auth_fields is not None and auth_fields_class is AuthFields
        # The default classes keep the body's wire bytes on the message.
        self._defaults = (
            message_class is Message and body_class is Body and auth_fields_class is AuthFields
        )

    def decode_header(self, data: bytes) -> tuple[HeaderProtocol | UnknownMessageTypeError, int]:
        """Decode a header: the header (or, for an unknown message type, the
        error to raise once its frame is skipped) and the bytes after it.

        Raises ``FrameError`` for an undecodable header and
        ``FrameTooLargeError`` for a frame over the size limit.
        """
        header: HeaderProtocol | UnknownMessageTypeError
        try:
            decoded = self.header_class.decode(data)
        except UnknownMessageTypeError as exc:
            header, rest = exc, exc.frame_remainder
        except Exception as exc:
            raise FrameError(f"undecodable frame header: {exc}") from exc
        else:
            header, rest = decoded, decoded.auth_length + decoded.body_length
        size = self.header_length + rest
        if size > self.max_frame_size:
            raise FrameTooLargeError(
                f"frame of {size} bytes refused: the limit is {self.max_frame_size}"
            )
        return header, rest

    def decode_rest(self, header: HeaderProtocol, data: bytes) -> MessageT:
        """Decode the auth section and body that follow ``header``."""
        auth_length = header.auth_length
        if auth_length > 3:
            self._check_auth(data, auth_length)
        auth = None
        try:
            auth = self.auth_fields_class.decode(data[:auth_length])
            body_bytes = data[auth_length:]
            body = self.body_class.decode(body_bytes)
            if self._defaults:
                return Message.received(header, auth, body, body_bytes)  # type: ignore[arg-type,return-value]
            # The documented constructor is (header, auth_data, body).
            message_class: Any = self.message_class
            return message_class(header, auth, body)  # type: ignore[no-any-return]
        except DecodeError as exc:
            exc.auth_data = auth
            raise
        except Exception as exc:
            error = DecodeError(f"malformed message: {exc}")
            error.auth_data = auth
            raise error from exc

    def _check_auth(self, data: bytes, auth_length: int) -> None:
        """Refuse an auth section over the size or field-count limit before
        any field is built."""
        limit = self.max_auth_size
        if limit is not None and auth_length > limit:
            raise DecodeError(f"auth section of {auth_length} bytes refused: the limit is {limit}")
        if self._count_fields:
            # The usual dict header (0x4D, u8 item category, u8 count) holds
            # the count in its third byte; anything else is read in full.
            count = data[2] if data[0] == 0x4D else auth_field_count(data[:auth_length])
            if count > self.max_auth_fields:  # type: ignore[operator]
                raise DecodeError(
                    f"auth section of {count} fields refused: the limit is {self.max_auth_fields}"
                )


class FrameDecoder(FrameCodec[MessageT]):
    """A sans-I/O decoder for one byte stream: bytes in, messages out.

    ``receive_data`` only stores bytes; ``next_message`` returns the next
    complete message, or None until more bytes arrive. A consumer may stop
    taking messages at any point (to keep order behind a slow handler) and
    go on later: unread frames stay buffered, and ``buffered`` tells how many
    bytes that is, for backpressure. Bytes are copied at most twice, however
    finely a frame is split.
    """

    __slots__ = ("_data", "_pos", "_pending", "_header", "_rest", "_failed")

    def __init__(
        self,
        header_class: type[HeaderProtocol] = Header,
        auth_fields_class: type[AuthFieldsProtocol] = AuthFields,
        body_class: type[BodyProtocol] = Body,
        message_class: type[MessageT] = Message,  # type: ignore[assignment]
        max_frame_size: int = PROTOCOL_MAX_FRAME_SIZE,
        *,
        max_auth_size: int | None = None,
        max_auth_fields: int | None = None,
    ) -> None:
        super().__init__(
            header_class,
            auth_fields_class,
            body_class,
            message_class,
            max_frame_size,
            max_auth_size=max_auth_size,
            max_auth_fields=max_auth_fields,
        )
        self._data = b""  # the chunk being parsed, from _pos on
        self._pos = 0
        self._pending = bytearray()  # bytes received after _data
        # The header of the frame at _pos, once decoded (an error: skip the frame).
        self._header: HeaderProtocol | UnknownMessageTypeError | None = None
        self._rest = -1  # bytes after that header; -1: header not decoded yet
        self._failed: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as messages."""
        return len(self._data) - self._pos + len(self._pending)

    def take_unparsed(self) -> bytes:
        """Remove and return the bytes not yet returned as messages (to hand
        the rest of the stream to another reader)."""
        data = self._data[self._pos :] + self._pending
        self._data, self._pos, self._header, self._rest = b"", 0, None, -1
        self._pending.clear()
        return data

    def receive_data(self, data: bytes) -> None:
        """Store bytes from the stream (any split of it, in order)."""
        if self._pending or self._pos < len(self._data):
            self._pending += data
        else:
            self._data, self._pos = data, 0

    def next_message(self) -> MessageT | None:
        """The next complete message, or None until more bytes arrive.

        Raises ``DecodeError`` for an intact frame that is malformed (it is
        consumed; call again for the next) and ``FrameError`` when the stream
        cannot be decoded further. The checksum is not verified here: that
        is ``message.check()``.
        """
        if self._failed is not None:
            raise self._failed
        data, pos = self._data, self._pos
        header_length = self.header_length
        rest = self._rest
        if rest < 0:
            if len(data) - pos < header_length and not self._merge(header_length):
                if pos and pos == len(data):  # all taken: let the chunk go now
                    self._data, self._pos = b"", 0
                return None
            data, pos = self._data, self._pos
            try:
                self._header, rest = self.decode_header(data[pos : pos + header_length])
            except FrameError as exc:
                self._failed = exc
                raise
            self._rest = rest
        end = pos + header_length + rest
        if end > len(data):
            if not self._merge(header_length + rest):
                return None
            data, pos = self._data, 0
            end = header_length + rest
        header = self._header
        self._pos, self._header, self._rest = end, None, -1
        if isinstance(header, UnknownMessageTypeError):  # its frame is skipped
            raise header
        assert header is not None
        return self.decode_rest(header, data[pos + header_length : end])

    def _merge(self, needed: int) -> bool:
        """Join the unparsed bytes and the pending ones into ``_data`` once
        at least ``needed`` bytes are there; False while they are not."""
        pending = self._pending
        available = len(self._data) - self._pos + len(pending)
        if available < needed or not pending:
            return False
        self._data = self._data[self._pos :] + pending
        self._pos = 0
        pending.clear()
        return True


class MessageReader(FrameCodec[MessageT]):
    """Reads messages of the given classes from stream readers.

    One instance serves any number of streams; it holds only configuration.
    """

    __slots__ = ()

    @staticmethod
    def _buffered(reader: asyncio.StreamReader) -> int:
        """How many bytes ``reader`` already holds (0 when that cannot be
        told): the rest of a frame that is all here cannot stall."""
        buffer = getattr(reader, "_buffer", None)  # asyncio's read buffer (private)
        return len(buffer) if isinstance(buffer, bytearray) else 0

    async def read(
        self, reader: asyncio.StreamReader, stalled: Callable[[], object] | None = None
    ) -> MessageT:
        """Read the next whole message (see the module doc for its errors).

        ``stalled``, when given, is called once a header is read if the rest
        of its frame is not all buffered yet, before waiting for it. The
        checksum is not verified here: that is ``message.check()``.
        """
        try:
            data = await reader.readexactly(self.header_length)
        except asyncio.IncompleteReadError as exc:
            raise _closed_at_header(exc) from None
        header, rest = self.decode_header(data)
        if stalled is not None and self._buffered(reader) < rest:
            stalled()
        try:
            remainder = await reader.readexactly(rest)
        except asyncio.IncompleteReadError:
            raise ConnectionClosedError(
                "connection closed in the middle of a frame", partial=True
            ) from None
        if isinstance(header, UnknownMessageTypeError):  # skipped: the stream stays usable
            raise header
        return self.decode_rest(header, remainder)


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
