"""Frames cross between netaio 0.0.2 (from PyPI) and netaio_core both ways.

netaio 0.0.2 shares our import name, so it runs in an interpreter of its own,
named by the NETAIO_002_PYTHON environment variable (``nox -s compat`` sets
it). Each exchange is one subprocess call that reads JSON from argv and
prints JSON on stdout, with bytes as hex.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from netaio_core import AuthFields, AuthValue, Body, Message, MessageType

pytestmark = pytest.mark.compat

# Builds each spec with 0.0.2's own classes and prints the encoded frames.
ENCODE_WITH_002 = """
import json, sys
from netaio import AuthFields, Body, Message, MessageType
frames = []
for spec in json.loads(sys.argv[1]):
    fields = {k: bytes.fromhex(v) if kind == "b" else v for k, (kind, v) in spec["auth"].items()}
    body = Body.prepare(bytes.fromhex(spec["content"]), uri=bytes.fromhex(spec["uri"]))
    message = Message.prepare(body, MessageType(spec["type"]), AuthFields(fields))
    frames.append(message.encode().hex())
print(json.dumps(frames))
"""

# Reads each frame the way 0.0.2's server reads one from a stream (its
# Message.decode ignores the auth section) and prints what it found.
DECODE_WITH_002 = """
import json, sys
from netaio import AuthFields, Body, Header, Message
found = []
for frame in json.loads(sys.argv[1]):
    data = bytes.fromhex(frame)
    start = Header.header_length()
    header = Header.decode(data[:start])
    auth = AuthFields.decode(data[start : start + header.auth_length])
    start += header.auth_length
    body = Body.decode(data[start : start + header.body_length])
    message = Message(header=header, auth_data=auth, body=body)
    found.append({
        "type": header.message_type.value,
        "auth_length": header.auth_length,
        "body_length": header.body_length,
        "checksum": header.checksum,
        "check": message.check(),
        "uri_length": body.uri_length,
        "uri": body.uri.hex(),
        "content": body.content.hex(),
        "auth": {
            k: ["b", v.hex()] if isinstance(v, bytes) else ["i", v]
            for k, v in auth.fields.items()
        },
    })
print(json.dumps(found))
"""

NO_AUTH: list[dict[str, AuthValue]] = [{}]
AUTH: list[dict[str, AuthValue]] = [
    {"nonce": bytes(range(16)), "ts": 1700000000},
    {
        "hmac": b"\xaa" * 32,
        "zero": 0,
        "neg": -1,
        "u16": 65535,
        "big": 2**100,
        "huge": -(2**2100),  # magnitude over 255 bytes
        "ключ": b"",
        "long": b"x" * 300,
    },
]
BODIES = [
    (MessageType.REQUEST_URI, b"1", b""),
    (MessageType.PUBLISH_URI, b"/topic/\xff", bytes(range(256))),
    (MessageType.DISCONNECT, b"", b"bye"),
    (MessageType.NOT_FOUND, b"ERROR", b"not found" * 100),
]


def _specs(
    auth_dicts: list[dict[str, AuthValue]],
) -> list[tuple[MessageType, bytes, bytes, dict[str, AuthValue]]]:
    return [(t, uri, content, fields) for t, uri, content in BODIES for fields in auth_dicts]


def _ours(spec: tuple[MessageType, bytes, bytes, dict[str, AuthValue]]) -> Message:
    message_type, uri, content, fields = spec
    return Message.prepare(Body.prepare(content, uri), message_type, AuthFields(dict(fields)))


def _as_json(fields: dict[str, AuthValue]) -> dict[str, list[Any]]:
    return {k: ["b", v.hex()] if isinstance(v, bytes) else ["i", v] for k, v in fields.items()}


def _run_002(tmp_path: Path, code: str, argument: Any) -> Any:
    python = os.environ.get("NETAIO_002_PYTHON")
    if not python:
        pytest.skip(
            "NETAIO_002_PYTHON (a Python with netaio==0.0.2) is unset; `nox -s compat` sets it"
        )
    result = subprocess.run(
        [python, "-c", code, json.dumps(argument)],
        cwd=tmp_path,  # so that no netaio of ours shadows 0.0.2
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("auth_dicts", [NO_AUTH, AUTH], ids=["no-auth", "auth"])
def test_frames_from_002_decode_here(
    tmp_path: Path, auth_dicts: list[dict[str, AuthValue]]
) -> None:
    specs = _specs(auth_dicts)
    argument = [
        {"type": t.value, "uri": uri.hex(), "content": content.hex(), "auth": _as_json(fields)}
        for t, uri, content, fields in specs
    ]
    frames = [bytes.fromhex(frame) for frame in _run_002(tmp_path, ENCODE_WITH_002, argument)]
    for spec, frame in zip(specs, frames, strict=True):
        expected = _ours(spec)
        decoded = Message.decode(frame)
        assert decoded == expected
        assert decoded.auth_data.fields == spec[3]
        assert expected.encode() == frame  # byte-identical frames


@pytest.mark.parametrize("auth_dicts", [NO_AUTH, AUTH], ids=["no-auth", "auth"])
def test_frames_from_here_decode_in_002(
    tmp_path: Path, auth_dicts: list[dict[str, AuthValue]]
) -> None:
    specs = _specs(auth_dicts)
    messages = [_ours(spec) for spec in specs]
    found = _run_002(tmp_path, DECODE_WITH_002, [m.encode().hex() for m in messages])
    for message, theirs in zip(messages, found, strict=True):
        header, body = message.header, message.body
        assert theirs == {
            "type": header.message_type.value,
            "auth_length": header.auth_length,
            "body_length": header.body_length,
            "checksum": header.checksum,
            "check": True,
            "uri_length": len(body.uri),
            "uri": body.uri.hex(),
            "content": body.content.hex(),
            "auth": _as_json(message.auth_data.fields),
        }
