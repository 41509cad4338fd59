"""HMACAuthPlugin: the MAC itself, tampering, hostile fields, several plugins."""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import netaio_auth
import netaio_core
from netaio_auth import HMACAuthPlugin
from netaio_core import AuthFields, AuthPluginProtocol, Body, Message, MessageType

SECRET = b"netaio test secret"
NONCE = bytes(range(16))
TS = 1_700_000_000
NOW = 1_750_000_000.75


def fixed_clock() -> float:
    return NOW


def expected_mac(secret: bytes, nonce: bytes, ts: int, uri: bytes, content: bytes) -> bytes:
    """The MAC as the issue defines it, built here without the plugin or Body.encode."""
    body = struct.pack("!I", len(uri)) + uri + content
    key = hashlib.sha256(secret).digest()
    return hmac.new(key, nonce + ts.to_bytes(4, "big") + body, hashlib.sha256).digest()


def signed(
    plugin: HMACAuthPlugin, content: bytes = b"hello, world", uri: bytes = b"greet"
) -> Message:
    message = Message.prepare(Body.prepare(content, uri))
    plugin.make(message.auth_data, message.body)
    return message


def test_known_answer_pinned() -> None:
    """One vector pinned in hex (cross-checked with `openssl dgst -mac HMAC`)."""
    fields = AuthFields({"nonce": NONCE, "ts": TS.to_bytes(4, "big")})
    HMACAuthPlugin({"secret": SECRET, "max_skew": None}).make(
        fields, Body.prepare(b"hello, world", b"greet")
    )
    assert fields.fields["hmac"] == bytes.fromhex(
        "fa0fb01299934aac7f1da036250a56748df8ec41f3153113da293c14c03b90cc"
    )
    assert fields.fields["hmac"] == expected_mac(SECRET, NONCE, TS, b"greet", b"hello, world")


@pytest.mark.parametrize("secret", [b"k", b"\x00" * 200, "päss wörd", "s"])
@pytest.mark.parametrize(
    ("uri", "content"),
    [(b"1", b""), (b"", b"x"), (b"a/b", bytes(range(256)) * 40), (b"u" * 300, b"c")],
)
@pytest.mark.parametrize("ts", [0, 1, TS, 0xFFFFFFFF])
def test_known_answers(secret: str | bytes, uri: bytes, content: bytes, ts: int) -> None:
    secret_bytes = secret.encode() if isinstance(secret, str) else secret
    plugin = HMACAuthPlugin({"secret": secret, "max_skew": None})
    assert plugin.secret == hashlib.sha256(secret_bytes).digest()
    fields = AuthFields({"nonce": NONCE, "ts": ts.to_bytes(4, "big")})
    body = Body.prepare(content, uri)
    plugin.make(fields, body)
    assert fields.fields == {
        "nonce": NONCE,
        "ts": ts.to_bytes(4, "big"),
        "hmac": expected_mac(secret_bytes, NONCE, ts, uri, content),
    }
    assert plugin.check(fields, body) is True


def test_str_and_bytes_secret_are_the_same_key() -> None:
    message = signed(HMACAuthPlugin({"secret": "sésame"}))
    assert HMACAuthPlugin({"secret": "sésame".encode()}).check(message.auth_data, message.body)


def test_make_generates_nonce_and_ts_when_absent() -> None:
    plugin = HMACAuthPlugin({"secret": SECRET}, clock=fixed_clock)
    first, second = signed(plugin), signed(plugin)
    nonce, ts = first.auth_data.fields["nonce"], first.auth_data.fields["ts"]
    assert isinstance(nonce, bytes)
    assert len(nonce) == 16
    assert nonce != second.auth_data.fields["nonce"]
    assert ts == int(NOW).to_bytes(4, "big")
    assert first.auth_data.fields["hmac"] == expected_mac(
        SECRET, nonce, int(NOW), b"greet", b"hello, world"
    )


KEPT_TS = TS.to_bytes(4, "big")
FRESH_TS = int(NOW).to_bytes(4, "big")


