"""Cipher plugins: authenticated encryption of message bodies.

Both plugins use ChaCha20-Poly1305 (RFC 8439) from the ``cryptography``
package (``pip install "netaio-auth[crypto]"``), with keys derived by
HKDF-SHA256 (RFC 5869), a fresh random 96-bit nonce per message, and replay
protection on by default. The encrypted content replaces the body's content::

    content = version (1) || key part || ts (u32) || nonce (12) || ciphertext+tag

and the associated data, which the tag covers, is::

    b"netaio-cipher-1" || u16 len(rt) || rt || u16 len(uri) || uri || version .. nonce

``rt`` is the routing field (message type, direction, correlation id: see
``netaio_core.binding``), which a netaio endpoint sets and checks whenever a
cipher plugin is in use; ``uri`` is the wire uri. With ``encrypt_uri`` the
plaintext is ``u16 len(uri) || uri || content`` and the wire uri is empty (so
only the endpoint's own cipher, not a handler's, may encrypt the uri: routing
needs it). ``decrypt`` raises ``CipherError`` for anything it cannot
authenticate; the receiver answers AUTH_ERROR.

The ``cryptography`` package is imported when a plugin is made, so that
``netaio_auth`` imports without it.
"""

from __future__ import annotations

import copy
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from struct import Struct
from typing import Any

from netaio_core import Header, MessageProtocol, NetaioError
from netaio_core.binding import ROUTE_FIELD
from netaio_core.protocols import PeerState

from .replay import replay_window

__all__ = ["AEADCipherPlugin", "CipherError", "X25519CipherPlugin"]

_AD_PREFIX = b"netaio-cipher-1"
_NONCE_SIZE = 12
_TS = Struct("!I")
_U16 = Struct("!H")
_AEAD_VERSION = 1
_X25519_VERSION = 2
_X25519_EPHEMERAL = 3


class CipherError(NetaioError):
    """A message could not be decrypted: tampered, replayed, or for
    another key."""


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers import aead
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'the cipher plugins need the "cryptography" package: pip install "netaio-auth[crypto]"'
        ) from exc
    return aead


