"""The documented ``netaio.server`` module path."""

from netaio_server import TCPServer, default_server_logger, not_found_handler

__all__ = ["TCPServer", "default_server_logger", "not_found_handler"]
