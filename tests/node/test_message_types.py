"""make_message_type_class, validate_message_type_class, header_class_for."""

from __future__ import annotations

from enum import Enum, IntEnum

import pytest

from netaio_core import (
    Body,
    Message,
    MessageType,
    UnknownMessageTypeError,
    header_class_for,
    make_message_type_class,
    validate_message_type_class,
)


def test_made_class_keeps_the_default_members() -> None:
    made = make_message_type_class("AppTypes", {"GOSSIP": 40, "SYNC": 255})
    assert [m.name for m in made] == ["GOSSIP", "SYNC"]
    assert made.REQUEST_URI is MessageType.REQUEST_URI  # type: ignore[attr-defined]
    assert validate_message_type_class(made)
    header = header_class_for(made)
    assert header_class_for(made) is header
    frame = Message.prepare(Body.prepare(b"x"), made["GOSSIP"]).encode()  # type: ignore[arg-type]
    assert header.decode(frame).message_type is made["GOSSIP"]
    ok = Message.prepare(Body.prepare(b"x"), MessageType.OK).encode()
    assert header.decode(ok).message_type is MessageType.OK
    with pytest.raises(UnknownMessageTypeError, match="unknown message type 41"):
        header.decode(bytes([41]) + frame[1:])


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ({"OK": 40}, "cannot redefine the default message type OK"),
        ({"LOW": 30}, "reserved value 30"),
        ({"LOW": 0}, "reserved value 0"),
        ({"HIGH": 256}, "over 255"),
        ({"A": 40, "B": 40}, "both use the value 40"),
    ],
)
def test_make_refuses(members: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_message_type_class("Bad", members)


def test_validate() -> None:
    full = IntEnum("Full", {**{m.name: m.value for m in MessageType}, "EXTRA": 31})
    assert validate_message_type_class(full)
    redefined = Enum("Redefined", {**{m.name: m.value for m in MessageType}, "OK": 99})
    with pytest.raises(ValueError, match="redefines OK from 10 to 99"):
        validate_message_type_class(redefined)
    missing = Enum("Missing", {"REQUEST_URI": 0})
    with pytest.raises(ValueError, match="missing the default message type"):
        validate_message_type_class(missing)
    assert not validate_message_type_class(missing, suppress_errors=True)
    with pytest.raises(TypeError):
        validate_message_type_class(int)  # type: ignore[arg-type]
    reserved = Enum("Reserved", {**{m.name: m.value for m in MessageType}, "X": 29})
    with pytest.raises(ValueError, match="reserved value 29"):
        validate_message_type_class(reserved)
