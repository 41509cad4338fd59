"""The workloads measured in one process, printed as a line of JSON.

    python bench/workloads.py IMPL LOOP WORKLOAD [--seconds S] [--broker-port P]

The round-trip workloads run the server and the client in processes of
their own (bench/harness.py); these are the rest. IMPL is a key of
``impls.SPECS``: ``netaio`` and ``old`` are whatever ``import netaio``
resolves to in this interpreter (this repository's umbrella, or netaio 0.0.2
from PyPI in an environment of its own). LOOP is ``asyncio`` or ``uvloop``.

- ``fanout200`` / ``fanout1000``: the server's notify of one message to
  every subscriber, the subscribers in bench/peers.py (another process);
  for NATS, a publish through the broker at ``--broker-port``.
- ``memory1000``: the server's memory per idle connection.
- ``codec`` / ``codec_auth``: encode + decode of one message, no I/O.

Every network workload talks over 127.0.0.1 only, every loop is bounded by a
deadline and an iteration cap, and every reply is checked.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time
import tracemalloc
from typing import Any
from zlib import crc32

from common import (
    ECHO_URI,
    HOST,
    LOOPS,
    MAX_ITERATIONS,
    PAYLOAD,
    WAIT,
    content_for,
    cpu_seconds,
    run_on_loop,
    settle_malloc,
    until,
)
from impls import SPECS, make_server
from impls.framed import (
    _AUTH_PREFIX,
    _EMPTY_AUTH,
    _HEADER,
    _HMAC_PAIR,
    _NONCE_PAIR,
    _TS_PAIR,
    _U32,
)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers.py")
HELPER_PYTHON = sys.executable  # the interpreter of bench/peers.py (see --helper-python)
BROKER_PORT = 0  # the nats-server of the NATS fan-out (see --broker-port)


async def _peers(*args: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        HELPER_PYTHON,
        PEERS,
        *(str(a) for a in args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def _line(proc: asyncio.subprocess.Process, timeout: float = WAIT) -> bytes:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        raise RuntimeError(f"bench/peers.py ended early (exit status {await proc.wait()})")
    return line


async def fan_out(impl: str, seconds: float, subscribers: int) -> dict[str, Any]:
    """One notify to ``subscribers`` connections (in bench/peers.py, another
    process), timed from the call until every subscriber has the message;
    the figure is deliveries per second of those rounds, and the CPU this
    process spent in them per delivery."""
    server = make_server(impl, False, BROKER_PORT)
    port = await server.start()
    mode = "nats-subscribe" if SPECS[impl].broker else "subscribe"
    proc = await _peers(mode, HOST, port, subscribers)
    try:
        if await _line(proc, 4 * WAIT) != b"ready\n":
            raise RuntimeError("subscribers not ready")
        busy = cpu = 0.0
        rounds = 0
        for r in range(MAX_ITERATIONS):
            start, cpu_start = time.perf_counter(), cpu_seconds()
            await server.notify(content_for(r))
            if int(await _line(proc)) != r:
                raise AssertionError("notifications out of order")
            if r >= 3:  # the first rounds warm up
                busy += time.perf_counter() - start
                cpu += cpu_seconds() - cpu_start
                rounds += 1
                if busy >= seconds:
                    break
        deliveries = rounds * subscribers
        return {
            "value": deliveries / busy,
            "cpu_server": cpu / deliveries * 1e6,
            "unit": "deliveries/s",
            "n": deliveries,
        }
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        status = await asyncio.wait_for(proc.wait(), WAIT)
        await server.stop()
        if status:
            raise RuntimeError(f"bench/peers.py failed (exit status {status})")


_CONNECTOR = """
import socket, sys
socks = [socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
         for _ in range(int(sys.argv[3]))]
print("ready", flush=True)
sys.stdin.readline()
for s in socks:
    s.close()
