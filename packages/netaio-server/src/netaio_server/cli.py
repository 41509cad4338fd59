"""The ``netaio`` command: ``serve``, ``request`` and ``subscribe``.

    netaio serve MODULE:ATTR [--workers N] [--broker nats://...] ...
    netaio request HOST:PORT URI [--type TYPE] [--content TEXT|@FILE|-] [--json]
    netaio subscribe HOST:PORT URI [--count N] [--timeout S] [--json]

``serve`` needs netaio-server alone (``python -m netaio_server.cli serve``
is also how the supervisor starts its workers); ``request`` and
``subscribe`` need netaio-client and netaio-auth, declared as the extra
``netaio-server[client]`` (the ``netaio`` distribution, which owns the
``netaio`` console script, brings them too).

Exit status of ``request`` and ``subscribe``: 0 on success; 1 when the
server answers ERROR, NOT_FOUND, AUTH_ERROR or NOT_PERMITTED; 2 on a usage
error; 3 when the connection fails or ends; 4 on a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import importlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import socket
import ssl as ssl_module
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from netaio_core import AuthPluginProtocol, Limits, Message, MessageType
from netaio_core.errors import AuthenticationError, ConnectionClosedError, NetaioError

from .runner import (
    Supervisor,
    run_coroutine,
    runner_logger,
    serve,
    signal_ready,
    worker_environment,
)
from .server import TCPServer, default_server_logger

if TYPE_CHECKING:
    from netaio_client import TCPClient

__all__ = ["add_serve_arguments", "build_parser", "load_target", "main", "run_serve"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
_LIMIT_OPTIONS = {
    "max_connections": int,
    "max_connections_per_ip": int,
    "idle_timeout": float,
    "shutdown_grace": float,
    "max_frame_size": int,
    "write_buffer_limit": int,
    "max_concurrent_requests": int,
    "max_subscriptions": int,
    "tls_handshake_timeout": float,
    "heartbeat_timeout": float,
}


class UsageError(Exception):
    """A bad argument: reported in one line, exit status 2."""


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``serve`` (shared with the ``netaio`` command)."""
    parser.add_argument(
        "target",
        metavar="MODULE:ATTR",
        help="the server: a TCPServer, or a function (sync or async, no arguments) "
        "returning one; MODULE is a dotted module name or a path to a .py file",
    )
    parser.add_argument("--app-dir", default=".", help="directory put on sys.path (default .)")
    parser.add_argument("--host", help="address to listen on (default: the server's own)")
    parser.add_argument("--port", type=int, help="port to listen on (default: the server's own)")
    parser.add_argument("--backlog", type=int, help="listen backlog")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port (SO_REUSEPORT where available)",
    )
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "auto"], default="asyncio")
    parser.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
    )
    parser.add_argument("--ssl-certfile", help="serve TLS with this certificate (PEM)")
    parser.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    parser.add_argument(
        "--ssl-ca-certs", help="CA bundle: require client certificates signed by it (mutual TLS)"
    )
    limits = parser.add_argument_group("limits (netaio_core.Limits)")
    for name, kind in _LIMIT_OPTIONS.items():
        limits.add_argument("--" + name.replace("_", "-"), type=kind, metavar="N")
    parser.add_argument(
        "--broker",
        metavar="nats://HOST:PORT",
        help="carry notify/broadcast across instances through NATS (comma-separated "
        'URLs of one cluster); needs "netaio-server[nats]"',
    )
    parser.add_argument("--broker-prefix", default="netaio", help="NATS subject prefix")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help='serve Prometheus metrics on this port (needs "netaio-server[metrics]")',
    )
    parser.add_argument("--metrics-host", default="0.0.0.0")


