"""A netaio peer in a process of its own, for the resilience tests (which
SIGKILL, SIGSTOP and restart it).

    python resilient_peer.py server PORT
        Serves on 127.0.0.1:PORT with enable_subscriptions(); REQUEST_URI
        b"echo" is answered RESPOND_URI with the content; PUBLISH_URI to a
        uri notifies the subscribers of that uri (NOTIFY_URI, the same uri
        and content) and is answered OK. Prints "ready" once listening and
        serves until killed.

    python resilient_peer.py client PORT INTERVAL
        Connects to 127.0.0.1:PORT with Limits(heartbeat_interval=INTERVAL,
        heartbeat_timeout=INTERVAL), subscribes to b"topic", waits longer
        than the interval (so that at least one heartbeat has been sent and
        answered), prints "ready" and then waits until killed.

Only the standard library and netaio: it runs with the tests' interpreter.
"""

from __future__ import annotations

import asyncio
import sys

from netaio import Body, Limits, Message, MessageType, TCPClient, TCPServer


async def serve(port: int) -> None:
    server: TCPServer[Message] = TCPServer(host="127.0.0.1", port=port)
    server.enable_subscriptions()

    @server.on((MessageType.REQUEST_URI, b"echo"))
    def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
        return Message.prepare(Body.prepare(message.body.content, b"echo"), MessageType.RESPOND_URI)

    @server.on(MessageType.PUBLISH_URI)
    async def publish(message: Message, writer: asyncio.StreamWriter) -> Message:
        uri = message.body.uri
        await server.notify(
            uri, Message.prepare(Body.prepare(message.body.content, uri), MessageType.NOTIFY_URI)
        )
        return Message.prepare(Body.prepare(b"published", uri), MessageType.OK)

    await server.listen()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def subscribe_and_wait(port: int, interval: float) -> None:
    limits = Limits(heartbeat_interval=interval, heartbeat_timeout=interval)
    client: TCPClient[Message] = TCPClient("127.0.0.1", port, limits=limits)
    await asyncio.wait_for(client.connect(), 10)
    async with client.subscribe(b"topic"):
        await asyncio.sleep(interval * 2)  # at least one heartbeat is sent and answered
        print("ready", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "server":
        asyncio.run(serve(port))
    elif mode == "client":
        asyncio.run(subscribe_and_wait(port, float(sys.argv[3])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
