"""One benchmark measurement per process, printed as a line of JSON.

    python bench/workloads.py IMPL LOOP WORKLOAD [--seconds S]

IMPL is ``netaio`` (whatever ``import netaio`` resolves to in this
interpreter: this repository's umbrella, or netaio 0.0.2 from PyPI in an
environment of its own) or ``raw`` (asyncio streams and struct doing the same
framing, without routing: the ceiling). LOOP is ``asyncio`` or ``uvloop``.

Every network workload talks over 127.0.0.1 only, every loop is bounded by a
deadline and an iteration cap, and every round trip checks the reply.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import json
import os
import resource
import socket
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from struct import Struct
from typing import Any
from zlib import crc32

HOST = "127.0.0.1"
PAYLOAD = bytes(range(100))  # body content of every request: 100 bytes
SECRET = b"benchmark secret"
ECHO_URI = b"echo"
TOPIC = b"topic"
MAX_ITERATIONS = 5_000_000  # hard cap on any timed loop, besides its deadline
WAIT = 30.0  # bound on any single wait for the peer


def content_for(i: int) -> bytes:
    """A distinct 100-byte payload per request, so that replies are checked."""
    return i.to_bytes(4, "big") + PAYLOAD[4:]


# ---------------------------------------------------------------------------
# raw asyncio streams + struct: the same wire format, no framework
# ---------------------------------------------------------------------------

_HEADER = Struct("!BHHI")
_U32 = Struct("!I")
_EMPTY_AUTH = b"\x4d\x40\x00"  # an empty dict in the auth section encoding
# A dict {"nonce": 16 bytes, "ts": 4 bytes, "hmac": 32 bytes} in the auth
# section encoding has a fixed layout: pairs sorted by their encoded bytes
# (ts, hmac, nonce) behind a dict header with their lengths.
_AUTH_PREFIX = bytes((0x4D, 0x40, 3, 15, 45, 30))
_TS_PAIR = bytes((0x4C, 0x40, 2, 4, 6, 0x43, 2)) + b"ts" + bytes((0x41, 4))
_HMAC_PAIR = bytes((0x4C, 0x40, 2, 6, 34, 0x43, 4)) + b"hmac" + bytes((0x41, 32))
_NONCE_PAIR = bytes((0x4C, 0x40, 2, 7, 18, 0x43, 5)) + b"nonce" + bytes((0x41, 16))
_AUTH_LENGTH = 96
_HMAC_KEY = hashlib.sha256(SECRET).digest()  # the key both netaio versions derive


def raw_auth(body: bytes) -> bytes:
    """Sign ``body``: the auth section holding a fresh nonce, ts and hmac."""
    nonce = os.urandom(16)
    ts = int(time.time()).to_bytes(4, "big")
    mac = hmac.new(_HMAC_KEY, nonce + ts + body, hashlib.sha256).digest()
    return _AUTH_PREFIX + _TS_PAIR + ts + _HMAC_PAIR + mac + _NONCE_PAIR + nonce


def raw_auth_ok(auth: bytes, body: bytes) -> bool:
    """Check an auth section made by ``raw_auth`` against ``body``."""
    if len(auth) != _AUTH_LENGTH or not auth.startswith(_AUTH_PREFIX):
        return False
    ts, mac, nonce = auth[17:21], auth[34:66], auth[80:96]
    expected = hmac.new(_HMAC_KEY, nonce + ts + body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, mac)


def raw_frame(message_type: int, uri: bytes, content: bytes, signed: bool) -> bytes:
    body = _U32.pack(len(uri)) + uri + content
    auth = raw_auth(body) if signed else _EMPTY_AUTH
    return _HEADER.pack(message_type, len(auth), len(body), crc32(body)) + auth + body


async def raw_read(reader: asyncio.StreamReader, signed: bool) -> tuple[int, bytes, bytes]:
    """Read one frame; check its checksum (and hmac); return type, uri, content."""
    message_type, auth_length, body_length, checksum = _HEADER.unpack(await reader.readexactly(9))
    data = await reader.readexactly(auth_length + body_length)
    body = data[auth_length:]
    if crc32(body) != checksum:
        raise ValueError("checksum mismatch")
    if signed and not raw_auth_ok(data[:auth_length], body):
        raise ValueError("hmac mismatch")
    (uri_length,) = _U32.unpack_from(body)
    end = 4 + uri_length
    return message_type, body[4:end], body[end:]


class RawServer:
    """Echoes REQUEST_URI, confirms SUBSCRIBE_URI; counts live connections."""

    def __init__(self, signed: bool) -> None:
        self.signed = signed
        self.clients: set[asyncio.StreamWriter] = set()
        self.subscribers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self.handle, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.add(writer)
        signed = self.signed
        try:
            while True:
                message_type, uri, content = await raw_read(reader, signed)
                if message_type == 0:  # REQUEST_URI
                    writer.write(raw_frame(1, uri, content, signed))
                elif message_type == 5:  # SUBSCRIBE_URI
                    self.subscribers.add(writer)
                    writer.write(raw_frame(11, uri, b"ok", signed))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.clients.discard(writer)
            self.subscribers.discard(writer)
            writer.close()

    async def notify(self, content: bytes) -> None:
        data = raw_frame(8, TOPIC, content, self.signed)
        for writer in self.subscribers:
            writer.write(data)
        for writer in self.subscribers:
            await writer.drain()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


class RawClient:
    def __init__(self, signed: bool) -> None:
        self.signed = signed

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, port)

    async def request(self, content: bytes) -> bytes:
        self.writer.write(raw_frame(0, ECHO_URI, content, self.signed))
        await self.writer.drain()
        _, _, reply = await raw_read(self.reader, self.signed)
        return reply

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def self_check() -> None:
    """The raw frames are byte for byte what this repository's codec makes."""
    from netaio_core import AuthFields, Body, Message, MessageType

    for signed in (False, True):
        data = raw_frame(0, ECHO_URI, PAYLOAD, signed)
        message = Message.decode(data)
        if message.encode() != data or message.body.content != PAYLOAD:
            raise AssertionError("raw framing differs from netaio's codec")
        if signed and sorted(message.auth_data.fields) != ["hmac", "nonce", "ts"]:
            raise AssertionError("raw auth section differs from netaio's codec")
    fields = {"nonce": bytes(16), "ts": bytes(4), "hmac": bytes(32)}
    expected = Message.prepare(
        Body.prepare(PAYLOAD, ECHO_URI), MessageType.REQUEST_URI, AuthFields(dict(fields))
    ).encode()
    body = _U32.pack(len(ECHO_URI)) + ECHO_URI + PAYLOAD
    auth = _AUTH_PREFIX + _TS_PAIR + bytes(4) + _HMAC_PAIR + bytes(32) + _NONCE_PAIR + bytes(16)
    if expected != _HEADER.pack(0, len(auth), len(body), crc32(body)) + auth + body:
        raise AssertionError("raw auth section layout differs from netaio's codec")