def configure_logging(level: str) -> None:
    numeric = getattr(logging, level.upper())
    logging.basicConfig(level=numeric, format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger().setLevel(numeric)
    default_server_logger.setLevel(numeric)


def load_target(target: str, app_dir: str = ".") -> Any:
    """The object named by ``MODULE:ATTR`` (MODULE dotted or a .py path)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"expected MODULE:ATTR, got {target!r}")
    directory = str(Path(app_dir).resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise UsageError(f"no such file: {module_name}")
        name = "_netaio_app_" + path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"cannot import {module_name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise UsageError(f"no module named {module_name!r}") from None
            raise
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{module_name} has no attribute {attr!r}") from None
    return obj


async def _make_server(target: Any) -> TCPServer[Any]:
    server = target
    if not isinstance(server, TCPServer) and callable(server):
        server = server()
        if inspect.isawaitable(server):
            server = await server
    if not isinstance(server, TCPServer):
        raise UsageError(f"the target is not a TCPServer nor a factory of one: {server!r}")
    return server


def _server_ssl(args: argparse.Namespace) -> ssl_module.SSLContext | None:
    if not args.ssl_certfile:
        if args.ssl_keyfile or args.ssl_ca_certs:
            raise UsageError("--ssl-keyfile and --ssl-ca-certs need --ssl-certfile")
        return None
    context = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
    if args.ssl_ca_certs:
        context.load_verify_locations(args.ssl_ca_certs)
        context.verify_mode = ssl_module.CERT_REQUIRED
    return context


def configure(server: TCPServer[Any], args: argparse.Namespace) -> None:
    """Apply the command line to a server."""
    if args.host is not None:
        server.host = args.host
    if args.port is not None:
        server.port = args.port
    if args.backlog is not None:
        server.backlog = args.backlog
    changes = {n: getattr(args, n) for n in _LIMIT_OPTIONS if getattr(args, n) is not None}
    if changes:
        try:
            server.limits = dataclasses.replace(server.limits, **changes)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    context = _server_ssl(args)
    if context is not None:
        server.ssl = context
    if args.broker:
        from .nats import NatsBroker

        urls = [u.strip() for u in args.broker.split(",") if u.strip()]
        server.broker = NatsBroker(urls if len(urls) > 1 else urls[0], prefix=args.broker_prefix)


async def _serve_one(args: argparse.Namespace, worker: tuple[int, Any, int] | None) -> None:
    server = await _make_server(load_target(args.target, args.app_dir))
    configure(server, args)
    sock = None
    if worker is not None:
        sock = worker[1]
        if sock is None:
            server.reuse_port = True
    if args.metrics_port is not None:
        from .metrics import instrument, start_metrics_server

        instrument(server)
        if worker is None:
            start_metrics_server(args.metrics_port, args.metrics_host)
            runner_logger.info(
                "Metrics on http://%s:%d/metrics", args.metrics_host, args.metrics_port
            )

    def ready() -> None:
        if worker is not None:
            signal_ready(worker[0])

    await serve(
        server,
        grace=args.shutdown_grace,
        sock=sock,
        on_ready=ready,
        watch_parent=None if worker is None else worker[2],
    )


def _reuse_port_available() -> bool:
    # Linux balances SO_REUSEPORT listeners; the BSDs and macOS do not.
    return hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith(("linux", "freebsd"))


def _supervise(args: argparse.Namespace, argv: Sequence[str]) -> int:
    host, port = args.host, args.port
    if host is None or port is None:
        target = load_target(args.target, args.app_dir)
        if not isinstance(target, TCPServer):
            raise UsageError("--workers with a server factory needs --host and --port")
        host = target.host if host is None else host
        port = target.port if port is None else port
    sock: socket.socket | None = None
    if port == 0 or not _reuse_port_available():
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(args.backlog or 1024)
        sock.set_inheritable(True)
        port = sock.getsockname()[1]
    env = dict(os.environ)
    metrics_dir = None
    on_exit = None
    if args.metrics_port is not None:
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics_dir = tempfile.mkdtemp(prefix="netaio-metrics-")
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = env["PROMETHEUS_MULTIPROC_DIR"]
        from .metrics import mark_process_dead, start_metrics_server

        http = start_metrics_server(args.metrics_port, args.metrics_host)
        runner_logger.info("Metrics on http://%s:%d/metrics", args.metrics_host, args.metrics_port)
        on_exit = mark_process_dead
    command = [sys.executable, "-m", "netaio_server.cli", *argv]
    if sock is None:  # every worker binds the same port, which must be known
        command += ["--host", host, "--port", str(port)]
    grace = args.shutdown_grace if args.shutdown_grace is not None else 30.0
    supervisor = Supervisor(
        command,
        args.workers,
        sock=sock,
        env=env,
        stop_timeout=grace + 15.0,
        on_worker_exit=on_exit,
        describe=f"on {host}:{port}" + (" (SO_REUSEPORT)" if sock is None else ""),
    )
    try:
        return supervisor.run()
    finally:
        if sock is not None:
            sock.close()
        if args.metrics_port is not None:
            http.shutdown()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def run_serve(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run ``serve`` from parsed arguments; ``argv`` is the command line from
    "serve" on (for the workers). Returns the exit status."""
    configure_logging(args.log_level)
    worker = worker_environment()
    try:
        if worker is None and args.workers > 1:
            return _supervise(args, argv)
        if worker is not None:  # the supervisor says it once for all
            runner_logger.setLevel(max(runner_logger.getEffectiveLevel(), logging.WARNING))
        if args.workers < 1:
            raise UsageError("--workers must be at least 1")
        run_coroutine(_serve_one(args, worker), args.loop)
    except UsageError as exc:
        print(f"netaio serve: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ImportError, RuntimeError) as exc:
        runner_logger.error("Cannot serve: %s", exc)
        return 1
    except asyncio.CancelledError:
        return 1
    return 0


# -- the client tools ----------------------------------------------------------

EXIT_OK = 0
EXIT_ERROR_REPLY = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_TIMEOUT = 4
ERROR_TYPES = frozenset(
    {
        MessageType.ERROR,
        MessageType.NOT_FOUND,
        MessageType.AUTH_ERROR,
        MessageType.NOT_PERMITTED,
    }
)


_CLIENT_EXTRA = 'pip install "netaio-server[client]"'


class _Fail(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def _message_type(text: str) -> MessageType:
    name = text.upper().replace("-", "_")
    for candidate in (name, name + "_URI"):
        if candidate in MessageType.__members__:
            return MessageType[candidate]
    if name.isdigit():
        try:
            return MessageType(int(name))
        except ValueError:
            pass
    choices = ", ".join(MessageType.__members__)
    raise argparse.ArgumentTypeError(f"unknown message type {text!r} (one of {choices})")


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("address", metavar="HOST:PORT", type=_address)
    parser.add_argument("uri", metavar="URI")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON (one object a line)")
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="TLS with the system's CA certificates")
    tls.add_argument("--ssl-ca-certs", help="verify the server with this CA bundle (implies TLS)")
    tls.add_argument("--ssl-certfile", help="client certificate, for mutual TLS (implies TLS)")
    tls.add_argument("--ssl-keyfile", help="the client certificate's key")
    tls.add_argument("--server-hostname", help="the name to verify the certificate against")
    auth = parser.add_argument_group("HMAC (never put the secret itself on the command line)")
    secret = auth.add_mutually_exclusive_group()
    secret.add_argument("--hmac-secret-env", metavar="VAR", help="the secret is in $VAR")
    secret.add_argument("--hmac-secret-file", metavar="PATH", help="the secret is in this file")


def _ssl(args: argparse.Namespace) -> ssl_module.SSLContext | None:
    if not (args.tls or args.ssl_ca_certs or args.ssl_certfile):
        return None
    context = ssl_module.create_default_context(cafile=args.ssl_ca_certs)
    if args.ssl_certfile:
        context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
    return context


def _auth(args: argparse.Namespace) -> AuthPluginProtocol | None:
    if args.hmac_secret_env:
        secret = os.environ.get(args.hmac_secret_env)
        if not secret:
            raise _Fail(EXIT_USAGE, f"${args.hmac_secret_env} is not set")
    elif args.hmac_secret_file:
        try:
            with open(args.hmac_secret_file, "rb") as file:
                secret_bytes = file.read().rstrip(b"\r\n")
        except OSError as exc:
            raise _Fail(EXIT_USAGE, f"cannot read the HMAC secret: {exc}") from None
        if not secret_bytes:
            raise _Fail(EXIT_USAGE, f"{args.hmac_secret_file} is empty")
        return _hmac(secret_bytes)
    else:
        return None
    return _hmac(secret.encode())


def _content(text: str | None) -> bytes:
    if text is None:
        return b""
    if text == "-":
        return sys.stdin.buffer.read()
    if text.startswith("@"):
        try:
            with open(text[1:], "rb") as file:
                return file.read()
        except OSError as exc:
            raise _Fail(EXIT_USAGE, f"cannot read {text[1:]}: {exc}") from None
    return text.encode()


def _as_json(message: Message) -> str:
    record: dict[str, Any] = {"type": message.header.message_type.name}
    for field in ("uri", "content"):
        value: bytes = getattr(message.body, field)
        try:
            record[field] = value.decode()
        except UnicodeDecodeError:
            record[field + "_base64"] = base64.b64encode(value).decode()
    return json.dumps(record)


def _write(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data if data.endswith(b"\n") else data + b"\n")
    out.flush()


async def _connect(args: argparse.Namespace, limits: Limits | None = None) -> TCPClient[Message]:
    host, port = args.address
    client_class = _client_class()
    client: TCPClient[Message] = client_class(host, port, auth_plugin=_auth(args), limits=limits)
    try:
        await client.connect(
            ssl=_ssl(args), server_hostname=args.server_hostname, timeout=args.timeout
        )
    except TimeoutError:
        raise _Fail(EXIT_TIMEOUT, f"connecting to {host}:{port} timed out") from None
    except (OSError, NetaioError, ssl_module.SSLError) as exc:
        raise _Fail(EXIT_CONNECTION, f"cannot connect to {host}:{port}: {exc}") from None
    return client


async def _request(args: argparse.Namespace) -> int:
    content = _content(args.content)
    client = await _connect(args)
    try:
        try:
            reply = await client.request(
                args.uri.encode(), content, message_type=args.type, timeout=args.timeout
            )
        except AuthenticationError as exc:
            if exc.reply is None:
                raise _Fail(EXIT_ERROR_REPLY, f"the reply failed the auth check: {exc}") from None
            reply = cast("Message", exc.reply)
        except TimeoutError:
            raise _Fail(EXIT_TIMEOUT, f"no reply within {args.timeout:g}s") from None
        except (OSError, NetaioError) as exc:
            raise _Fail(EXIT_CONNECTION, f"request failed: {exc}") from None
    finally:
        await client.close_all()
    if args.json:
        print(_as_json(reply), flush=True)
    else:
        uri = reply.body.uri.decode(errors="backslashreplace")
        _write(f"{reply.header.message_type.name} {uri}".encode())
        _write(reply.body.content)
    return EXIT_ERROR_REPLY if reply.header.message_type in ERROR_TYPES else EXIT_OK


async def _subscribe(args: argparse.Namespace) -> int:
    client = await _connect(args, Limits(max_queue=1 << 20))
    received = 0
    loop = asyncio.get_running_loop()
    deadline = None if args.timeout is None else loop.time() + args.timeout
    try:
        try:
            async with client.subscribe(args.uri.encode(), timeout=args.timeout or 10.0) as feed:
                print(f"netaio: subscribed to {args.uri}", file=sys.stderr, flush=True)
                while args.count is None or received < args.count:
                    left = None if deadline is None else deadline - loop.time()
                    if left is not None and left <= 0:
                        raise TimeoutError
                    message = await asyncio.wait_for(feed.__anext__(), left)
                    received += 1
                    if args.json:
                        print(_as_json(message), flush=True)
                    else:
                        _write(message.body.content)
        except TimeoutError:
            if args.count is None:
                return EXIT_OK  # --timeout alone: listen that long
            raise _Fail(
                EXIT_TIMEOUT, f"{received} of {args.count} notifications in {args.timeout:g}s"
            ) from None
        except ConnectionClosedError as exc:
            raise _Fail(EXIT_CONNECTION, f"connection ended: {exc}") from None
        except (OSError, NetaioError) as exc:
            raise _Fail(EXIT_CONNECTION, f"subscription failed: {exc}") from None
    finally:
        await client.close_all()
    return EXIT_OK


def _hmac(secret: bytes) -> AuthPluginProtocol:
    try:
        from netaio_auth import HMACAuthPlugin
    except ImportError:
        raise _Fail(EXIT_USAGE, f"HMAC needs netaio-auth: {_CLIENT_EXTRA}") from None
    return HMACAuthPlugin({"secret": secret})


def _client_class() -> type[TCPClient[Any]]:
    try:
        from netaio_client import TCPClient
    except ImportError:
        raise _Fail(
            EXIT_USAGE, f"the client commands need netaio-client: {_CLIENT_EXTRA}"
        ) from None
    return TCPClient


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netaio",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_arguments(commands.add_parser("serve", help="run a TCPServer (like uvicorn)"))
    request = commands.add_parser("request", help="send one request, print the reply")
    _client_options(request)
    request.add_argument(
        "--type", type=_message_type, default=MessageType.REQUEST_URI, help="REQUEST_URI, ..."
    )
    request.add_argument("--content", help="TEXT, @FILE or - (standard input)")
    subscribe = commands.add_parser("subscribe", help="print notifications as they arrive")
    _client_options(subscribe)
    subscribe.set_defaults(timeout=None)
    subscribe.add_argument("--count", type=int, help="exit after N notifications")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``netaio`` console script and ``python -m netaio``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    if args.command == "serve":
        return run_serve(args, args_list)
    command = _request if args.command == "request" else _subscribe
    try:
        return asyncio.run(command(args))
    except _Fail as exc:
        print(f"netaio {args.command}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
