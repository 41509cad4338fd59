"""netaio-server: TCPServer, the asyncio server of netaio."""

from __future__ import annotations

from .drops import DropReason
from .runner import run, serve
from .server import DropHook, TCPServer, default_server_logger, not_found_handler

__version__ = "0.1.0"

__all__ = [
    "DropHook",
    "DropReason",
    "TCPServer",
    "default_server_logger",
    "not_found_handler",
    "run",
    "serve",
]
