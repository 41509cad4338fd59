"""Every limit and timeout of a connection, in one place, with safe defaults."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits", "PROTOCOL_MAX_FRAME_SIZE"]

PROTOCOL_MAX_FRAME_SIZE = 9 + 0xFFFF + 0xFFFF
"""The largest frame the default header can describe (131,079 bytes)."""


@dataclass(frozen=True)
class Limits:
    """Limits that protect a client or server from hostile or broken peers.

    Instances are immutable, so one can be shared by many clients and servers.

    Attributes:
        max_frame_size: largest frame (header + auth + body) accepted, in
            bytes. A larger one is refused from its header alone, before its
            bytes are read, and the connection is closed.
        max_connections: (server) connections served at once; a connection
            beyond it is closed at once, and existing ones are unaffected.
        idle_timeout: (server) seconds a connection may go without sending a
            complete frame before it is closed; None (the default) never
            closes a quiet connection, since subscribers are quiet by design.
        frame_timeout: (server) seconds a peer has to send a frame's auth
            section and body once its header has arrived (against slowloris).
        write_buffer_limit: bytes that may wait unsent for one peer; a peer
            that lets more pile up (a slow consumer) is dropped.
        write_timeout: seconds a send waits for a peer's buffer to drain below
            the transport's high-water mark before dropping that peer.
        connect_timeout: (client) seconds ``connect`` may take.
        shutdown_grace: (server) seconds ``stop`` lets in-flight handlers run.
        max_concurrent_requests: (server) messages of one connection that
            carry a correlation id and are handled at once; at the limit the
            connection's later frames wait (and reading pauses). Messages
            without an id are handled one at a time, in order.
        max_queue: (client) received messages a connection holds for
            ``receive_once``/``receive_loop``. When it is full, reading pauses
            while a receive loop runs; with none running the oldest queued
            message is dropped with a warning, so that replies to
            ``request()`` still arrive.
    """

    max_frame_size: int = PROTOCOL_MAX_FRAME_SIZE
    max_connections: int = 4096
    idle_timeout: float | None = None
    frame_timeout: float | None = 30.0
    write_buffer_limit: int = 4 * 1024 * 1024
    write_timeout: float = 10.0
    connect_timeout: float | None = 10.0
    shutdown_grace: float = 5.0
    max_concurrent_requests: int = 64
    max_queue: int = 1024

    def __post_init__(self) -> None:
        if self.max_frame_size < 9:
            raise ValueError("max_frame_size must be at least 9 (one header)")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.max_concurrent_requests < 1 or self.max_queue < 1:
            raise ValueError("max_concurrent_requests and max_queue must be at least 1")
        if self.write_buffer_limit < 1:
            raise ValueError("write_buffer_limit must be at least 1")
        for name in ("idle_timeout", "frame_timeout", "connect_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None")
        if self.write_timeout <= 0 or self.shutdown_grace < 0:
            raise ValueError("write_timeout must be positive and shutdown_grace >= 0")
