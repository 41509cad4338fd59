"""PROTOCOL.md's worked example is exactly what the codec produces."""

from __future__ import annotations

import re
from pathlib import Path

from netaio_core import AuthFields, Body, Header, Message, MessageType

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "packages" / "netaio-core" / "PROTOCOL.md"


def _worked_example() -> bytes:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    found = re.search(r"<!-- worked-example -->\s*```text\n(.*?)```", text, re.DOTALL)
    assert found, "PROTOCOL.md has no worked example block"
    return bytes.fromhex(found.group(1))


def test_worked_example_matches_the_codec_byte_for_byte() -> None:
    documented = _worked_example()
    message = Message.prepare(
        Body.prepare(b"hello", uri=b"echo"),
        MessageType.REQUEST_URI,
        AuthFields({"ts": 1700000000}),
    )
    assert message.encode() == documented
    assert Message.decode(documented) == message
    assert message.header == Header(MessageType.REQUEST_URI, 18, 13, 0xFFC66BDD)
