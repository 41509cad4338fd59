"""The structural types every part of netaio is written against.

Any class with these members works with the client and server, no
inheritance needed; the defaults in ``netaio_core.codec`` are one such set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

from typing_extensions import TypeVar

from .auth_section import AuthValue
from .message_type import MessageType

if TYPE_CHECKING:
    from .codec import Message

__all__ = [
    "AuthFieldsProtocol",
    "AuthPluginProtocol",
    "BodyProtocol",
    "Handler",
    "HeaderProtocol",
    "KeysExtractor",
    "MessageProtocol",
    "MessageT",
]


@runtime_checkable
class HeaderProtocol(Protocol):
    """Shows what a Header class should have and do."""

    @property
    def body_length(self) -> int:
        """At a minimum, a Header must have body_length, auth_length, and
        message_type properties."""
        ...

    @property
    def auth_length(self) -> int:
        """At a minimum, a Header must have body_length, auth_length, and
        message_type properties."""
        ...

    @property
    def message_type(self) -> MessageType:
        """At a minimum, a Header must have body_length and message_type
        properties."""
        ...

    @staticmethod
    def header_length() -> int:
        """Return the byte length of the header."""
        ...

    @staticmethod
    def struct_fstring() -> str:
        """Return the struct format string for decoding the header."""
        ...

    @classmethod
    def decode(cls, data: bytes) -> HeaderProtocol:
        """Decode the header from the data."""
        ...

    def encode(self) -> bytes:
        """Encode the header into a bytes object."""
        ...


@runtime_checkable
class AuthFieldsProtocol(Protocol):
    """Shows what an AuthFields class should have and do."""

    @property
    def fields(self) -> dict[str, AuthValue]:
        """At a minimum, an AuthFields must have fields property."""
        ...

    @classmethod
    def decode(cls, data: bytes) -> AuthFieldsProtocol:
        """Decode the auth fields from the data."""
        ...

    def encode(self) -> bytes:
        """Encode the auth fields into a bytes object."""
        ...


@runtime_checkable
class BodyProtocol(Protocol):
    """Shows what a Body class should have and do."""

    @property
    def content(self) -> bytes:
        """At a minimum, a Body must have content and uri properties."""
        ...

    @property
    def uri(self) -> bytes:
        """At a minimum, a Body must have content and uri properties."""
        ...

    @classmethod
    def decode(cls, data: bytes) -> BodyProtocol:
        """Decode the body from the data."""
        ...

    def encode(self) -> bytes:
        """Encode the body into a bytes object."""
        ...

    @classmethod
    def prepare(cls, content: bytes) -> BodyProtocol:
        """Prepare a body from content and optional arguments."""
        ...


@runtime_checkable
class MessageProtocol(Protocol):
    """Shows what a Message class should have and do."""

    @property
    def header(self) -> HeaderProtocol:
        """A Message must have a header property."""
        ...

    @property
    def auth_data(self) -> AuthFieldsProtocol:
        """A Message must have an auth_data property."""
        ...

    @property
    def body(self) -> BodyProtocol:
        """A Message must have a body property."""
        ...

    def check(self) -> bool:
        """Check if the message is valid."""
        ...

    def encode(self) -> bytes:
        """Encode the message into a bytes object."""
        ...

    @classmethod
    def prepare(
        cls,
        body: BodyProtocol,
        message_type: MessageType,
        auth_data: AuthFieldsProtocol | None = None,
    ) -> MessageProtocol:
        """Prepare a message from a body."""
        ...


@runtime_checkable
class AuthPluginProtocol(Protocol):
    """Shows what an auth plugin should do."""

    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        """Set auth_fields appropriate for a given body."""
        ...

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        """Check if the auth fields are valid for the given body."""
        ...

    def error(self) -> MessageProtocol:
        """Make an error message."""
        ...


PeerState: TypeAlias = "MutableMapping[str, Any]"
"""What a cipher plugin may remember about the peer of one connection
(its public key, say): one mapping per connection, empty at first."""


@runtime_checkable
class CipherPluginProtocol(Protocol):
    """Shows what a cipher plugin should do: encrypt an outgoing message and
    decrypt an incoming one, in place or as a new message (the result is
    what is used). ``decrypt`` raises (any exception) for a message it
    cannot authenticate; the receiver then answers AUTH_ERROR.

    ``peer`` is the connection's ``PeerState`` (None where there is none).
    """

    def encrypt(self, message: MessageProtocol, peer: PeerState | None = None) -> MessageProtocol:
        """Return ``message`` with its body encrypted."""
        ...

    def decrypt(self, message: MessageProtocol, peer: PeerState | None = None) -> MessageProtocol:
        """Return ``message`` with its body decrypted (raise if it fails)."""
        ...


MessageT = TypeVar("MessageT", bound=MessageProtocol, default="Message")
"""The message class a client or server works with (``Message`` by default)."""

Handler: TypeAlias = Callable[
    [MessageT, asyncio.StreamWriter],
    MessageT | Coroutine[Any, Any, MessageT | None] | None,
]
"""A message handler: called with the message and the connection's writer;
returns the reply (or None for no reply), directly or as a coroutine."""

KeysExtractor: TypeAlias = Callable[[MessageT], list[Hashable]]
"""Maps a message to its handler keys, most specific first."""
