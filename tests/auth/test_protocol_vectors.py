"""The test vectors of PROTOCOL.md ("Authenticated routing, HMAC and cipher
layouts") against the code: rt, the HMAC input and MAC, the AEAD key,
associated data, content and frames."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import pytest

from netaio_auth import HMACAuthPlugin
from netaio_core import AuthFields, Body, Message, MessageType
from netaio_core.binding import FROM_CLIENT, set_route

PROTOCOL = Path(__file__).resolve().parents[2] / "packages" / "netaio-core" / "PROTOCOL.md"
SECRET = b"netaio test vector secret"
TS = 1_700_000_000


def vector(name: str) -> bytes:
    """The bytes of the ```text block after ``<!-- vector:name -->``."""
    text = PROTOCOL.read_text(encoding="utf-8")
    found = re.search(rf"<!-- vector:{re.escape(name)} -->\s*```text\n(.*?)```", text, re.S)
    assert found, f"no vector {name!r} in PROTOCOL.md"
    return bytes.fromhex("".join(found.group(1).split()))


def example() -> Message:
    """The vectors' message: REQUEST_URI to "echo", "hi", cid 7, from a client."""
    message = Message.prepare(
        Body.prepare(b"hi", b"echo"), MessageType.REQUEST_URI, AuthFields({"cid": 7})
    )
    set_route(message, FROM_CLIENT)
    return message


def test_rt_vector() -> None:
    assert example().auth_data.fields["rt"] == vector("rt")


def test_hmac_vectors() -> None:
    message = example()
    fields = message.auth_data.fields
    fields["nonce"] = bytes(range(16))
    fields["ts"] = TS.to_bytes(4, "big")
    HMACAuthPlugin({"secret": SECRET, "max_skew": None}).make(message.auth_data, message.body)
    assert hashlib.sha256(SECRET).digest() == vector("hmac-key")
    rt = vector("rt")
    mac_input = bytes(range(16)) + TS.to_bytes(4, "big") + b"\x00rt\x00\x08" + rt
    mac_input += message.body.encode()
    assert mac_input == vector("hmac-input")
    assert fields["hmac"] == vector("hmac-mac")
    assert hmac.new(vector("hmac-key"), mac_input, hashlib.sha256).digest() == vector("hmac-mac")
    frame = message.encode()
    assert frame == vector("hmac-frame")
    decoded = Message.decode(frame)
    assert HMACAuthPlugin({"secret": SECRET, "max_skew": None}).check(
        decoded.auth_data, decoded.body
    )


def test_aead_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from netaio_auth import AEADCipherPlugin
    from netaio_auth import cipher as cipher_module

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"netaio aead key 1")
    assert key.derive(SECRET) == vector("aead-key")
    monkeypatch.setattr(cipher_module.os, "urandom", lambda n: bytes(range(n)))
    sealed = AEADCipherPlugin({"secret": SECRET}, clock=lambda: TS + 0.5).encrypt(example())
    content = sealed.body.content
    assert content == vector("aead-content")
    ad = b"netaio-cipher-1\x00\x08" + vector("rt") + b"\x00\x04echo" + content[:18]
    assert ad == vector("aead-ad")
    expected = ChaCha20Poly1305(vector("aead-key")).encrypt(bytes(range(12)), b"hi", ad)
    assert content[18:] == expected
    frame = sealed.encode()
    assert frame == vector("aead-frame")
    opened = AEADCipherPlugin({"secret": SECRET, "max_skew": None}).decrypt(Message.decode(frame))
    assert (opened.body.uri, opened.body.content) == (b"echo", b"hi")