"""


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def memory(impl: str, connections: int = 1000) -> dict[str, Any]:
    """Server-side memory per idle connection. The clients are plain sockets
    in a separate process, so only the server's side is in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * connections)), hard))
    server = make_server(impl)
    port = await server.start()

    async def connect(n: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            HELPER_PYTHON,
            "-c",
            _CONNECTOR,
            HOST,
            str(port),
            str(n),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        if await _line(proc) != b"ready\n":
            raise RuntimeError("connector failed")
        await until(lambda: len(server.clients) >= n, "connections not accepted")
        return proc

    async def disconnect(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None
        proc.stdin.close()
        await until(lambda: not server.clients, "connections not closed")
        await asyncio.wait_for(proc.wait(), WAIT)

    try:
        await disconnect(await connect(10))  # warm every lazy path once
        gc.collect()
        tracemalloc.start()
        base_traced, base_rss = tracemalloc.get_traced_memory()[0], _rss()
        proc = await connect(connections)
        await asyncio.sleep(0.2)
        gc.collect()
        traced, rss = tracemalloc.get_traced_memory()[0], _rss()
        tracemalloc.stop()
        await disconnect(proc)
        return {
            "value": (traced - base_traced) / connections,
            "rss": (rss - base_rss) / connections,
            "unit": "bytes/connection",
            "n": connections,
        }
    finally:
        await server.stop()


def codec(impl: str, seconds: float, with_auth: bool) -> dict[str, Any]:
    """Encode then decode (checksum verified) one message: 100-byte content,
    with or without a 3-field auth dict."""
    fields = {"nonce": os.urandom(16), "ts": b"\x00\x01\x02\x03", "hmac": os.urandom(32)}
    if impl == "raw":
        body = _U32.pack(len(ECHO_URI)) + ECHO_URI + PAYLOAD
        # For raw, the "3-field auth dict" is the fixed-layout section.
        auth = _EMPTY_AUTH
        if with_auth:
            ts, mac, nonce = fields["ts"], fields["hmac"], fields["nonce"]
            auth = _AUTH_PREFIX + _TS_PAIR + ts + _HMAC_PAIR + mac + _NONCE_PAIR + nonce

        def one() -> None:
            data = _HEADER.pack(0, len(auth), len(body), crc32(body)) + auth + body
            _, auth_length, _, checksum = _HEADER.unpack_from(data)
            body_ = data[9 + auth_length :]
            if crc32(body_) != checksum:
                raise ValueError("checksum mismatch")
            auth_ = data[9 : 9 + auth_length]
            if with_auth and not auth_.startswith(_AUTH_PREFIX):
                raise ValueError("bad auth section")
            (uri_length,) = _U32.unpack_from(body_)
            if body_[4 + uri_length :] != PAYLOAD:
                raise AssertionError("round trip changed the content")

    else:
        import netaio

        n = netaio
        message = n.Message.prepare(
            n.Body.prepare(PAYLOAD, ECHO_URI),
            n.MessageType.REQUEST_URI,
            n.AuthFields(dict(fields) if with_auth else {}),
        )
        if hasattr(n.TCPServer, "listen"):
            decode = n.Message.decode
        else:
            # 0.0.2's Message.decode fails on every frame (it ignores the auth
            # section and omits auth_data); decode as its server and client do.
            H, A, B, M = n.Header, n.AuthFields, n.Body, n.Message

            def decode(data: bytes) -> Any:
                header = H.decode(data[:9])
                auth_end = 9 + header.auth_length
                m = M(
                    header=header,
                    auth_data=A.decode(data[9:auth_end]),
                    body=B.decode(data[auth_end : auth_end + header.body_length]),
                )
                if not m.check():
                    raise ValueError("checksum mismatch")
                return m

        def one() -> None:
            decoded = decode(message.encode())
            if decoded.body.content != PAYLOAD:
                raise AssertionError("round trip changed the content")

        decoded = decode(message.encode())
        if decoded.auth_data.fields != (fields if with_auth else {}):
            raise AssertionError("round trip changed the auth fields")

    batch = 2000
    for _ in range(batch):  # warm-up
        one()
    best = float("inf")
    spent = 0.0
    runs = 0
    while (spent < seconds or runs < 3) and runs < 1000:
        start = time.perf_counter()
        for _ in range(batch):
            one()
        took = time.perf_counter() - start
        best = min(best, took)
        spent += took
        runs += 1
    return {"value": batch / best, "unit": "encode+decode/s", "n": batch * runs}


WORKLOADS = ("fanout200", "fanout1000", "memory1000", "codec", "codec_auth")


def main() -> None:
    settle_malloc()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=list(SPECS))
    parser.add_argument("loop", choices=LOOPS)
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--helper-python", default=sys.executable)
    parser.add_argument("--broker-port", type=int, default=0)
    args = parser.parse_args()
    global HELPER_PYTHON, BROKER_PORT
    HELPER_PYTHON, BROKER_PORT = args.helper_python, args.broker_port
    impl, seconds, w = args.impl, args.seconds, args.workload
    if w == "codec" or w == "codec_auth":
        result = codec(impl, seconds, w == "codec_auth")
    elif w.startswith("fanout"):
        result = run_on_loop(args.loop, fan_out(impl, seconds, int(w.removeprefix("fanout"))))
    else:
        result = run_on_loop(args.loop, memory(impl))
    if impl in ("netaio", "old"):
        import netaio

        result["version"] = netaio.version()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
