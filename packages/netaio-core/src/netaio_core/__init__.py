"""netaio-core: the wire codec, the Protocols and the shared dispatch path of netaio."""

from __future__ import annotations

from .auth_section import AuthValue, decode_auth_fields, encode_auth_fields
from .codec import MAX_SECTION_LENGTH, AuthFields, Body, Header, Message, MessageType
from .defaults import keys_extractor, make_error_response
from .dispatch import Endpoint, HandlerEntry
from .errors import (
    AuthenticationError,
    ChecksumError,
    ConnectionClosedError,
    DecodeError,
    FrameError,
    FrameTooLargeError,
    NetaioError,
    NotConnectedError,
    ProtocolError,
    UnknownMessageTypeError,
)
from .framing import FrameCodec, FrameDecoder, MessageReader, read_message
from .limits import PROTOCOL_MAX_FRAME_SIZE, Limits
from .protocols import (
    AuthFieldsProtocol,
    AuthPluginProtocol,
    BodyProtocol,
    Handler,
    HeaderProtocol,
    KeysExtractor,
    MessageProtocol,
    MessageT,
)

__version__ = "0.1.0"

__all__ = [
    "MAX_SECTION_LENGTH",
    "PROTOCOL_MAX_FRAME_SIZE",
    "AuthFields",
    "AuthFieldsProtocol",
    "AuthPluginProtocol",
    "AuthValue",
    "AuthenticationError",
    "Body",
    "BodyProtocol",
    "ChecksumError",
    "ConnectionClosedError",
    "DecodeError",
    "Endpoint",
    "FrameCodec",
    "FrameDecoder",
    "FrameError",
    "FrameTooLargeError",
    "Handler",
    "HandlerEntry",
    "Header",
    "HeaderProtocol",
    "KeysExtractor",
    "Limits",
    "Message",
    "MessageProtocol",
    "MessageReader",
    "MessageT",
    "MessageType",
    "NetaioError",
    "NotConnectedError",
    "ProtocolError",
    "UnknownMessageTypeError",
    "decode_auth_fields",
    "encode_auth_fields",
    "keys_extractor",
    "make_error_response",
    "read_message",
]
