"""PROTOCOL.md's two body forms are what the codec produces."""

from __future__ import annotations

import re
from pathlib import Path

from netaio_core import Body, Message, MessageType, ShortUriBody

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "packages" / "netaio-core" / "PROTOCOL.md"


def test_both_body_forms_match_the_codec() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    block = re.search(r"<!-- short-uri-body -->\n```text\n(.*?)```", text, re.S)
    assert block is not None
    lines = dict(line.split("  ", 1) for line in block[1].splitlines())
    for name, body_class in (("default Body", Body), ("ShortUriBody", ShortUriBody)):
        message = Message.prepare(body_class.prepare(b"hello", b"echo"), MessageType.REQUEST_URI)
        assert bytes.fromhex(lines[name]) == message.encode()
        decoded = Message.decode(message.encode()) if body_class is Body else None
        assert decoded is None or decoded == message