def _hkdf(secret: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def _as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    if not isinstance(value, bytes) or not value:
        raise TypeError(f"{what} must be non-empty bytes or str")
    return value


def _check_keys(config: Mapping[str, Any], known: tuple[str, ...], name: str) -> None:
    unknown = sorted(str(key) for key in config if key not in known)
    if unknown:
        raise ValueError(f"{name} config has unknown keys {unknown}; known: {list(known)}")


class _BodyCipher(ABC):
    """The framing both plugins share: uri, ts, nonce, associated data,
    replay window. Subclasses choose the key (``_sealing_key``,
    ``_opening_key``) and the key part of the header."""

    binds_routing = True

    def __init__(self, config: Mapping[str, Any], clock: Callable[[], float], version: int) -> None:
        self._aead = _crypto()
        encrypt_uri = config.get("encrypt_uri", False)
        if not isinstance(encrypt_uri, bool):
            raise TypeError('cipher plugin config "encrypt_uri" must be a bool')
        self.encrypt_uri = encrypt_uri
        self._clock = clock
        self._window = replay_window(config, clock, type(self).__name__)
        self._version = version
        self._ciphers: dict[bytes, Any] = {}

    # -- what subclasses provide ------------------------------------------------

    @abstractmethod
    def _sealing_key(self, peer: PeerState | None) -> tuple[bytes, bytes]:
        """The key and the key part of the header, for an outgoing message."""

    @abstractmethod
    def _opening_key(
        self, version: int, data: bytes, pos: int, peer: PeerState | None
    ) -> tuple[bytes, int]:
        """The key for an incoming message and where its key part ends."""

    def _opened(self, peer: PeerState | None) -> None:  # noqa: B027 (optional hook)
        """A message was authenticated: what it teaches about the peer
        (nothing, unless a subclass says otherwise)."""

    # -- the shared part ---------------------------------------------------------

    def _cipher(self, key: bytes) -> Any:
        """The ChaCha20-Poly1305 object for ``key`` (made once per key)."""
        cipher = self._ciphers.get(key)
        if cipher is None:
            if len(self._ciphers) >= 4096:  # bounded: forget the oldest
                self._ciphers.pop(next(iter(self._ciphers)))
            cipher = self._ciphers[key] = self._aead.ChaCha20Poly1305(key)
        return cipher

    def encrypt(self, message: MessageProtocol, peer: PeerState | None = None) -> MessageProtocol:
        """Replace the body's content (and, with ``encrypt_uri``, its uri)
        with their encryption."""
        body = message.body
        key, key_part = self._sealing_key(peer)
        uri, content = body.uri, body.content
        if self.encrypt_uri:
            plaintext = _U16.pack(len(uri)) + uri + content
            uri = b""
        else:
            plaintext = content
        head = bytes((self._version,)) + key_part + _TS.pack(int(self._clock()) & 0xFFFFFFFF)
        head += os.urandom(_NONCE_SIZE)
        nonce = head[-_NONCE_SIZE:]
        ad = self._associated_data(message, uri, head)
        sealed = self._cipher(key).encrypt(nonce, plaintext, ad)
        return _rebuilt(message, head + sealed, uri)

    def decrypt(self, message: MessageProtocol, peer: PeerState | None = None) -> MessageProtocol:
        """The message with its content (and uri) decrypted; ``CipherError``
        for a message that was tampered with, replayed or is for another key."""
        body = message.body
        data = body.content
        if not data:
            raise CipherError("not an encrypted message")
        key, pos = self._opening_key(data[0], data, 1, peer)
        end = pos + 4 + _NONCE_SIZE
        if len(data) < end + 16:
            raise CipherError("encrypted message truncated")
        (sent,) = _TS.unpack_from(data, pos)
        nonce = data[end - _NONCE_SIZE : end]
        window = self._window
        if window is not None and not window.fresh(nonce, sent):
            raise CipherError("stale or replayed message")
        ad = self._associated_data(message, body.uri, data[:end])
        try:
            plaintext = self._cipher(key).decrypt(nonce, data[end:], ad)
        except Exception as exc:  # InvalidTag
            raise CipherError("message failed decryption (tampered, or another key)") from exc
        if window is not None:
            window.remember(nonce, sent)
        self._opened(peer)
        uri = body.uri
        if self.encrypt_uri:
            if len(plaintext) < 2:
                raise CipherError("encrypted uri truncated")
            (length,) = _U16.unpack_from(plaintext)
            uri, plaintext = plaintext[2 : 2 + length], plaintext[2 + length :]
        return _rebuilt(message, plaintext, uri)

    @staticmethod
    def _associated_data(message: MessageProtocol, uri: bytes, head: bytes) -> bytes:
        route = message.auth_data.fields.get(ROUTE_FIELD)
        rt = route if type(route) is bytes else b""
        return _AD_PREFIX + _U16.pack(len(rt)) + rt + _U16.pack(len(uri)) + uri + head


class AEADCipherPlugin(_BodyCipher):
    """Symmetric authenticated encryption with a shared secret.

    Config keys: ``secret`` (str or bytes; the key is HKDF-SHA256 of it), or
    ``secrets`` (dict key id -> secret) with ``key_id`` for rotation (the id
    travels in the header; any listed key decrypts); ``encrypt_uri`` (bool,
    default False); ``max_skew`` (seconds a message's ts may be off the
    receiver's clock, default 300; None turns replay protection off) and
    ``replay_cache_size`` (default 65,536). ``clock`` returns seconds since
    the epoch (for tests).
    """

    _CONFIG = ("secret", "secrets", "key_id", "encrypt_uri", "max_skew", "replay_cache_size")

    def __init__(
        self, config: Mapping[str, Any], *, clock: Callable[[], float] = time.time
    ) -> None:
        _check_keys(config, self._CONFIG, "AEADCipherPlugin")
        super().__init__(config, clock, _AEAD_VERSION)
        secrets = config.get("secrets")
        if secrets is not None and "secret" in config:
            raise ValueError('AEADCipherPlugin config takes "secret" or "secrets", not both')
        if secrets is None and "key_id" in config:
            raise ValueError('AEADCipherPlugin config "key_id" needs "secrets"')
        if secrets is None:
            self._keys = {b"": self._derive(_as_bytes(config.get("secret"), '"secret"'))}
            self._key_id = b""
        else:
            if not isinstance(secrets, Mapping) or not secrets:
                raise TypeError('AEADCipherPlugin "secrets" must be a non-empty dict')
            self._keys = {
                _as_bytes(kid, "a key id")[:255]: self._derive(_as_bytes(s, "a secret"))
                for kid, s in secrets.items()
            }
            self._key_id = _as_bytes(config.get("key_id"), '"key_id"')
            if self._key_id not in self._keys:
                raise ValueError('AEADCipherPlugin "key_id" must name one of "secrets"')

    @staticmethod
    def _derive(secret: bytes) -> bytes:
        return _hkdf(secret, b"netaio aead key 1")

    def _sealing_key(self, peer: PeerState | None) -> tuple[bytes, bytes]:
        kid = self._key_id
        return self._keys[kid], bytes((len(kid),)) + kid

    def _opening_key(
        self, version: int, data: bytes, pos: int, peer: PeerState | None
    ) -> tuple[bytes, int]:
        if version != _AEAD_VERSION or len(data) <= pos:
            raise CipherError("not a message of this cipher plugin")
        end = pos + 1 + data[pos]
        key = self._keys.get(data[pos + 1 : end])
        if key is None:
            raise CipherError("message for an unknown key id")
        return key, end


class X25519CipherPlugin(_BodyCipher):
    """Encryption with a key per pair of peers, from X25519 key pairs.

    Each side has a static key pair; the key of a pair of peers is
    HKDF-SHA256 of X25519(own private, peer public), bound to both public
    keys. The sender's public key travels in the header, so a server learns
    each client's key from its first message and answers with it (the
    connection's ``PeerState`` remembers it). With ``ephemeral`` the sender
    also makes a fresh key pair per message and mixes X25519(ephemeral,
    peer public) into the key: a message stays secret even if the sender's
    static key is stolen later.

    Config keys: ``private_key`` (32 raw bytes, or an ``X25519PrivateKey``;
    required), ``peer_public_key`` (32 bytes: the key to encrypt for; a
    client sets it to the server's), ``trusted_public_keys`` (iterable of
    32-byte keys: when given, only their messages are decrypted),
    ``ephemeral`` (bool, default False), ``encrypt_uri``, ``max_skew`` and
    ``replay_cache_size`` as for ``AEADCipherPlugin``.
    """

    _CONFIG = (
        "private_key",
        "peer_public_key",
        "trusted_public_keys",
        "ephemeral",
        "encrypt_uri",
        "max_skew",
        "replay_cache_size",
    )
    PEER_KEY = "x25519_public_key"
    """The ``PeerState`` entry holding the peer's public key."""

    def __init__(
        self, config: Mapping[str, Any], *, clock: Callable[[], float] = time.time
    ) -> None:
        _check_keys(config, self._CONFIG, "X25519CipherPlugin")
        ephemeral = config.get("ephemeral", False)
        if not isinstance(ephemeral, bool):
            raise TypeError('X25519CipherPlugin "ephemeral" must be a bool')
        super().__init__(config, clock, _X25519_EPHEMERAL if ephemeral else _X25519_VERSION)
        from cryptography.hazmat.primitives.asymmetric import x25519

        self._x25519 = x25519
        private = config.get("private_key")
        if isinstance(private, x25519.X25519PrivateKey):
            self._private = private
        else:
            self._private = x25519.X25519PrivateKey.from_private_bytes(
                _as_bytes(private, '"private_key"')
            )
        self.public_key = self._public_bytes(self._private.public_key())
        peer_key = config.get("peer_public_key")
        self.peer_public_key = None if peer_key is None else self._checked(peer_key)
        trusted = config.get("trusted_public_keys")
        self.trusted: frozenset[bytes] | None = (
            None if trusted is None else frozenset(self._checked(k) for k in _iterable(trusted))
        )
        self.ephemeral = ephemeral
        self._shared: dict[bytes, bytes] = {}  # peer public key -> static shared secret
        self._sender = b""

    @staticmethod
    def generate_private_key() -> bytes:
        """A new private key (32 raw bytes)."""
        from cryptography.hazmat.primitives.asymmetric import x25519

        return X25519CipherPlugin._private_bytes(x25519.X25519PrivateKey.generate())

    @staticmethod
    def _private_bytes(key: Any) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return key.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @staticmethod
    def _public_bytes(key: Any) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return key.public_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @staticmethod
    def _checked(key: object) -> bytes:
        if not isinstance(key, bytes) or len(key) != 32:
            raise TypeError("an X25519 public key is 32 bytes")
        return key

    def _static_secret(self, peer_key: bytes) -> bytes:
        shared = self._shared.get(peer_key)
        if shared is None:
            shared = self._exchange(self._private, peer_key)
            if len(self._shared) >= 4096:  # bounded: forget the oldest
                self._shared.pop(next(iter(self._shared)))
            self._shared[peer_key] = shared
        return shared

    def _exchange(self, private: Any, public_key: bytes) -> bytes:
        """X25519; a low-order or malformed public key is a ``CipherError``."""
        try:
            return private.exchange(  # type: ignore[no-any-return]
                self._x25519.X25519PublicKey.from_public_bytes(public_key)
            )
        except ValueError as exc:
            raise CipherError(f"unusable X25519 public key: {exc}") from exc

    def _key(self, sender: bytes, receiver: bytes, extra: bytes, ephemeral_key: bytes) -> bytes:
        peer = receiver if sender == self.public_key else sender
        info = b"netaio x25519 key 1" + sender + receiver + ephemeral_key
        return _hkdf(self._static_secret(peer) + extra, info)

    def _sealing_key(self, peer: PeerState | None) -> tuple[bytes, bytes]:
        receiver = self.peer_public_key
        if receiver is None and peer is not None:
            receiver = peer.get(self.PEER_KEY)
        if receiver is None:
            raise CipherError("no public key to encrypt for: set peer_public_key")
        if not self.ephemeral:
            return self._key(self.public_key, receiver, b"", b""), self.public_key
        one_time = self._x25519.X25519PrivateKey.generate()
        one_time_public = self._public_bytes(one_time.public_key())
        extra = self._exchange(one_time, receiver)
        key = self._key(self.public_key, receiver, extra, one_time_public)
        return key, self.public_key + one_time_public

    def _opening_key(
        self, version: int, data: bytes, pos: int, peer: PeerState | None
    ) -> tuple[bytes, int]:
        if version not in (_X25519_VERSION, _X25519_EPHEMERAL):
            raise CipherError("not a message of this cipher plugin")
        end = pos + 32
        sender = data[pos:end]
        if len(sender) != 32:
            raise CipherError("encrypted message truncated")
        if self.trusted is not None and sender not in self.trusted:
            raise CipherError("message from an untrusted public key")
        if self.peer_public_key is not None and sender != self.peer_public_key:
            raise CipherError("message from another public key than the peer's")
        extra, one_time_public = b"", b""
        if version == _X25519_EPHEMERAL:
            one_time_public = data[end : end + 32]
            if len(one_time_public) != 32:
                raise CipherError("encrypted message truncated")
            end += 32
            extra = self._exchange(self._private, one_time_public)
        self._sender = sender  # learned by the peer once the tag checks (see _opened)
        return self._key(sender, self.public_key, extra, one_time_public), end

    def _opened(self, peer: PeerState | None) -> None:
        if peer is not None:
            peer[self.PEER_KEY] = self._sender


def _rebuilt(message: MessageProtocol, content: bytes, uri: bytes) -> MessageProtocol:
    """A new message like ``message`` (its class, a copy of its header, the
    same auth fields) with another body of its body's class; the header's
    lengths and checksum are set when it is encoded. The input is left as
    it was."""
    make_body: Any = type(message.body).prepare  # the Protocol's prepare() names content only
    make_message: Any = type(message)  # the documented constructor: (header, auth_data, body)
    header = message.header
    if type(header) is Header:  # the usual case, without copy.copy's generic machinery
        header = Header(header.message_type, header.auth_length, header.body_length, 0)
    else:
        header = copy.copy(header)
    return make_message(header, message.auth_data, make_body(content, uri))  # type: ignore[no-any-return]


def _iterable(value: object) -> Iterable[object]:
    if isinstance(value, (bytes, str)) or not isinstance(value, Iterable):
        raise TypeError('"trusted_public_keys" must be an iterable of 32-byte keys')
    return value
