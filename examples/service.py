"""A small pub/sub service for ``netaio serve`` (see the README's "Run in
production" and "Scale out").

    netaio serve examples/service.py:server --port 8888 --workers 2
    netaio request 127.0.0.1:8888 echo --content hello
    netaio subscribe 127.0.0.1:8888 news --count 1 &
    netaio request 127.0.0.1:8888 news --type PUBLISH --content "hello, world"

Requests:

- REQUEST_URI ``echo``: answers RESPOND_URI with the content;
- REQUEST_URI ``slow``: answers after ``content`` seconds (default 1);
- REQUEST_URI ``fail``: the handler raises (an ERROR reply);
- PUBLISH_URI ``URI``: notifies the subscribers of URI (NOTIFY_URI with the
  content; with ``--broker``, those of every instance) and answers OK;
- SUBSCRIBE_URI / UNSUBSCRIBE_URI: ``netaio subscribe``.

With ``NETAIO_HMAC_SECRET`` set in its environment, every message must be
signed with that secret (``netaio request --hmac-secret-env VAR``).
"""

from __future__ import annotations

import asyncio
import os

from netaio import Body, HMACAuthPlugin, Message, MessageType, TCPServer

secret = os.environ.get("NETAIO_HMAC_SECRET")
server = TCPServer(
    host="127.0.0.1",
    port=8888,
    auth_plugin=HMACAuthPlugin({"secret": secret}) if secret else None,
)
server.enable_subscriptions()


def reply(uri: bytes, content: bytes, message_type: MessageType) -> Message:
    return Message.prepare(Body.prepare(content, uri=uri), message_type)


@server.on((MessageType.REQUEST_URI, b"echo"))
def echo(message: Message, writer: asyncio.StreamWriter) -> Message:
    return reply(b"echo", message.body.content, MessageType.RESPOND_URI)


@server.on((MessageType.REQUEST_URI, b"slow"))
async def slow(message: Message, writer: asyncio.StreamWriter) -> Message:
    await asyncio.sleep(float(message.body.content or b"1"))
    return reply(b"slow", b"done", MessageType.RESPOND_URI)


@server.on((MessageType.REQUEST_URI, b"fail"))
def fail(message: Message, writer: asyncio.StreamWriter) -> Message:
    raise RuntimeError("this handler always fails")


@server.on(MessageType.PUBLISH_URI)
async def publish(message: Message, writer: asyncio.StreamWriter) -> Message:
    uri = message.body.uri
    await server.notify(uri, reply(uri, message.body.content, MessageType.NOTIFY_URI))
    return reply(uri, b"", MessageType.OK)


if __name__ == "__main__":  # python examples/service.py: the same, without the CLI
    import logging

    from netaio import run

    logging.basicConfig(level=logging.INFO)
    run(server)
