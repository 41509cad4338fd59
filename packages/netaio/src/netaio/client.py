"""The documented ``netaio.client`` module path."""

from netaio_client import TCPClient, default_client_logger

__all__ = ["TCPClient", "default_client_logger"]
