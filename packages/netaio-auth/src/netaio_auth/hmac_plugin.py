"""HMAC-SHA256 message authentication with optional replay protection.

The tag is standard HMAC-SHA256 (RFC 2104, the standard library's ``hmac``)
keyed with SHA-256(secret), over::

    nonce (16 bytes) || ts (4 bytes, big-endian seconds since the epoch) || body.encode()

It is stored with the nonce and ts in three auth fields whose names are
configurable, so that several plugins can sign one message.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from netaio_core import AuthFieldsProtocol, BodyProtocol, MessageProtocol, make_error_response

__all__ = ["DEFAULT_REPLAY_CACHE_SIZE", "NONCE_SIZE", "HMACAuthPlugin"]

NONCE_SIZE = 16
"""Bytes of the nonce field."""

DEFAULT_REPLAY_CACHE_SIZE = 65_536
"""Nonces remembered for replay protection when the config does not say
(about 12 MB at most); see ``HMACAuthPlugin``."""

_TS_MAX = 0xFFFFFFFF
_CONFIG_KEYS = ("secret", "hmac_field", "nonce_field", "ts_field", "max_skew", "replay_cache_size")


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


def _max_skew(config: Mapping[str, object]) -> float | None:
    skew = config.get("max_skew")
    if skew is None:
        return None
    if isinstance(skew, bool) or not isinstance(skew, (int, float)):
        raise TypeError(
            f'HMACAuthPlugin config "max_skew" must be a number of seconds or None, '
            f"not {type(skew).__name__}"
        )
    if not (0 < skew < math.inf):
        raise ValueError(f'HMACAuthPlugin config "max_skew" must be > 0 and finite, not {skew}')
    return skew


def _cache_size(config: Mapping[str, object], skew: float | None) -> int:
    if "replay_cache_size" not in config:
        return DEFAULT_REPLAY_CACHE_SIZE
    size = config["replay_cache_size"]
    if skew is None:
        raise ValueError(
            'HMACAuthPlugin config "replay_cache_size" has no effect without "max_skew"'
        )
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(
            f'HMACAuthPlugin config "replay_cache_size" must be an int, not {type(size).__name__}'
        )
    if size < 1:
        raise ValueError(f'HMACAuthPlugin config "replay_cache_size" must be >= 1, not {size}')
    return size


class HMACAuthPlugin:
    """HMAC auth plugin: HMAC-SHA256 over nonce, ts and body.

    Config keys (any other key is a ``ValueError``, so that a typo cannot
    silently turn a protection off):

    - ``secret`` (str or bytes, required): the shared secret; the HMAC key
      is SHA-256(secret). Use a long random secret: a password-like one can
      be guessed offline from any captured message.
    - ``hmac_field``, ``nonce_field``, ``ts_field`` (str; default ``"hmac"``,
      ``"nonce"``, ``"ts"``): the auth field names, so that an instance
      plugin and a per-handler plugin can both sign one message.
    - ``max_skew`` (seconds, default None): turns replay protection on.
      ``check`` then rejects a ts more than ``max_skew`` away from ``clock()``
      and a nonce it has already accepted, and ``make`` always issues a
      fresh nonce and ts.
    - ``replay_cache_size`` (int, default ``DEFAULT_REPLAY_CACHE_SIZE``; only
      with ``max_skew``): how many accepted nonces are remembered. A nonce
      leaves the cache only by raising a horizon: every ts at or below the
      ts of a forgotten nonce is rejected from then on, so a replay is never
      accepted; if more than this many messages arrive within ``max_skew``
      seconds, some fresh ones are rejected instead.

    Errors: a missing, None or empty secret, an empty or repeated field
    name, a ``max_skew`` that is not positive and finite, a
    ``replay_cache_size`` below 1 or without ``max_skew``, and an unknown key
    raise ``ValueError``; a value of the wrong type raises ``TypeError``.
    Each message names the config key.

    ``clock`` (keyword-only) returns seconds since the epoch; tests pass a
    controllable one. With ``max_skew`` the replay cache is state shared by
    every message the instance checks: use an instance from one thread (one
    event loop) only. ``secret`` is read at construction: to change the
    secret, make a new plugin.
    """

    secret: bytes
    hmac_field: str
    nonce_field: str
    ts_field: str
    max_skew: float | None
    replay_cache_size: int

    def __init__(
        self, config: Mapping[str, Any], *, clock: Callable[[], float] = time.time
    ) -> None:
        """Initialize the HMAC auth plugin with a config. The config must
        contain {"secret": <str|bytes>}; see the class docstring for the
        optional keys and the errors."""
        if not isinstance(config, Mapping):
            raise TypeError(
                f'HMACAuthPlugin config must be a dict with a "secret", not {type(config).__name__}'
            )
        unknown = sorted(str(key) for key in config if key not in _CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"HMACAuthPlugin config has unknown keys {unknown}; known: {list(_CONFIG_KEYS)}"
            )
        self.secret = hashlib.sha256(_secret(config)).digest()
        self.hmac_field = _field_name(config, "hmac_field", "hmac")
        self.nonce_field = _field_name(config, "nonce_field", "nonce")
        self.ts_field = _field_name(config, "ts_field", "ts")
        if len({self.hmac_field, self.nonce_field, self.ts_field}) != 3:
            raise ValueError(
                'HMACAuthPlugin config "hmac_field", "nonce_field" and "ts_field" must differ'
            )
        self.max_skew = _max_skew(config)
        self.replay_cache_size = _cache_size(config, self.max_skew)
        self._clock = clock
        # Keyed once; each MAC is a copy of this state, which saves the key
        # schedule on every message.
        self._template = hmac.new(self.secret, digestmod=hashlib.sha256)
        # Replay state: accepted nonces, their (ts, nonce) in arrival order,
        # and the ts at or below which every message is rejected.
        self._seen: set[bytes] = set()
        self._order: deque[tuple[int, bytes]] = deque()
        self._horizon = -1

    def _mac(self, nonce: bytes, ts: bytes, body: BodyProtocol) -> bytes:
        mac = self._template.copy()
        mac.update(nonce + ts + body.encode())
        return mac.digest()

    def _now(self) -> bytes:
        return int(self._clock()).to_bytes(4, "big")

    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        """If the nonce and ts fields are not present, generate them. Then,
        create an hmac of the nonce, ts, and body and store it in the hmac
        field.

        A nonce that is not 16 bytes, or a ts that is neither 4 bytes nor an
        int in 0..2**32-1, counts as absent; a kept int ts is stored as
        4 bytes. With ``max_skew`` a fresh nonce and ts are always issued,
        since a peer with replay protection rejects a reused nonce.
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
        fields[self.hmac_field] = self._mac(nonce, ts, body)

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        """Check if the auth fields are valid for the given body. Performs
        an hmac check on the nonce, ts, and body. Returns False if any of the
        fields are missing or if the hmac check fails.

        Also False when a field has the wrong type or length (nonce: 16
        bytes; ts: 4 bytes or an int in 0..2**32-1; hmac: bytes), and, with
        ``max_skew``, for a stale or future ts or a replayed nonce. Never
        raises, whatever the field values; the MAC comparison is
        constant-time. Only a message that passes is remembered for replay
        protection.
        """
        fields = auth_fields.fields
        nonce = fields.get(self.nonce_field)
        ts = _ts_bytes(fields.get(self.ts_field))
        mac = fields.get(self.hmac_field)
        if type(nonce) is not bytes or len(nonce) != NONCE_SIZE or ts is None:
            return False
        if type(mac) is not bytes:
            return False
        skew = self.max_skew
        if skew is None:
            return hmac.compare_digest(self._mac(nonce, ts, body), mac)
        return self._check_fresh(nonce, ts, mac, body, skew)

    def _check_fresh(
        self, nonce: bytes, ts: bytes, mac: bytes, body: BodyProtocol, skew: float
    ) -> bool:
        """The replay-protected check: skew, horizon, cache, then the MAC."""
        now = self._clock()
        sent = int.from_bytes(ts, "big")
        # Written so that a NaN clock rejects rather than accepts.
        if not abs(sent - now) <= skew or sent <= self._horizon or nonce in self._seen:
            return False
        if not hmac.compare_digest(self._mac(nonce, ts, body), mac):
            return False
        self._remember(nonce, sent, now - skew)
        return True

    def _remember(self, nonce: bytes, sent: int, oldest: float) -> None:
        """Cache an accepted nonce; forget expired ones and, when full, the
        oldest, raising the horizon to the ts of each one forgotten."""
        order, seen, horizon = self._order, self._seen, self._horizon
        while order and (order[0][0] < oldest or len(order) >= self.replay_cache_size):
            old_ts, old_nonce = order.popleft()
            seen.discard(old_nonce)
            if old_ts > horizon:
                horizon = old_ts
        self._horizon = horizon
        order.append((sent, nonce))
        seen.add(nonce)

    def error(self) -> MessageProtocol:
        """Make an error message that says "HMAC auth failed" (an
        AUTH_ERROR message with that content)."""
        return make_error_response("HMAC auth failed")
