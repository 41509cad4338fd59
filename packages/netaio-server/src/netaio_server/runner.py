"""Run a TCPServer in production: until SIGTERM or SIGINT, then gracefully.

``serve(server)`` (a coroutine) and ``run(server)`` (like ``asyncio.run``)
are for ``python server.py``; ``netaio serve MODULE:ATTR`` uses the same code,
and ``Supervisor`` runs several worker processes of it on one port.

On the first SIGTERM or SIGINT the server stops accepting, in-flight
handlers get ``grace`` seconds (``Limits.shutdown_grace`` by default) to
reply, every client gets DISCONNECT, and ``serve`` returns: the process
exits with status 0 after one log line. A second SIGINT during that wait
exits at once with status 1 (a repeated SIGTERM is ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from .server import TCPServer

__all__ = ["Supervisor", "run", "serve", "runner_logger"]

runner_logger = logging.getLogger("netaio.runner")
"""The logger of ``serve``, ``run`` and the worker supervisor."""

_T = TypeVar("_T")
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PARENT_CHECK_INTERVAL = 1.0


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _install(loop: asyncio.AbstractEventLoop, callback: Callable[[int], None]) -> list[int]:
    """Route SIGTERM and SIGINT to ``callback`` (on the loop); returns the
    signals whose handler was installed (none outside the main thread)."""
    installed: list[int] = []
    for signum in _STOP_SIGNALS:
        try:
            loop.add_signal_handler(signum, callback, int(signum))
        except NotImplementedError:  # Windows: no loop signal handlers
            try:
                signal.signal(signum, lambda s, _f: loop.call_soon_threadsafe(callback, int(s)))
            except ValueError:  # not the main thread
                continue
        except (RuntimeError, ValueError):  # not the main thread
            continue
        installed.append(int(signum))
    return installed


def _uninstall(loop: asyncio.AbstractEventLoop, installed: list[int]) -> None:
    for signum in installed:
        try:
            loop.remove_signal_handler(signum)
        except NotImplementedError:
            signal.signal(signum, signal.SIG_DFL)
        except (RuntimeError, ValueError):
            pass


async def serve(
    server: TCPServer[Any],
    *,
    grace: float | None = None,
    sock: socket.socket | None = None,
    handle_signals: bool = True,
    on_ready: Callable[[], object] | None = None,
    watch_parent: int | None = None,
) -> None:
    """Serve ``server`` until SIGTERM or SIGINT (or ``server.stop()``), then
    stop it gracefully and return.

    grace: seconds in-flight handlers may take to finish once stopping
        begins; ``server.limits.shutdown_grace`` when None.
    sock: an already bound socket to serve (``server.listen(sock=...)``).
    handle_signals: install the SIGTERM/SIGINT handlers (only possible in
        the main thread); a second SIGINT (^C twice) exits the process at
        once with status 1, a second SIGTERM is ignored.
    on_ready: called once the server listens.
    watch_parent: a process id; the server stops when this process is gone
        (the worker supervisor's, so that no worker outlives it).

    A handler that raised ``KeyboardInterrupt`` or ``SystemExit`` stops the
    server gracefully too, and that exception is then raised here.
    """
    loop = asyncio.get_running_loop()
    stopping: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: int) -> None:
        if not stopping.done():
            stopping.set_result(signum)
            return
        if signum != signal.SIGINT or watch_parent is not None:
            # A repeated SIGTERM (systemd signals every process of the unit,
            # and the supervisor forwards it too) changes nothing.
            runner_logger.debug("Received %s again: already stopping", _signal_name(signum))
            return
        runner_logger.warning("Received %s again: exiting now", _signal_name(signum))
        logging.shutdown()
        os._exit(1)

    installed = _install(loop, on_signal) if handle_signals else []
    watcher: asyncio.Task[None] | None = None
    try:
        await server.listen(sock=sock)
        if on_ready is not None:
            on_ready()
        if watch_parent is not None:
            watcher = asyncio.ensure_future(_watch_parent(watch_parent, stopping))
        serving = asyncio.ensure_future(server.start())
        try:
            waiters: set[asyncio.Future[Any]] = {serving, stopping}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            serving.cancel()  # start() stops the server gracefully when cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await serving
            raise
        if stopping.done() and not serving.done():
            signum = stopping.result()
            seconds = server.limits.shutdown_grace if grace is None else grace
            if signum:
                runner_logger.info(
                    "Received %s: shutting down (in-flight requests get %gs)",
                    _signal_name(signum),
                    seconds,
                )
            else:
                runner_logger.info(
                    "The supervisor is gone: shutting down (in-flight requests get %gs)",
                    seconds,
                )
            await server.stop(grace)
        await serving
    finally:
        if watcher is not None:
            watcher.cancel()
        _uninstall(loop, installed)
        if not stopping.done():
            stopping.cancel()


async def _watch_parent(pid: int, stopping: asyncio.Future[int]) -> None:
    while not stopping.done():
        await asyncio.sleep(_PARENT_CHECK_INTERVAL)
        if os.getppid() != pid and not stopping.done():
            stopping.set_result(0)


def run_coroutine(main: Coroutine[Any, Any, _T], loop: str = "asyncio") -> _T:
    """``asyncio.run(main)``, on uvloop when ``loop`` is "uvloop" (or
    "auto" and uvloop is installed)."""
    if loop not in ("asyncio", "uvloop", "auto"):
        main.close()
        raise ValueError(f'loop must be "asyncio", "uvloop" or "auto", not {loop!r}')
    if loop != "asyncio":
        try:
            uvloop: Any = importlib.import_module("uvloop")
        except ImportError:
            if loop == "uvloop":
                main.close()
                raise RuntimeError(
                    'loop="uvloop" needs uvloop: pip install "netaio-server[uvloop]"'
                ) from None
        else:
            result: _T = uvloop.run(main)
            return result
    return asyncio.run(main)


def run(
    server: TCPServer[Any],
    *,
    grace: float | None = None,
    loop: str = "asyncio",
    sock: socket.socket | None = None,
) -> None:
    """Run ``server`` in a new event loop until SIGTERM or SIGINT, then stop
    it gracefully and return (like ``asyncio.run(serve(server))``). ``loop``:
    "asyncio", "uvloop" or "auto" (uvloop when installed)."""
    run_coroutine(serve(server, grace=grace, sock=sock), loop)


# -- several worker processes on one port ---------------------------------------


class Supervisor:
    """Runs ``workers`` processes of one command and keeps them running.

    Each worker is started as ``command`` with the environment variable
    ``NETAIO_WORKER`` set to ``"<ready_fd>,<socket_fd>"`` (socket_fd -1 when
    the workers bind on their own with SO_REUSEPORT): a worker writes its pid
    and a newline to ``ready_fd`` once it listens. A worker that exits
    unexpectedly is restarted (one that exits before it was ready is a boot
    failure: the supervisor then stops every worker and exits with status
    1). SIGTERM and SIGINT are forwarded to every worker (as SIGTERM); the
    supervisor returns once every worker has exited, SIGKILLing those still
    running after ``stop_timeout`` seconds.
    """

    def __init__(
        self,
        command: Sequence[str],
        workers: int,
        *,
        sock: socket.socket | None = None,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = 30.0,
        on_worker_exit: Callable[[int], object] | None = None,
        describe: str = "",
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.command = list(command)
        self.workers = workers
        self.sock = sock
        self.env = dict(os.environ if env is None else env)
        self.stop_timeout = stop_timeout
        self.on_worker_exit = on_worker_exit
        self.describe = describe
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.ready: set[int] = set()
        self.restarts = 0
        self._signals: list[int] = []

    def _spawn(self, ready_w: int) -> None:
        fds = [ready_w]
        sock_fd = -1
        if self.sock is not None:
            sock_fd = self.sock.fileno()
            fds.append(sock_fd)
        env = dict(self.env)
        env["NETAIO_WORKER"] = f"{ready_w},{sock_fd},{os.getpid()}"
        process = subprocess.Popen(
            self.command,
            env=env,
            pass_fds=fds,
            start_new_session=True,  # a terminal's ^C reaches the supervisor only
        )
        self.processes[process.pid] = process

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def run(self) -> int:
        """Supervise until a stop signal and every worker has exited;
        returns the exit status (0 when every worker exited with 0)."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        ready_r, ready_w = os.pipe()
        os.set_blocking(ready_r, False)
        previous = {s: signal.getsignal(s) for s in (*_STOP_SIGNALS, signal.SIGCHLD)}
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGCHLD, lambda s, f: None)  # wakes the select
        status = 0
        stopping_since: float | None = None
        announced = False
        buffer = b""
        try:
            for _ in range(self.workers):
                self._spawn(ready_w)
            while True:
                timeout = 0.5
                with contextlib.suppress(InterruptedError):
                    select.select([wake_r.fileno(), ready_r], [], [], timeout)
                with contextlib.suppress(BlockingIOError, OSError):
                    while wake_r.recv(512):
                        pass
                with contextlib.suppress(BlockingIOError):
                    while chunk := os.read(ready_r, 512):
                        buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    with contextlib.suppress(ValueError):
                        self.ready.add(int(line))
                if not announced and stopping_since is None and len(self.ready) >= self.workers:
                    announced = True
                    runner_logger.info(
                        "Supervisor %d ready: %d workers%s",
                        os.getpid(),
                        self.workers,
                        f" {self.describe}" if self.describe else "",
                    )
                if self._signals and stopping_since is None:
                    first = self._signals[0]
                    runner_logger.info(
                        "Received %s: stopping %d workers",
                        _signal_name(first),
                        len(self.processes),
                    )
                    stopping_since = time.monotonic()
                    for process in self.processes.values():
                        with contextlib.suppress(ProcessLookupError):
                            process.send_signal(signal.SIGTERM)
                for pid, process in list(self.processes.items()):
                    code = process.poll()
                    if code is None:
                        continue
                    del self.processes[pid]
                    was_ready = pid in self.ready
                    self.ready.discard(pid)
                    if self.on_worker_exit is not None:
                        self.on_worker_exit(pid)
                    if stopping_since is not None:
                        if code != 0:
                            status = 1
                            runner_logger.warning("Worker %d exited with %s", pid, _how(code))
                        continue
                    if not was_ready:
                        runner_logger.error(
                            "Worker %d failed to start (%s): stopping", pid, _how(code)
                        )
                        status = 1
                        stopping_since = time.monotonic()
                        for other in self.processes.values():
                            with contextlib.suppress(ProcessLookupError):
                                other.send_signal(signal.SIGTERM)
                        continue
                    self.restarts += 1
                    runner_logger.warning(
                        "Worker %d died unexpectedly (%s): restarting it", pid, _how(code)
                    )
                    self._spawn(ready_w)
                if stopping_since is not None:
                    if not self.processes:
                        break
                    if time.monotonic() - stopping_since > self.stop_timeout:
                        for pid, process in self.processes.items():
                            runner_logger.error("Worker %d did not stop in time: killing it", pid)
                            with contextlib.suppress(ProcessLookupError):
                                process.kill()
                        for process in self.processes.values():
                            process.wait()
                        self.processes.clear()
                        status = 1
                        break
        finally:
            for process in self.processes.values():  # only on an error of our own
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            wake_r.close()
            wake_w.close()
            os.close(ready_r)
            os.close(ready_w)
        return status


def _how(code: int) -> str:
    if code < 0:
        return f"killed by {_signal_name(-code)}"
    return f"exit status {code}"


def worker_environment() -> tuple[int, socket.socket | None, int] | None:
    """In a supervised worker: (ready_fd, inherited socket or None, the
    supervisor's pid), taken out of the environment; else None."""
    value = os.environ.pop("NETAIO_WORKER", None)
    if value is None:
        return None
    ready_s, sock_s, parent_s = value.split(",")
    sock_fd = int(sock_s)
    sock = socket.socket(fileno=sock_fd) if sock_fd >= 0 else None
    return int(ready_s), sock, int(parent_s)


def signal_ready(ready_fd: int) -> None:
    """Tell the supervisor that this worker listens."""
    try:
        os.write(ready_fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(ready_fd)


if sys.platform == "win32":  # pragma: no cover
    Supervisor.__doc__ = (Supervisor.__doc__ or "") + "\n(Not available on Windows.)"
