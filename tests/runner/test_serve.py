"""`netaio serve`, `netaio request` / `subscribe` and `run(server)`, as real
processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from runner.support import ROOT, Processes, free_port, worker_pids

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SECRET_ENV = {"NETAIO_HMAC_SECRET": "s3cret-for-tests-only"}


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


def test_workers_answer_request_and_subscribe_then_stop_on_sigterm(procs: Processes) -> None:
    nats_port, port = free_port(), free_port()
    procs.nats(nats_port)
    serve = procs.serve(
        "--port", str(port), "--workers", "2", "--broker", f"nats://127.0.0.1:{nats_port}"
    )
    serve.wait_for(r"Supervisor \d+ ready: 2 workers on 127\.0\.0\.1:\d+ \(SO_REUSEPORT\)")
    assert len(set(worker_pids(serve))) == 2
    address = f"127.0.0.1:{port}"
    code, out, err = procs.run_netaio("request", address, "echo", "--content", "hello")
    assert (code, out) == (0, "RESPOND_URI echo\nhello\n"), err

    # The subscriber and the publisher may reach different workers: the
    # broker carries the notification between them.
    sub = procs.netaio("subscribe", address, "news", "--count", "3", "--timeout", "15")
    sub.wait_for("subscribed to news")
    received: list[str] = []
    for attempt in range(200):  # the broker's interest follows the confirmation
        procs.run_netaio(
            "request", address, "news", "--type", "publish", "--content", f"p{attempt}"
        )
        received = sub.out().split()
        if received:
            break
    for text in ("second", "third"):
        code, out, _ = procs.run_netaio(
            "request", address, "news", "--type", "PUBLISH_URI", "--content", text
        )
        assert (code, out) == (0, "OK news\n\n")
    assert sub.wait(15) == 0
    assert sub.out().split()[-2:] == ["second", "third"]

    # SIGTERM during a slow request: it is answered, then everything exits 0.
    connected = len(serve.wait_for(r"Client connected"))  # the requests above
    slow = procs.netaio("request", address, "slow", "--content", "1.5")
    serve.wait_for(r"Client connected", count=connected + 1)
    time.sleep(0.5)  # the request is in its handler
    started = time.monotonic()
    serve.signal(signal.SIGTERM)
    assert slow.wait(10) == 0, slow.err()
    assert slow.out() == "RESPOND_URI slow\ndone\n"
    assert serve.wait(10) == 0
    assert time.monotonic() - started < 5.0  # within the grace (5 s)
    err = serve.err()
    _no_traceback(err)
    assert len([line for line in err.splitlines() if "Received SIGTERM" in line]) == 1, err


def test_a_killed_worker_is_restarted(procs: Processes) -> None:
    port = free_port()
    serve = procs.serve("--port", str(port), "--workers", "2", "--shutdown-grace", "2")
    serve.wait_for(r"Supervisor \d+ ready")
    first, second = worker_pids(serve)
    os.kill(first, signal.SIGKILL)
    serve.wait_for(rf"Worker {first} died unexpectedly \(killed by SIGKILL\): restarting it")
    serve.wait_for(r"Server started", count=3)
    assert len(set(worker_pids(serve)) - {first, second}) == 1
    for _ in range(10):  # whichever worker the kernel picks answers
        code, out, err = procs.run_netaio("request", f"127.0.0.1:{port}", "echo", "--content", "x")
        assert (code, out) == (0, "RESPOND_URI echo\nx\n"), err
    serve.signal(signal.SIGINT)
    assert serve.wait(10) == 0
    _no_traceback(serve.err())


def test_one_process_with_an_inherited_socket_on_port_0(procs: Processes) -> None:
    serve = procs.serve("--port", "0", "--workers", "2", "--host", "127.0.0.1")
    line = serve.wait_for(r"Supervisor \d+ ready: 2 workers on 127\.0\.0\.1:(\d+)$")
    port = int(line[0])
    code, out, _ = procs.run_netaio("request", f"127.0.0.1:{port}", "echo", "--content", "y")
    assert (code, out) == (0, "RESPOND_URI echo\ny\n")
    serve.signal(signal.SIGTERM)
    assert serve.wait(10) == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_in_a_script_stops_gracefully(procs: Processes, tmp_path: Path, signum: int) -> None:
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import logging
            import sys

            sys.path.insert(0, {str(ROOT / "examples")!r})
            from service import server

            from netaio import run

            logging.basicConfig(level=logging.INFO)
            server.port = {port}
            run(server)
            """
        )
    )
    proc = procs.start([sys.executable, str(script)], "script")
    proc.wait_for("Server started")
    slow = procs.netaio("request", f"127.0.0.1:{port}", "slow", "--content", "1")
    proc.wait_for("Client connected")
    time.sleep(0.3)
    proc.signal(signum)
    assert slow.wait(10) == 0
    assert slow.out() == "RESPOND_URI slow\ndone\n"
    assert proc.wait(10) == 0
    _no_traceback(proc.err())
    name = signal.Signals(signum).name
    assert len([x for x in proc.err().splitlines() if f"Received {name}" in x]) == 1


