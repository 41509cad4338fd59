"""Multicast discovery, run only inside a private network namespace that has
only loopback: each scenario of netns_scenarios.py runs in a subprocess under
``unshare -n`` (which needs root or user namespaces), after ``ip link set lo
up``, ``ip link set lo multicast on`` and ``ip route add 224.0.0.0/4 dev lo``.
Nothing is sent outside that namespace. Skipped where namespaces or ``ip``
are unavailable.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("netns_scenarios.py")
SETUP = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"


@functools.cache
def _namespace_problem() -> str | None:
    """Why a private network namespace cannot be made here (None: it can)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return "the unshare and ip commands are needed for a private network namespace"
    try:
        done = subprocess.run(
            [unshare, "-n", "sh", "-c", SETUP], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -n failed: {exc}"
    if done.returncode != 0:
        return f"no private network namespace (unshare -n: {done.stderr.strip()})"
    return None


def _run(scenario: str) -> str:
    problem = _namespace_problem()
    if problem is not None:
        pytest.skip(problem)
    command = f"{SETUP} && exec {sys.executable} -X dev -W error {SCRIPT} {scenario}"
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=SCRIPT.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not done.stderr, done.stderr
    if done.stdout.startswith("SKIP"):
        pytest.skip(done.stdout.strip())
    assert f"OK {scenario}" in done.stdout, done.stdout
    return done.stdout


def test_two_nodes_discover_each_other_and_drop_a_silent_one() -> None:
    """Within one advertisement interval (0.3 s); a node stopped without a
    DISCONNECT is dropped after the peer timeout (1 s), one that says
    goodbye at once."""
    _run("two")


def test_ten_nodes_discover_each_other_within_one_interval() -> None:
    _run("ten_plain")


def test_ten_nodes_exchange_authenticated_requests() -> None:
    """HMACAuthPlugin with replay protection on advertisements and requests;
    a node with another secret is not taken for a peer."""
    pytest.importorskip("netaio_auth", reason="netaio-auth is not installed")
    _run("ten_hmac")


def test_ten_nodes_exchange_encrypted_requests() -> None:
    pytest.importorskip("netaio_auth", reason="netaio-auth is not installed")
    pytest.importorskip("cryptography", reason="AEADCipherPlugin needs `cryptography`")
    _run("ten_cipher")
