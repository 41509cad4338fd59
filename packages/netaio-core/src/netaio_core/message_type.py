"""The message types of the default header (the wire value is the enum value)."""

from __future__ import annotations

from enum import Enum

__all__ = ["MessageType"]


class MessageType(Enum):
    """Some default message types."""

    REQUEST_URI = 0
    RESPOND_URI = 1
    CREATE_URI = 2
    UPDATE_URI = 3
    DELETE_URI = 4
    SUBSCRIBE_URI = 5
    UNSUBSCRIBE_URI = 6
    PUBLISH_URI = 7
    NOTIFY_URI = 8
    ADVERTISE_PEER = 9
    OK = 10
    CONFIRM_SUBSCRIBE = 11
    CONFIRM_UNSUBSCRIBE = 12
    PEER_DISCOVERED = 13
    ERROR = 20
    AUTH_ERROR = 23
    NOT_FOUND = 24
    NOT_PERMITTED = 25
    DISCONNECT = 30

    # Members are singletons compared by identity, so the identity hash is
    # consistent with equality; Enum's own __hash__ is a Python function that
    # every handler lookup keyed by (message_type, uri) would call.
    __hash__ = object.__hash__
