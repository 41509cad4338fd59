"""The default message classes and their wire codec (pure, no I/O).

Wire format (network byte order; see PROTOCOL.md beside this package)::

    header   u8 message_type, u16 auth_length, u16 body_length, u32 crc32(body)
    auth     auth_length bytes: a dict str -> bytes | int (see auth_section)
    body     u32 uri_length, uri, content

Decoding untrusted bytes raises ``DecodeError`` (a ``ValueError``) that says
what was wrong; nothing else escapes a decode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from struct import Struct
from struct import error as struct_error
from typing import Any, ClassVar
from zlib import crc32

from .auth_section import (
    EMPTY_AUTH_SECTION,
    AuthValue,
    decode_auth_fields,
    encode_auth_fields,
)
from .errors import ChecksumError, DecodeError, UnknownMessageTypeError
from .message_type import MessageType
from .protocols import AuthFieldsProtocol, BodyProtocol

__all__ = ["AuthFields", "Body", "Header", "Message", "MessageType", "MAX_SECTION_LENGTH"]

MAX_SECTION_LENGTH = 0xFFFF
"""The largest auth section or body a frame can carry (16-bit length fields)."""

_HEADER = Struct("!BHHI")
_U32 = Struct("!I")


def _section_error(what: str, length: int) -> ValueError:
    """The error for a section of ``length`` bytes, over its u16 length field."""
    return ValueError(f"{what} is {length} bytes; a frame carries at most {MAX_SECTION_LENGTH}")


def _utf8(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


# Wire value -> member, for decoding without the cost of an Enum call.
_MESSAGE_TYPES: dict[int, MessageType] = {t.value: t for t in MessageType}


@dataclass
class Header:
    """Default header class."""

    message_type: MessageType
    auth_length: int
    body_length: int
    checksum: int

    # Wire value -> member: what decode() knows (a subclass bound to a custom
    # message-type class replaces it; see message_types.header_class_for).
    message_types: ClassVar[Mapping[int, Any]] = _MESSAGE_TYPES

    @staticmethod
    def header_length() -> int:
        """Return the byte length of the header."""
        return 9

    @staticmethod
    def struct_fstring() -> str:
        """Return the struct format string for decoding the header."""
        return "!BHHI"

    @classmethod
    def decode(cls, data: bytes) -> Header:
        """Decode the header from the first 9 bytes of ``data``."""
        try:
            type_value, auth_length, body_length, checksum = _HEADER.unpack_from(data)
        except struct_error:
            raise DecodeError(f"header truncated: need 9 bytes, got {len(data)}") from None
        message_type = cls.message_types.get(type_value)
        if message_type is None:
            raise UnknownMessageTypeError(
                f"unknown message type {type_value}", auth_length + body_length
            )
        return cls(message_type, auth_length, body_length, checksum)

    def encode(self) -> bytes:
        """Encode the header into bytes."""
        try:
            return _HEADER.pack(
                # _value_: the plain attribute behind Enum's (slower) value property
                self.message_type._value_,
                self.auth_length,
                self.body_length,
                self.checksum,
            )
        except Exception as exc:  # struct.error, AttributeError: report the field
            raise ValueError(
                "header does not fit its fields: message_type must be a MessageType, "
                f"auth_length and body_length 0..{MAX_SECTION_LENGTH}, "
                f"checksum 0..{0xFFFFFFFF} ({self!r})"
            ) from exc


@dataclass
class AuthFields:
    """Default auth fields class: named values that auth plugins set and check."""

    fields: dict[str, AuthValue]

    @classmethod
    def decode(cls, data: bytes) -> AuthFields:
        """Decode the auth fields from bytes (``DecodeError`` if malformed)."""
        if data == EMPTY_AUTH_SECTION:  # the usual case, without a call
            return cls({})
        return cls(decode_auth_fields(data))

    def encode(self) -> bytes:
        """Encode the auth fields into bytes."""
        fields = self.fields
        return encode_auth_fields(fields) if fields else EMPTY_AUTH_SECTION


@dataclass
class Body:
    """Default body class: a uri that routes the message, and its content."""

    uri_length: int
    uri: bytes
    content: bytes

    @classmethod
    def decode(cls, data: bytes) -> Body:
        """Decode the body from bytes (``DecodeError`` if malformed)."""
        size = len(data)
        if size < 4:
            raise DecodeError(f"body truncated: need at least 4 bytes, got {size}")
        (uri_length,) = _U32.unpack_from(data)
        end = 4 + uri_length
        if end > size:
            raise DecodeError(
                f"body malformed: uri_length {uri_length} exceeds the {size - 4} bytes after it"
            )
        return cls(uri_length, data[4:end], data[end:])

    def encode(self) -> bytes:
        """Encode the body into bytes; the uri length is taken from ``uri``."""
        uri = self.uri
        return _U32.pack(len(uri)) + uri + self.content

    @classmethod
    def prepare(cls, content: bytes, uri: bytes = b"1") -> Body:
        """Prepare a body from content and optional arguments."""
        return cls(len(uri), uri, content)


_DEFAULT_AUTH = AuthFields(fields={})
# The documented default of Message.prepare's auth_data. It is never stored:
# prepare() gives every message a fresh AuthFields instead.


class _BodyWire:
    """The body encoding ``Message.prepare`` made, for ``encode`` to reuse:
    the body object, the uri and content objects it held, their encoding and
    its crc32.

    Not a dataclass, so its attribute is no field of ``Message``:
    construction, equality and repr are those of the three fields. Bytes are
    immutable, so the encoding is current while the message holds the same
    body holding the very same uri and content objects; replacing any of
    them re-encodes. Only a default ``Body`` of bytes is remembered.
    """

    _wire: tuple[Body, bytes, bytes, bytes, int] | None = None


@dataclass
class Message(_BodyWire):
    """Default message class."""

    header: Header
    auth_data: AuthFields
    body: Body

    def check(self) -> bool:
        """Check if the message is valid: the body matches the header's checksum."""
        body = self.body
        wire = self._wire  # the body's encoding as received or prepared, while current
        if wire is not None and wire[0] is body and wire[1] is body.uri and wire[2] is body.content:
            return self.header.checksum == wire[4]
        return self.header.checksum == crc32(body.encode())

    @classmethod
    def request(
        cls,
        uri: bytes | str,
        content: bytes | str = b"",
        message_type: MessageType = MessageType.REQUEST_URI,
    ) -> Message:
        """A message to ``uri`` with ``content`` (str is UTF-8 encoded):
        ``Message.request(b"/items/1")`` for
        ``Message.prepare(Body.prepare(b"", b"/items/1"), MessageType.REQUEST_URI)``."""
        return cls.prepare(Body.prepare(_utf8(content), _utf8(uri)), message_type)

    def reply(
        self, content: bytes | str = b"", message_type: MessageType = MessageType.RESPOND_URI
    ) -> Message:
        """A reply to this message: the same uri and correlation id, the
        given content (str is UTF-8 encoded) and type."""
        answer = self.prepare(Body.prepare(_utf8(content), self.body.uri), message_type)
        cid = self.auth_data.fields.get("cid")
        if cid is not None:
            answer.auth_data.fields["cid"] = cid
        return answer

    @classmethod
    def received(
        cls, header: Header, auth_data: AuthFields, body: Body, body_bytes: bytes
    ) -> Message:
        """A message decoded from a frame whose body was ``body_bytes``: its
        encoding is kept, so that ``check`` and ``encode`` need not redo it."""
        message = cls(header, auth_data, body)
        message._wire = (body, body.uri, body.content, body_bytes, crc32(body_bytes))
        return message

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Decode the message from the data. Raises ValueError if the
        checksum does not match (``ChecksumError``) or the bytes are
        malformed, truncated or over-long (``DecodeError``)."""
        header = Header.decode(data)
        auth_end = 9 + header.auth_length
        end = auth_end + header.body_length
        if len(data) != end:
            state = "truncated" if len(data) < end else "over-long"
            raise DecodeError(f"message {state}: header announces {end} bytes, got {len(data)}")
        body_bytes = data[auth_end:end]
        if header.checksum != crc32(body_bytes):
            raise ChecksumError("checksum mismatch: the body does not match the header")
        return cls(header, AuthFields.decode(data[9:auth_end]), Body.decode(body_bytes))

    def encode(self) -> bytes:
        """Encode the message into bytes.

        The header's lengths and checksum are set from the current auth data
        and body, so the frame is always self-consistent.
        """
        body_object = self.body
        wire = self._wire  # what prepare() encoded, while it is current
        if (
            wire is not None
            and wire[0] is body_object
            and wire[1] is body_object.uri
            and wire[2] is body_object.content
        ):
            body, checksum = wire[3], wire[4]
        else:
            body = body_object.encode()
            checksum = crc32(body)
        auth = self.auth_data.encode()
        auth_length, body_length = len(auth), len(body)
        if auth_length > MAX_SECTION_LENGTH:
            raise _section_error("auth section", auth_length)
        if body_length > MAX_SECTION_LENGTH:
            raise _section_error("body", body_length)
        header = self.header
        header.auth_length = auth_length
        header.body_length = body_length
        header.checksum = checksum
        message_type = header.message_type
        if type(header) is Header and type(message_type) is MessageType:
            # Header.encode() without its call and its error wrapping: the
            # lengths were checked above and a MessageType always packs.
            head = _HEADER.pack(message_type._value_, auth_length, body_length, checksum)
        else:
            head = header.encode()
        return b"".join((head, auth, body))

    @classmethod
    def prepare(
        cls,
        body: BodyProtocol,
        message_type: MessageType = MessageType.REQUEST_URI,
        auth_data: AuthFieldsProtocol | None = _DEFAULT_AUTH,
    ) -> Message:
        """Prepare a message from a body and optional arguments.

        Lengths and checksum are filled in. Without ``auth_data`` the message
        gets its own empty ``AuthFields``; no default object is shared.
        A body keeps its class (``ShortUriBody``, say) when it can encode
        itself; an object with only ``uri`` and ``content``, and auth data of
        another class, are converted to the default class.
        """
        default_body: Body = (
            body  # type: ignore[assignment]  # a body class of its own is kept
            if type(body) is Body or callable(getattr(body, "encode", None))
            else Body.prepare(body.content, body.uri)
        )
        if auth_data is None or auth_data is _DEFAULT_AUTH:
            fields = AuthFields({})
            auth_length = len(EMPTY_AUTH_SECTION)
        else:
            fields = auth_data if type(auth_data) is AuthFields else AuthFields(auth_data.fields)
            auth_length = len(fields.encode())
            if auth_length > MAX_SECTION_LENGTH:
                raise _section_error("auth section", auth_length)
        encoded = default_body.encode()
        body_length = len(encoded)
        if body_length > MAX_SECTION_LENGTH:
            raise _section_error("body", body_length)
        checksum = crc32(encoded)
        message = cls(
            Header(message_type, auth_length, body_length, checksum), fields, default_body
        )
        uri, content = default_body.uri, default_body.content
        if type(default_body) is Body and type(uri) is bytes and type(content) is bytes:
            message._wire = (default_body, uri, content, encoded, checksum)
        return message