# ---------------------------------------------------------------------------
# netaio: this repository's or 0.0.2, through the documented API
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def message(netaio: Any, signed: bool, content: bytes, uri: bytes, message_type: Any) -> Any:
    """A message made as each version's documentation shows. A signed one
    gets fresh auth fields: 0.0.2's default auth_data is one shared object."""
    body = netaio.Body.prepare(content, uri)
    if signed:
        return netaio.Message.prepare(body, message_type, netaio.AuthFields({}))
    return netaio.Message.prepare(body, message_type)


class NetaioServer:
    """A netaio TCPServer echoing REQUEST_URI and confirming SUBSCRIBE_URI.

    netaio 0.0.2 has neither ``port=0`` nor ``stop()``: it gets a free port
    bound beforehand and its ``start()`` runs in a task cancelled at the end.
    """

    def __init__(self, signed: bool) -> None:
        import netaio

        self.netaio = netaio
        self.plugin = netaio.HMACAuthPlugin({"secret": SECRET}) if signed else None
        self.modern = hasattr(netaio.TCPServer, "listen")
        port = 0 if self.modern else free_port()
        server = netaio.TCPServer(host=HOST, port=port, auth_plugin=self.plugin)
        self.server = server
        self._task: asyncio.Task[None] | None = None
        T = netaio.MessageType

        def echo(request: Any, writer: asyncio.StreamWriter) -> Any:
            return message(netaio, signed, request.body.content, ECHO_URI, T.RESPOND_URI)

        def subscribe(request: Any, writer: asyncio.StreamWriter) -> Any:
            server.subscribe(TOPIC, writer)
            return message(netaio, signed, b"ok", TOPIC, T.CONFIRM_SUBSCRIBE)

        server.add_handler((T.REQUEST_URI, ECHO_URI), echo)
        server.add_handler((T.SUBSCRIBE_URI, TOPIC), subscribe)

    @property
    def clients(self) -> set[Any]:
        clients: set[Any] = self.server.clients
        return clients

    async def start(self) -> int:
        if self.modern:
            await self.server.listen()
        else:
            self._task = asyncio.create_task(self.server.start())
            for _ in range(500):  # wait until it listens
                try:
                    _, writer = await asyncio.open_connection(HOST, self.server.port)
                except ConnectionRefusedError:
                    await asyncio.sleep(0.01)
                    continue
                writer.close()
                await writer.wait_closed()
                await _until(lambda: not self.server.clients, "probe connection not closed")
                break
        port: int = self.server.port
        return port

    async def notify(self, content: bytes) -> None:
        n = self.netaio
        await self.server.notify(TOPIC, message(n, False, content, TOPIC, n.MessageType.NOTIFY_URI))

    async def stop(self) -> None:
        if self.modern:
            await self.server.stop()
        elif self._task is not None:
            # Let the connection tasks see their peers leave, then cancel.
            for _ in range(100):
                if not self.server.clients:
                    break
                await asyncio.sleep(0.01)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class NetaioClient:
    def __init__(self, signed: bool) -> None:
        import netaio

        self.netaio = netaio
        self.signed = signed
        self.plugin = netaio.HMACAuthPlugin({"secret": SECRET}) if signed else None
        self.client: Any = None

    async def connect(self, port: int) -> None:
        n = self.netaio
        self.client = n.TCPClient(HOST, port, auth_plugin=self.plugin)
        await self.client.connect(HOST, port)

    async def request(self, content: bytes) -> bytes:
        n = self.netaio
        await self.client.send(
            message(n, self.signed, content, ECHO_URI, n.MessageType.REQUEST_URI)
        )
        reply = await self.client.receive_once()
        if reply is None:
            raise AssertionError("reply discarded (checksum or auth failed)")
        content_: bytes = reply.body.content
        return content_

    async def close(self) -> None:
        await self.client.close()