@pytest.mark.parametrize(
    ("nonce", "ts", "kept_nonce", "expected_ts"),
    [
        (NONCE[:15], KEPT_TS, False, KEPT_TS),
        (NONCE + b"!", KEPT_TS, False, KEPT_TS),
        (NONCE.hex(), KEPT_TS, False, KEPT_TS),
        (bytearray(NONCE), KEPT_TS, False, KEPT_TS),
        (NONCE, TS.to_bytes(5, "big"), True, FRESH_TS),
        (NONCE, KEPT_TS[:3], True, FRESH_TS),
        (NONCE, -1, True, FRESH_TS),
        (NONCE, 2**32, True, FRESH_TS),
        (NONCE, True, True, FRESH_TS),
        (NONCE, float(TS), True, FRESH_TS),
        (NONCE, str(TS), True, FRESH_TS),
    ],
)
def test_make_replaces_invalid_nonce_or_ts(
    nonce: Any, ts: Any, kept_nonce: bool, expected_ts: bytes
) -> None:
    plugin = HMACAuthPlugin({"secret": SECRET, "max_skew": None}, clock=fixed_clock)
    fields = AuthFields({"nonce": nonce, "ts": ts})
    body = Body.prepare(b"data")
    plugin.make(fields, body)
    new_nonce = fields.fields["nonce"]
    assert isinstance(new_nonce, bytes)
    assert len(new_nonce) == 16
    assert (new_nonce == NONCE) is kept_nonce
    assert fields.fields["ts"] == expected_ts
    assert plugin.check(fields, body)


def test_make_keeps_an_int_ts_and_stores_it_as_four_bytes() -> None:
    plugin = HMACAuthPlugin({"secret": SECRET, "max_skew": None}, clock=fixed_clock)
    fields = AuthFields({"nonce": NONCE, "ts": TS})
    plugin.make(fields, Body.prepare(b"hello, world", b"greet"))
    assert fields.fields["ts"] == TS.to_bytes(4, "big")
    assert fields.fields["hmac"] == expected_mac(SECRET, NONCE, TS, b"greet", b"hello, world")


def test_check_accepts_ts_as_int_or_bytes_alike() -> None:
    plugin = HMACAuthPlugin({"secret": SECRET, "max_skew": None})
    mac = expected_mac(SECRET, NONCE, TS, b"greet", b"hello, world")
    body = Body.prepare(b"hello, world", b"greet")
    assert plugin.check(AuthFields({"nonce": NONCE, "ts": TS, "hmac": mac}), body)
    assert plugin.check(
        AuthFields({"nonce": NONCE, "ts": TS.to_bytes(4, "big"), "hmac": mac}), body
    )
    assert not plugin.check(AuthFields({"nonce": NONCE, "ts": TS + 1, "hmac": mac}), body)


def flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


def test_tampered_body_fails() -> None:
    plugin = HMACAuthPlugin({"secret": SECRET})
    message = signed(plugin)
    fields = message.auth_data
    assert plugin.check(fields, message.body)
    assert not plugin.check(fields, Body.prepare(b"hello, world!", b"greet"))
    assert not plugin.check(fields, Body.prepare(b"hello, World", b"greet"))
    assert not plugin.check(fields, Body.prepare(b"hello, world", b"greep"))
    assert not plugin.check(fields, Body.prepare(b"", b"greethello, world"))


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("nonce", lambda v: flip(v)),
        ("nonce", lambda v: flip(v, 15)),
        ("ts", lambda v: (int.from_bytes(v, "big") + 1).to_bytes(4, "big")),
        ("ts", lambda v: flip(v, 3)),
        ("hmac", lambda v: flip(v)),
        ("hmac", lambda v: flip(v, 31)),
        ("hmac", lambda v: v[:-1]),
        ("hmac", lambda v: v + b"\x00"),
        ("hmac", lambda v: b""),
    ],
)
def test_tampered_fields_fail(field: str, change: Any) -> None:
    plugin = HMACAuthPlugin({"secret": SECRET})
    message = signed(plugin)
    fields = message.auth_data.fields
    fields[field] = change(fields[field])
    assert plugin.check(message.auth_data, message.body) is False


