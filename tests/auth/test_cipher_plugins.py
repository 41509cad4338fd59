"""AEADCipherPlugin and X25519CipherPlugin as units: round trips, wrong keys,
config errors, key rotation, encrypt_uri, ephemeral keys, the replay window
and truncated input (netaio-auth[crypto])."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("cryptography")

from netaio_auth import AEADCipherPlugin, CipherError, ReplayWindow, X25519CipherPlugin
from netaio_core import AuthFields, Body, Message, MessageType
from netaio_core.binding import FROM_CLIENT, FROM_SERVER, ROUTE_FIELD, set_route

START = 1_700_000_000.0
CONTENT = b"the secret content"
URI = b"accounts/7"


class FakeClock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def message(
    content: bytes = CONTENT,
    uri: bytes = URI,
    message_type: MessageType = MessageType.REQUEST_URI,
    cid: int | None = 7,
    direction: int | None = FROM_CLIENT,
) -> Message:
    """A message as an endpoint seals it: correlation id, then ``rt``."""
    fields: dict[str, Any] = {} if cid is None else {"cid": cid}
    result = Message.prepare(Body.prepare(content, uri), message_type, AuthFields(fields))
    if direction is not None:
        set_route(result, direction)
    return result


def wire(sealed: Message) -> Message:
    """The message as the receiver decodes it."""
    return Message.decode(sealed.encode())


def aead(secret: str | bytes = "k" * 32, **config: Any) -> AEADCipherPlugin:
    return AEADCipherPlugin({"secret": secret, **config})


def x25519(**config: Any) -> X25519CipherPlugin:
    config.setdefault("private_key", X25519CipherPlugin.generate_private_key())
    return X25519CipherPlugin(config)


def pair(**config: Any) -> tuple[X25519CipherPlugin, X25519CipherPlugin]:
    """A client plugin that encrypts for the server's key, and the server's."""
    server = x25519(**config)
    client = x25519(peer_public_key=server.public_key, **config)
    return client, server


def with_content(sealed: Message, content: bytes) -> Message:
    """``sealed`` with its content replaced (same type, uri, auth fields)."""
    return Message.prepare(
        Body.prepare(content, sealed.body.uri), sealed.header.message_type, sealed.auth_data
    )


# -- round trips -------------------------------------------------------------


@pytest.mark.parametrize("cid", [7, None])
@pytest.mark.parametrize("content", [b"", CONTENT, bytes(range(256)) * 40])
def test_aead_round_trip(content: bytes, cid: int | None) -> None:
    sender, receiver = aead(), aead()
    sealed = sender.encrypt(message(content, cid=cid))
    assert content not in sealed.body.content or not content
    assert sealed.body.uri == URI
    opened = receiver.decrypt(wire(sealed))
    assert (opened.body.uri, opened.body.content) == (URI, content)
    assert opened.header.message_type is MessageType.REQUEST_URI
    assert opened.auth_data.fields.get("cid") == cid


def test_aead_round_trip_without_a_route_field() -> None:
    """A message with no ``rt`` (a plugin used outside an endpoint) works:
    its associated data has an empty rt."""
    sender, receiver = aead(), aead()
    sealed = sender.encrypt(message(direction=None))
    assert ROUTE_FIELD not in sealed.auth_data.fields
    assert receiver.decrypt(wire(sealed)).body.content == CONTENT


def test_each_encryption_is_fresh() -> None:
    plugin = aead()
    first, second = (plugin.encrypt(message()).body.content for _ in range(2))
    assert first != second
    assert first[-len(CONTENT) - 16 :] != second[-len(CONTENT) - 16 :]


def test_aead_content_layout() -> None:
    """version 1 || u8 len(kid) || kid || u32 ts || 12-byte nonce || ciphertext+tag."""
    clock = FakeClock()
    sealed = AEADCipherPlugin({"secret": "k"}, clock=clock).encrypt(message())
    data = sealed.body.content
    assert data[0] == 1
    assert data[1] == 0  # one secret: an empty key id
    assert int.from_bytes(data[2:6], "big") == int(START)
    assert len(data) == 1 + 1 + 4 + 12 + len(CONTENT) + 16


def test_x25519_round_trip_both_ways() -> None:
    client, server = pair()
    peer: dict[str, Any] = {}
    opened = server.decrypt(wire(client.encrypt(message())), peer)
    assert opened.body.content == CONTENT
    assert peer[X25519CipherPlugin.PEER_KEY] == client.public_key
    # The server answers with the key it learned from the client's message.
    reply = message(b"answer", message_type=MessageType.RESPOND_URI, direction=FROM_SERVER)
    assert client.decrypt(wire(server.encrypt(reply, peer))).body.content == b"answer"


def test_x25519_private_key_object_is_accepted() -> None:
    from cryptography.hazmat.primitives.asymmetric import x25519 as x

    key = x.X25519PrivateKey.generate()
    server = X25519CipherPlugin({"private_key": key})
    client = x25519(peer_public_key=server.public_key)
    assert server.decrypt(wire(client.encrypt(message())), {}).body.content == CONTENT


def test_x25519_server_without_a_peer_key_cannot_encrypt() -> None:
    _, server = pair()
    with pytest.raises(CipherError, match="peer_public_key"):
        server.encrypt(message(direction=FROM_SERVER), {})
    with pytest.raises(CipherError):
        server.encrypt(message(direction=FROM_SERVER), None)


def test_x25519_keys_differ_per_peer_pair() -> None:
    """A third party's key pair cannot read a message for the server."""
    client, server = pair()
    other = x25519()
    sealed = wire(client.encrypt(message()))
    with pytest.raises(CipherError):
        other.decrypt(sealed, {})
    assert server.decrypt(sealed, {}).body.content == CONTENT


