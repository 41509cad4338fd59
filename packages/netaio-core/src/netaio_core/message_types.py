"""Message-type classes beyond the defaults, and header classes bound to them.

Values 0-30 are reserved for the protocol (``MessageType``); an application
adds its own types with values 31-255 (the header's u8)::

    AppTypes = make_message_type_class("AppTypes", {"GOSSIP": 40})
    header_class = header_class_for(AppTypes)  # decodes 40 as AppTypes.GOSSIP

A class made by ``make_message_type_class`` holds the custom members; its
default names (``AppTypes.REQUEST_URI``) are the very ``MessageType``
members, so that every default type keeps one identity everywhere (handler
keys, the checks of client, server and node). A header class bound with
``header_class_for`` likewise decodes the default values to ``MessageType``
members and the custom values to the class's own members.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from struct import Struct
from typing import Any, cast

from .codec import Header
from .message_type import MessageType

__all__ = [
    "MAX_MESSAGE_TYPE",
    "RESERVED_MESSAGE_TYPES",
    "header_class_for",
    "make_message_type_class",
    "validate_message_type_class",
]

RESERVED_MESSAGE_TYPES = range(31)
"""Values reserved for the protocol's own message types."""

MAX_MESSAGE_TYPE = 255
"""The largest value the header's u8 can carry."""

_HEADER = Struct("!BHHI")
_DEFAULTS: dict[int, MessageType] = {t.value: t for t in MessageType}


def _check_custom(owner: str, name: str, value: object) -> None:
    if type(value) is not int:
        raise TypeError(f"{owner}: message type {name} must have an int value, not {value!r}")
    if value in RESERVED_MESSAGE_TYPES:
        raise ValueError(
            f"{owner}: message type {name} uses the reserved value {value} "
            f"(0-30 are reserved for the protocol)"
        )
    if value > MAX_MESSAGE_TYPE or value < 0:
        raise ValueError(f"{owner}: message type {name} = {value} is over {MAX_MESSAGE_TYPE}")


def make_message_type_class(name: str, members: Mapping[str, int]) -> type[Enum]:
    """An Enum of the custom ``members`` (name -> value 31-255) that also
    answers the default names with the ``MessageType`` members.

    Raises ``ValueError`` for a default name redefined, a reserved value
    (0-30), a value over 255 or two members with one value; ``TypeError``
    for a value that is not an int.
    """
    values: dict[int, str] = {}
    for member, value in members.items():
        if member in MessageType.__members__:
            raise ValueError(f"{name}: cannot redefine the default message type {member}")
        _check_custom(name, member, value)
        if value in values:
            raise ValueError(f"{name}: {member} and {values[value]} both use the value {value}")
        values[value] = member
    made: Any = Enum(name, dict(members))  # type: ignore[misc]
    setattr(made, "__hash__", object.__hash__)  # noqa: B010  # identity, as MessageType
    for default in MessageType:
        type.__setattr__(made, default.name, default)
    return cast("type[Enum]", made)


def validate_message_type_class(
    message_type_class: type[Enum], *, suppress_errors: bool = False
) -> bool:
    """Whether ``message_type_class`` may be used: an Enum whose default
    names have the default values and whose other members use values 31-255.

    Raises ``TypeError`` or ``ValueError`` saying what is wrong, or returns
    False with ``suppress_errors``.
    """
    try:
        owner = getattr(message_type_class, "__name__", repr(message_type_class))
        if not isinstance(message_type_class, type) or not issubclass(message_type_class, Enum):
            raise TypeError(f"{owner} is not an Enum class")
        for default in MessageType:
            member = getattr(message_type_class, default.name, None)
            if member is None:
                raise ValueError(f"{owner} is missing the default message type {default.name}")
            if getattr(member, "value", None) != default.value:
                raise ValueError(
                    f"{owner} redefines {default.name} from {default.value} "
                    f"to {getattr(member, 'value', member)!r}"
                )
        for member in message_type_class:
            if member.name not in MessageType.__members__:
                _check_custom(owner, member.name, member.value)
    except (TypeError, ValueError):
        if suppress_errors:
            return False
        raise
    return True


_BOUND: dict[type[Enum], type[Header]] = {}


def header_class_for(message_type_class: type[Enum]) -> type[Header]:
    """A ``Header`` subclass whose ``decode`` knows ``message_type_class``'s
    custom types (validated first); the default values still decode to
    ``MessageType`` members. One class per message-type class."""
    bound = _BOUND.get(message_type_class)
    if bound is not None:
        return bound
    validate_message_type_class(message_type_class)
    table: dict[int, Enum] = dict(_DEFAULTS)
    for member in message_type_class:
        table.setdefault(member.value, member)

    class BoundHeader(Header):
        """The default header, decoding the message types of a custom class."""

        message_types = table

    BoundHeader.message_type_class = message_type_class  # type: ignore[attr-defined]
    BoundHeader.__name__ = BoundHeader.__qualname__ = f"Header[{message_type_class.__name__}]"
    _BOUND[message_type_class] = BoundHeader
    return BoundHeader
