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
        close_timeout: seconds a closing connection may take to send what it
            has unsent; then it is aborted, so a peer that stops reading
            cannot hold a socket (``stop()`` returns within
            ``shutdown_grace`` plus this).
        tls_handshake_timeout: (server) seconds a TLS handshake may take;
            handshaking connections count towards ``max_connections``.
        max_connections_per_ip: (server) connections served at once from
            one IP address; None: no limit beyond ``max_connections``.
        max_subscriptions: (server) keys one connection may be subscribed
            to; ``subscribe`` beyond it raises ``LimitExceededError``.
        max_key_length: (server) the longest subscription key (bytes or
            str, in bytes or characters) ``subscribe`` accepts.
        max_auth_size: bytes an auth section may take; a frame with a larger
            one is refused ("invalid message") before its fields are built.
        max_auth_fields: fields an auth section may hold, checked from its
            first bytes before any is built.
        heartbeat_interval: seconds without receiving anything after which a
            client sends a heartbeat (an OK to ``netaio/ping``, see
            PROTOCOL.md); None turns heartbeats off. A server expects a
            client that has sent one to send something at least this often.
        heartbeat_timeout: seconds a heartbeat may go unanswered: a peer
            silent for ``heartbeat_interval + heartbeat_timeout`` is taken
            for dead and its connection aborted (both ends).
        max_concurrent_requests: (server) messages of one connection that
            carry a correlation id and are handled at once; at the limit the
            connection's later frames wait (and reading pauses). Messages
            without an id are handled one at a time, in order.
        max_queue: (client) received messages a connection holds for
            ``receive_once``/``receive_loop``. When it is full, reading pauses
            while a receive loop runs; with none running the oldest queued
            message is dropped with a warning, so that replies to
            ``request()`` still arrive.
        max_unsent_bytes: (server) bytes all connections together may hold
            unsent (replies and notifications their peers have not taken;
            each one also at most ``write_buffer_limit``). Past it, the
            connections holding the most are dropped until the total is
            under nine tenths of it. 128 MiB by default.
        max_partial_bytes: (server) bytes all connections together may hold
            received and not yet handled: unfinished frames, and frames
            waiting behind a running handler. Past it, the connections
            holding the most are dropped likewise. 64 MiB by default.
    """

    max_frame_size: int = PROTOCOL_MAX_FRAME_SIZE
    max_connections: int = 4096
    idle_timeout: float | None = None
    frame_timeout: float | None = 30.0
    write_buffer_limit: int = 4 * 1024 * 1024
    write_timeout: float = 10.0
    connect_timeout: float | None = 10.0
    shutdown_grace: float = 5.0
    close_timeout: float = 5.0
    tls_handshake_timeout: float = 10.0
    max_connections_per_ip: int | None = None
    max_subscriptions: int = 1024
    max_key_length: int = 1024
    max_auth_size: int = 8192
    max_auth_fields: int = 32
    heartbeat_interval: float | None = 20.0
    heartbeat_timeout: float = 20.0
    max_concurrent_requests: int = 64
    max_queue: int = 1024
    max_unsent_bytes: int = 128 * 1024 * 1024
    max_partial_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.max_frame_size < 9:
            raise ValueError("max_frame_size must be at least 9 (one header)")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        for name in (
            "max_concurrent_requests",
            "max_queue",
            "max_subscriptions",
            "max_key_length",
            "max_auth_fields",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_auth_size < 3:
            raise ValueError("max_auth_size must be at least 3 (an empty auth section)")
        if self.max_connections_per_ip is not None and self.max_connections_per_ip < 1:
            raise ValueError("max_connections_per_ip must be at least 1 or None")
        if self.close_timeout <= 0 or self.tls_handshake_timeout <= 0:
            raise ValueError("close_timeout and tls_handshake_timeout must be positive")
        if self.write_buffer_limit < 1:
            raise ValueError("write_buffer_limit must be at least 1")
        if self.max_unsent_bytes < 1 or self.max_partial_bytes < 1:
            raise ValueError("max_unsent_bytes and max_partial_bytes must be at least 1")
        if self.heartbeat_timeout <= 0:
            raise ValueError("heartbeat_timeout must be positive")
        for name in ("idle_timeout", "frame_timeout", "connect_timeout", "heartbeat_interval"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None")
        if self.write_timeout <= 0 or self.shutdown_grace < 0:
            raise ValueError("write_timeout must be positive and shutdown_grace >= 0")
