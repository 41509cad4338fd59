"""The documented ``netaio.client`` module path."""

from __future__ import annotations

from netaio_client import TCPClient, default_client_logger

__all__ = ["TCPClient", "default_client_logger"]
