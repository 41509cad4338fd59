"""netaio-auth: auth plugins for netaio."""

from __future__ import annotations

from netaio_core import AuthPluginProtocol

from .hmac_plugin import DEFAULT_REPLAY_CACHE_SIZE, HMACAuthPlugin

__version__ = "0.1.0"

__all__ = ["AuthPluginProtocol", "DEFAULT_REPLAY_CACHE_SIZE", "HMACAuthPlugin"]
