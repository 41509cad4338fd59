"""Why the server dropped a connection or refused a connection or message.

Every such event goes through one place, ``TCPServer.on_drop`` hooks, which
get the ``ServerConnection`` and a ``DropReason``; the Prometheus metrics
(``netaio_server.metrics``) count them from there. The value of a reason is
the text the server logs.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["DropReason"]


class DropReason(str, Enum):
    """What the server did and why; ``kind`` groups the reasons:

    - ``"refused"``: a connection turned away before it was served;
    - ``"dropped"``: a served connection closed by the server;
    - ``"rejected"``: one message refused with an error reply, the
      connection kept.
    """

    STOPPING = "server is stopping"
    MAX_CONNECTIONS = "max_connections reached"
    MAX_CONNECTIONS_PER_IP = "max_connections_per_ip reached"

    SLOW_CONSUMER = "write_buffer_limit exceeded (slow consumer)"
    WRITE_TIMEOUT = "write_timeout reached (slow consumer)"
    MAX_UNSENT_BYTES = "max_unsent_bytes reached (holds the most unsent bytes)"
    MAX_PARTIAL_BYTES = "max_partial_bytes reached (holds the most of an unfinished frame)"
    SEND_FAILED = "send failed"
    IDLE_TIMEOUT = "idle_timeout reached"
    FRAME_TIMEOUT = "frame_timeout reached mid-frame"
    HEARTBEAT_TIMEOUT = "no heartbeat from the client (dead peer)"
    CLOSE_TIMEOUT = "close_timeout reached"
    TLS_HANDSHAKE_TIMEOUT = "tls_handshake_timeout reached"
    TLS_HANDSHAKE_FAILED = "TLS handshake failed"
    FRAME_TOO_LARGE = "frame too large"
    INVALID_FRAME = "invalid frame"

    INVALID_MESSAGE = "invalid message"
    CHECKSUM_MISMATCH = "checksum mismatch"
    AUTH_FAILED = "auth failed"

    @property
    def kind(self) -> str:
        """``"refused"``, ``"dropped"`` or ``"rejected"`` (see the class)."""
        return _KINDS.get(self, "dropped")

    @property
    def label(self) -> str:
        """A short name for metrics labels: the member name in lower case."""
        return self.name.lower()

    def __str__(self) -> str:
        return self.value


_KINDS = {
    DropReason.STOPPING: "refused",
    DropReason.MAX_CONNECTIONS: "refused",
    DropReason.MAX_CONNECTIONS_PER_IP: "refused",
    DropReason.INVALID_MESSAGE: "rejected",
    DropReason.CHECKSUM_MISMATCH: "rejected",
    DropReason.AUTH_FAILED: "rejected",
}
