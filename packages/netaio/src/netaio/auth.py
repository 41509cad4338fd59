"""The documented ``netaio.auth`` module path: auth plugins and their Protocol."""

from netaio_auth import AuthPluginProtocol, HMACAuthPlugin

__all__ = ["AuthPluginProtocol", "HMACAuthPlugin"]
