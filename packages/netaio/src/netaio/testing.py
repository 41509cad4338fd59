"""``netaio.testing``: test handlers without sockets (see ``TestClient``)."""

from netaio_core.testing import MemoryTransport, connect_pair
from netaio_server.testing import TestClient

__all__ = ["MemoryTransport", "TestClient", "connect_pair"]
