"""HMAC-SHA256 message authentication with optional replay protection.

The tag is standard HMAC-SHA256 (RFC 2104, the standard library's ``hmac``)
keyed with SHA-256(secret), over::

    nonce (16 bytes) || ts (4 bytes, big-endian seconds since the epoch) || body.encode()

or, when the message carries the routing field ``rt`` (see
``netaio_core.binding``; a netaio client or server sets it for this plugin,
which ``binds_routing``), over::

    nonce || ts || 0x00 0x72 0x74 || u16 len(rt) || rt || body.encode()

(no valid body can start with those three bytes: its u32 uri length would
pass the frame size, so the two forms never collide). It is stored with the
nonce and ts in three auth fields whose names are configurable, so that
several plugins can sign one message; with several secrets, a fourth field
names the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from netaio_core import AuthFieldsProtocol, BodyProtocol, MessageProtocol, make_error_response
from netaio_core.binding import ROUTE_FIELD

from .replay import DEFAULT_MAX_SKEW, DEFAULT_REPLAY_CACHE_SIZE, replay_window

__all__ = ["DEFAULT_MAX_SKEW", "DEFAULT_REPLAY_CACHE_SIZE", "NONCE_SIZE", "HMACAuthPlugin"]

NONCE_SIZE = 16
"""Bytes of the nonce field."""

_TS_MAX = 0xFFFFFFFF
_CONFIG_KEYS = (
    "secret",
    "secrets",
    "key_id",
    "kid_field",
    "bind_routing",
    "hmac_field",
    "nonce_field",
    "ts_field",
    "max_skew",
    "replay_cache_size",
)
_ROUTE_MARK = b"\x00rt"


def _ts_bytes(value: object) -> bytes | None:
    """The 4-byte form of a ts field (4 bytes, or an int 0..2**32-1), else None."""
    if type(value) is bytes:
        return value if len(value) == 4 else None
    if type(value) is int and 0 <= value <= _TS_MAX:
        return value.to_bytes(4, "big")
    return None


def _secret(config: Mapping[str, object]) -> bytes:
    secret = config.get("secret")
    if secret is None:
        raise ValueError('HMACAuthPlugin config needs a "secret" (str or bytes)')
    return _secret_bytes(secret)


def _secret_bytes(secret: object) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes):
        raise TypeError(
            f'HMACAuthPlugin config "secret" must be str or bytes, not {type(secret).__name__}'
        )
    if not secret:
        raise ValueError('HMACAuthPlugin config "secret" must not be empty')
    return secret


def _field_name(config: Mapping[str, object], key: str, default: str) -> str:
    name = config.get(key, default)
    if not isinstance(name, str):
        raise TypeError(f'HMACAuthPlugin config "{key}" must be a str, not {type(name).__name__}')
    if not name:
        raise ValueError(f'HMACAuthPlugin config "{key}" must not be empty')
    return name


def _keys(config: Mapping[str, object]) -> tuple[dict[str, bytes], str | None]:
    """The HMAC keys by key id and the id to sign with (None: one key, no id)."""
    secrets = config.get("secrets")
    if secrets is None:
        if "key_id" in config:
            raise ValueError('HMACAuthPlugin config "key_id" needs "secrets"')
        return {"": hashlib.sha256(_secret(config)).digest()}, None
    if "secret" in config:
        raise ValueError('HMACAuthPlugin config takes "secret" or "secrets", not both')
    if not isinstance(secrets, Mapping) or not secrets:
        raise TypeError('HMACAuthPlugin config "secrets" must be a non-empty dict id -> secret')
    keys: dict[str, bytes] = {}
    for kid, secret in secrets.items():
        if not isinstance(kid, str) or not kid:
            raise TypeError('HMACAuthPlugin config "secrets" keys (key ids) must be non-empty str')
        keys[kid] = hashlib.sha256(_secret_bytes(secret)).digest()
    key_id = config.get("key_id")
    if key_id not in keys:
        raise ValueError(
            f'HMACAuthPlugin config "key_id" must name one of "secrets" ({sorted(keys)})'
        )
    return keys, str(key_id)


class HMACAuthPlugin:
    """HMAC auth plugin: HMAC-SHA256 over nonce, ts, routing and body.

    Config keys (any other key is a ``ValueError``, so that a typo cannot
    silently turn a protection off):

    - ``secret`` (str or bytes): the shared secret; the HMAC key is
      SHA-256(secret). Use a long random secret: a password-like one can be
      guessed offline from any captured message.
    - ``secrets`` (dict key id -> secret) and ``key_id`` (one of its ids),
      instead of ``secret``: key rotation. Messages are signed with
      ``key_id``'s secret and name it in the ``kid_field`` (default
      ``"kid"``); messages signed with any of the secrets are accepted. To
      rotate: add the new secret everywhere, then switch ``key_id``, then
      remove the old secret.
    - ``bind_routing`` (bool, default True): this plugin covers the routing
      field ``rt`` (message type, direction, correlation id; see
      ``netaio_core.binding``), so a netaio endpoint refuses a frame whose
      type or id was changed or that was sent back at its sender. Set it to
      False to exchange signed frames with netaio 0.0.2 peers, which do not
      send ``rt``.
    - ``hmac_field``, ``nonce_field``, ``ts_field`` (str; default ``"hmac"``,
      ``"nonce"``, ``"ts"``): the auth field names, so that an instance
      plugin and a per-handler plugin can both sign one message.
    - ``max_skew`` (seconds, default ``DEFAULT_MAX_SKEW``, 300): replay
      protection. ``check`` rejects a ts more than ``max_skew`` away from
      ``clock()`` and a nonce it has already accepted, and ``make`` always
      issues a fresh nonce and ts. ``None`` turns it off: ``check`` then
      accepts any ts and a repeated nonce, and ``make`` keeps valid nonce and
      ts fields it is given (netaio 0.0.2's behaviour, for fixed test vectors
      or peers whose clocks cannot be kept within ``max_skew``).
    - ``replay_cache_size`` (int, default ``DEFAULT_REPLAY_CACHE_SIZE``,
      65,536; not with ``max_skew=None``): how many accepted nonces are
      remembered (see ``ReplayWindow``): a replay is never accepted; if more
      than this many messages arrive within ``max_skew`` seconds, some fresh
      ones are rejected instead. Only authenticated messages enter it, so a
      peer without the secret cannot fill it.

    Errors: a missing, None or empty secret, an empty or repeated field
    name, a ``max_skew`` that is not positive and finite, a
    ``replay_cache_size`` below 1 or beside ``max_skew=None``, and an unknown key
    raise ``ValueError``; a value of the wrong type raises ``TypeError``.
    Each message names the config key.

    ``clock`` (keyword-only) returns seconds since the epoch; tests pass a
    controllable one. The replay cache is state shared by every message the
    instance checks: use an instance from one thread (one event loop) only.
    It lives in memory: a restarted process, or another worker of ``netaio
    serve``, does not know the nonces this one accepted, so a frame captured
    less than ``max_skew`` seconds ago can be replayed once to each of them
    (see docs/security.md). Secrets are read at construction.
    """

    secret: bytes
    hmac_field: str
    nonce_field: str
    ts_field: str
    kid_field: str
    key_id: str | None
    binds_routing: bool
    max_skew: float | None
    replay_cache_size: int

    def __init__(
        self, config: Mapping[str, Any], *, clock: Callable[[], float] = time.time
    ) -> None:
        """Initialize the HMAC auth plugin with a config. The config must
        contain {"secret": <str|bytes>} (or "secrets" and "key_id"); see the
        class docstring for the optional keys and the errors."""
        if not isinstance(config, Mapping):
            raise TypeError(
                f'HMACAuthPlugin config must be a dict with a "secret", not {type(config).__name__}'
            )
        unknown = sorted(str(key) for key in config if key not in _CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"HMACAuthPlugin config has unknown keys {unknown}; known: {list(_CONFIG_KEYS)}"
            )
        keys, self.key_id = _keys(config)
        self.secret = keys["" if self.key_id is None else self.key_id]
        self.hmac_field = _field_name(config, "hmac_field", "hmac")
        self.nonce_field = _field_name(config, "nonce_field", "nonce")
        self.ts_field = _field_name(config, "ts_field", "ts")
        self.kid_field = _field_name(config, "kid_field", "kid")
        names = {self.hmac_field, self.nonce_field, self.ts_field, self.kid_field}
        if len(names) != 4 or ROUTE_FIELD in names:
            raise ValueError(
                'HMACAuthPlugin config "hmac_field", "nonce_field", "ts_field" and '
                f'"kid_field" must differ, and not be "{ROUTE_FIELD}"'
            )
        bind = config.get("bind_routing", True)
        if not isinstance(bind, bool):
            raise TypeError('HMACAuthPlugin config "bind_routing" must be a bool')
        self.binds_routing = bind
        self._window = replay_window(config, clock, "HMACAuthPlugin")
        self.max_skew = None if self._window is None else self._window.max_skew
        self.replay_cache_size = (
            DEFAULT_REPLAY_CACHE_SIZE if self._window is None else self._window.size
        )
        self._clock = clock
        # Keyed once; each MAC is a copy of this state, which saves the key
        # schedule on every message.
        self._templates = {
            kid: hmac.new(key, digestmod=hashlib.sha256) for kid, key in keys.items()
        }
        self._template = self._templates["" if self.key_id is None else self.key_id]

    @property
    def _seen(self) -> set[bytes]:
        """The nonces in the replay window (for inspection)."""
        return set() if self._window is None else self._window._seen

    def _mac(
        self, template: Any, nonce: bytes, ts: bytes, body: BodyProtocol, route: object
    ) -> bytes:
        mac = template.copy()
        if type(route) is bytes:
            mac.update(nonce + ts + _ROUTE_MARK + len(route).to_bytes(2, "big") + route)
        else:
            mac.update(nonce + ts)
        mac.update(body.encode())
        return mac.digest()  # type: ignore[no-any-return]

    def _now(self) -> bytes:
        return int(self._clock()).to_bytes(4, "big")

    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        """If the nonce and ts fields are not present, generate them. Then,
        create an hmac of the nonce, ts, and body and store it in the hmac
        field.

        A nonce that is not 16 bytes, or a ts that is neither 4 bytes nor an
        int in 0..2**32-1, counts as absent; a kept int ts is stored as
        4 bytes. With replay protection (the default) a fresh nonce and ts
        are always issued, since a peer with it rejects a reused nonce. The
        routing field ``rt``, when present, is covered too; with several
        secrets, the key id is set.
        """
        fields = auth_fields.fields
        if self.max_skew is None:
            nonce = fields.get(self.nonce_field)
            if type(nonce) is not bytes or len(nonce) != NONCE_SIZE:
                nonce = os.urandom(NONCE_SIZE)
            ts = _ts_bytes(fields.get(self.ts_field)) or self._now()
        else:
            nonce = os.urandom(NONCE_SIZE)
            ts = self._now()
        fields[self.nonce_field] = nonce
        fields[self.ts_field] = ts
        if self.key_id is not None:
            fields[self.kid_field] = self.key_id.encode()
        fields[self.hmac_field] = self._mac(
            self._template, nonce, ts, body, fields.get(ROUTE_FIELD)
        )

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        """Check if the auth fields are valid for the given body. Performs
        an hmac check on the nonce, ts, and body. Returns False if any of the
        fields are missing or if the hmac check fails.

        Also False when a field has the wrong type or length (nonce: 16
        bytes; ts: 4 bytes or an int in 0..2**32-1; hmac: bytes), for an
        unknown key id, and, unless ``max_skew`` is None, for a ts more than
        ``max_skew`` off the clock or a replayed nonce. Never raises, whatever
        the field values; the MAC comparison is constant-time. Only a message that passes is
        remembered for replay protection.
        """
        fields = auth_fields.fields
        nonce = fields.get(self.nonce_field)
        ts = _ts_bytes(fields.get(self.ts_field))
        mac = fields.get(self.hmac_field)
        if type(nonce) is not bytes or len(nonce) != NONCE_SIZE or ts is None:
            return False
        if type(mac) is not bytes:
            return False
        template: Any = self._template
        if self.key_id is not None:
            kid = fields.get(self.kid_field)
            if type(kid) is not bytes:
                return False
            template = self._templates.get(kid.decode("utf-8", "replace"))
            if template is None:
                return False
        window = self._window
        sent = int.from_bytes(ts, "big")
        if window is not None and not window.fresh(nonce, sent):
            return False
        if not hmac.compare_digest(
            self._mac(template, nonce, ts, body, fields.get(ROUTE_FIELD)), mac
        ):
            return False
        if window is not None:
            window.remember(nonce, sent)
        return True

    def error(self) -> MessageProtocol:
        """Make an error message that says "HMAC auth failed" (an
        AUTH_ERROR message with that content)."""
        return make_error_response("HMAC auth failed")