# -- wrong keys and tampering ----------------------------------------------------


def test_aead_wrong_key_is_a_cipher_error() -> None:
    sealed = wire(aead("one secret").encrypt(message()))
    with pytest.raises(CipherError):
        aead("another secret").decrypt(sealed)


def test_x25519_trusted_public_keys() -> None:
    server = x25519()
    trusted = x25519(peer_public_key=server.public_key)
    stranger = x25519(peer_public_key=server.public_key)
    guarded = X25519CipherPlugin(
        {
            "private_key": X25519CipherPlugin._private_bytes(server._private),
            "trusted_public_keys": [trusted.public_key],
        }
    )
    assert guarded.decrypt(wire(trusted.encrypt(message())), {}).body.content == CONTENT
    peer: dict[str, Any] = {}
    with pytest.raises(CipherError, match="untrusted"):
        guarded.decrypt(wire(stranger.encrypt(message())), peer)
    assert peer == {}  # the refused sender's key is not learned


def test_x25519_client_refuses_another_server() -> None:
    client, _ = pair()
    impostor = x25519()
    reply = message(b"x", message_type=MessageType.RESPOND_URI, direction=FROM_SERVER)
    forged = impostor.encrypt(reply, {X25519CipherPlugin.PEER_KEY: client.public_key})
    with pytest.raises(CipherError, match="another public key"):
        client.decrypt(wire(forged))


@pytest.mark.parametrize("change", ["type", "cid", "direction", "uri", "rt", "content"])
def test_what_the_tag_covers(change: str) -> None:
    sender, receiver = aead(), aead()
    sealed = wire(sender.encrypt(message()))
    fields = sealed.auth_data.fields
    if change == "type":  # rt keeps the old type: the AD differs once rt is redone
        sealed = Message.prepare(sealed.body, MessageType.DELETE_URI, sealed.auth_data)
        set_route(sealed, FROM_CLIENT)
    elif change == "cid":
        fields["cid"] = 8
        set_route(sealed, FROM_CLIENT)
    elif change == "direction":
        set_route(sealed, FROM_SERVER)
    elif change == "uri":
        sealed = Message.prepare(Body.prepare(sealed.body.content, b"accounts/8"))
        sealed.auth_data.fields.update(fields)
    elif change == "rt":
        del fields[ROUTE_FIELD]
    else:
        data = bytearray(sealed.body.content)
        data[-1] ^= 1
        sealed = with_content(sealed, bytes(data))
    with pytest.raises(CipherError):
        receiver.decrypt(wire(sealed))


