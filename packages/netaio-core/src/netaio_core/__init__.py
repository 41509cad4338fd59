"""netaio-core: the wire codec, the Protocols and the shared dispatch path of netaio."""

from __future__ import annotations

from .auth_section import AuthValue, decode_auth_fields, encode_auth_fields
from .broker import BROADCAST, BrokerProtocol
from .codec import MAX_SECTION_LENGTH, AuthFields, Body, Header, Message, MessageType
from .correlation import CORRELATION_FIELD, PendingRequests, correlation_id, set_correlation_id
from .defaults import (
    keys_extractor,
    make_error_msg,
    make_error_response,
    make_not_found_msg,
    make_not_permitted_msg,
    make_ok_msg,
    make_respond_uri_msg,
)
from .dispatch import Endpoint, HandlerEntry
from .errors import (
    AuthenticationError,
    ChecksumError,
    ConnectionClosedError,
    ConnectionUnavailableError,
    ConnectRefusedError,
    ConnectTimeoutError,
    DecodeError,
    FrameError,
    FrameTooLargeError,
    LimitExceededError,
    NetaioError,
    NotConnectedError,
    ProtocolError,
    UnknownMessageTypeError,
)
from .framing import FrameCodec, FrameDecoder, MessageReader, read_message
from .heartbeat import HEARTBEAT_URI
from .limits import PROTOCOL_MAX_FRAME_SIZE, Limits
from .message_types import (
    header_class_for,
    make_message_type_class,
    validate_message_type_class,
)
from .protocols import (
    AuthFieldsProtocol,
    AuthPluginProtocol,
    BodyProtocol,
    CipherPluginProtocol,
    Handler,
    HeaderProtocol,
    KeysExtractor,
    MessageProtocol,
    MessageT,
)
from .short_uri import ShortUriBody

__version__ = "0.1.0"

__all__ = [
    "CORRELATION_FIELD",
    "HEARTBEAT_URI",
    "MAX_SECTION_LENGTH",
    "PROTOCOL_MAX_FRAME_SIZE",
    "AuthFields",
    "AuthFieldsProtocol",
    "AuthPluginProtocol",
    "AuthValue",
    "BROADCAST",
    "AuthenticationError",
    "Body",
    "BodyProtocol",
    "BrokerProtocol",
    "ChecksumError",
    "CipherPluginProtocol",
    "ConnectRefusedError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ConnectionUnavailableError",
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
    "LimitExceededError",
    "Limits",
    "Message",
    "MessageProtocol",
    "MessageReader",
    "MessageT",
    "MessageType",
    "NetaioError",
    "NotConnectedError",
    "PendingRequests",
    "ProtocolError",
    "ShortUriBody",
    "UnknownMessageTypeError",
    "correlation_id",
    "decode_auth_fields",
    "encode_auth_fields",
    "header_class_for",
    "keys_extractor",
    "make_error_msg",
    "make_error_response",
    "make_message_type_class",
    "make_not_found_msg",
    "make_not_permitted_msg",
    "make_ok_msg",
    "make_respond_uri_msg",
    "read_message",
    "set_correlation_id",
    "validate_message_type_class",
]
