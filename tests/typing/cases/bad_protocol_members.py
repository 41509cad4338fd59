"""Classes missing a Protocol member are rejected where netaio expects them."""

from __future__ import annotations

from dataclasses import dataclass

from netaio import AuthFieldsProtocol, BodyProtocol, Header, Message, MessageType, TCPClient, TCPServer


@dataclass
class HeaderWithoutChecksumOrAuthLength:
    message_type: MessageType
    body_length: int

    @staticmethod
    def header_length() -> int:
        return 3

    @staticmethod
    def struct_fstring() -> str:
        return "!BH"

    @classmethod
    def decode(cls, data: bytes) -> HeaderWithoutChecksumOrAuthLength:
        return cls(MessageType(data[0]), int.from_bytes(data[1:3], "big"))

    def encode(self) -> bytes:
        return bytes((self.message_type.value,)) + self.body_length.to_bytes(2, "big")


@dataclass
class BodyWithoutUri:
    content: bytes

    @classmethod
    def decode(cls, data: bytes) -> BodyWithoutUri:
        return cls(data)

    def encode(self) -> bytes:
        return self.content

    @classmethod
    def prepare(cls, content: bytes) -> BodyWithoutUri:
        return cls(content)


@dataclass
class AuthFieldsWithoutEncode:
    fields: dict[str, bytes | int]

    @classmethod
    def decode(cls, data: bytes) -> AuthFieldsWithoutEncode:
        return cls({})


@dataclass
class MessageWithoutCheck:
    header: Header
    auth_data: AuthFieldsProtocol
    body: BodyProtocol

    def encode(self) -> bytes:
        return b""

    @classmethod
    def prepare(
        cls, body: BodyProtocol, message_type: object, auth_data: object = None
    ) -> MessageWithoutCheck:
        raise NotImplementedError


class PluginWithoutError:
    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        pass

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        return True


def build() -> None:
    TCPClient(header_class=HeaderWithoutChecksumOrAuthLength)  # E[arg-type]: "type[HeaderWithoutChecksumOrAuthLength]"; expected "type[HeaderProtocol]"
    TCPServer(body_class=BodyWithoutUri)  # E[arg-type]: "type[BodyWithoutUri]"; expected "type[BodyProtocol]"
    TCPClient(auth_fields_class=AuthFieldsWithoutEncode)  # E[arg-type]: "type[AuthFieldsWithoutEncode]"; expected "type[AuthFieldsProtocol]"
    TCPClient(message_class=MessageWithoutCheck)  # E[type-var]: "MessageT" of "TCPClient" cannot be "MessageWithoutCheck"
    TCPServer(auth_plugin=PluginWithoutError())  # E[arg-type]: "PluginWithoutError"; expected "AuthPluginProtocol | None"  # N: error
    Message.prepare(BodyWithoutUri(b""))  # E[arg-type]: "BodyWithoutUri"; expected "BodyProtocol"  # N: uri