KINDS = ["aead", "aead_uri", "x25519", "x25519_ephemeral"]


def sender_receiver(kind: str) -> tuple[Any, Any]:
    """A sender and a receiver of one kind of cipher plugin."""
    if kind.startswith("aead"):
        uri = kind == "aead_uri"
        return aead(encrypt_uri=uri), aead(encrypt_uri=uri)
    return pair(ephemeral=kind == "x25519_ephemeral")


@pytest.mark.parametrize("kind", KINDS)
def test_every_flipped_bit_of_the_content_is_refused(kind: str) -> None:
    sender, receiver = sender_receiver(kind)
    sealed = wire(sender.encrypt(message(b"tiny")))
    data = sealed.body.content
    for bit in range(len(data) * 8):
        mutated = bytearray(data)
        mutated[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(CipherError):
            receiver.decrypt(with_content(sealed, bytes(mutated)), {})
    assert receiver.decrypt(sealed, {}).body.content == b"tiny"


# -- truncated input --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_truncation_is_a_cipher_error(kind: str) -> None:
    sender, receiver = sender_receiver(kind)
    sealed = wire(sender.encrypt(message()))
    data = sealed.body.content
    for size in range(len(data)):
        with pytest.raises(CipherError):
            receiver.decrypt(with_content(sealed, data[:size]), {})
    assert receiver.decrypt(sealed, {}).body.content == CONTENT


@pytest.mark.parametrize("content", [b"", b"\x00", b"\x01", b"\x02", b"\x03", b"\xff" * 80])
def test_junk_content_is_a_cipher_error(content: bytes) -> None:
    for plugin in (aead(), x25519()):
        with pytest.raises(CipherError):
            plugin.decrypt(message(content), {})


@pytest.mark.parametrize("ephemeral", [False, True])
def test_a_low_order_public_key_is_a_cipher_error(ephemeral: bool) -> None:
    """An all-zero (low-order) X25519 key in the header: X25519 refuses it
    ("Error computing shared key"); decrypt() must say CipherError, as for
    anything else it cannot authenticate."""
    server = x25519()
    real = x25519(peer_public_key=server.public_key, ephemeral=ephemeral)
    data = bytearray(real.encrypt(message()).body.content)
    if ephemeral:
        data[33:65] = bytes(32)  # the one-time key
    else:
        data[1:33] = bytes(32)  # the sender's key
    with pytest.raises(CipherError):
        server.decrypt(with_content(message(), bytes(data)), {})


# -- config errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "error", "match"),
    [
        ({}, TypeError, '"secret"'),
        ({"secret": ""}, TypeError, '"secret"'),
        ({"secret": b""}, TypeError, '"secret"'),
        ({"secret": 5}, TypeError, '"secret"'),
        ({"secret": "k", "secret_typo": 1}, ValueError, "secret_typo"),
        ({"secrets": {}, "key_id": "a"}, TypeError, '"secrets"'),
        ({"secrets": [("a", "k")], "key_id": "a"}, TypeError, '"secrets"'),
        ({"secrets": {"a": "k"}}, TypeError, '"key_id"'),
        ({"secrets": {"a": "k"}, "key_id": "b"}, ValueError, '"key_id"'),
        ({"secrets": {"a": ""}, "key_id": "a"}, TypeError, "secret"),
        ({"secret": "k", "encrypt_uri": 1}, TypeError, '"encrypt_uri"'),
        ({"secret": "k", "max_skew": 0}, ValueError, '"max_skew"'),
        ({"secret": "k", "max_skew": -1}, ValueError, '"max_skew"'),
        ({"secret": "k", "max_skew": True}, TypeError, '"max_skew"'),
        ({"secret": "k", "max_skew": float("inf")}, ValueError, '"max_skew"'),
        ({"secret": "k", "max_skew": float("nan")}, ValueError, '"max_skew"'),
        ({"secret": "k", "max_skew": "30"}, TypeError, '"max_skew"'),
        ({"secret": "k", "replay_cache_size": 0}, ValueError, '"replay_cache_size"'),
        ({"secret": "k", "replay_cache_size": 1.5}, TypeError, '"replay_cache_size"'),
        ({"secret": "k", "replay_cache_size": True}, TypeError, '"replay_cache_size"'),
    ],
)
def test_aead_config_errors(config: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        AEADCipherPlugin(config)


@pytest.mark.parametrize(
    "config",
    [
        {"secret": "k", "secrets": {"a": "k2"}, "key_id": "a"},
        {"secret": "k", "key_id": "a"},
    ],
)
def test_aead_contradictory_keys_are_refused(config: dict[str, Any]) -> None:
    """As HMACAuthPlugin does: "secret" with "secrets", or "key_id" without
    "secrets", is a ValueError rather than one of them silently ignored."""
    with pytest.raises(ValueError):
        AEADCipherPlugin(config)


def test_x25519_config_errors() -> None:
    good = X25519CipherPlugin.generate_private_key()
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({}, TypeError, '"private_key"'),
        ({"private_key": b""}, TypeError, '"private_key"'),
        ({"private_key": 5}, TypeError, '"private_key"'),
        ({"private_key": good, "peer_public_key": b"short"}, TypeError, "32 bytes"),
        ({"private_key": good, "peer_public_key": "x" * 32}, TypeError, "32 bytes"),
        ({"private_key": good, "trusted_public_keys": bytes(32)}, TypeError, "iterable"),
        ({"private_key": good, "trusted_public_keys": [b"short"]}, TypeError, "32 bytes"),
        ({"private_key": good, "ephemeral": 1}, TypeError, '"ephemeral"'),
        ({"private_key": good, "encrypt_uri": "yes"}, TypeError, '"encrypt_uri"'),
        ({"private_key": good, "max_skew": 0}, ValueError, '"max_skew"'),
        ({"private_key": good, "replay_cache_size": 0}, ValueError, '"replay_cache_size"'),
        ({"private_key": good, "secret": "k"}, ValueError, "secret"),
    ]
    for config, error, match in cases:
        with pytest.raises(error, match=match):
            X25519CipherPlugin(config)
    with pytest.raises(ValueError):
        X25519CipherPlugin({"private_key": b"\x01" * 31})  # not 32 bytes


