"""netaio: decorator-routed asyncio TCP messaging, in one import.

This umbrella holds no logic: it re-exports the documented API from
netaio-core, netaio-auth, netaio-client and netaio-server.
"""

from netaio_auth import AEADCipherPlugin, CipherError, HMACAuthPlugin, X25519CipherPlugin
from netaio_client import (
    ConnectionState,
    ReconnectPolicy,
    Subscription,
    SubscriptionError,
    TCPClient,
    default_client_logger,
)
from netaio_core import (
    AuthFields,
    AuthFieldsProtocol,
    AuthPluginProtocol,
    AuthValue,
    Body,
    BodyProtocol,
    CipherPluginProtocol,
    Handler,
    Header,
    HeaderProtocol,
    Limits,
    Message,
    MessageProtocol,
    MessageType,
    keys_extractor,
    make_error_msg,
    make_error_response,
    make_not_found_msg,
    make_not_permitted_msg,
    make_ok_msg,
    make_respond_uri_msg,
)
from netaio_core.errors import (
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
from netaio_server import TCPServer, default_server_logger, run, serve

__version__ = "0.1.0"

__all__ = [
    "AEADCipherPlugin",
    "AuthFields",
    "AuthFieldsProtocol",
    "AuthPluginProtocol",
    "AuthValue",
    "AuthenticationError",
    "Body",
    "BodyProtocol",
    "ChecksumError",
    "CipherError",
    "CipherPluginProtocol",
    "ConnectRefusedError",
    "ConnectionState",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ConnectionUnavailableError",
    "DecodeError",
    "FrameError",
    "FrameTooLargeError",
    "HMACAuthPlugin",
    "Handler",
    "Header",
    "HeaderProtocol",
    "LimitExceededError",
    "Limits",
    "Message",
    "MessageProtocol",
    "MessageType",
    "NetaioError",
    "NotConnectedError",
    "ProtocolError",
    "ReconnectPolicy",
    "Subscription",
    "SubscriptionError",
    "TCPClient",
    "TCPServer",
    "UnknownMessageTypeError",
    "X25519CipherPlugin",
    "default_client_logger",
    "default_server_logger",
    "keys_extractor",
    "make_error_msg",
    "make_error_response",
    "make_not_found_msg",
    "make_not_permitted_msg",
    "make_ok_msg",
    "make_respond_uri_msg",
    "run",
    "serve",
    "version",
]


def version() -> str:
    """Return the version of the netaio package."""
    return __version__
