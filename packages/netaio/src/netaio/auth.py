"""The documented ``netaio.auth`` module path: auth plugins and their Protocol."""

from __future__ import annotations

from netaio_auth import AuthPluginProtocol, HMACAuthPlugin

__all__ = ["AuthPluginProtocol", "HMACAuthPlugin"]
