"""The implementations under test, by key: what each is and can do.

Each module holds a server class (``start() -> port``, ``stop()``) and a
client class (``connect(port)``, ``request(content)``, ``close()``; a client
whose ``concurrent`` is false also has ``send`` and ``receive``, for
replies in order). A module's own library is imported only when one of its
classes is used, so that any interpreter can read this registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

ROUND_TRIPS = frozenset({"rtt", "pipelined", "concurrent50"})


@dataclass(frozen=True)
class Spec:
    label: str
    module: str  # impls.<module>
    server: str
    client: str
    workloads: frozenset[str]
    lean: bool = False  # netaio's frames: bench/peers.py's lean clients load its server
    old: bool = False  # runs under --old-python (netaio 0.0.2)
    broker: bool = False  # needs a nats-server
    version_of: str = ""  # the distribution whose version the machine list names


FRAMED = frozenset({"fanout200", "fanout1000", "memory1000", "codec", "codec_auth"})
SPECS: dict[str, Spec] = {
    "netaio": Spec(
        "netaio",
        "framed",
        "NetaioServer",
        "NetaioClient",
        ROUND_TRIPS | FRAMED | {"rtt_hmac", "rtt_aead"},
        lean=True,
    ),
    "netaio-request": Spec(
        "netaio request()",
        "framed",
        "NetaioServer",
        "NetaioRequestClient",
        frozenset({"rtt", "rtt_hmac", "pipelined"}),
    ),
    "raw": Spec(
        "raw asyncio streams",
        "framed",
        "RawServer",
        "RawClient",
        ROUND_TRIPS | FRAMED | {"rtt_hmac"},
        lean=True,
    ),
    "rawproto": Spec(
        "raw asyncio.Protocol",
        "framed",
        "RawProtocolServer",
        "RawProtocolClient",
        ROUND_TRIPS | {"memory1000"},
        lean=True,
    ),
    "websockets": Spec(
        "websockets",
        "websocket",
        "WebsocketsServer",
        "WebsocketsClient",
        ROUND_TRIPS,
        version_of="websockets",
    ),
    "pyzmq": Spec("pyzmq", "zeromq", "ZmqServer", "ZmqClient", ROUND_TRIPS, version_of="pyzmq"),
    "grpc": Spec(
        "grpc.aio", "grpcaio", "GrpcServer", "GrpcClient", ROUND_TRIPS, version_of="grpcio"
    ),
    "nats": Spec(
        "NATS",
        "natsio",
        "NatsServer",
        "NatsClient",
        ROUND_TRIPS | {"fanout200", "fanout1000"},
        broker=True,
        version_of="nats-py",
    ),
    "old": Spec(
        "netaio 0.0.2",
        "framed",
        "NetaioServer",
        "NetaioClient",
        ROUND_TRIPS | FRAMED | {"rtt_hmac"},
        lean=True,
        old=True,
    ),
}


def _class(key: str, attribute: str) -> Any:
    spec = SPECS[key]
    return getattr(importlib.import_module(f"impls.{spec.module}"), getattr(spec, attribute))


def make_server(key: str, signed: bool | str = False, broker_port: int = 0) -> Any:
    """``signed``: True for HMAC, ``"aead"`` for AEADCipherPlugin (netaio only)."""
    cls = _class(key, "server")
    return cls(signed, broker_port) if SPECS[key].broker else cls(signed)


def make_client(key: str, signed: bool | str = False) -> Any:
    return _class(key, "client")(signed)
