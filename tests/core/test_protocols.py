"""The default classes satisfy their Protocols, at run time and for mypy."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from netaio_core import (
    AuthFields,
    AuthFieldsProtocol,
    AuthPluginProtocol,
    Body,
    BodyProtocol,
    HeaderProtocol,
    Message,
    MessageProtocol,
    MessageType,
    make_error_response,
)

from .mypy_runner import mypy_strict_errors


class TinyPlugin:
    """An auth plugin that puts a fixed token in and checks for it."""

    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        auth_fields.fields["token"] = b"t"

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        return auth_fields.fields.get("token") == b"t"

    def error(self) -> MessageProtocol:
        return make_error_response("auth failed")


def test_default_instances_satisfy_their_protocols() -> None:
    message = Message.prepare(Body.prepare(b"x"), MessageType.OK, AuthFields({"a": 1}))
    assert isinstance(message.header, HeaderProtocol)
    assert isinstance(message.auth_data, AuthFieldsProtocol)
    assert isinstance(message.body, BodyProtocol)
    assert isinstance(message, MessageProtocol)
    assert isinstance(TinyPlugin(), AuthPluginProtocol)


def test_objects_missing_a_member_do_not() -> None:
    class NoDecode:
        fields: dict[str, bytes] = {}  # noqa: RUF012

        def encode(self) -> bytes:
            return b""

    class NoError:
        def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None: ...

        def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
            return True

    assert not isinstance(NoDecode(), AuthFieldsProtocol)
    assert not isinstance(NoError(), AuthPluginProtocol)
    assert not isinstance(Body.prepare(b""), HeaderProtocol)
    assert not isinstance(AuthFields({}), MessageProtocol)


GOOD = """
import asyncio

from netaio_core import (
    AuthFields, AuthFieldsProtocol, AuthPluginProtocol, Body, BodyProtocol, Handler, Header,
    HeaderProtocol, Message, MessageProtocol, MessageType, make_error_response,
)


class TinyPlugin:
    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        auth_fields.fields["token"] = b"t"

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        return auth_fields.fields.get("token") == b"t"

    def error(self) -> MessageProtocol:
        return make_error_response("auth failed")


message: Message = Message.prepare(Body.prepare(b"x"), MessageType.OK)
header: HeaderProtocol = message.header
auth: AuthFieldsProtocol = message.auth_data
body: BodyProtocol = message.body
as_protocol: MessageProtocol = message
plugin: AuthPluginProtocol = TinyPlugin()
header_class: type[HeaderProtocol] = Header
auth_class: type[AuthFieldsProtocol] = AuthFields
body_class: type[BodyProtocol] = Body
message_class: type[MessageProtocol] = Message
value: bytes | int = AuthFields.decode(auth.encode()).fields["token"]


async def echo(msg: Message, writer: asyncio.StreamWriter) -> Message | None:
    return msg


handler: Handler[Message] = echo
"""

BAD = """
import asyncio

from netaio_core import (
    AuthFieldsProtocol, AuthPluginProtocol, Body, BodyProtocol, Handler, HeaderProtocol, Message,
)


class NoError:
    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None: ...

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        return True


plugin: AuthPluginProtocol = NoError()
header: HeaderProtocol = Body.prepare(b"")


def wrong_reply(msg: Message, writer: asyncio.StreamWriter) -> bytes:
    return b""


handler: Handler[Message] = wrong_reply
"""


def test_mypy_strict_accepts_the_defaults_and_rejects_mismatches(
    tmp_path: Path, run_mypy: Any
) -> None:
    (tmp_path / "good.py").write_text(textwrap.dedent(GOOD))
    (tmp_path / "bad.py").write_text(textwrap.dedent(BAD))
    errors = mypy_strict_errors(run_mypy, tmp_path, "good.py", "bad.py")
    assert not [line for line in errors if not line.startswith("bad.py:")], errors
    # the plugin without error(), a Body as a header, a handler returning bytes
    for line_number in (16, 17, 24):
        assert any(line.startswith(f"bad.py:{line_number}:") for line in errors), errors
