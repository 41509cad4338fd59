"""netaio-auth: auth plugins for netaio."""

from __future__ import annotations

from netaio_core import AuthPluginProtocol

from .cipher import AEADCipherPlugin, CipherError, X25519CipherPlugin
from .hmac_plugin import HMACAuthPlugin
from .replay import DEFAULT_MAX_SKEW, DEFAULT_REPLAY_CACHE_SIZE, ReplayWindow

__version__ = "0.1.0"

__all__ = [
    "AEADCipherPlugin",
    "AuthPluginProtocol",
    "CipherError",
    "DEFAULT_MAX_SKEW",
    "DEFAULT_REPLAY_CACHE_SIZE",
    "HMACAuthPlugin",
    "ReplayWindow",
    "X25519CipherPlugin",
]
