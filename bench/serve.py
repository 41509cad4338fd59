"""The server process of a split measurement (see bench/harness.py).

    python bench/serve.py IMPL LOOP [--hmac | --aead] [--broker-port PORT]

Starts IMPL's server on 127.0.0.1 and prints ``{"port": ...}``; then answers
each ``cpu`` line of stdin with ``{"cpu": seconds}`` (user + system CPU time
of this process so far), and stops when stdin ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from common import LOOPS, WAIT, cpu_seconds, read_stdin_line, run_on_loop, settle_malloc
from impls import SPECS, make_server


def say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def serve(args: argparse.Namespace) -> None:
    server = make_server(args.impl, "aead" if args.aead else args.hmac, args.broker_port)
    port = await asyncio.wait_for(server.start(), WAIT)
    version = None
    if SPECS[args.impl].module == "framed" and args.impl != "raw" and args.impl != "rawproto":
        import netaio

        version = netaio.version()
    say(port=port, version=version)
    try:
        while (await read_stdin_line()).strip() == "cpu":
            say(cpu=cpu_seconds())
    finally:
        await asyncio.wait_for(server.stop(), WAIT)


def main() -> None:
    settle_malloc()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=list(SPECS))
    parser.add_argument("loop", choices=LOOPS)
    parser.add_argument("--hmac", action="store_true")
    parser.add_argument("--aead", action="store_true", help="AEADCipherPlugin (netaio only)")
    parser.add_argument("--broker-port", type=int, default=0)
    args = parser.parse_args()
    run_on_loop(args.loop, serve(args))


if __name__ == "__main__":
    main()