def make(impl: str, signed: bool) -> tuple[Any, Callable[[], Any]]:
    if impl == "raw":
        return RawServer(signed), lambda: RawClient(signed)
    return NetaioServer(signed), lambda: NetaioClient(signed)


# ---------------------------------------------------------------------------
# workloads
# ---------------------------------------------------------------------------

WINDOW = 0.1  # seconds: each run reports its best window of this length


class Windows:
    """Counts events over consecutive windows of ``WINDOW`` seconds; the
    figure is the best window's rate (the mean is reported too), so that a
    burst of load from elsewhere on the machine costs a window, not the run."""

    def __init__(self) -> None:
        self.start = self.window_start = self.now = time.perf_counter()
        self.total = self.in_window = 0
        self.best = 0.0

    def over(self, seconds: float) -> bool:
        return self.now - self.start >= seconds

    def tick(self, events: int, busy: float | None = None) -> None:
        """Count ``events``; ``busy`` (fan-out) times only the rounds themselves."""
        self.total += events
        self.in_window += events
        if busy is None:
            self.now = time.perf_counter()
        else:
            self.now += busy
        elapsed = self.now - self.window_start
        if elapsed >= WINDOW:
            self.best = max(self.best, self.in_window / elapsed)
            self.window_start, self.in_window = self.now, 0

    def result(self, unit: str) -> dict[str, Any]:
        mean = self.total / (self.now - self.start)
        return {"value": max(self.best, mean), "mean": mean, "unit": unit, "n": self.total}


async def round_trips(impl: str, seconds: float, signed: bool) -> dict[str, Any]:
    """Sequential request/response, one client, 100-byte payload."""
    server, new_client = make(impl, signed)
    port = await server.start()
    client = new_client()
    await client.connect(port)
    try:
        for i in range(200):  # warm-up
            if await client.request(content_for(i)) != content_for(i):
                raise AssertionError("wrong reply")
        windows = Windows()
        count = 0
        while not windows.over(seconds) and count < MAX_ITERATIONS:
            content = content_for(count)
            if await client.request(content) != content:
                raise AssertionError("wrong reply")
            count += 1
            windows.tick(1)
        return windows.result("round trips/s")
    finally:
        await client.close()
        await server.stop()


PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers.py")
HELPER_PYTHON = sys.executable  # the interpreter of bench/peers.py (see --helper-python)


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


async def concurrent(impl: str, seconds: float, clients: int = 50) -> dict[str, Any]:
    """Server throughput with ``clients`` connections doing request/response
    at once, driven by bench/peers.py from another process."""
    server, _ = make(impl, False)
    port = await server.start()
    try:
        proc = await _peers("load", HOST, port, clients, seconds)
        result = json.loads(await _line(proc, seconds + WAIT))
        await asyncio.wait_for(proc.wait(), WAIT)
        mean = result["count"] / result["elapsed"]
        return {
            "value": max(result["best"], mean),
            "mean": mean,
            "unit": "round trips/s",
            "n": result["count"],
        }
    finally:
        await server.stop()


async def fan_out(impl: str, seconds: float, subscribers: int) -> dict[str, Any]:
    """One notify to ``subscribers`` connections (in bench/peers.py, another
    process), timed from the call until every subscriber has the message."""
    server, _ = make(impl, False)
    port = await server.start()
    proc = await _peers("subscribe", HOST, port, subscribers)
    try:
        if await _line(proc) != b"ready\n":
            raise RuntimeError("subscribers not ready")
        windows = Windows()
        for r in range(MAX_ITERATIONS):
            start = time.perf_counter()
            await server.notify(content_for(r))
            if int(await _line(proc)) != r:
                raise AssertionError("notifications out of order")
            if r >= 3:  # the first rounds warm up
                windows.tick(subscribers, time.perf_counter() - start)
                if windows.over(seconds):
                    break
        return windows.result("deliveries/s")
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


async def _until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(what)


async def memory(impl: str, connections: int = 1000) -> dict[str, Any]:
    """Server-side memory per idle connection. The clients are plain sockets
    in a separate process, so only the server's side is in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * connections)), hard))
    server, _ = make(impl, False)
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
        await _until(lambda: len(server.clients) >= n, "connections not accepted")
        return proc

    async def disconnect(proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None
        proc.stdin.close()
        await _until(lambda: not server.clients, "connections not closed")
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


# ---------------------------------------------------------------------------


def run_on_loop(loop_name: str, coro: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    if loop_name == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


WORKLOADS = (
    "rtt",
    "rtt_hmac",
    "concurrent50",
    "fanout200",
    "fanout1000",
    "memory1000",
    "codec",
    "codec_auth",
)


def settle_malloc() -> None:
    """Start every process in the same allocator state.

    asyncio's default-loop transports receive into 256 KiB buffers. glibc
    serves blocks that large with mmap until a freed mmap'd block raises its
    threshold; until then every receive costs an mmap/munmap pair and fresh
    page faults, which halves round trips on the default loop in some
    processes and not others, depending on what they happened to allocate
    first. Freeing one 1 MiB block raises the threshold in every process.
    """
    block = bytearray(1 << 20)
    del block


def main() -> None:
    settle_malloc()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=("netaio", "raw"))
    parser.add_argument("loop", choices=("asyncio", "uvloop"))
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--helper-python", default=sys.executable)
    args = parser.parse_args()
    global HELPER_PYTHON
    HELPER_PYTHON = args.helper_python
    impl, seconds, w = args.impl, args.seconds, args.workload
    if w == "codec" or w == "codec_auth":
        result = codec(impl, seconds, w == "codec_auth")
    else:
        coro: Awaitable[dict[str, Any]]
        if w in ("rtt", "rtt_hmac"):
            coro = round_trips(impl, seconds, w == "rtt_hmac")
        elif w == "concurrent50":
            coro = concurrent(impl, seconds)
        elif w.startswith("fanout"):
            coro = fan_out(impl, seconds, int(w.removeprefix("fanout")))
        else:
            coro = memory(impl)
        result = run_on_loop(args.loop, coro)
    if impl == "netaio":
        import netaio

        result["version"] = netaio.version()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