def test_defaults() -> None:
    plugin = aead()
    assert plugin.encrypt_uri is False
    assert plugin.binds_routing is True
    assert plugin._window is not None
    assert plugin._window.max_skew == 300
    assert plugin._window.size == 65_536
    assert aead(max_skew=None)._window is None
    assert x25519().ephemeral is False


# -- key rotation -------------------------------------------------------------------


def test_aead_key_rotation() -> None:
    old = AEADCipherPlugin({"secrets": {"2024": "old secret"}, "key_id": "2024"})
    both_old = AEADCipherPlugin(
        {"secrets": {"2024": "old secret", "2025": "new secret"}, "key_id": "2024"}
    )
    both_new = AEADCipherPlugin(
        {"secrets": {"2024": "old secret", "2025": "new secret"}, "key_id": "2025"}
    )
    new = AEADCipherPlugin({"secrets": {"2025": "new secret"}, "key_id": "2025"})
    # Step 1: the new secret is added everywhere; old messages still pass.
    assert both_new.decrypt(wire(old.encrypt(message()))).body.content == CONTENT
    # Step 2: senders switch; peers that know both read them.
    sealed = both_new.encrypt(message())
    assert sealed.body.content[1:6] == b"\x042025"  # the key id travels in clear
    assert both_old.decrypt(wire(sealed)).body.content == CONTENT
    assert new.decrypt(wire(sealed)).body.content == CONTENT
    # Step 3: the old secret is removed; its messages are refused.
    with pytest.raises(CipherError, match="unknown key id"):
        new.decrypt(wire(both_old.encrypt(message())))
    with pytest.raises(CipherError, match="unknown key id"):
        old.decrypt(wire(sealed))


