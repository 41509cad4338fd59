"""HMAC-SHA256 message authentication (placeholder until the auth issue lands)."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Any

from netaio_core import AuthFieldsProtocol, BodyProtocol, MessageProtocol, make_error_response


class HMACAuthPlugin:
    """HMAC auth plugin."""

    secret: bytes

    def __init__(self, config: dict[str, Any]) -> None:
        """Initialize the HMAC auth plugin with a config. The config must
        contain {"secret": <str|bytes>}."""
        secret = config["secret"]
        if isinstance(secret, str):
            secret = secret.encode()
        self.secret = hashlib.sha256(secret).digest()

    def _mac(self, nonce: bytes, ts: bytes, body: BodyProtocol) -> bytes:
        return hmac.new(self.secret, nonce + ts + body.encode(), hashlib.sha256).digest()

    def make(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> None:
        """If the nonce and ts fields are not present, generate them. Then,
        create an hmac of the nonce, ts, and body and store it in the hmac field."""
        fields = auth_fields.fields
        nonce = fields.get("nonce")
        if not isinstance(nonce, bytes) or len(nonce) != 16:
            nonce = os.urandom(16)
        ts = fields.get("ts")
        if not isinstance(ts, bytes) or len(ts) != 4:
            ts = int(time.time()).to_bytes(4, "big")
        fields["nonce"], fields["ts"] = nonce, ts
        fields["hmac"] = self._mac(nonce, ts, body)

    def check(self, auth_fields: AuthFieldsProtocol, body: BodyProtocol) -> bool:
        """Check the hmac over nonce, ts and body."""
        fields = auth_fields.fields
        nonce, ts, mac = fields.get("nonce"), fields.get("ts"), fields.get("hmac")
        if not (isinstance(nonce, bytes) and isinstance(ts, bytes) and isinstance(mac, bytes)):
            return False
        return hmac.compare_digest(self._mac(nonce, ts, body), mac)

    def error(self) -> MessageProtocol:
        """Make an error message that says "HMAC auth failed"."""
        return make_error_response("HMAC auth failed")
