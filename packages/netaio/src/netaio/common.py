"""The documented ``netaio.common`` module path: codec, Protocols and helpers."""

from netaio_client import default_client_logger
from netaio_core import (
    AuthFields,
    AuthFieldsProtocol,
    AuthValue,
    Body,
    BodyProtocol,
    Handler,
    Header,
    HeaderProtocol,
    Message,
    MessageProtocol,
    MessageType,
    keys_extractor,
    make_error_response,
)
from netaio_server import default_server_logger

__all__ = [
    "AuthFields",
    "AuthFieldsProtocol",
    "AuthValue",
    "Body",
    "BodyProtocol",
    "Handler",
    "Header",
    "HeaderProtocol",
    "Message",
    "MessageProtocol",
    "MessageType",
    "default_client_logger",
    "default_server_logger",
    "keys_extractor",
    "make_error_response",
]