def test_bytes_cannot_move_between_nonce_ts_and_body() -> None:
    """nonce || ts || body is only unambiguous because nonce and ts have
    fixed sizes: a re-split of a genuine message into a longer nonce and a
    shorter body (here, another uri) must fail."""
    plugin = HMACAuthPlugin({"secret": SECRET})
    genuine = signed(plugin, bytes(range(256)) * 2, b"\x00")
    fields = genuine.auth_data.fields
    nonce, ts = fields["nonce"], fields["ts"]
    assert isinstance(nonce, bytes)
    assert isinstance(ts, bytes)
    encoded = genuine.body.encode()
    shifted = Body.decode(encoded[1:])
    assert shifted.uri == bytes(range(256))
    new_nonce, new_ts = nonce + ts[:1], ts[1:] + encoded[:1]
    assert new_nonce + new_ts + shifted.encode() == nonce + ts + encoded  # same MAC input
    forged = AuthFields({"nonce": new_nonce, "ts": new_ts, "hmac": fields["hmac"]})
    assert plugin.check(forged, shifted) is False


def test_wrong_secret_fails() -> None:
    message = signed(HMACAuthPlugin({"secret": SECRET}))
    assert not HMACAuthPlugin({"secret": SECRET + b"x"}).check(message.auth_data, message.body)
    assert not HMACAuthPlugin({"secret": SECRET[:-1]}).check(message.auth_data, message.body)


@pytest.mark.parametrize("missing", ["nonce", "ts", "hmac"])
def test_missing_field_fails(missing: str) -> None:
    plugin = HMACAuthPlugin({"secret": SECRET})
    message = signed(plugin)
    del message.auth_data.fields[missing]
    assert plugin.check(message.auth_data, message.body) is False


def test_empty_fields_fail() -> None:
    plugin = HMACAuthPlugin({"secret": SECRET})
    assert plugin.check(AuthFields({}), Body.prepare(b"x")) is False


WRONG_VALUES: dict[str, list[Any]] = {
    "nonce": [None, 0, 2**200, NONCE.hex(), bytearray(NONCE), [NONCE], NONCE[:15], NONCE * 2],
    "ts": [None, "1700000000", float(TS), True, -1, 2**32, b"\x00" * 3, b"\x00" * 5, [TS]],
    "hmac": [None, 0, "x" * 32, bytearray(32), memoryview(b"x" * 32), [b"x"], b"", b"x" * 33],
}


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in WRONG_VALUES.items() for v in values]
)
def test_wrong_typed_or_sized_field_fails(field: str, value: Any) -> None:
    plugin = HMACAuthPlugin({"secret": SECRET})
    message = signed(plugin)
    message.auth_data.fields[field] = value
    assert plugin.check(message.auth_data, message.body) is False


