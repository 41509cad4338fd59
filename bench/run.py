"""Run every benchmark workload for netaio, raw asyncio streams and netaio 0.0.2.

    python bench/run.py [--old-python PATH] [--repeats 3] [--seconds 1.0]

Each measurement runs in a fresh process (bench/workloads.py) for one
(implementation, event loop, workload); the repeats are interleaved and the
best run is kept, so that a burst of load elsewhere on the machine costs one
run, not a column. netaio 0.0.2 runs the same workload script under
``--old-python``, an interpreter whose ``import netaio`` is 0.0.2 from PyPI.

The markdown table is printed and written between the markers of
docs/benchmarks.md (the rest of that file is kept as it is).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS_PY = ROOT / "bench" / "workloads.py"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

OURS, RAW, OLD = "netaio", "raw asyncio", "netaio 0.0.2"
LOOPS = ("asyncio", "uvloop")
CODEC_LOOP = "-"  # the codec does no I/O: measured once, on no event loop
# workload -> (label, unit, higher is better)
WORKLOADS: dict[str, tuple[str, str, bool]] = {
    "rtt": ("round trips, 1 client", "round trips/s", True),
    "rtt_hmac": ("round trips, 1 client, HMAC", "round trips/s", True),
    "concurrent50": ("server throughput, 50 clients", "round trips/s", True),
    "fanout200": ("notify fan-out, 200 subscribers", "deliveries/s", True),
    "fanout1000": ("notify fan-out, 1,000 subscribers", "deliveries/s", True),
    "codec": ("codec encode+decode, no auth", "messages/s", True),
    "codec_auth": ("codec encode+decode, 3 auth fields", "messages/s", True),
    "memory1000": ("memory per idle connection (1,000)", "bytes", False),
}


@dataclass
class Impl:
    label: str
    python: str
    arg: str  # the IMPL argument of workloads.py
    version: str | None = None  # checked on the first run


@dataclass
class Results:
    values: dict[tuple[str, str, str], list[dict[str, float]]] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def add(self, key: tuple[str, str, str], result: dict[str, float]) -> None:
        self.values.setdefault(key, []).append(result)

    def best(self, workload: str, loop: str, impl: str, metric: str = "value") -> float | None:
        runs = self.values.get((workload, loop, impl))
        if not runs:
            return None
        figures = [r[metric] for r in runs]
        if WORKLOADS[workload][2]:
            return max(figures)
        return statistics.median(figures)  # memory: the typical run


def run_one(impl: Impl, loop: str, workload: str, args: argparse.Namespace) -> dict[str, float]:
    command = [
        impl.python,
        str(WORKLOADS_PY),
        impl.arg,
        "asyncio" if loop == CODEC_LOOP else loop,
        workload,
        "--seconds",
        str(args.seconds),
        "--helper-python",
        sys.executable,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=ROOT)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"exit status {proc.returncode}:\n{tail}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    version = result.pop("version", None)  # type: ignore[call-overload]
    if impl.version is not None and version != impl.version:
        raise RuntimeError(f"{impl.label}: `import netaio` is {version}, not {impl.version}")
    return result


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import uvloop

        uvloop_version = uvloop.__version__
    except ImportError:
        uvloop_version = "not installed"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores",
        f"- OS: {platform.platform()}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}; "
        f"uvloop {uvloop_version}",
        f"- Load average (1 min) when the run started: {load:.2f}",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
    ]


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "bytes":
        return f"{value / 1024:,.1f} KiB"
    return f"{value:,.0f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def table(results: Results, impls: list[Impl], args: argparse.Namespace) -> tuple[str, list[str]]:
    labels = [i.label for i in impls]
    has_old = OLD in labels
    lines = [
        "| workload | loop | " + " | ".join(labels) + " | netaio/raw"
        + (" | netaio/0.0.2" if has_old else "") + " |",
        "|---|---|" + "---:|" * (len(labels) + 1 + has_old),
    ]  # fmt: skip
    for workload, (label, unit, _) in WORKLOADS.items():
        if workload not in args.workloads:
            continue
        loops = (CODEC_LOOP,) if workload.startswith("codec") else tuple(args.loops)
        for loop in loops:
            figures = [results.best(workload, loop, i) for i in labels]
            cells = [
                "error" if (workload, loop, i) in results.errors and f is None else fmt(f, unit)
                for i, f in zip(labels, figures, strict=True)
            ]
            ours, raw = figures[0], figures[labels.index(RAW)]
            old = figures[labels.index(OLD)] if has_old else None
            row_ratios = [ratio(ours, raw)] + ([ratio(ours, old)] if has_old else [])
            shown = f"{label}, tracemalloc" if unit == "bytes" else f"{label} ({unit})"
            lines.append(f"| {shown} | {loop} | " + " | ".join(cells + row_ratios) + " |")
            if unit == "bytes":
                rss = [results.best(workload, loop, i, "rss") for i in labels]
                rss_ratios = [ratio(rss[0], rss[labels.index(RAW)])]
                if has_old:
                    rss_ratios.append(ratio(rss[0], rss[labels.index(OLD)]))
                lines.append(
                    f"| {label}, RSS | {loop} | "
                    + " | ".join([fmt(v, unit) for v in rss] + rss_ratios)
                    + " |"
                )
    lines += ["", "| HMAC / no auth (round trips, 1 client) | " + " | ".join(labels) + " |"]
    lines.append("|---|" + "---:|" * len(labels))
    for loop in args.loops:
        cells = [
            ratio(results.best("rtt_hmac", loop, i), results.best("rtt", loop, i)) for i in labels
        ]
        lines.append(f"| {loop} | " + " | ".join(cells) + " |")

    targets: list[str] = []

    def check(name: str, value: float | None, goal: float) -> None:
        if value is None:
            targets.append(f"| {name} | n/a | >= {goal}x | not measured |")
            return
        met = "met" if value >= goal else "**not met**"
        targets.append(f"| {name} | {value:.2f}x | >= {goal}x | {met} |")

    def r(workload: str, loop: str, a: str, b: str) -> float | None:
        x, y = results.best(workload, loop, a), results.best(workload, loop, b)
        return None if x is None or y is None or y == 0 else x / y

    for loop, goal in (("asyncio", 0.8), ("uvloop", 0.5)):
        if loop in args.loops:
            check(f"round trips vs raw asyncio streams, {loop}", r("rtt", loop, OURS, RAW), goal)
    for loop in args.loops:
        check(f"round trips vs netaio 0.0.2, {loop}", r("rtt", loop, OURS, OLD), 2.0)
    for loop in args.loops:
        for w in ("fanout200", "fanout1000"):
            check(f"{WORKLOADS[w][0]} vs netaio 0.0.2, {loop}", r(w, loop, OURS, OLD), 3.0)
    for loop in args.loops:
        ours_hmac, ours = results.best("rtt_hmac", loop, OURS), results.best("rtt", loop, OURS)
        hmac_ratio = None if ours_hmac is None or not ours else ours_hmac / ours
        check(f"HMAC / no auth, {loop}", hmac_ratio, 0.6)
    for w in ("codec", "codec_auth"):
        check(f"{WORKLOADS[w][0]} vs netaio 0.0.2", r(w, CODEC_LOOP, OURS, OLD), 3.0)
    lines += [
        "",
        "| target (ratio in this run) | measured | goal | |",
        "|---|---:|---:|---|",
        *targets,
    ]
    return "\n".join(lines), targets


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
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed window of each run")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--loops", nargs="+", choices=LOOPS, default=list(LOOPS))
    parser.add_argument("--impls", nargs="+", choices=("netaio", "raw", "old"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    impls = [Impl(OURS, sys.executable, "netaio"), Impl(RAW, sys.executable, "raw")]
    if args.old_python:
        impls.append(Impl(OLD, args.old_python, "netaio", "0.0.2"))
    wanted = {"netaio": OURS, "raw": RAW, "old": OLD}
    chosen = {wanted[k] for k in args.impls or wanted}
    selected = [i for i in impls if i.label in chosen]

    from workloads import self_check  # same directory

    self_check()
    started = time.perf_counter()
    header = machine()
    results = Results()
    for repeat in range(args.repeats):
        for workload in args.workloads:
            loops = (CODEC_LOOP,) if workload.startswith("codec") else tuple(args.loops)
            for loop in loops:
                # Rotate the order each repeat: no implementation always runs first.
                k = (repeat + len(results.values)) % len(selected)
                for impl in selected[k:] + selected[:k]:
                    key = (workload, loop, impl.label)
                    try:
                        result = run_one(impl, loop, workload, args)
                    except Exception as exc:
                        results.errors[key] = str(exc)
                        print(f"{impl.label} {loop} {workload}: FAILED {exc}", file=sys.stderr)
                        continue
                    results.add(key, result)
                    print(
                        f"[{repeat + 1}/{args.repeats}] {workload:<13} {loop:<8} "
                        f"{impl.label:<13} {result['value']:>14,.1f}",
                        file=sys.stderr,
                    )
    body, _ = table(results, selected, args)
    elapsed = time.perf_counter() - started
    text = "\n".join(
        [
            "Machine:",
            "",
            *header,
            "",
            f"Best of {args.repeats} interleaved runs of {args.seconds:g} s each "
            f"(memory: median); the whole run took {elapsed:.0f} s.",
            "",
            body,
        ]
    )
    print(text)
    if not args.no_write and args.workloads == list(WORKLOADS) and len(selected) == len(impls):
        write_doc(text)
        print(f"\nwritten to {DOC.relative_to(ROOT)}", file=sys.stderr)
    if results.errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