def test_request_exit_codes_json_and_hmac(procs: Processes) -> None:
    port = free_port()
    serve = procs.serve("--port", str(port), env=SECRET_ENV)
    serve.wait_for("Server started")
    address = f"127.0.0.1:{port}"
    auth = ("--hmac-secret-env", "NETAIO_HMAC_SECRET")

    def request(*args: str, signed: bool = True) -> tuple[int, str, str]:
        return procs.run_netaio(
            "request", address, *args, *(auth if signed else ()), env=SECRET_ENV
        )

    code, out, _ = request("echo", "--content", "hi", "--json")
    assert code == 0
    assert json.loads(out) == {"type": "RESPOND_URI", "uri": "echo", "content": "hi"}
    code, out, _ = request("missing", "--json")
    assert (code, json.loads(out)["type"]) == (1, "NOT_FOUND")
    code, out, _ = request("fail")
    assert (code, out.splitlines()[0]) == (1, "ERROR ERROR")
    code, out, _ = request("echo", signed=False)
    assert (code, out.splitlines()[0]) == (1, "AUTH_ERROR ERROR")
    code, _, err = request("slow", "--content", "3", "--timeout", "0.5")
    assert code == 4, err
    assert "no reply within 0.5s" in err
    (Path(serve.out_path).parent / "body.txt").write_bytes(b"from a file")
    code, out, _ = request("echo", "--content", f"@{Path(serve.out_path).parent / 'body.txt'}")
    assert (code, out) == (0, "RESPOND_URI echo\nfrom a file\n")
    code, _, err = procs.run_netaio("request", f"127.0.0.1:{free_port()}", "echo")
    assert code == 3, err
    code, _, err = procs.run_netaio("request", address, "echo", "--hmac-secret-env", "UNSET_VAR_X")
    assert code == 2
    serve.signal(signal.SIGTERM)
    assert serve.wait(10) == 0  # (the "fail" handler's traceback is in the log)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


@pytest.mark.parametrize("workers", ["1", "2"])
def test_metrics_endpoint(procs: Processes, workers: str) -> None:
    port, metrics_port = free_port(), free_port()
    serve = procs.serve(
        "--port",
        str(port),
        "--workers",
        workers,
        "--metrics-port",
        str(metrics_port),
        "--metrics-host",
        "127.0.0.1",
    )
    serve.wait_for(r"Supervisor \d+ ready" if workers == "2" else "Server started")
    address = f"127.0.0.1:{port}"
    for _ in range(3):
        assert procs.run_netaio("request", address, "echo", "--content", "m")[0] == 0
    assert procs.run_netaio("request", address, "missing")[0] == 1
    text = _scrape(metrics_port)
    assert 'netaio_messages_received_total{type="REQUEST_URI"} 4.0' in text, text
    assert 'netaio_messages_sent_total{type="RESPOND_URI"} 3.0' in text
    assert 'netaio_messages_sent_total{type="NOT_FOUND"} 1.0' in text
    assert "netaio_connections_accepted_total 4.0" in text
    assert "netaio_connections_open 0.0" in text
    assert 'netaio_handler_duration_seconds_count{type="REQUEST_URI"} 4.0' in text
    serve.signal(signal.SIGTERM)
    assert serve.wait(10) == 0
    _no_traceback(serve.err())
