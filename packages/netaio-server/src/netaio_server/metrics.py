"""Prometheus metrics of a TCPServer (``pip install "netaio-server[metrics]"``,
which brings prometheus_client).

``instrument(server)`` hooks into the server from outside, then
``start_metrics_server(port)`` serves the Prometheus text format on
``http://HOST:PORT/metrics`` (``netaio serve --metrics-port`` does both)::

    netaio_connections_open                      gauge
    netaio_connections_accepted_total            counter
    netaio_connections_refused_total{reason}     counter
    netaio_clients_dropped_total{reason}         counter
    netaio_messages_received_total{type}         counter (messages handled)
    netaio_messages_sent_total{type}             counter (replies, notifications)
    netaio_messages_rejected_total{reason}       counter (invalid, checksum, auth)
    netaio_handler_duration_seconds{type}        histogram
    netaio_handler_errors_total{type}            counter
    netaio_notify_total                          counter (notify calls)
    netaio_broker_published_total                counter
    netaio_broker_publish_failures_total         counter
    netaio_broker_delivered_total                counter (frames from other instances)
    netaio_broker_subscriptions                  gauge (keys subscribed at the broker)

How it hooks in: ``on_connect``/``on_disconnect`` hooks; every entry of
``server.handlers`` (also those added later) and ``default_handler`` wrapped
to time it and count message types (a plain handler stays plain, so
ordering is kept); ``notify`` and ``broadcast`` wrapped to count
deliveries; ``server.broker`` wrapped; refusals, drops and rejected
messages counted by an ``on_drop`` hook, labelled with ``DropReason.label``
(``max_connections``, ``slow_consumer``, ``idle_timeout``, ``auth_failed``,
...).

With several worker processes (``netaio serve --workers N``) the supervisor
sets ``PROMETHEUS_MULTIPROC_DIR`` and serves the sum over its workers.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Hashable
from inspect import isawaitable
from typing import Any

from netaio_core import BrokerProtocol, MessageProtocol
from netaio_core.broker import Deliver

from .drops import DropReason
from .server import TCPServer

__all__ = ["InstrumentedBroker", "ServerMetrics", "instrument", "start_metrics_server"]

_metrics: dict[int, ServerMetrics] = {}


def _prometheus() -> Any:
    try:
        return importlib.import_module("prometheus_client")
    except ImportError:
        raise ImportError(
            'netaio metrics need prometheus_client: pip install "netaio-server[metrics]"'
        ) from None


def _type_name(message: object) -> str:
    try:
        message_type = message.header.message_type  # type: ignore[attr-defined]
    except AttributeError:
        return "unknown"
    return str(getattr(message_type, "name", message_type))


class ServerMetrics:
    """The metric objects (one set per registry)."""

    def __init__(self, registry: Any = None) -> None:
        prom = _prometheus()
        kw: dict[str, Any] = {} if registry is None else {"registry": registry}
        self.connections_open = prom.Gauge(
            "netaio_connections_open",
            "Client connections open now",
            multiprocess_mode="livesum",
            **kw,
        )
        self.connections_accepted = prom.Counter(
            "netaio_connections_accepted", "Client connections accepted", **kw
        )
        self.connections_refused = prom.Counter(
            "netaio_connections_refused", "Connections refused", ["reason"], **kw
        )
        self.clients_dropped = prom.Counter(
            "netaio_clients_dropped", "Clients dropped by the server", ["reason"], **kw
        )
        self.messages_received = prom.Counter(
            "netaio_messages_received", "Messages handled, by message type", ["type"], **kw
        )
        self.messages_sent = prom.Counter(
            "netaio_messages_sent",
            "Messages sent (replies and notifications), by message type",
            ["type"],
            **kw,
        )
        self.messages_rejected = prom.Counter(
            "netaio_messages_rejected", "Messages refused before a handler", ["reason"], **kw
        )
        self.handler_duration = prom.Histogram(
            "netaio_handler_duration_seconds",
            "Handler run time, by message type",
            ["type"],
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0),
            **kw,
        )
        self.handler_errors = prom.Counter(
            "netaio_handler_errors", "Handlers that raised, by message type", ["type"], **kw
        )
        self.notify = prom.Counter("netaio_notify", "notify() and broadcast() calls", **kw)
        self.broker_published = prom.Counter(
            "netaio_broker_published", "Frames published through the broker", **kw
        )
        self.broker_publish_failures = prom.Counter(
            "netaio_broker_publish_failures", "Broker publications that failed", **kw
        )
        self.broker_delivered = prom.Counter(
            "netaio_broker_delivered", "Frames from other instances delivered", **kw
        )
        self.broker_subscriptions = prom.Gauge(
            "netaio_broker_subscriptions",
            "Keys subscribed at the broker",
            multiprocess_mode="livesum",
            **kw,
        )


def _metrics_for(registry: Any) -> ServerMetrics:
    found = _metrics.get(id(registry))
    if found is None:
        found = _metrics[id(registry)] = ServerMetrics(registry)
    return found


def _count_drop(metrics: ServerMetrics) -> Any:
    """An ``on_drop`` hook counting refusals, drops and rejected messages."""
    counters = {
        "refused": metrics.connections_refused,
        "dropped": metrics.clients_dropped,
        "rejected": metrics.messages_rejected,
    }

    def count(connection: object, reason: DropReason) -> None:
        counters[reason.kind].labels(reason.label).inc()

    return count


def _timed(handler: Any, metrics: ServerMetrics) -> Any:
    """``handler`` timed and counted; plain stays plain."""
    if getattr(handler, "__netaio_metrics__", False):
        return handler
    received = metrics.messages_received
    sent = metrics.messages_sent
    duration = metrics.handler_duration
    errors = metrics.handler_errors

    def finish(kind: str, start: float, result: Any) -> None:
        duration.labels(kind).observe(time.perf_counter() - start)
        if result is not None:
            sent.labels(_type_name(result)).inc()

    async def awaited(kind: str, start: float, pending: Any) -> Any:
        try:
            result = await pending
        except BaseException:
            errors.labels(kind).inc()
            duration.labels(kind).observe(time.perf_counter() - start)
            raise
        finish(kind, start, result)
        return result

    def wrapper(message: Any, writer: Any) -> Any:
        kind = _type_name(message)
        received.labels(kind).inc()
        start = time.perf_counter()
        try:
            result = handler(message, writer)
        except BaseException:
            errors.labels(kind).inc()
            duration.labels(kind).observe(time.perf_counter() - start)
            raise
        if result is not None and isawaitable(result):
            return awaited(kind, start, result)
        finish(kind, start, result)
        return result

    wrapper.__netaio_metrics__ = True  # type: ignore[attr-defined]
    wrapper.__wrapped__ = handler  # type: ignore[attr-defined]
    return wrapper


class _TimedHandlers(dict[Hashable, Any]):
    """The handler table, wrapping every entry set in it."""

    metrics: ServerMetrics

    def __setitem__(self, key: Hashable, entry: Any) -> None:
        handler, plugin = entry
        super().__setitem__(key, (_timed(handler, self.metrics), plugin))


class InstrumentedBroker:
    """A broker that counts what goes through another one."""

    def __init__(self, inner: BrokerProtocol, metrics: ServerMetrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def start(self, deliver: Deliver) -> None:
        delivered = self.metrics.broker_delivered

        def counted(key: bytes | str | None, frame: bytes) -> None:
            delivered.inc()
            deliver(key, frame)

        await self.inner.start(counted)

    async def stop(self) -> None:
        await self.inner.stop()

    async def publish(self, key: bytes | str | None, frame: bytes) -> None:
        dropped = getattr(self.inner, "dropped", None)
        try:
            await self.inner.publish(key, frame)
        except Exception:
            self.metrics.broker_publish_failures.inc()
            raise
        if dropped is not None and getattr(self.inner, "dropped", None) != dropped:
            self.metrics.broker_publish_failures.inc()
        else:
            self.metrics.broker_published.inc()

    async def subscribe(self, key: bytes | str) -> None:
        await self.inner.subscribe(key)
        self.metrics.broker_subscriptions.inc()

    async def unsubscribe(self, key: bytes | str) -> None:
        await self.inner.unsubscribe(key)
        self.metrics.broker_subscriptions.dec()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def instrument(server: TCPServer[Any], registry: Any = None) -> ServerMetrics:
    """Count and time what ``server`` does, in ``registry`` (prometheus_client's
    default one when None); idempotent. Call it before the server listens
    (and after ``server.broker`` is set)."""
    metrics = _metrics_for(registry)
    existing: object = getattr(server, "_netaio_metrics", None)
    if existing is metrics:
        return metrics
    server._netaio_metrics = metrics  # type: ignore[attr-defined]

    @server.on_connect
    def connected(writer: object) -> None:
        metrics.connections_accepted.inc()
        metrics.connections_open.inc()

    @server.on_disconnect
    def disconnected(writer: object) -> None:
        metrics.connections_open.dec()

    table = _TimedHandlers()
    table.metrics = metrics
    for key, entry in server.handlers.items():
        table[key] = entry
    server.handlers = table
    server.default_handler = _timed(server.default_handler, metrics)

    notify = server.notify
    broadcast = server.broadcast
    sent = metrics.messages_sent

    async def counted_notify(
        key: Hashable, message: MessageProtocol, use_auth: bool = True
    ) -> None:
        metrics.notify.inc()
        subscribers = server.subscriptions.get(key)
        if subscribers:
            sent.labels(_type_name(message)).inc(len(subscribers))
        await notify(key, message, use_auth)

    async def counted_broadcast(message: MessageProtocol, use_auth: bool = True) -> None:
        metrics.notify.inc()
        sent.labels(_type_name(message)).inc(len(server.clients))
        await broadcast(message, use_auth)

    server.notify = counted_notify  # type: ignore[method-assign]
    server.broadcast = counted_broadcast  # type: ignore[method-assign]
    if server.broker is not None and not isinstance(server.broker, InstrumentedBroker):
        server.broker = InstrumentedBroker(server.broker, metrics)
    server.on_drop(_count_drop(metrics))
    return metrics


def start_metrics_server(port: int, host: str = "0.0.0.0", registry: Any = None) -> Any:
    """Serve ``registry`` (the default one; with ``PROMETHEUS_MULTIPROC_DIR``
    set, the sum over the processes writing there) on ``http://host:port/metrics``
    in a thread; returns the HTTP server (``shutdown()`` stops it)."""
    prom = _prometheus()
    if registry is None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = prom.CollectorRegistry()
            importlib.import_module("prometheus_client.multiprocess").MultiProcessCollector(
                registry
            )
        else:
            registry = prom.REGISTRY
    started = prom.start_http_server(port, addr=host, registry=registry)
    return started[0] if isinstance(started, tuple) else started


def mark_process_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        importlib.import_module("prometheus_client.multiprocess").mark_process_dead(pid)
