"""``TestClient``: talk to a TCPServer in memory, without sockets.

::

    async with TestClient(server) as client:
        reply = await client.request(b"/items/1")

A ``TestClient`` is a real ``TCPClient`` (``request``, ``send``,
``receive_once``, ``subscribe``, auth and cipher plugins, all of it) whose
one connection is joined in memory (``netaio_core.testing``) to a real
server connection: frames are encoded, decoded, checked, dispatched and
answered by the same code as over TCP. The server needs no ``listen()``;
its handlers, hooks, subscriptions and limits all apply. TLS is not used in
memory. It needs netaio-client: ``pip install "netaio-server[client]"`` (or
``pip install netaio``).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Generic

from netaio_core import MessageT
from netaio_core.testing import connect_pair

from .connection import ServerConnection
from .server import TCPServer

try:
    from netaio_client import TCPClient
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'netaio_server.testing needs netaio-client: pip install "netaio-server[client]"'
    ) from exc

__all__ = ["TestClient"]


class TestClient(TCPClient[MessageT], Generic[MessageT]):
    """A client connected in memory to ``server`` (see the module doc).

    Keyword arguments go to ``TCPClient`` (``auth_plugin``,
    ``cipher_plugin``, ``limits``, ...); the message classes default to the
    server's. Use it as an async context manager, or call ``connect()`` and
    ``close_all()``.
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, server: TCPServer[MessageT], **kwargs: Any) -> None:
        kwargs.setdefault("header_class", server.header_class)
        kwargs.setdefault("body_class", server.body_class)
        kwargs.setdefault("message_class", server.message_class)
        kwargs.setdefault("auth_fields_class", server.auth_fields_class)
        super().__init__("memory", 0, **kwargs)
        self.server = server

    async def connect(self, host: str | None = None, port: int | None = None, **_: Any) -> None:
        """Join a new in-memory connection to the server (the arguments are
        ignored: there is one server)."""
        existing = self._connections.get(self.default_host)
        if existing is not None and not existing.is_lost:
            return
        client_end = self.connection_factory(self.default_host)()
        connect_pair(client_end, ServerConnection(self.server))

    async def __aenter__(self) -> TestClient[MessageT]:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close_all()
