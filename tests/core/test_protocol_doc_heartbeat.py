"""PROTOCOL.md's heartbeat example is what the client sends and what a
netaio server answers over a real socket."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from netaio_core import HEARTBEAT_URI, AuthFields, Body, Message, MessageType, correlation_id
from netaio_core.correlation import set_correlation_id
from netaio_core.heartbeat import is_heartbeat, make_heartbeat

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "packages" / "netaio-core" / "PROTOCOL.md"


def _block(marker: str) -> bytes:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {marker} -->\s*```text\n(.*?)```", text, re.DOTALL)
    assert found, f"PROTOCOL.md has no {marker} block"
    return bytes.fromhex(found.group(1))


def test_the_doc_has_a_heartbeats_section() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    assert "## Heartbeats" in text
    assert HEARTBEAT_URI == b"netaio/ping"
    assert "`netaio/ping`" in text


def test_the_documented_ping_is_what_the_client_sends() -> None:
    documented = _block("heartbeat-ping")
    ping = make_heartbeat()
    set_correlation_id(ping, 1)
    assert ping.encode() == documented
    shown = Message.prepare(
        Body.prepare(b"", uri=b"netaio/ping"), MessageType.OK, AuthFields({"cid": 1})
    )
    assert shown.encode() == documented
    decoded = Message.decode(documented)
    assert is_heartbeat(decoded)
    assert correlation_id(decoded) == 1
    assert len(documented) == 40


async def test_a_server_answers_the_documented_ping_with_the_same_bytes() -> None:
    # tests/core also runs with netaio-core alone (nox -s isolated).
    netaio_server = pytest.importorskip("netaio_server")
    server = netaio_server.TCPServer(host="127.0.0.1", port=0)
    called: list[Message] = []
    server.add_handler(MessageType.OK, lambda message, writer: called.append(message))
    ping = _block("heartbeat-ping")
    async with server:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", server.port), 5
        )
        try:
            writer.write(ping)
            got = await asyncio.wait_for(reader.readexactly(len(ping)), 5)
        finally:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 5)
    assert got == ping
    assert called == [], "the ping reached a handler"
