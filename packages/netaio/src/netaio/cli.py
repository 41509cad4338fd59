"""The ``netaio`` command (``serve``, ``request``, ``subscribe``): its code is
``netaio_server.cli``; this module names its entry point for the console
script."""

from netaio_server.cli import main

__all__ = ["main"]