junk_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=32, max_size=32),
    st.lists(st.binary(max_size=4), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
junk_keys = st.one_of(st.sampled_from(["nonce", "ts", "hmac"]), st.text(max_size=8))


@given(st.dictionaries(junk_keys, junk_values, max_size=6), st.binary(max_size=64))
def test_check_never_raises_on_junk(junk: dict[str, Any], content: bytes) -> None:
    plugin = HMACAuthPlugin({"secret": SECRET})
    body = Body.prepare(content)
    assert plugin.check(AuthFields(junk), body) is False
    # make() repairs whatever it finds, and the result then passes.
    plugin.make(AuthFields(junk), body)
    assert plugin.check(AuthFields(junk), body) is True


@given(st.sampled_from(["nonce", "ts", "hmac"]), junk_values)
def test_one_junk_field_in_a_signed_message_fails(field: str, value: Any) -> None:
    plugin = HMACAuthPlugin({"secret": SECRET})
    message = signed(plugin)
    original = message.auth_data.fields[field]
    assume(not (type(value) is type(original) and value == original))
    message.auth_data.fields[field] = value
    assert plugin.check(message.auth_data, message.body) is False


def test_two_plugins_sign_one_message() -> None:
    instance = HMACAuthPlugin({"secret": b"endpoint", "max_skew": None})
    handler = HMACAuthPlugin(
        {
            "secret": b"admin",
            "hmac_field": "admin_hmac",
            "nonce_field": "admin_nonce",
            "ts_field": "admin_ts",
            "max_skew": None,  # checks one message several times
        }
    )
    message = Message.prepare(Body.prepare(b"drop table", b"admin"))
    instance.make(message.auth_data, message.body)
    handler.make(message.auth_data, message.body)
    assert set(message.auth_data.fields) == {
        "hmac",
        "nonce",
        "ts",
        "admin_hmac",
        "admin_nonce",
        "admin_ts",
    }
    assert instance.check(message.auth_data, message.body)
    assert handler.check(message.auth_data, message.body)
    # Each signature stands on its own: breaking one leaves the other valid.
    admin_mac = message.auth_data.fields["admin_hmac"]
    assert isinstance(admin_mac, bytes)
    message.auth_data.fields["admin_hmac"] = flip(admin_mac)
    assert instance.check(message.auth_data, message.body)
    assert not handler.check(message.auth_data, message.body)
    # ... and a plugin with the other's secret but its own field names fails.
    impostor = HMACAuthPlugin({"secret": b"endpoint", "hmac_field": "admin_hmac"})
    assert not impostor.check(message.auth_data, message.body)


def test_two_plugins_may_share_nonce_and_ts_with_replay_protection_off() -> None:
    first = HMACAuthPlugin({"secret": b"one", "max_skew": None})
    second = HMACAuthPlugin({"secret": b"two", "hmac_field": "hmac2", "max_skew": None})
    message = signed(first)
    second.make(message.auth_data, message.body)
    assert first.check(message.auth_data, message.body)
    assert second.check(message.auth_data, message.body)


def test_a_shared_nonce_field_breaks_the_first_signature_by_default() -> None:
    """Documented pitfall: with replay protection, make() replaces the nonce and ts."""
    first = HMACAuthPlugin({"secret": b"one"})
    second = HMACAuthPlugin({"secret": b"two", "hmac_field": "hmac2"})
    message = signed(first)
    second.make(message.auth_data, message.body)
    assert not first.check(message.auth_data, message.body)
    assert second.check(message.auth_data, message.body)


def test_wire_round_trip() -> None:
    plugin = HMACAuthPlugin({"secret": SECRET})
    message = signed(plugin, b"\x00payload\xff", b"topic/1")
    decoded = Message.decode(message.encode())
    assert decoded.auth_data.fields == message.auth_data.fields
    assert plugin.check(decoded.auth_data, decoded.body) is True
    assert HMACAuthPlugin({"secret": b"other"}).check(decoded.auth_data, decoded.body) is False


def test_wire_round_trip_of_a_body_changed_in_transit() -> None:
    """A re-encoded frame (fresh checksum) with another body fails the MAC."""
    plugin = HMACAuthPlugin({"secret": SECRET})
    message = signed(plugin, b"pay 10", b"bank")
    message.body.content = b"pay 99"
    decoded = Message.decode(message.encode())
    assert decoded.check()
    assert plugin.check(decoded.auth_data, decoded.body) is False


def test_message_type_is_not_covered() -> None:
    """Documented limitation: the header is outside the MAC."""
    plugin = HMACAuthPlugin({"secret": SECRET})
    message = signed(plugin, b"alice", b"users")
    message.header.message_type = MessageType.DELETE_URI
    decoded = Message.decode(message.encode())
    assert decoded.header.message_type is MessageType.DELETE_URI
    assert plugin.check(decoded.auth_data, decoded.body) is True


@pytest.mark.parametrize("config", [{}, {"max_skew": 60}])
def test_macs_are_compared_in_constant_time(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    plugin = HMACAuthPlugin({"secret": SECRET, **config})
    message = signed(plugin)
    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert plugin.check(message.auth_data, message.body)
    assert calls == [(message.auth_data.fields["hmac"],) * 2]


def test_error_is_a_fresh_auth_error() -> None:
    plugin = HMACAuthPlugin({"secret": SECRET})
    error = plugin.error()
    assert error.header.message_type is MessageType.AUTH_ERROR
    assert error.body.content == b"HMAC auth failed"
    assert plugin.error() is not error


def test_satisfies_and_reexports_the_protocol() -> None:
    assert netaio_auth.AuthPluginProtocol is netaio_core.AuthPluginProtocol
    plugin: AuthPluginProtocol = HMACAuthPlugin({"secret": SECRET})
    assert isinstance(plugin, netaio_auth.AuthPluginProtocol)
    assert HMACAuthPlugin.__annotations__["secret"] in (bytes, "bytes")
