"""PROTOCOL.md's correlation-id example is what the codec produces and what
a netaio server sends back over a real socket."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from netaio_core import (
    CORRELATION_FIELD,
    AuthFields,
    Body,
    Header,
    Message,
    MessageType,
    correlation_id,
)

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "packages" / "netaio-core" / "PROTOCOL.md"


def _block(marker: str) -> bytes:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {marker} -->\s*```text\n(.*?)```", text, re.DOTALL)
    assert found, f"PROTOCOL.md has no {marker} block"
    return bytes.fromhex(found.group(1))


def _message(message_type: MessageType) -> Message:
    return Message.prepare(Body.prepare(b"hi", uri=b"echo"), message_type, AuthFields({"cid": 7}))


def test_the_doc_has_a_correlation_section() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    assert "## Correlation ids" in text
    assert CORRELATION_FIELD == "cid"
    assert "| 25 | `NOT_PERMITTED` |" in text


def test_correlated_request_matches_the_codec_byte_for_byte() -> None:
    documented = _block("correlation-request")
    request = _message(MessageType.REQUEST_URI)
    assert request.encode() == documented
    decoded = Message.decode(documented)
    assert decoded == request
    assert correlation_id(decoded) == 7
    assert request.header == Header(MessageType.REQUEST_URI, 16, 10, 0xB53DB4B3)


def test_correlated_reply_matches_the_codec_byte_for_byte() -> None:
    documented = _block("correlation-reply")
    assert _message(MessageType.RESPOND_URI).encode() == documented
    assert correlation_id(Message.decode(documented)) == 7


async def test_a_server_sends_the_documented_reply_bytes() -> None:
    # tests/core also runs with netaio-core alone (nox -s isolated).
    netaio_server = pytest.importorskip("netaio_server")
    server = netaio_server.TCPServer(host="127.0.0.1", port=0)

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        return Message.prepare(
            Body.prepare(message.body.content, message.body.uri), MessageType.RESPOND_URI
        )

    expected = _block("correlation-reply")
    async with server:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", server.port), 5
        )
        try:
            writer.write(_block("correlation-request"))
            got = await asyncio.wait_for(reader.readexactly(len(expected)), 5)
            # The documented NOT_FOUND: same auth section, type 24.
            missing = Message.prepare(
                Body.prepare(b"hi", uri=b"nowhere"), MessageType.REQUEST_URI, AuthFields({"cid": 7})
            )
            writer.write(missing.encode())
            header = Header.decode(await asyncio.wait_for(reader.readexactly(9), 5))
            auth = await asyncio.wait_for(reader.readexactly(header.auth_length), 5)
        finally:
            writer.close()
    assert got == expected
    assert header.message_type is MessageType.NOT_FOUND
    assert auth == AuthFields({"cid": 7}).encode()
    assert auth.hex(" ") == "4d 40 01 0c 4c 40 02 05 02 43 03 63 69 64 44 07"