def test_aead_key_ids_do_not_share_keys() -> None:
    """Changing the key id in the header to another listed id fails the tag."""
    plugin = AEADCipherPlugin({"secrets": {"a": "secret a", "b": "secret b"}, "key_id": "a"})
    sealed = wire(plugin.encrypt(message()))
    data = bytearray(sealed.body.content)
    assert data[1:3] == b"\x01a"
    data[2] = ord("b")
    with pytest.raises(CipherError):
        plugin.decrypt(with_content(sealed, bytes(data)))


def test_one_secret_and_key_ids_are_the_same_key_derivation() -> None:
    """The key is HKDF of the secret whatever its id: a plugin with one secret
    reads a message only when the key id matches (empty for one secret)."""
    single = aead("shared secret")
    listed = AEADCipherPlugin({"secrets": {"x": "shared secret"}, "key_id": "x"})
    with pytest.raises(CipherError, match="unknown key id"):
        single.decrypt(wire(listed.encrypt(message())))


# -- encrypt_uri ----------------------------------------------------------------------


def test_encrypt_uri_hides_the_uri() -> None:
    sender, receiver = aead(encrypt_uri=True), aead(encrypt_uri=True)
    sealed = sender.encrypt(message())
    assert sealed.body.uri == b""
    data = sealed.encode()
    assert URI not in data
    assert CONTENT not in data
    opened = receiver.decrypt(wire(sealed))
    assert (opened.body.uri, opened.body.content) == (URI, CONTENT)


def test_encrypt_uri_long_uri_and_x25519() -> None:
    client, server = pair(encrypt_uri=True)
    uri = b"u" * 1000
    sealed = client.encrypt(message(uri=uri))
    assert sealed.body.uri == b""
    opened = server.decrypt(wire(sealed), {})
    assert (opened.body.uri, opened.body.content) == (uri, CONTENT)


def test_without_encrypt_uri_the_uri_is_covered_but_in_clear() -> None:
    sealed = aead().encrypt(message())
    assert sealed.body.uri == URI
    assert URI in sealed.encode()


# -- ephemeral ---------------------------------------------------------------------------


def test_ephemeral_messages() -> None:
    client, server = pair(ephemeral=True)
    first = client.encrypt(message()).body.content
    second = client.encrypt(message()).body.content
    assert first[0] == second[0] == 3
    assert first[1:33] == second[1:33] == client.public_key  # the static key
    assert first[33:65] != second[33:65]  # a fresh one-time key each time
    peer: dict[str, Any] = {}
    assert server.decrypt(with_content(message(), first), peer).body.content == CONTENT
    assert server.decrypt(with_content(message(), second), peer).body.content == CONTENT
    assert peer[X25519CipherPlugin.PEER_KEY] == client.public_key


def test_ephemeral_and_static_peers_talk() -> None:
    """The version byte says which: a static plugin reads an ephemeral
    message and the other way round."""
    server = x25519()
    ephemeral = x25519(peer_public_key=server.public_key, ephemeral=True)
    peer: dict[str, Any] = {}
    assert server.decrypt(wire(ephemeral.encrypt(message())), peer).body.content == CONTENT
    reply = message(b"back", message_type=MessageType.RESPOND_URI, direction=FROM_SERVER)
    assert ephemeral.decrypt(wire(server.encrypt(reply, peer))).body.content == b"back"


def test_ephemeral_key_is_not_the_static_key() -> None:
    """An ephemeral message does not open with the static pair's key alone:
    swapping its version byte to the static form fails."""
    client, server = pair(ephemeral=True)
    data = bytearray(client.encrypt(message()).body.content)
    static = bytes((2,)) + bytes(data[1:33]) + bytes(data[65:])
    with pytest.raises(CipherError):
        server.decrypt(with_content(message(), static), {})


# -- the replay window --------------------------------------------------------------------


@pytest.mark.parametrize("make", ["aead", "x25519"])
def test_replay_is_refused_by_default(make: str) -> None:
    clock = FakeClock()
    if make == "aead":
        sender = AEADCipherPlugin({"secret": "k"}, clock=clock)
        receiver: Any = AEADCipherPlugin({"secret": "k"}, clock=clock)
    else:
        receiver = X25519CipherPlugin(
            {"private_key": X25519CipherPlugin.generate_private_key()}, clock=clock
        )
        sender = X25519CipherPlugin(
            {
                "private_key": X25519CipherPlugin.generate_private_key(),
                "peer_public_key": receiver.public_key,
            },
            clock=clock,
        )
    sealed = wire(sender.encrypt(message()))
    assert receiver.decrypt(sealed, {}).body.content == CONTENT
    with pytest.raises(CipherError, match="replayed"):
        receiver.decrypt(wire(sealed), {})
    assert receiver.decrypt(wire(sender.encrypt(message())), {}).body.content == CONTENT


def test_stale_and_future_messages_are_refused() -> None:
    clock = FakeClock()
    sender = AEADCipherPlugin({"secret": "k"}, clock=clock)
    receiver = AEADCipherPlugin({"secret": "k", "max_skew": 30}, clock=clock)
    sealed = wire(sender.encrypt(message()))
    clock.now = START + 31
    with pytest.raises(CipherError, match="stale"):
        receiver.decrypt(sealed)
    clock.now = START - 31
    with pytest.raises(CipherError, match="stale"):
        receiver.decrypt(sealed)
    clock.now = START + 30  # the bound is inclusive; the stale tries left no trace
    assert receiver.decrypt(sealed).body.content == CONTENT


def test_default_skew_is_300_seconds() -> None:
    clock = FakeClock()
    sender = AEADCipherPlugin({"secret": "k"}, clock=clock)
    receiver = AEADCipherPlugin({"secret": "k"}, clock=clock)
    clock.now = START - 300
    early = wire(sender.encrypt(message()))
    clock.now = START - 301
    late = wire(sender.encrypt(message()))
    clock.now = START
    assert receiver.decrypt(early).body.content == CONTENT
    with pytest.raises(CipherError):
        receiver.decrypt(late)


def test_without_max_skew_a_replay_is_accepted() -> None:
    plugin = aead(max_skew=None)
    sealed = wire(plugin.encrypt(message()))
    for _ in range(3):
        assert plugin.decrypt(sealed).body.content == CONTENT


def test_a_forgery_does_not_enter_the_window() -> None:
    """Only authenticated messages advance the window: a forged copy with the
    nonce of a genuine message does not block the genuine one."""
    receiver = aead()
    sealed = wire(aead().encrypt(message()))
    data = bytearray(sealed.body.content)
    data[-1] ^= 0x80
    for _ in range(3):
        with pytest.raises(CipherError, match="decryption"):
            receiver.decrypt(with_content(sealed, bytes(data)))
    assert receiver._window is not None
    assert not receiver._window._seen
    assert receiver.decrypt(sealed).body.content == CONTENT


def test_a_full_window_never_lets_a_replay_through() -> None:
    clock = FakeClock()
    sender = AEADCipherPlugin({"secret": "k"}, clock=clock)
    receiver = AEADCipherPlugin({"secret": "k", "replay_cache_size": 2}, clock=clock)
    sent = []
    for step in range(5):
        clock.now = START + step
        sent.append(wire(sender.encrypt(message())))
    clock.now = START + 5
    for sealed in sent:
        assert receiver.decrypt(sealed).body.content == CONTENT
    for sealed in sent:  # two remembered, three below the horizon: all refused
        with pytest.raises(CipherError):
            receiver.decrypt(wire(sealed))


def test_replay_window_unit() -> None:
    clock = FakeClock()
    window = ReplayWindow(10, 3, clock)
    assert window.fresh(b"a", int(START))
    window.remember(b"a", int(START))
    assert not window.fresh(b"a", int(START))
    assert not window.fresh(b"b", int(START) + 11)
    assert not window.fresh(b"b", int(START) - 11)
    clock.now = START + 11  # "a" ages out, and its ts becomes the horizon
    window.remember(b"c", int(START) + 11)
    assert b"a" not in window._seen
    assert not window.fresh(b"a", int(START))
    clock.now = float("nan")
    assert not window.fresh(b"z", int(START))
